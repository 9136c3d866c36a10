//! One test per validation rule: a broken copy of the lab definition must fail with
//! that rule's name, at the right line.
use lvs_controller::diagnostics::{Diagnostic, Severity};
use lvs_controller::load::{LoadError, load_str};

const LAB: &str = include_str!("../../deploy/examples/lab.toml");
const HA: &str = include_str!("../../deploy/examples/lab-ha.toml");
const DUAL: &str = include_str!("../../deploy/examples/dual-stack.toml");
const ECMP: &str = include_str!("../../deploy/examples/ecmp.toml");
const TOR: &str = include_str!("../../deploy/examples/ecmp-tor.toml");

/// The external-router ECMP example with `from` replaced by `to` (which must occur).
fn tor_with(from: &str, to: &str) -> String {
    assert!(TOR.contains(from), "test setup: `{from}` not in ecmp-tor.toml");
    TOR.replacen(from, to, 1)
}

/// The ECMP example with `from` replaced by `to` (which must occur).
fn ecmp_with(from: &str, to: &str) -> String {
    assert!(ECMP.contains(from), "test setup: `{from}` not in ecmp.toml");
    ECMP.replacen(from, to, 1)
}

/// The dual-stack example with `from` replaced by `to` (which must occur).
fn dual_with(from: &str, to: &str) -> String {
    assert!(DUAL.contains(from), "test setup: `{from}` not in dual-stack.toml");
    DUAL.replacen(from, to, 1)
}

/// The HA lab with `from` replaced by `to` (which must occur).
fn ha_with(from: &str, to: &str) -> String {
    assert!(HA.contains(from), "test setup: `{from}` not in lab-ha.toml");
    HA.replacen(from, to, 1)
}

/// The dual-stack example's marks.
const DUAL_MARKS: &str = "marks = [{ protocol = \"tcp\", ports = [80] }]";

/// A fwmark service on the lab's VIP marking TCP `ports`, to append to the lab.
fn marked(name: &str, mark: u32, ports: &str) -> String {
    format!(
        "\n[[services]]\nname = \"{name}\"\nprotocol = \"fwmark\"\nfwmark = {mark}\nvip = \"198.18.0.100\"\n\
         marks = [{{ protocol = \"tcp\", ports = [{ports}] }}]\nreal_servers = [{{ node = \"rs1\" }}]\n"
    )
}

/// The lab with `from` replaced by `to` (which must occur).
fn lab_with(from: &str, to: &str) -> String {
    assert!(LAB.contains(from), "test setup: `{from}` not in lab.toml");
    LAB.replacen(from, to, 1)
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str("test.toml", text) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(r)) => {
            r.diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect()
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Assert `rule` is reported (at `line`, when given) and return its message.
fn expect(text: &str, rule: &str, line: Option<usize>) -> String {
    let errs = errors(text);
    let hit = errs.iter().find(|d| d.rule == rule).unwrap_or_else(|| panic!("no `{rule}` in {errs:#?}"));
    if let Some(line) = line {
        assert_eq!(hit.location.map(|l| l.line), Some(line), "{hit:#?}");
    }
    assert!(!hit.fix.is_empty(), "every rule says how to fix it");
    hit.message.clone()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle") + 1
}

#[test]
fn examples_are_valid() {
    assert!(errors(LAB).is_empty());
    assert!(errors(include_str!("../../deploy/examples/seed.toml")).is_empty());
    assert!(errors(HA).is_empty(), "{:#?}", errors(HA));
    assert!(errors(ECMP).is_empty(), "{:#?}", errors(ECMP));
    assert!(errors(TOR).is_empty(), "{:#?}", errors(TOR));
    // Three directors announcing one VIP is not the flapping case either.
    assert!(!findings(ECMP).iter().any(|d| d.rule == "vip-on-two-directors"), "{:#?}", findings(ECMP));
    // Two directors sharing a VIP through VRRP is not the flapping case.
    let warnings = findings(HA);
    assert!(!warnings.iter().any(|d| d.rule == "vip-on-two-directors"), "{warnings:#?}");
}

#[test]
fn unknown_keys_are_all_reported_with_lines() {
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"rr\"\nshceduler = \"wrr\"");
    let t = t.replacen("gateway = \"198.18.0.1\"", "gateway = \"198.18.0.1\"\ngatway = \"x\"", 1);
    let errs = errors(&t);
    let unknown: Vec<_> = errs.iter().filter(|d| d.rule == "unknown-key").collect();
    assert_eq!(unknown.len(), 2, "{errs:#?}");
    assert_eq!(unknown[0].location.unwrap().line, line_of(&t, "gatway"));
    assert_eq!(unknown[1].location.unwrap().line, line_of(&t, "shceduler"));
    assert!(unknown[1].message.contains("shceduler"));
    assert_eq!(unknown[1].path.to_string(), "services[0].shceduler");
}

#[test]
fn toml_syntax_error_has_position() {
    let t = lab_with("port = 80", "port = = 80");
    let errs = errors(&t);
    assert_eq!(errs[0].rule, "toml-syntax");
    assert_eq!(errs[0].location.unwrap().line, line_of(&t, "port = = 80"));
}

#[test]
fn missing_required_key_is_a_schema_error() {
    let t = lab_with("role = \"director\"\n", "");
    let m = expect(&t, "schema", None);
    assert!(m.contains("role"), "{m}");
}

#[test]
fn duplicate_node_names() {
    let t = lab_with("name = \"rs2\"", "name = \"rs1\"");
    expect(&t, "duplicate-name", Some(line_of(&t, "agent = \"198.18.0.12:7443\"") - 2));
}

#[test]
fn bad_ip_address() {
    let t = lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.300\"");
    let m = expect(&t, "bad-address", Some(line_of(&t, "198.18.0.300")));
    assert!(m.contains("198.18.0.300"));
}

#[test]
fn bad_cidr() {
    let t = lab_with("198.18.0.11/24", "198.18.0.11/33");
    expect(&t, "bad-cidr", Some(line_of(&t, "198.18.0.11/33")));
}

#[test]
fn bad_port() {
    let t = lab_with("port = 80", "port = 70000");
    expect(&t, "bad-port", Some(line_of(&t, "port = 70000")));
}

#[test]
fn real_server_not_on_directors_lan() {
    let t = lab_with(
        "interfaces = [{ name = \"eth0\", lan = \"cluster\", address = \"198.18.0.12/24\" }]\ngateway = \"198.18.0.1\"",
        "interfaces = [{ name = \"eth0\", lan = \"client\", address = \"198.19.0.12/24\" }]\ngateway = \"198.19.0.1\"",
    );
    let m = expect(&t, "dr-same-lan", None);
    assert!(m.contains("rs2") && m.contains("no router between"), "{m}");
}

#[test]
fn dr_cannot_map_ports() {
    let t = lab_with("{ node = \"rs1\", weight = 1 }", "{ node = \"rs1\", weight = 1, port = 8080 }");
    let m = expect(&t, "dr-port-mapping", Some(line_of(&t, "port = 8080")));
    assert!(m.contains("8080") && m.contains("80"));
}

#[test]
fn gateway_is_the_dip() {
    let t = lab_with("gateway = \"198.18.0.1\"", "gateway = \"198.18.0.2\"");
    expect(&t, "gateway-is-dip", Some(line_of(&t, "gateway = \"198.18.0.2\"")));
    // The fix names this definition's router, not the article's address.
    let d = errors(&t).into_iter().find(|d| d.rule == "gateway-is-dip").unwrap();
    assert!(d.fix.contains("198.18.0.1") && !d.fix.contains("192.168"), "{}", d.fix);
}

#[test]
fn gateway_not_on_lan() {
    let t = lab_with("gateway = \"198.18.0.1\"", "gateway = \"198.18.7.1\"");
    expect(&t, "gateway-off-lan", Some(line_of(&t, "198.18.7.1")));
}

#[test]
fn vip_equal_to_a_rip_or_dip() {
    let t = lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.11\"");
    expect(&t, "vip-is-node-address", Some(line_of(&t, "vip = \"198.18.0.11\"")));
    let t = lab_with("address = \"198.18.0.100/32\"", "address = \"198.18.0.2/32\"");
    expect(&t, "vip-is-node-address", Some(line_of(&t, "address = \"198.18.0.2/32\"")));
}

#[test]
fn unknown_scheduler() {
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"roundrobin\"");
    let m = expect(&t, "unknown-scheduler", Some(line_of(&t, "roundrobin")));
    assert!(m.contains("roundrobin"));
}

#[test]
fn every_kernel_scheduler_is_accepted() {
    for s in lvs_controller::validate::SCHEDULERS {
        let t = lab_with("scheduler = \"rr\"", &format!("scheduler = \"{s}\""));
        assert!(errors(&t).is_empty(), "{s}");
    }
}

#[test]
fn weight_out_of_range() {
    let t = lab_with("{ node = \"rs2\", weight = 1 }", "{ node = \"rs2\", weight = 65536 }");
    expect(&t, "weight-range", Some(line_of(&t, "65536")));
    let t = lab_with("{ node = \"rs2\", weight = 1 }", "{ node = \"rs2\", weight = -1 }");
    expect(&t, "weight-range", None);
    let t = lab_with("{ node = \"rs2\", weight = 1 }", "{ node = \"rs2\", weight = 0 }");
    assert!(errors(&t).is_empty(), "weight 0 is a valid (drained) weight");
}

#[test]
fn same_real_server_twice() {
    let t = lab_with("{ node = \"rs2\", weight = 1 }", "{ node = \"rs1\", weight = 3 }");
    expect(&t, "duplicate-real-server", Some(line_of(&t, "weight = 3")));
}

const SECOND_SERVICE: &str = "\n[[services]]\nname = \"web2\"\nprotocol = \"tcp\"\nvip = \"198.18.0.100\"\nport = 80\nreal_servers = [{ node = \"rs1\" }]\n";

#[test]
fn identical_virtual_services() {
    let t = format!("{LAB}{SECOND_SERVICE}");
    let m = expect(&t, "duplicate-service", None);
    assert!(m.contains("web") && m.contains("web2"));
    let t = format!("{LAB}{}", SECOND_SERVICE.replace("port = 80", "port = 443"));
    assert!(errors(&t).is_empty());
}

#[test]
fn fwmark_zero() {
    let from = "protocol = \"tcp\"\nvip = \"198.18.0.100\"\nport = 80";
    let t = lab_with(from, "protocol = \"fwmark\"\nvip = \"198.18.0.100\"\nfwmark = 0");
    expect(&t, "fwmark-zero", Some(line_of(&t, "fwmark = 0")));
    let t = lab_with(from, "protocol = \"fwmark\"\nvip = \"198.18.0.100\"\nfwmark = 7");
    assert!(errors(&t).is_empty());
}

#[test]
fn persistence_timeout_out_of_range() {
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"rr\"\npersistence = { timeout = \"0s\" }");
    expect(&t, "persistence-range", Some(line_of(&t, "persistence")));
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"rr\"\npersistence = { timeout = \"100days\" }");
    expect(&t, "persistence-range", None);
    let t = lab_with(
        "scheduler = \"rr\"",
        "scheduler = \"rr\"\npersistence = { timeout = \"300s\", netmask = \"255.255.255.0\" }",
    );
    assert!(errors(&t).is_empty());
}

#[test]
fn check_timeout_not_below_interval() {
    let t = lab_with("timeout = \"100ms\"", "timeout = \"200ms\"");
    expect(&t, "check-timeout", Some(line_of(&t, "timeout = \"200ms\"")));
}

#[test]
fn rise_or_fall_zero() {
    expect(&lab_with("rise = 2", "rise = 0"), "check-rise-fall", None);
    expect(&lab_with("fall = 3", "fall = 0"), "check-rise-fall", None);
}

#[test]
fn two_nodes_same_endpoint() {
    let t = lab_with("agent = \"198.18.0.12:7443\"", "agent = \"198.18.0.11:7443\"");
    let m = expect(&t, "duplicate-endpoint", None);
    assert!(m.contains("rs1") && m.contains("rs2"));
}

#[test]
fn no_director() {
    expect(&lab_with("role = \"director\"", "role = \"real_server\""), "no-director", None);
}

#[test]
fn service_no_director_can_hold() {
    let t = lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.101\"");
    let m = expect(&t, "vip-not-held", Some(line_of(&t, "198.18.0.101")));
    assert!(m.contains("198.18.0.101"));
}

#[test]
fn forwarding_other_than_dr_is_refused() {
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"rr\"\nforwarding = \"nat\"");
    expect(&t, "unsupported-forwarding", Some(line_of(&t, "forwarding")));
}

#[test]
fn all_errors_of_a_file_together() {
    let t = lab_with("scheduler = \"rr\"", "scheduler = \"nope\"")
        .replacen("port = 80", "port = 0", 1)
        .replacen("{ node = \"rs2\", weight = 1 }", "{ node = \"rs2\", weight = 99999 }", 1)
        .replacen("gateway = \"198.18.0.1\"", "gateway = \"198.18.0.2\"", 1);
    let rules: Vec<&str> = errors(&t).iter().map(|d| d.rule).collect();
    for r in ["unknown-scheduler", "bad-port", "weight-range", "gateway-is-dip"] {
        assert!(rules.contains(&r), "{r} missing from {rules:?}");
    }
}

#[test]
fn real_server_without_gateway_is_a_warning() {
    let t = lab_with("gateway = \"198.18.0.1\"\n\n[[nodes]]\nname = \"rs2\"", "\n[[nodes]]\nname = \"rs2\"");
    let loaded = load_str("t.toml", &t).expect("valid with a warning");
    assert_eq!(loaded.report.diagnostics[0].rule, "real-server-no-gateway");
}

/// The lab with a third real server, `sorry`, standing in for the service.
fn lab_with_sorry(sorry_line: &str) -> String {
    let node = "\n[[nodes]]\nname = \"sorry\"\nrole = \"real_server\"\nagent = \"198.18.0.50:7443\"\n\
                interfaces = [{ name = \"eth0\", lan = \"cluster\", address = \"198.18.0.50/24\" }]\ngateway = \"198.18.0.1\"\n";
    let t = LAB.replacen("\n[[services]]", &format!("{node}\n[[services]]"), 1);
    t.replacen("real_servers = [", &format!("{sorry_line}\nreal_servers = ["), 1)
}

#[test]
fn sorry_server_is_checked_like_a_real_server() {
    assert!(errors(&lab_with_sorry("sorry_server = { node = \"sorry\" }")).is_empty());
    let t = lab_with_sorry("sorry_server = { node = \"rs1\" }");
    let m = expect(&t, "sorry-is-real-server", Some(line_of(&t, "sorry_server")));
    assert!(m.contains("rs1 is already a real server of service web"), "{m}");
    let t = lab_with_sorry("sorry_server = { node = \"router\" }");
    expect(&t, "wrong-role", Some(line_of(&t, "sorry_server")));
    let t = lab_with_sorry("sorry_server = { node = \"nobody\" }");
    expect(&t, "unknown-node", Some(line_of(&t, "sorry_server")));
    let t = lab_with_sorry("sorry_server = { node = \"sorry\", port = 8080 }");
    expect(&t, "dr-port-mapping", Some(line_of(&t, "sorry_server")));
}

#[test]
fn the_sorry_server_gets_the_hidden_vip_and_the_director_knows_it() {
    let c = load_str("t.toml", &lab_with_sorry("sorry_server = { node = \"sorry\" }")).unwrap().cluster;
    let specs = lvs_controller::planner::plan(&c);
    let sorry = specs.iter().find(|s| s.node == "sorry").unwrap();
    assert!(
        sorry.addresses.iter().any(|a| a.address.to_string() == "198.18.0.100/32" && a.interface == "lo")
    );
    assert!(sorry.sysctls.iter().any(|s| s.key == "net.ipv4.conf.all.arp_ignore" && s.value == "1"));
    let director = specs.iter().find(|s| s.node == "director").unwrap();
    let web = &director.virtual_services[0];
    assert_eq!(web.destinations.len(), 2, "the sorry server is not a destination");
    assert_eq!(web.sorry.as_ref().map(|d| d.address.to_string()), Some("198.18.0.50:80".into()));
}

// --- names, addresses and types found by feeding mutated definitions (issue 10, item 14) ---

#[test]
fn node_names_that_could_leave_the_pki_directory_are_refused() {
    for bad in ["../../x", "RS1", "rs_1", "rs 1", "-rs1", "rs1\0", "é"] {
        let t = lab_with("name = \"rs2\"", &format!("name = {}", toml_string(bad)));
        let m = expect(&t, "bad-name", Some(line_of(&t, "agent = \"198.18.0.12:7443\"") - 2));
        assert!(m.starts_with("node name `"), "{bad:?}: {m}");
    }
}

#[test]
fn a_name_longer_than_a_dns_label_is_refused_and_shown_short() {
    let long = "a".repeat(100_000);
    let t = lab_with("name = \"web\"", &format!("name = \"{long}\""));
    let m = expect(&t, "bad-name", None);
    assert!(m.contains("100000 bytes long (at most 63)") && m.len() < 200, "{}", &m[..m.len().min(300)]);
}

#[test]
fn cluster_and_service_names_are_dns_labels() {
    let t = lab_with("name = \"lab\"", "name = \"Lab Cluster\"");
    assert!(expect(&t, "bad-name", Some(line_of(&t, "Lab Cluster"))).starts_with("cluster name"));
    let t = lab_with("name = \"web\"", "name = \"web/80\"");
    assert!(expect(&t, "bad-name", None).starts_with("service name"));
}

#[test]
fn interface_names_follow_the_kernels_rules() {
    let t = lab_with(
        "name = \"eth0\", lan = \"cluster\", address = \"198.18.0.11/24\"",
        "name = \"eth0/../x\", lan = \"cluster\", address = \"198.18.0.11/24\"",
    );
    assert!(expect(&t, "bad-name", None).starts_with("interface name"));
    let t = lab_with(
        "name = \"eth0\", lan = \"cluster\", address = \"198.18.0.11/24\"",
        "name = \"averyveryverylongname\", lan = \"cluster\", address = \"198.18.0.11/24\"",
    );
    assert!(expect(&t, "bad-name", None).contains("15 bytes"));
}

#[test]
fn a_real_server_on_its_lans_network_or_broadcast_address() {
    for (addr, which) in [("198.18.0.0", "network"), ("198.18.0.255", "broadcast")] {
        let t = lab_with("198.18.0.11/24", &format!("{addr}/24"));
        let line = line_of(&t, &format!("address = \"{addr}/24\""));
        let m = expect(&t, "address-is-network-or-broadcast", Some(line));
        assert!(m.contains(which), "{m}");
    }
}

#[test]
fn an_http_check_on_a_udp_service() {
    let t = lab_with("protocol = \"tcp\"", "protocol = \"udp\"");
    let m = expect(&t, "check-protocol", Some(line_of(&t, "check = ")));
    assert!(m.contains("UDP service web"), "{m}");
}

#[test]
fn a_check_interval_below_the_minimum() {
    let t = lab_with("interval = \"200ms\", timeout = \"100ms\"", "interval = \"20ms\", timeout = \"10ms\"");
    expect(&t, "check-interval", Some(line_of(&t, "check = ")));
}

#[test]
fn a_type_error_names_the_key_path() {
    for bad in ["2.5", "\"2\""] {
        let t = lab_with("node = \"rs1\", weight = 1", &format!("node = \"rs1\", weight = {bad}"));
        let errs = errors(&t);
        let d = errs.iter().find(|d| d.rule == "schema").unwrap_or_else(|| panic!("{errs:#?}"));
        assert_eq!(d.path.to_string(), "services[0].real_servers[0].weight", "{d:#?}");
        assert_eq!(d.location.unwrap().line, line_of(&t, "weight = "));
    }
}

#[test]
fn every_planned_sysctl_is_one_an_agent_accepts() {
    for text in [LAB, include_str!("../../deploy/examples/seed.toml")] {
        let c = load_str("x.toml", text).unwrap().cluster;
        for spec in lvs_controller::planner::plan(&c) {
            for s in &spec.sysctls {
                assert!(lvs_proto::spec::SysctlSpec::allowed(&s.key), "{}: {}", spec.node, s.key);
            }
        }
    }
}

fn toml_string(s: &str) -> String {
    let body: String = s
        .chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_control() => format!("\\u{:04X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    format!("\"{body}\"")
}

// --- the rule registry (issue 11, item 3): every rule has a failing example ---

/// One definition that breaks each rule (and the rule it must be reported under).
fn examples() -> Vec<(&'static str, String)> {
    let rs1_tail = "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.1\"\n";
    let web = "protocol = \"tcp\"\nvip = \"198.18.0.100\"\nport = 80";
    let rs2 = "{ node = \"rs2\", weight = 1 }";
    let sched = "scheduler = \"rr\"";
    let web1 = "address = [\"198.18.6.11/24\", \"2001:db8:6::11/64\"]";
    vec![
        ("family-twice", dual_with("vip = [\"198.18.6.100\", \"2001:db8:6::100\"]", "vip = [\"2001:db8:6::100\", \"2001:db8:6::101\"]")),
        ("family-mixed", dual_with(web1, "address = \"198.18.6.11/24\"")),
        ("ipv6-prefix", dual_with("2001:db8:6::100/128\", interface = \"eth1\" }", "2001:db8:6::100/64\", interface = \"eth1\" }")),
        ("not-unicast", dual_with("vip = \"2001:db8:6::200\"", "vip = \"fe80::200\"")),
        ("toml-syntax", lab_with("port = 80", "port = = 80")),
        ("schema", lab_with("role = \"director\"\n", "")),
        ("unknown-key", lab_with(sched, "scheduler = \"rr\"\nshceduler = \"wrr\"")),
        ("missing-key", lab_with("vip = \"198.18.0.100\"\nport = 80", "port = 80")),
        ("bad-name", lab_with("name = \"rs2\"", "name = \"RS2\"")),
        ("duplicate-name", lab_with("name = \"rs2\"", "name = \"rs1\"")),
        ("generation-range", lab_with("generation = 1", "generation = 0")),
        ("bad-address", lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.300\"")),
        ("bad-cidr", lab_with("198.18.0.11/24", "198.18.0.11/33")),
        ("bad-port", lab_with("port = 80", "port = 70000")),
        ("bad-duration", lab_with("max_offset = \"1s\"", "max_offset = \"soon\"")),
        ("bad-endpoint", lab_with("agent = \"198.18.0.12:7443\"", "agent = \"\"")),
        ("duplicate-endpoint", lab_with("agent = \"198.18.0.12:7443\"", "agent = \"198.18.0.11:7443\"")),
        ("time-source-missing", lab_with("[time]\nntp_server = \"198.18.0.1\"\nmax_offset = \"1s\"\n", "")),
        (
            "unknown-lan",
            lab_with(
                "lan = \"cluster\", address = \"198.18.0.11/24\"",
                "lan = \"backend\", address = \"198.18.0.11/24\"",
            ),
        ),
        ("address-outside-lan", lab_with("198.18.0.11/24", "198.18.1.11/24")),
        ("address-is-network-or-broadcast", lab_with("198.18.0.11/24", "198.18.0.255/24")),
        (
            "gateway-off-lan",
            lab_with(rs1_tail, "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.5.1\"\n"),
        ),
        ("gateway-is-dip", lab_with(rs1_tail, "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.2\"\n")),
        ("real-server-no-gateway", lab_with(rs1_tail, "address = \"198.18.0.11/24\" }]\n")),
        ("unknown-role", lab_with("role = \"router\"", "role = \"switch\"")),
        ("no-director", lab_with("role = \"director\"", "role = \"real_server\"")),
        ("no-router", lab_with("role = \"router\"", "role = \"real_server\"")),
        (
            "vip-on-two-directors",
            lab_with(
                "[[nodes]]\nname = \"rs1\"",
                "[[nodes]]\nname = \"director2\"\nrole = \"director\"\nagent = \"198.18.0.3:7443\"\n\
                 interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }]\n\
                 vips = [{ address = \"198.18.0.100/32\", interface = \"eth1\", label = \"eth1:0\" }]\n\n\
                 [[nodes]]\nname = \"rs1\"",
            ),
        ),
        (
            "all-weights-zero",
            lab_with(
                "{ node = \"rs1\", weight = 1 },\n  { node = \"rs2\", weight = 1 }",
                "{ node = \"rs1\", weight = 0 },\n  { node = \"rs2\", weight = 0 }",
            ),
        ),
        (
            "vip-on-non-director",
            lab_with(
                rs1_tail,
                "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.1\"\nvips = [{ address = \"198.18.0.100/32\", interface = \"eth0\" }]\n",
            ),
        ),
        (
            "vip-interface-unknown",
            lab_with("interface = \"eth1\", label = \"eth1:0\"", "interface = \"eth7\", label = \"eth7:0\""),
        ),
        ("bad-label", lab_with("label = \"eth1:0\"", "label = \"lo:0\"")),
        ("vip-is-node-address", lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.11\"")),
        ("vip-not-held", lab_with("vip = \"198.18.0.100\"", "vip = \"198.18.0.101\"")),
        ("unknown-node", lab_with(rs2, "{ node = \"rs9\", weight = 1 }")),
        ("wrong-role", lab_with(rs2, "{ node = \"router\", weight = 1 }")),
        ("unknown-address", lab_with(rs2, "{ node = \"rs2\", weight = 1, address = \"198.18.0.99\" }")),
        ("unknown-protocol", lab_with("protocol = \"tcp\"", "protocol = \"icmp\"")),
        ("fwmark-port", lab_with("protocol = \"tcp\"", "protocol = \"fwmark\"\nfwmark = 1")),
        ("fwmark-with-protocol", lab_with("protocol = \"tcp\"", "protocol = \"tcp\"\nfwmark = 1")),
        ("marks-without-fwmark", lab_with("protocol = \"tcp\"", "protocol = \"tcp\"\nmarks = [{ protocol = \"tcp\" }]")),
        ("marks-empty", dual_with(DUAL_MARKS, "marks = []")),
        ("marks-protocol", dual_with(DUAL_MARKS, "marks = [{ protocol = \"icmp\" }]")),
        ("marks-range", dual_with(DUAL_MARKS, "marks = [{ protocol = \"tcp\", ports = [\"90-80\"] }]")),
        ("marks-range", dual_with(DUAL_MARKS, "marks = [{ protocol = \"tcp\", ports = [\"http\"] }]")),
        ("bad-port", dual_with(DUAL_MARKS, "marks = [{ protocol = \"tcp\", ports = [\"1-70000\"] }]")),
        ("marks-overlap", format!("{LAB}{}{}", marked("one", 8, "80, 443"), marked("two", 9, "\"400-500\""))),
        ("marks-shadow", format!("{LAB}{}", marked("one", 8, "\"1-1024\""))),
        ("fwmark-zero", lab_with(web, "protocol = \"fwmark\"\nvip = \"198.18.0.100\"\nfwmark = 0")),
        ("fwmark-range", lab_with(web, "protocol = \"fwmark\"\nvip = \"198.18.0.100\"\nfwmark = 4294967296")),
        ("unknown-scheduler", lab_with(sched, "scheduler = \"xx\"")),
        ("unsupported-forwarding", lab_with(sched, "scheduler = \"rr\"\nforwarding = \"nat\"")),
        ("unknown-flag", lab_with(sched, "scheduler = \"sh\"\nflags = [\"turbo\"]")),
        ("flag-needs-sh", lab_with(sched, "scheduler = \"rr\"\nflags = [\"sh-port\"]")),
        ("persistence-range", lab_with(sched, "scheduler = \"rr\"\npersistence = { timeout = \"0s\" }")),
        (
            "bad-netmask",
            lab_with(
                sched,
                "scheduler = \"rr\"\npersistence = { timeout = \"300s\", netmask = \"255.0.255.0\" }",
            ),
        ),
        ("duplicate-service", format!("{LAB}{SECOND_SERVICE}")),
        ("weight-range", lab_with(rs2, "{ node = \"rs2\", weight = 70000 }")),
        (
            "threshold-range",
            lab_with(rs2, "{ node = \"rs2\", weight = 1, upper_threshold = 10, lower_threshold = 20 }"),
        ),
        ("duplicate-real-server", lab_with(rs2, "{ node = \"rs1\", weight = 3 }")),
        ("sorry-is-real-server", lab_with(sched, "scheduler = \"rr\"\nsorry_server = { node = \"rs1\" }")),
        (
            "dr-same-lan",
            lab_with(
                "interfaces = [{ name = \"eth0\", lan = \"cluster\", address = \"198.18.0.12/24\" }]\ngateway = \"198.18.0.1\"",
                "interfaces = [{ name = \"eth0\", lan = \"client\", address = \"198.19.0.12/24\" }]\ngateway = \"198.19.0.1\"",
            ),
        ),
        ("dr-port-mapping", lab_with(rs2, "{ node = \"rs2\", weight = 1, port = 8080 }")),
        ("bad-check", lab_with("kind = \"http\"", "kind = \"icmp\"")),
        ("check-timeout", lab_with("timeout = \"100ms\"", "timeout = \"300ms\"")),
        (
            "check-interval",
            lab_with("interval = \"200ms\", timeout = \"100ms\"", "interval = \"20ms\", timeout = \"10ms\""),
        ),
        ("check-rise-fall", lab_with("rise = 2", "rise = 0")),
        ("check-protocol", lab_with("protocol = \"tcp\"", "protocol = \"udp\"")),
        (
            "check-override",
            lab_with(rs2, "{ node = \"rs2\", weight = 1, check = { port = 8080, on_failure = \"remove\" } }"),
        ),
        ("check-tls-unverified", lab_with("kind = \"http\"", "kind = \"https\", verify = false")),
        ("bad-command", lab_with("kind = \"http\", path = \"/\"", "kind = \"exec\", command = [\"/bin/sh\", \"-c\", \"id\"]")),
        ("quorum-range", lab_with(sched, "scheduler = \"rr\"\nquorum = 3")),
        ("ipvs-timeout-range", format!("{LAB}\n[ipvs]\ntimeouts = {{ tcp = \"1500ms\" }}\n")),
        ("vrrp-vrid-range", ha_with("vrid = 51", "vrid = 256")),
        (
            "vrrp-vrid-duplicate",
            format!(
                "{}\n[[vrrp]]\nvrid = 51\ndirectors = [{{ node = \"d3\", priority = 1 }}, {{ node = \"d4\", priority = 2 }}]\n",
                ha_with(
                    "[[nodes]]\nname = \"rs1\"",
                    "[[nodes]]\nname = \"d3\"\nrole = \"director\"\nagent = \"198.18.0.4:7443\"\n\
                     interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.4/24\" }]\n\
                     vips = [{ address = \"198.18.0.101/32\", interface = \"eth1\", label = \"eth1:0\" }]\n\n\
                     [[nodes]]\nname = \"d4\"\nrole = \"director\"\nagent = \"198.18.0.5:7443\"\n\
                     interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.5/24\" }]\n\
                     vips = [{ address = \"198.18.0.101/32\", interface = \"eth1\", label = \"eth1:0\" }]\n\n\
                     [[nodes]]\nname = \"rs1\"",
                )
            ),
        ),
        ("vrrp-advert-range", ha_with("advert = \"100ms\"", "advert = \"105ms\"")),
        ("bgp-asn-range", ecmp_with("router_asn = 65000", "router_asn = 23456")),
        ("bgp-same-asn", ecmp_with("director_asn = 65001", "director_asn = 65000")),
        ("bgp-hold-range", ecmp_with("hold = \"3s\"", "hold = \"2s\"")),
        ("bgp-bfd-range", ecmp_with("multiplier = 3 }", "multiplier = 0 }")),
        ("bgp-no-router", ecmp_with("role = \"router\"", "role = \"real_server\"")),
        ("bgp-too-few-directors", ecmp_with("directors = [\"lb1\", \"lb2\", \"lb3\"]", "directors = []")),
        ("bgp-director-twice", ecmp_with("directors = [\"lb1\", \"lb2\", \"lb3\"]", "directors = [\"lb1\", \"lb1\"]")),
        (
            "bgp-and-vrrp",
            format!("{ECMP}\n[[vrrp]]\nvrid = 51\ndirectors = [{{ node = \"lb1\", priority = 150 }}, {{ node = \"lb2\", priority = 100 }}]\n"),
        ),
        (
            "bgp-director-lan",
            ecmp_with(
                "interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }]",
                "interfaces = [{ name = \"eth1\", lan = \"client\", address = \"198.19.0.3/24\" }]",
            ),
        ),
        ("bgp-no-vips", ecmp_with("vips = [{ address = \"198.18.0.100/32\", interface = \"lo\", label = \"lo:0\" }]\n\n[[nodes]]\nname = \"lb2\"", "\n[[nodes]]\nname = \"lb2\"")),
        (
            "bgp-vips-differ",
            ecmp_with("vips = [{ address = \"198.18.0.100/32\", interface = \"lo\", label = \"lo:0\" }]\n\n[[nodes]]\nname = \"lb2\"", "vips = [{ address = \"198.18.0.101/32\", interface = \"lo\", label = \"lo:0\" }]\n\n[[nodes]]\nname = \"lb2\""),
        ),
        ("bgp-vip-not-on-lo", ecmp_with("interface = \"lo\", label = \"lo:0\"", "interface = \"eth1\", label = \"eth1:0\"")),
        ("bgp-scheduler", ecmp_with("scheduler = \"mh\"", "scheduler = \"rr\"")),
        ("bgp-service-directors", ecmp_with("port = 80\n", "port = 80\ndirectors = [\"lb1\"]\n")),
        ("bgp-external-name", tor_with("name = \"tor2\"", "name = \"lb1\"")),
        ("bad-name", tor_with("name = \"tor2\"", "name = \"Tor_2\"")),
        ("bgp-external-address", tor_with("address = \"198.18.0.251\"", "address = \"198.18.0.11\"")),
        ("bgp-external-lan", tor_with("address = \"198.18.0.251\"", "address = \"198.19.0.1\"")),
        ("bad-address", tor_with("address = \"198.18.0.251\"", "address = \"tor2.example\"")),
        (
            "vrrp-too-few-directors",
            ha_with("  { node = \"director2\", priority = 100 },\n", ""),
        ),
        ("vrrp-priority-range", ha_with("priority = 150", "priority = 255")),
        ("vrrp-priority-duplicate", ha_with("priority = 150", "priority = 100")),
        ("vrrp-director-twice", ha_with("{ node = \"director2\", priority = 100 }", "{ node = \"director\", priority = 100 }")),
        (
            "vrrp-vips-differ",
            ha_with(
                "agent = \"198.18.0.3:7443\"\ninterfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }]\nvips = [{ address = \"198.18.0.100/32\"",
                "agent = \"198.18.0.3:7443\"\ninterfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }]\nvips = [{ address = \"198.18.0.101/32\"",
            ),
        ),
        (
            "vrrp-not-one-lan",
            ha_with(
                "interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }]",
                "interfaces = [{ name = \"eth1\", lan = \"cluster\", address = \"198.18.0.3/24\" }, { name = \"eth2\", lan = \"client\", address = \"198.19.0.3/24\" }]",
            )
            .replacen(
                "vips = [{ address = \"198.18.0.100/32\", interface = \"eth1\", label = \"eth1:0\" }]\n\n[[nodes]]\nname = \"rs1\"",
                "vips = [{ address = \"198.18.0.100/32\", interface = \"eth2\", label = \"eth2:0\" }]\n\n[[nodes]]\nname = \"rs1\"",
                1,
            ),
        ),
    ]
}

/// Every finding of `text`, warnings included.
fn findings(text: &str) -> Vec<Diagnostic> {
    match load_str("test.toml", text) {
        Ok(l) => l.report.diagnostics,
        Err(LoadError::Invalid(r)) => r.diagnostics,
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn every_registered_rule_has_a_failing_example() {
    let examples = examples();
    let mut missing = Vec::new();
    for rule in lvs_controller::rules::RULES {
        match examples.iter().find(|(id, _)| *id == rule.id) {
            None => missing.push(format!("{}: no example", rule.id)),
            Some((_, text)) => {
                let f = findings(text);
                if !f.iter().any(|d| d.rule == rule.id) {
                    let got: Vec<&str> = f.iter().map(|d| d.rule).collect();
                    missing.push(format!("{}: its example reports {got:?}", rule.id));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    for (id, _) in &examples {
        assert!(lvs_controller::rules::rule(id).is_some(), "example for unregistered rule {id}");
    }
}

#[test]
fn a_real_servers_check_merges_over_its_services_and_names_its_own_mistakes() {
    use lvs_proto::spec::{DestinationCheck, ProbeKind};
    let rs2 = "{ node = \"rs2\", weight = 1 }";
    let t = lab_with(
        rs2,
        "{ node = \"rs2\", weight = 1, check = { path = \"/alive\", port = 8080, connect_ip = \"198.18.0.13\", retry_interval = \"150ms\" } }",
    );
    let loaded = load_str("test.toml", &t).expect("valid");
    let web = &loaded.cluster.services[0];
    assert_eq!(web.real_servers[0].check, DestinationCheck::Service);
    let DestinationCheck::Own(h) = &web.real_servers[1].check else {
        panic!("{:?}", web.real_servers[1].check)
    };
    // The override's keys, the service's everywhere else (interval 200 ms, rise 2, fall 3).
    assert!(matches!(&h.probe, ProbeKind::Http { path, tls: None, .. } if path == "/alive"));
    assert_eq!(
        (h.connect_port, h.connect_ip.map(|a| a.to_string())),
        (Some(8080), Some("198.18.0.13".into()))
    );
    assert_eq!(
        (h.interval_ms, h.timeout_ms, h.rise, h.fall, h.retry_interval_ms),
        (200, 100, 2, 3, Some(150))
    );

    // Another kind keeps only the timing: an HTTP path means nothing to a TCP connect.
    let t = lab_with(rs2, "{ node = \"rs2\", weight = 1, check = { kind = \"tcp\" } }");
    let loaded = load_str("test.toml", &t).expect("valid");
    let DestinationCheck::Own(h) = &loaded.cluster.services[0].real_servers[1].check else { panic!() };
    assert_eq!((&h.probe, h.interval_ms), (&ProbeKind::Tcp, 200));

    // `none`: that real server is not checked.
    let t = lab_with(rs2, "{ node = \"rs2\", weight = 1, check = { kind = \"none\" } }");
    let loaded = load_str("test.toml", &t).expect("valid");
    assert_eq!(loaded.cluster.services[0].real_servers[1].check, DestinationCheck::Off);

    // A key of another kind is named at its own line, with the kinds that take it.
    let t = lab_with(
        rs2,
        "{ node = \"rs2\", weight = 1, check = { kind = \"tcp\", command = [\"/bin/true\"] } }",
    );
    let m = expect(&t, "bad-check", Some(line_of(&t, "kind = \"tcp\"")));
    assert!(m.contains("`command` does not apply to a tcp check"), "{m}");
    // Kept-alive connections are HTTP's: on by default, off when written, refused on TCP.
    let reuse = |t: &str| {
        let loaded = load_str("test.toml", t).expect("valid");
        match &loaded.cluster.services[0].check.as_ref().unwrap().probe {
            ProbeKind::Http { reuse_connection, .. } => *reuse_connection,
            p => panic!("{p:?}"),
        }
    };
    assert!(reuse(&lab_with("path = \"/\"", "path = \"/\"")));
    assert!(!reuse(&lab_with("path = \"/\"", "path = \"/\", reuse_connection = false")));
    let t =
        lab_with(rs2, "{ node = \"rs2\", weight = 1, check = { kind = \"tcp\", reuse_connection = true } }");
    let m = expect(&t, "bad-check", Some(line_of(&t, "kind = \"tcp\"")));
    assert!(m.contains("`reuse_connection` does not apply to a tcp check"), "{m}");
    // Several status codes, as keepalived's status_code; and what is not one.
    let status = |v: &str| {
        let t = lab_with("path = \"/\"", &format!("path = \"/\", expect_status = {v}"));
        match load_str("test.toml", &t) {
            Ok(l) => match &l.cluster.services[0].check.as_ref().unwrap().probe {
                ProbeKind::Http { expect_status, .. } => Ok(expect_status.to_string()),
                p => panic!("{p:?}"),
            },
            Err(_) => Err(expect(&t, "bad-check", Some(line_of(&t, "expect_status")))),
        }
    };
    assert_eq!(status("204"), Ok("204".into()));
    assert_eq!(status("\"200-299, 301 302\""), Ok("200-299,301,302".into()));
    for (bad, why) in [
        ("99", "99 is not an HTTP status"),
        ("\"200-abc\"", "`abc` is not a status code"),
        ("\"299-200\"", "299-200 is a range from high to low"),
        ("\"\"", "no status code"),
        ("70000", "70000 is not an HTTP status"),
    ] {
        let m = status(bad).unwrap_err();
        assert!(m.contains(why), "{bad}: {m}");
    }
    // Further pages: each checked as the first is, its mistakes named at its own key.
    let t = lab_with(
        "path = \"/\"",
        "path = \"/\", urls = [{ path = \"/deep\", expect_status = \"200-204\", host = \"api.example.org\" }, { path = \"nope\", expect_digest = \"xyz\" }]",
    );
    let errs = errors(&t);
    let at = |key: &str| errs.iter().find(|d| d.path.to_string().ends_with(key)).map(|d| d.message.clone());
    assert!(at("urls[1].path").is_some_and(|m| m.contains("HTTP path does not start with /")), "{errs:#?}");
    assert!(at("urls[1].expect_digest").is_some_and(|m| m.contains("not an MD5 digest")), "{errs:#?}");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let t =
        lab_with("path = \"/\"", "path = \"/\", urls = [{ path = \"/deep\", expect_status = \"200-204\" }]");
    let loaded = load_str("test.toml", &t).expect("valid");
    let ProbeKind::Http { urls, .. } = &loaded.cluster.services[0].check.as_ref().unwrap().probe else {
        panic!()
    };
    assert_eq!((urls[0].path.as_str(), urls[0].expect_status.to_string()), ("/deep", "200-204".into()));
    // A digest that is not MD5.
    let m = expect(&lab_with("path = \"/\"", "path = \"/\", expect_digest = \"abc\""), "bad-check", None);
    assert!(m.contains("not an MD5 digest"), "{m}");
    // A retry no sooner than the interval.
    let m = expect(&lab_with("rise = 2", "retry_interval = \"250ms\", rise = 2"), "check-interval", None);
    assert!(m.contains("retry_interval 250ms must lie between"), "{m}");
}

#[test]
fn https_exec_quorum_and_notify_reach_the_plan() {
    use lvs_proto::spec::{ProbeKind, TlsVerify};
    let t = lab_with(
        "check = { kind = \"http\", path = \"/\",",
        "quorum = 2\nhysteresis = 1\nnotify = [\"page\", \"web\"]\ncheck = { kind = \"https\", path = \"/\", host = \"www.example.org\", ca_file = \"/etc/lvs/rs-ca.pem\", expect_digest = \"9E107D9D372BB6826BD81D3542A419D6\",",
    );
    let loaded = load_str("test.toml", &t).unwrap_or_else(|e| panic!("{e}"));
    let web = &loaded.cluster.services[0];
    assert_eq!((web.quorum, web.hysteresis), (2, 1));
    assert_eq!(web.notify, ["page", "web"]);
    let Some(ProbeKind::Http { tls: Some(tls), expect_digest, .. }) = web.check.as_ref().map(|c| &c.probe)
    else {
        panic!("{:?}", web.check)
    };
    // SNI defaults to the Host header; the digest is kept lowercase.
    assert_eq!(tls.sni.as_deref(), Some("www.example.org"));
    assert_eq!(tls.verify, TlsVerify::CaFile("/etc/lvs/rs-ca.pem".into()));
    assert_eq!(expect_digest.as_deref(), Some("9e107d9d372bb6826bd81d3542a419d6"));
    // An exec check may watch a UDP service; an HTTP check may not.
    let udp = lab_with("protocol = \"tcp\"", "protocol = \"udp\"");
    let t = udp.replacen("kind = \"http\", path = \"/\"", "kind = \"exec\", command = [\"dns-check\"]", 1);
    assert!(errors(&t).is_empty(), "{:#?}", errors(&t));
}

// --- IPv6 and dual stack (issue 28) ---

/// The rules and key paths of the errors of `text`.
fn error_paths(text: &str) -> Vec<(String, String)> {
    errors(text).into_iter().map(|d| (d.rule.to_string(), d.path.to_string())).collect()
}

#[test]
fn the_dual_stack_example_is_one_ipvs_service_per_family_with_the_same_real_servers() {
    let c = load_str("dual.toml", DUAL).expect("valid").cluster;
    let site: Vec<_> = c.services.iter().filter(|s| s.name == "site").collect();
    assert_eq!(site.len(), 2, "one service per family");
    assert!(site[0].vip.is_ipv4() && site[1].vip.is_ipv6());
    for s in &site {
        let nodes: Vec<&str> = s.real_servers.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["web1", "web2", "web3"]);
        assert!(
            s.real_servers.iter().all(|r| r.address.is_ipv6() == s.vip.is_ipv6()),
            "{:?}",
            s.real_servers
        );
    }
    let marked = c.services.iter().find(|s| s.name == "marked").unwrap();
    assert_eq!(marked.key, lvs_proto::spec::ServiceKey::Fwmark { mark: 6, ipv6: true });
    assert_eq!(marked.persistence.unwrap().netmask, 64, "an IPv6 persistence mask is a prefix length");
    let web1 = c.nodes.iter().find(|n| n.name == "web1").unwrap();
    assert_eq!(web1.gateways.len(), 2);
    assert_eq!(web1.interfaces.len(), 2, "one entry per address of the dual-stack interface");
}

#[test]
fn bad_ipv6_definitions_are_refused_with_the_key_named() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            dual_with(
                "cidr = [\"198.18.6.0/24\", \"2001:db8:6::/64\"]",
                "cidr = [\"198.18.6.0/24\", \"2001:db8:6::/128\"]",
            ),
            "ipv6-prefix",
            "lans[0].cidr[1]",
        ),
        (
            dual_with(
                "\"198.18.6.11/24\", \"2001:db8:6::11/64\"",
                "\"198.18.6.11/24\", \"2001:db8:6::11/80\"",
            ),
            "ipv6-prefix",
            "nodes[3].interfaces[0].address[1]",
        ),
        (
            dual_with(
                "{ address = \"2001:db8:6::200/128\", interface = \"eth1\" },\n]\n\n[[nodes]]\nname = \"lb2\"",
                "{ address = \"ff02::200/128\", interface = \"eth1\" },\n]\n\n[[nodes]]\nname = \"lb2\"",
            ),
            "not-unicast",
            "nodes[1].vips[2].address",
        ),
        (dual_with("vip = \"2001:db8:6::200\"", "vip = \"ff05::1\""), "not-unicast", "services[2].vip"),
        (
            dual_with("\"198.18.6.12/24\", \"2001:db8:6::12/64\"", "\"198.18.6.12/24\", \"fe80::12/64\""),
            "not-unicast",
            "nodes[4].interfaces[0].address[1]",
        ),
        (
            dual_with(
                "vip = [\"198.18.6.100\", \"2001:db8:6::100\"]",
                "vip = [\"198.18.6.100\", \"198.18.6.101\"]",
            ),
            "family-twice",
            "services[0].vip[1]",
        ),
        (
            dual_with(
                "gateway = [\"198.18.6.1\", \"2001:db8:6::1\"]",
                "gateway = [\"198.18.6.1\", \"198.18.6.2\"]",
            ),
            "family-twice",
            "nodes[3].gateway[1]",
        ),
        (
            dual_with("\"198.18.6.13/24\", \"2001:db8:6::13/64\"", "\"198.18.6.13/24\""),
            "family-mixed",
            "services[0].real_servers[2].node",
        ),
        (
            dual_with(
                "{ node = \"web1\", weight = 1 },\n  { node = \"web2\", weight = 1 },",
                "{ node = \"web1\", weight = 1, address = \"198.18.6.11\" },\n  { node = \"web2\", weight = 1 },",
            ),
            "family-mixed",
            "services[1].real_servers[0].address",
        ),
        (
            dual_with(
                "\"198.18.6.11/24\", \"2001:db8:6::11/64\"",
                "\"198.18.6.11/24\", \"2001:db8:7::11/64\"",
            ),
            "address-outside-lan",
            "nodes[3].interfaces[0].address[1]",
        ),
        (
            dual_with("cidr = [\"198.19.6.0/24\", \"2001:db8:f6::/64\"]", "cidr = \"198.19.6.0/24\""),
            "address-outside-lan",
            "nodes[0].interfaces[1].address[1]",
        ),
        (
            dual_with("\"198.18.6.11/24\", \"2001:db8:6::11/64\"", "\"198.18.6.11/24\", \"2001:db8:6::/64\""),
            "address-is-network-or-broadcast",
            "nodes[3].interfaces[0].address[1]",
        ),
    ];
    for (text, rule, path) in cases {
        let got = error_paths(&text);
        assert!(got.iter().any(|(r, p)| r == rule && p == path), "expected {rule} at {path}, got {got:?}");
    }
}
