//! `lvsctl import keepalived`: keepalived.conf files of our own making (modelled on
//! keepalived's doc/samples, with test addresses) become definitions that validate, with
//! every option accounted for: mapped, or a comment naming its line and the reason.
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
        directors: directors.iter().map(|(n, a)| (n.to_string(), a.parse().unwrap())).collect(),
        interface: None,
        rs_interface: "eth0".into(),
        agent_port: 7443,
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
