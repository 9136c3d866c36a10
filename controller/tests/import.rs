//! `lvsctl import keepalived`: keepalived.conf files of our own making (modelled on
//! keepalived's doc/samples, with test addresses) become definitions that validate, with
//! every option accounted for: mapped, or a comment naming its line and the reason.
use std::time::Duration;

use lvs_controller::import::{self, Input, Options, conf};
use lvs_controller::load::{LoadError, load_str};
use lvs_proto::spec::{DestinationCheck, OnFailure, ProbeKind, ServiceKey, TlsVerify};

const MASTER: &str = include_str!("fixtures/keepalived/dr-master.conf");
const BACKUP: &str = include_str!("fixtures/keepalived/dr-backup.conf");
const NAT: &str = include_str!("fixtures/keepalived/nat.conf");

fn opts(directors: &[(&str, &str)]) -> Options {
    Options {
        name: None,
        router: "198.18.0.1".parse().unwrap(),
        other_family: None,
        directors: directors.iter().map(|(n, a)| (n.to_string(), a.parse().unwrap())).collect(),
        interface: None,
        rs_interface: "eth0".into(),
        agent_port: 7443,
        firewall: None,
    }
}

fn input(name: &str, text: &str) -> Input {
    Input { name: name.into(), text: text.into() }
}

/// Keywords the import carries over (or uses) when they stand where they do in the
/// fixtures; every other statement must come back as a comment at its line.
const MAPPED: &[&str] = &[
    "global_defs",
    "virtual_server",
    "lb_kind",
    "lvs_method",
    "delay_loop",
    "lb_algo",
    "lvs_sched",
    "persistence_timeout",
    "persistence_granularity",
    "protocol",
    "sorry_server",
    "hysteresis",
    "virtualhost",
    "real_server",
    "weight",
    "uthreshold",
    "inhibit_on_failure",
    "HTTP_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "url",
    "path",
    "status_code",
    "digest",
    "connect_ip",
    "connect_port",
    "connect_timeout",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "enable_sni",
    "misc_path",
    "misc_timeout",
    "sh-port",
    "vrrp_instance",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "nopreempt",
    "virtual_ipaddress",
    "198.18.0.100",
];

/// Every statement of `stmts` not commented in `toml` and not a mapped keyword, by line;
/// a commented block covers what is inside it.
fn silent(stmts: &[conf::Stmt], file: &str, toml: &str, out: &mut Vec<String>) {
    for s in stmts {
        if toml.contains(&format!("# {file}:{}: ", s.line)) {
            continue;
        }
        if !MAPPED.contains(&s.key()) {
            out.push(format!("line {}: {}", s.line, s.key()));
        }
        silent(s.children(), file, toml, out);
    }
}

#[test]
fn a_classic_dr_director_imports_into_a_valid_definition_with_nothing_dropped_silently() {
    let got =
        import::keepalived(&[input("dr-master.conf", MASTER)], &opts(&[("lvs1", "198.18.0.2/24")])).unwrap();
    let toml = &got.toml;
    let loaded = load_str("imported.toml", toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    // Accounted for: each statement is mapped, or a comment names its line.
    let mut dropped = Vec::new();
    silent(&conf::parse(MASTER).unwrap(), "dr-master.conf", toml, &mut dropped);
    assert!(dropped.is_empty(), "dropped silently: {dropped:#?}\n{toml}");
    for why in [
        "dr-master.conf:17: `state MASTER`: the initial state is not set",
        "`authentication { ... }`: VRRP authentication is not mapped",
        "`quorum_down /usr/local/sbin/page-oncall.sh`: one notify hook per service",
        "`quorum 2`: keepalived sums weights (2, hysteresis 1); here quorum = 2 real servers, hysteresis = 1",
        "`misc_dynamic`: exit codes as weights are not mapped",
        "`SMTP_CHECK { ... }`: SMTP_CHECK has no equivalent",
        "`notification_email { ... }`: mail alerts are not sent",
        "`vrrp_instance vi-web (virtual_router_id 51)`: one director's file",
    ] {
        assert!(toml.contains(why), "no `{why}` in\n{toml}");
    }
    assert!(got.unmapped >= 20, "{}", got.unmapped);

    let c = &loaded.cluster;
    assert_eq!(c.name, "lvs-web", "router_id as the name");
    assert_eq!(c.services.len(), 3);
    let web = &c.services[0];
    assert_eq!((web.scheduler.as_str(), web.quorum, web.hysteresis), ("wrr", 2, 1));
    assert_eq!(web.persistence.map(|p| (p.timeout_s, p.netmask)), Some((300, 0xffff_ff00)));
    assert_eq!(web.sorry.as_ref().map(|s| s.node.as_str()), Some("rs-198-18-0-50"));
    // keepalived: down after retry + 1 failures, up after one success, the retry
    // delay counted from the probe's start (connect_timeout + delay_before_retry).
    let h = web.check.as_ref().unwrap();
    assert!(
        matches!(&h.probe, ProbeKind::Http { path, expect_status, .. } if path == "/health" && expect_status.single() == Some(200))
    );
    assert_eq!(
        (h.interval_ms, h.timeout_ms, h.retry_interval_ms, h.rise, h.fall, h.on_failure),
        (6000, 3000, Some(5000), 1, 4, OnFailure::Remove)
    );
    // rs3's checker differs in its target: an override of those keys ...
    let DestinationCheck::Own(own) = &web.real_servers[2].check else { panic!("{:?}", web.real_servers[2]) };
    assert_eq!(
        (own.connect_ip.map(|a| a.to_string()), own.connect_port),
        (Some("198.18.0.113".into()), Some(8080))
    );
    assert_eq!(web.real_servers[2].upper_threshold, 500);
    // ... and in its second url { }, fetched after the first: every page must pass.
    let ProbeKind::Http { urls, path, .. } = &own.probe else { panic!("{own:?}") };
    assert_eq!(path, "/health");
    assert_eq!(
        urls.iter().map(|u| (u.path.as_str(), u.expect_status.to_string())).collect::<Vec<_>>(),
        [("/deep-health", "200-299".to_string())]
    );
    assert_eq!(web.real_servers[0].check, DestinationCheck::Service);
    // rs2 accepts several codes (keepalived's `status_code 200 201-204`): an override of
    // the status alone.
    let DestinationCheck::Own(rs2) = &web.real_servers[1].check else { panic!("{:?}", web.real_servers[1]) };
    let ProbeKind::Http { expect_status, .. } = &rs2.probe else { panic!("{rs2:?}") };
    assert_eq!(expect_status.to_string(), "200,201-204");
    assert!(expect_status.contains(203) && !expect_status.contains(205));

    // SSL_GET: SNI from virtualhost, the digest, verification off as keepalived had it
    // (a warning says so); inhibit_on_failure everywhere: weight 0.
    let tls = &c.services[1];
    let h = tls.check.as_ref().unwrap();
    let ProbeKind::Http { tls: Some(t), expect_digest, host, .. } = &h.probe else { panic!("{h:?}") };
    assert_eq!((t.sni.as_deref(), &t.verify), (Some("www.example.org"), &TlsVerify::Skip));
    // No status_code: keepalived accepts any 2xx, and so does the check.
    let ProbeKind::Http { expect_status, .. } = &h.probe else { unreachable!() };
    assert_eq!(expect_status.to_string(), "200-299");
    assert_eq!(
        (expect_digest.as_deref(), host.as_deref()),
        (Some("9e107d9d372bb6826bd81d3542a419d6"), Some("www.example.org"))
    );
    assert_eq!((h.fall, h.on_failure), (3, OnFailure::Weight0));
    let DestinationCheck::Own(tcp) = &tls.real_servers[1].check else { panic!() };
    assert_eq!(tcp.probe, ProbeKind::Tcp);
    assert!(loaded.report.diagnostics.iter().any(|d| d.rule == "check-tls-unverified"));

    // MISC_CHECK: misc_path split as keepalived splits it, quotes honoured, no shell;
    // the real server with an SMTP_CHECK is left unchecked.
    let fwm = &c.services[2];
    assert_eq!(fwm.key, ServiceKey::Fwmark { mark: 7, ipv6: false });
    assert_eq!(fwm.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(), ["sh-port"]);
    let Some(ProbeKind::Exec { command }) = fwm.check.as_ref().map(|h| &h.probe) else {
        panic!("{:?}", fwm.check)
    };
    assert_eq!(command, &["check-app", "--port", "8443", "--mode", "deep check"]);
    assert_eq!(fwm.real_servers[1].check, DestinationCheck::Off);
}

#[test]
fn both_directors_files_make_a_vrrp_instance_with_each_priority() {
    let got = import::keepalived(
        &[input("dr-master.conf", MASTER), input("dr-backup.conf", BACKUP)],
        &opts(&[("lvs1", "198.18.0.2/24"), ("lvs2", "198.18.0.3/24")]),
    )
    .unwrap();
    let loaded = load_str("imported.toml", &got.toml).unwrap_or_else(|e| panic!("{e}\n{}", got.toml));
    let v = &loaded.cluster.vrrp[0];
    assert_eq!((v.name.as_str(), v.vrid, v.preempt, v.sync_daemon), ("vi-web", 51, false, true));
    let prio: Vec<(&str, u8)> = v.members.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    assert_eq!(prio, [("lvs1", 150), ("lvs2", 100)]);
    // Both hold every VIP, the unused one (198.18.0.101) too.
    for d in ["lvs1", "lvs2"] {
        let n = loaded.cluster.nodes.iter().find(|n| n.name == d).unwrap();
        let vips: Vec<String> = n.vips.iter().map(|v| v.address.to_string()).collect();
        assert_eq!(vips, ["198.18.0.100/32", "198.18.0.101/32"], "{d}");
    }
}

#[test]
fn a_nat_configuration_is_imported_with_the_reasons_it_cannot_run_as_dr() {
    let got = import::keepalived(&[input("nat.conf", NAT)], &opts(&[("lvs1", "198.18.0.2/24")])).unwrap();
    for why in [
        "nat.conf:6: `lb_kind NAT`: this tool runs direct routing only",
        "nat.conf:7: `nat_mask 255.255.255.0`: not mapped",
        "nat.conf:10: `real_server 198.18.1.11 8080 { ... }`: DR cannot map ports",
        "nat.conf:18: `virtual_server_group WEB { ... }`: not mapped",
        "nat.conf:22: `include /etc/keepalived/conf.d/*.conf`: includes are not followed",
    ] {
        assert!(got.toml.contains(why), "no `{why}` in\n{}", got.toml);
    }
    // The real server is on no director's LAN: the definition says so when validated.
    match load_str("imported.toml", &got.toml) {
        Err(LoadError::Invalid(r)) => {
            assert!(
                r.diagnostics.iter().any(|d| d.rule == "address-outside-lan" || d.rule == "dr-same-lan"),
                "{r}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn files_and_directors_must_pair_up_and_syntax_errors_name_the_line() {
    let e = import::keepalived(&[input("a.conf", MASTER)], &opts(&[])).unwrap_err().to_string();
    assert!(e.contains("1 file(s) and 0 --director"), "{e}");
    let e = import::keepalived(
        &[input("bad.conf", "virtual_server 198.18.0.100 80 {\n  real_server x {\n}\n")],
        &opts(&[("d", "198.18.0.2/24")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("bad.conf: line 1: this `{` is never closed"), "{e}");
}

/// One director's keepalived.conf: a DR virtual_server with one real server, and `extra`
/// lines placed where the case says (`vs`: in the virtual_server, `rs`: in both real servers,
/// `check`: the real server's checker; `top`: before the virtual_server).
struct Conf<'a> {
    top: &'a str,
    vs: &'a str,
    rs: &'a str,
    check: &'a str,
    /// Imported with a second director's file (VRRP needs both), the same but for its
    /// priority (`priority 120` becomes `priority 90`).
    pair: bool,
}

const BASE: Conf<'static> = Conf {
    top: "",
    vs: "lb_algo rr\nlb_kind DR\nprotocol TCP",
    rs: "weight 1",
    check: "TCP_CHECK {\nconnect_timeout 3\n}",
    pair: false,
};

impl Conf<'_> {
    fn text(&self) -> String {
        format!(
            "{}\nvirtual_server 198.18.0.100 80 {{\n{}\nreal_server 198.18.0.11 80 {{\n{}\n{}\n}}\nreal_server 198.18.0.12 80 {{\n{}\n}}\n}}\n",
            self.top, self.vs, self.rs, self.check, self.rs
        )
    }
}

/// The imported definition of `conf`, loaded and validated, and its text.
fn imported(conf: &Conf) -> (lvs_controller::model::Cluster, String) {
    let text = conf.text();
    let got = if conf.pair {
        let other = text.replace("priority 120", "priority 90");
        import::keepalived(
            &[input("one.conf", &text), input("two.conf", &other)],
            &opts(&[("lvs1", "198.18.0.2/24"), ("lvs2", "198.18.0.3/24")]),
        )
    } else {
        import::keepalived(&[input("one.conf", &text)], &opts(&[("lvs1", "198.18.0.2/24")]))
    }
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let loaded = load_str("imported.toml", &got.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}\n--- from\n{text}", got.toml));
    (loaded.cluster, got.toml)
}

/// The health check of the first real server: its own, or the service's it follows.
fn check0(c: &lvs_controller::model::Cluster) -> lvs_proto::spec::HealthCheckSpec {
    let s = &c.services[0];
    match &s.real_servers[0].check {
        DestinationCheck::Own(h) => (**h).clone(),
        DestinationCheck::Service => s.check.clone().expect("the service's check"),
        DestinationCheck::Off => panic!("the first real server is unchecked: {s:?}"),
    }
}

/// Every keyword the walk excuses (`MAPPED`) is proven to arrive: for each, a small
/// configuration sets it to a value other than the default, and the imported definition's
/// field is asserted. A keyword with no case here fails the last check.
#[test]
fn each_mapped_keyword_carries_its_value_into_the_definition() {
    use lvs_controller::model::Cluster;
    type Check = fn(&Cluster, &str);
    let cases: Vec<(&[&str], Conf, Check)> = vec![
        (&["global_defs"], Conf { top: "global_defs {\nrouter_id lvs-x\n}", ..BASE }, |c, _| {
            assert_eq!(c.name, "lvs-x")
        }),
        (&["virtual_server", "real_server", "TCP_CHECK"], BASE, |c, _| {
            let s = &c.services[0];
            assert_eq!(s.vip.to_string(), "198.18.0.100");
            assert_eq!(s.real_servers[0].address.to_string(), "198.18.0.11:80");
            assert_eq!(check0(c).probe, ProbeKind::Tcp);
        }),
        (&["lb_kind"], BASE, |_, toml| assert!(!toml.contains("direct routing only"), "{toml}")),
        (&["lvs_method"], Conf { vs: "lb_algo rr\nlvs_method DR\nprotocol TCP", ..BASE }, |_, toml| {
            assert!(!toml.contains("direct routing only"), "{toml}")
        }),
        (&["lb_algo"], Conf { vs: "lb_algo wlc\nlb_kind DR", ..BASE }, |c, _| {
            assert_eq!(c.services[0].scheduler, "wlc")
        }),
        (&["lvs_sched"], Conf { vs: "lvs_sched lblc\nlb_kind DR", ..BASE }, |c, _| {
            assert_eq!(c.services[0].scheduler, "lblc")
        }),
        (&["delay_loop"], Conf { vs: "lb_algo rr\nlb_kind DR\ndelay_loop 17", ..BASE }, |c, _| {
            let h = &check0(c);
            assert_eq!(h.interval_ms, 17_000);
        }),
        (
            &["persistence_timeout", "persistence_granularity"],
            Conf {
                vs: "lb_algo rr\nlb_kind DR\npersistence_timeout 123\npersistence_granularity 255.255.0.0",
                ..BASE
            },
            |c, _| {
                assert_eq!(
                    c.services[0].persistence.map(|p| (p.timeout_s, p.netmask)),
                    Some((123, 0xffff_0000))
                )
            },
        ),
        (&["protocol"], Conf { vs: "lb_algo rr\nlb_kind DR\nprotocol UDP", check: "", ..BASE }, |c, _| {
            assert!(matches!(
                c.services[0].key,
                ServiceKey::Addr { protocol: lvs_proto::spec::Protocol::Udp, .. }
            ))
        }),
        (
            &["sorry_server"],
            Conf { vs: "lb_algo rr\nlb_kind DR\nsorry_server 198.18.0.50 80", ..BASE },
            |c, _| assert_eq!(c.services[0].sorry.as_ref().map(|s| s.node.as_str()), Some("rs-198-18-0-50")),
        ),
        (&["hysteresis"], Conf { vs: "lb_algo rr\nlb_kind DR\nquorum 2\nhysteresis 1", ..BASE }, |c, _| {
            assert_eq!((c.services[0].quorum, c.services[0].hysteresis), (2, 1))
        }),
        (&["weight"], Conf { rs: "weight 7", ..BASE }, |c, _| {
            assert_eq!(c.services[0].real_servers[0].weight, 7)
        }),
        (&["uthreshold"], Conf { rs: "weight 1\nuthreshold 99", ..BASE }, |c, _| {
            assert_eq!(c.services[0].real_servers[0].upper_threshold, 99)
        }),
        (&["inhibit_on_failure"], Conf { rs: "weight 1\ninhibit_on_failure", ..BASE }, |c, _| {
            let h = &check0(c);
            assert_eq!(h.on_failure, OnFailure::Weight0);
        }),
        (
            &["HTTP_GET", "url", "path", "status_code", "virtualhost", "digest"],
            Conf {
                vs: "lb_algo rr\nlb_kind DR\nvirtualhost www.x.example",
                check: "HTTP_GET {\nurl {\npath /h\nstatus_code 204\ndigest 0123456789abcdef0123456789abcdef\n}\n}",
                ..BASE
            },
            |c, _| {
                let h = &check0(c);
                let ProbeKind::Http { path, expect_status, host, expect_digest, .. } = &h.probe else {
                    panic!("{h:?}")
                };
                assert_eq!((path.as_str(), expect_status.to_string()), ("/h", "204".to_string()));
                assert_eq!(host.as_deref(), Some("www.x.example"));
                assert_eq!(expect_digest.as_deref(), Some("0123456789abcdef0123456789abcdef"));
            },
        ),
        (
            &["connect_ip", "connect_port", "connect_timeout"],
            Conf {
                check: "TCP_CHECK {\nconnect_ip 198.18.0.111\nconnect_port 8080\nconnect_timeout 4\n}",
                ..BASE
            },
            |c, _| {
                let h = &check0(c);
                assert_eq!(
                    (h.connect_ip.map(|a| a.to_string()), h.connect_port, h.timeout_ms),
                    (Some("198.18.0.111".into()), Some(8080), 4000)
                );
            },
        ),
        (&["retry"], Conf { check: "TCP_CHECK {\nconnect_timeout 3\nretry 5\n}", ..BASE }, |c, _| {
            let h = &check0(c);
            assert_eq!(h.fall, 6, "down after retry + 1 failures");
        }),
        (
            &["nb_get_retry"],
            Conf { check: "TCP_CHECK {\nconnect_timeout 3\nnb_get_retry 5\n}", ..BASE },
            |c, _| {
                let h = &check0(c);
                assert_eq!(h.fall, 6);
            },
        ),
        (
            &["delay_before_retry"],
            Conf { check: "TCP_CHECK {\nconnect_timeout 3\ndelay_before_retry 2\n}", ..BASE },
            |c, _| {
                let h = &check0(c);
                assert_eq!(h.retry_interval_ms, Some(5000), "connect_timeout + delay_before_retry");
            },
        ),
        (
            &["enable_sni"],
            Conf {
                vs: "lb_algo rr\nlb_kind DR\nvirtualhost sni.x.example",
                check: "SSL_GET {\nenable_sni\nurl {\npath /\n}\n}",
                ..BASE
            },
            |c, _| {
                let h = &check0(c);
                let ProbeKind::Http { tls: Some(t), .. } = &h.probe else { panic!("{h:?}") };
                assert_eq!(t.sni.as_deref(), Some("sni.x.example"));
            },
        ),
        (
            &["MISC_CHECK", "misc_path", "misc_timeout"],
            Conf {
                check: "MISC_CHECK {\nmisc_path \"/etc/keepalived/check-app --port 81\"\nmisc_timeout 9\n}",
                ..BASE
            },
            |c, _| {
                let h = &check0(c);
                assert_eq!(
                    h.probe,
                    ProbeKind::Exec { command: vec!["check-app".into(), "--port".into(), "81".into()] }
                );
                assert_eq!(h.timeout_ms, 9000);
            },
        ),
        (&["sh-port"], Conf { vs: "lb_algo sh\nlb_kind DR\nsh-port", ..BASE }, |c, _| {
            assert_eq!(c.services[0].flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(), ["sh-port"])
        }),
        (
            &[
                "vrrp_instance",
                "interface",
                "virtual_router_id",
                "priority",
                "advert_int",
                "nopreempt",
                "virtual_ipaddress",
                "198.18.0.100",
            ],
            Conf {
                top: "vrrp_instance vi-x {\ninterface eth9\nvirtual_router_id 77\npriority 120\nadvert_int 2\nnopreempt\nvirtual_ipaddress {\n198.18.0.100\n}\n}",
                pair: true,
                ..BASE
            },
            |c, _| {
                let v = &c.vrrp[0];
                assert_eq!(
                    (v.name.as_str(), v.vrid, v.advert, v.preempt),
                    ("vi-x", 77, Duration::from_secs(2), false)
                );
                assert_eq!(v.members, [("lvs1".to_string(), 120), ("lvs2".to_string(), 90)]);
                let lvs1 = c.nodes.iter().find(|n| n.name == "lvs1").unwrap();
                assert!(lvs1.vips.iter().all(|v| v.interface == "eth9"), "{:?}", lvs1.vips);
            },
        ),
    ];
    for (keywords, conf, check) in &cases {
        let (cluster, toml) = imported(conf);
        for k in *keywords {
            // The keyword is not reported as dropped (a note may still advise on it).
            let dropped = toml.lines().any(|l| {
                l.contains(&format!(": `{k} "))
                    && ["not mapped", "left unchecked", "no equivalent", "is not set"]
                        .iter()
                        .any(|w| l.contains(w))
            });
            assert!(!dropped, "{k} dropped:\n{toml}");
        }
        check(&cluster, &toml);
    }
    for k in MAPPED {
        assert!(
            cases.iter().any(|(ks, _, _)| ks.contains(k)),
            "`{k}` is excused by the walk but no case proves it arrives"
        );
    }
}

/// Statements of a keepalived.conf counted without its parser: every line that holds
/// something besides a comment (`!`, `#`) or closing braces is one statement.
fn statements_by_line(text: &str) -> usize {
    text.lines()
        .map(|l| l.split(['!', '#']).next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '}'))
        .count()
}

fn statements_parsed(stmts: &[conf::Stmt]) -> usize {
    stmts.iter().map(|s| 1 + statements_parsed(s.children())).sum()
}

/// All three fixtures: the parser sees every statement the file has (counted apart from
/// it), and each one is mapped or commented at its line, none dropped silently.
#[test]
fn every_statement_of_every_fixture_is_parsed_and_accounted_for() {
    for (file, text, directors) in [
        ("dr-master.conf", MASTER, &[("lvs1", "198.18.0.2/24")][..]),
        ("dr-backup.conf", BACKUP, &[("lvs2", "198.18.0.3/24")][..]),
        ("nat.conf", NAT, &[("lvs1", "198.18.0.2/24")][..]),
    ] {
        let parsed = conf::parse(text).unwrap();
        assert_eq!(
            statements_parsed(&parsed),
            statements_by_line(text),
            "{file}: the parser lost statements"
        );
        let got = import::keepalived(&[input(file, text)], &opts(directors)).unwrap();
        let mut dropped = Vec::new();
        silent(&parsed, file, &got.toml, &mut dropped);
        assert!(dropped.is_empty(), "{file}: dropped silently: {dropped:#?}\n{}", got.toml);
    }
    // The count by line, by eye: `a`, `b {`, `c` (the fixtures keep one statement a line).
    assert_eq!(statements_by_line("a 1 ! note\nb {\n  c\n}\n# all\n"), 3);
}

/// Issue 28: a keepalived.conf with an IPv4 and an IPv6 `virtual_server` side by side, and
/// the other family's addresses given as a second `--director` and `--router`: one LAN with
/// both subnets, the IPv6 service on IPv6 real servers with their IPv6 gateway, an IPv6
/// persistence granularity as a prefix length; and it validates as it stands.
#[test]
fn an_ipv6_virtual_server_imports_onto_a_dual_stack_lan() {
    let conf = "virtual_server 198.18.0.100 80 {\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n  real_server 198.18.0.11 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n}\n\
                virtual_server 2001:db8:18::100 80 {\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n  persistence_timeout 60\n  persistence_granularity 64\n  real_server 2001:db8:18::11 80 {\n    weight 2\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n  real_server 2001:db8:18::12 80 {\n    weight 3\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n}\n";
    let mut o = opts(&[("lvs1", "198.18.0.2/24")]);
    o.other_family = Some(import::OtherFamily {
        router: Some("2001:db8:18::1".parse().unwrap()),
        directors: vec![("lvs1".into(), "2001:db8:18::2/64".parse().unwrap())],
    });
    let got = import::keepalived(&[input("dual.conf", conf)], &o).unwrap();
    println!("{}", got.toml);
    let c = load_str("imported.toml", &got.toml).unwrap_or_else(|e| panic!("{e}\n{}", got.toml)).cluster;
    let lan = &c.lans[0];
    assert_eq!(lan.cidrs.len(), 2, "{:?}", lan.cidrs);
    let v6 = c.services.iter().find(|s| s.vip.is_ipv6()).expect("the IPv6 service");
    assert_eq!(v6.key.to_string(), "TCP [2001:db8:18::100]:80");
    assert_eq!(v6.persistence.unwrap().netmask, 64);
    let weights: Vec<(String, u32)> =
        v6.real_servers.iter().map(|r| (r.address.to_string(), r.weight)).collect();
    assert_eq!(weights, [("[2001:db8:18::11]:80".to_string(), 2), ("[2001:db8:18::12]:80".to_string(), 3)]);
    let rs = c
        .nodes
        .iter()
        .find(|n| n.interfaces.iter().any(|i| i.address.to_string() == "2001:db8:18::11/64"))
        .unwrap();
    assert_eq!(rs.gateways, ["2001:db8:18::1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(rs.agent, "[2001:db8:18::11]:7443");
    let lvs1 = c.nodes.iter().find(|n| n.name == "lvs1").unwrap();
    assert_eq!(lvs1.interfaces.len(), 2, "the director on both families: {:?}", lvs1.interfaces);
    assert!(lvs1.vips.iter().any(|v| v.address.to_string() == "2001:db8:18::100/128"));
}

#[test]
fn the_firewalls_marking_rules_become_the_fwmark_services_marks() {
    let rules = include_str!("fixtures/keepalived/dr-master.iptables");
    let mut o = opts(&[("lvs1", "198.18.0.2/24")]);
    o.firewall = Some(input("dr-master.iptables", rules));
    let got = import::keepalived(&[input("dr-master.conf", MASTER)], &o).unwrap();
    let toml = &got.toml;
    assert!(
        toml.contains("marks = [{ protocol = \"tcp\", ports = [8443, \"9000-9010\"] }, { protocol = \"udp\", ports = [8443] }]"),
        "{toml}"
    );
    for why in [
        "dr-master.iptables:16: `-A PREROUTING -s 198.19.0.0/24",
        "`-s`: the mark depends on more than address, protocol and port: not carried over, keep this rule yourself",
        "dr-master.iptables:17: `mark 11 for 198.18.0.101`: no virtual_server fwmark uses this mark",
        "dr-master.iptables:18: `-A OUTPUT",
        "chain OUTPUT: only PREROUTING marks are carried over",
    ] {
        assert!(toml.contains(why), "no `{why}` in\n{toml}");
    }
    let loaded = load_str("imported.toml", toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let svc = loaded.cluster.services.iter().find(|s| s.name == "fwmark-7").expect("the fwmark service");
    assert_eq!(svc.vip.to_string(), "198.18.0.100", "its VIP from the rule");
    let specs = lvs_controller::planner::plan(&loaded.cluster);
    let lvs1 = specs.iter().find(|s| s.node == "lvs1").unwrap();
    let m: Vec<String> = lvs1.marks.iter().map(ToString::to_string).collect();
    assert_eq!(
        m,
        [
            "TCP 198.18.0.100 ports 8443,9000-9010 → mark 7 (fwmark-7)",
            "UDP 198.18.0.100 port 8443 → mark 7 (fwmark-7)"
        ]
    );

    // Without the rules: the service says where its marks would come from.
    let got =
        import::keepalived(&[input("dr-master.conf", MASTER)], &opts(&[("lvs1", "198.18.0.2/24")])).unwrap();
    assert!(
        got.toml.contains("keepalived.conf does not say which packets carry the mark: pass --firewall"),
        "{}",
        got.toml
    );
    assert!(!got.toml.lines().any(|l| l.starts_with("marks = ")), "{}", got.toml);
}
