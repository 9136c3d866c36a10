//! What commands print, from fixed replies: the JSON views come from serde and are held by
//! snapshots (a changed field name is a changed contract for scripts), the text tables
//! size their columns to their content.
use std::time::Duration;

use lvs_controller::commands::{Ctx, apply, ipvs, status};
use lvs_controller::fleet::{Fleet, NodeError};
use lvs_controller::pki::Pki;
use lvs_proto::reply::*;
use lvs_proto::spec::{Protocol, ServiceKey};

fn ctx(dir: &std::path::Path) -> Ctx {
    let def = include_str!("../../deploy/examples/lab.toml");
    let cluster = lvs_controller::load::load_str("lab.toml", def).unwrap().cluster;
    let pki = Pki::new(dir);
    pki.init(&cluster.name, true).unwrap();
    let specs = lvs_controller::planner::plan(&cluster);
    let fleet = Fleet::new(&cluster, &pki, Duration::from_secs(1)).unwrap();
    Ctx { file: "lab.toml".into(), cluster, specs, fleet, json: true }
}

fn key() -> ServiceKey {
    ServiceKey::Addr { protocol: Protocol::Tcp, address: "198.18.0.100:80".parse().unwrap() }
}

fn table() -> IpvsTable {
    let dest = |a: &str, w| TableDestination {
        address: a.parse().unwrap(),
        forward: Forward::Route,
        weight: w,
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: 3,
        inactive_conns: 1,
        persist_conns: 0,
        stats: Stats { conns: 10, inpkts: 40, ..Default::default() },
    };
    IpvsTable {
        version: "1.2.1".into(),
        conn_tab_size: 4096,
        services: vec![TableService {
            key: key(),
            scheduler: "wrr".into(),
            flags: 0,
            timeout_s: 0,
            netmask: u32::MAX,
            stats: Stats { conns: 20, inpkts: 80, ..Default::default() },
            destinations: vec![dest("198.18.0.11:80", 2), dest("198.18.0.12:80", 1)],
            managed: true,
        }],
        timeouts: Timeouts { tcp: 900, tcp_fin: 120, udp: 300 },
        connections: vec![],
        connections_truncated: false,
    }
}

fn statuses() -> Vec<(String, Result<NodeStatus, NodeError>)> {
    let facts = |n: &str| Facts {
        node: n.into(),
        kernel: "6.1.0-56-amd64".into(),
        agent_version: "0.1.0".into(),
        ipvs: n == "director",
        ipvs_version: if n == "director" { "1.2.1".into() } else { String::new() },
        ..Default::default()
    };
    let ok = |n: &str| NodeStatus {
        facts: facts(n),
        generation: 1,
        has_spec: true,
        checks: vec![CheckResult {
            check: "httpd answers".into(),
            ok: true,
            unknown: false,
            detail: "200".into(),
        }],
        clock: Clock { offset_ms: Some(2), rtt_ms: Some(1), error: None },
        ..Default::default()
    };
    let mut director = ok("director");
    director.ipvs = Some(table());
    director.health = vec![DestinationHealth {
        service: key(),
        destination: "198.18.0.12:80".parse().unwrap(),
        up: false,
        quarantined: true,
        successes: 0,
        failures: 3,
        transitions: 1,
        probes: 12,
        last_error: "connection refused".into(),
    }];
    // Quorum 2 of 2: one quarantined server takes the service below it.
    director.services = vec![ServiceHealth {
        service: key(),
        name: "web".into(),
        in_service: 1,
        total: 2,
        quorum: 2,
        degraded: true,
    }];
    vec![
        ("router".into(), Ok(ok("router"))),
        ("director".into(), Ok(director)),
        ("rs1".into(), Ok(ok("rs1"))),
        ("rs2".into(), Err(NodeError::Unreachable("connection refused".into()))),
    ]
}

#[test]
fn status_json_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let res = statuses();
    insta::assert_json_snapshot!("status_json", status::view(&c, &res));
    insta::assert_snapshot!("status_text", status::render(&c, &res));
}

#[test]
fn reports_json() {
    let report = Report {
        node: "rs1".into(),
        generation: 2,
        actions: vec![
            ActionResult {
                change: Change::SetSysctl {
                    key: "net.ipv4.conf.all.arp_ignore".into(),
                    from: "0".into(),
                    to: "1".into(),
                },
                outcome: Outcome::Applied,
            },
            ActionResult {
                change: Change::AddAddress(AddressRef {
                    interface: "lo".into(),
                    address: "198.18.0.100/32".parse().unwrap(),
                    label: Some("lo:0".into()),
                }),
                outcome: Outcome::Failed(Failure {
                    kind: FailureKind::Exists,
                    message: "add address 198.18.0.100/32 on lo: File exists (os error 17)".into(),
                    errno: 17,
                }),
            },
        ],
        foreign: vec![],
        drift_after: vec![],
        converged: false,
        revocation_number: 0,
    };
    let res = vec![
        ("rs1".to_string(), Ok(report)),
        ("rs2".to_string(), Err(NodeError::TimedOut("no answer within 1000 ms".into()))),
    ];
    insta::assert_json_snapshot!("reports_json", apply::reports_view(&res));
}

#[test]
fn ipvs_views() {
    let t = table();
    insta::assert_snapshot!("ipvs_list", ipvs::render_list(&t, ipvs::View::Table));
    insta::assert_snapshot!("ipvs_stats", ipvs::render_list(&t, ipvs::View::Stats));
    insta::assert_json_snapshot!(
        "ipvs_json",
        ipvs::NodeTable { node: "director", table: Some(&t), error: None }
    );
}

#[test]
fn a_long_node_name_widens_its_column_instead_of_breaking_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let mut res = statuses();
    res[2].0 = "a-real-server-with-a-long-name".into();
    let text = status::render(&c, &res);
    let lines: Vec<&str> = text.lines().take(5).collect();
    let col = lines[0].find("ROLE").unwrap();
    assert!(col > "a-real-server-with-a-long-name".len(), "{text}");
    for l in &lines[1..] {
        assert_eq!(&l[col - 1..col], " ", "every row's ROLE starts in one column:\n{text}");
    }
}

/// Issue 28: a persistent IPv6 service's mask is a prefix length in both views, as ipvsadm
/// prints it (`-L`: `mask 64`; `-S`: `-M 64`), and an IPv4 one stays dotted. The VM's
/// dual-stack test holds both against ipvsadm itself.
#[test]
fn an_ipv6_persistence_mask_is_a_prefix_length() {
    let mut t = table();
    let mut v4 = t.services[0].clone();
    v4.flags = 1 /* IP_VS_SVC_F_PERSISTENT */;
    v4.timeout_s = 300;
    v4.netmask = 0xffff_ff00;
    let v6 = TableService {
        key: ServiceKey::Fwmark { mark: 6, ipv6: true },
        scheduler: "rr".into(),
        flags: 1, /* IP_VS_SVC_F_PERSISTENT */
        timeout_s: 60,
        netmask: 64,
        destinations: vec![],
        ..v4.clone()
    };
    t.services = vec![v4, v6];
    let list = ipvs::render_list(&t, ipvs::View::Table);
    assert!(list.contains("persistent 300 mask 255.255.255.0\n"), "{list}");
    assert!(list.contains("FWM  6 IPv6 rr persistent 60 mask 64\n"), "{list}");
    let save = ipvs::render_save(&t);
    assert!(save.contains("-A -f 6 -6 -s rr -p 60 -M 64\n"), "{save}");
    assert!(save.contains("-p 300 -M 255.255.255.0\n"), "{save}");
}
