//! `/metrics` end to end on loopback: the agent's own server ([`lvs_agent::telemetry::serve_metrics`])
//! over a director that applied the article's spec (on the recording fake: the kernel is
//! not what is tested here; the VM e2e suite compares the counters with `ipvsadm`), scraped
//! by the controller's own client ([`lvs_controller::scrape::scrape`], as `lvsctl metrics`)
//! with real certificates. Who may scrape is asserted by reason; the exposition is checked
//! by Prometheus' own `promtool check metrics`.
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::Store;
use lvs_controller::pki::Pki;
use lvs_controller::scrape::{ScrapeError, scrape};
use lvs_proto::agent_config::{MetricsAuth, MetricsConfig, TlsPaths};
use lvs_proto::identity::{Caller, Role};

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

struct Director {
    dir: tempfile::TempDir,
    pki: Pki,
    agent: Arc<Agent<FakeSystem>>,
}

async fn director() -> Director {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("metrics", false).unwrap();
    pki.issue_agent("director", false).unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let agent = Agent::new("director", sys, Store::new(&dir.path().join("state")));
    let c = lvs_controller::load::load_str("lab.toml", LAB).unwrap().cluster;
    let mut spec = lvs_controller::planner::plan(&c).into_iter().find(|s| s.node == "director").unwrap();
    // No health checks: nothing answers on the lab's real-server addresses here, so their
    // probes would quarantine them (weight 0) at a moment that depends on the machine's
    // load. The health families are checked on `everything()` below.
    for v in &mut spec.virtual_services {
        v.health_check = None;
    }
    let r = agent.apply(&spec, "", false).await.unwrap();
    assert!(r.converged, "{r:?}");
    Director { dir, pki, agent }
}

impl Director {
    async fn serve(&self, auth: MetricsAuth) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let me = self.pki.agent("director");
        let paths = TlsPaths { ca: self.pki.ca().cert, cert: me.cert, key: me.key };
        let tls = lvs_agent::server::server_config("director", &paths).unwrap();
        let config = MetricsConfig { listen: addr, auth };
        let agent = Arc::clone(&self.agent);
        tokio::spawn(async move {
            lvs_agent::telemetry::serve_metrics(agent, l, &config, &tls, std::future::pending()).await
        });
        addr
    }

    fn caller(&self, name: &str, role: Role) -> Pki {
        let out = self.dir.path().join(format!("caller-{name}"));
        self.pki.issue_caller(&Caller { name: name.into(), role }, &out, false).unwrap();
        Pki::new(out)
    }
}

const DEADLINE: Duration = Duration::from_secs(5);

/// The value of the sample whose line starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn promtool() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(std::env::var_os("LVS_PROMTOOL").unwrap_or_else(|| "promtool".into()));
    let found = std::process::Command::new(&p).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "promtool not found (tests/prereqs.sh installs it; LVS_PROMTOOL names another)");
    p
}

#[tokio::test]
async fn a_viewer_scrapes_what_the_director_holds_and_promtool_finds_it_valid() {
    let d = director().await;
    let addr = d.serve(MetricsAuth::MutualTls).await;
    let viewer = d.caller("prometheus", Role::Viewer);
    let text = scrape(&viewer, "director", addr, DEADLINE).await.unwrap();
    // The article's service and its two real servers, with node_exporter's label names.
    let backend = r#"lvs_ipvs_backend_weight{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.12",remote_port="80",proto="TCP",local_mark=""}"#;
    assert_eq!(sample(&text, backend), Some(1.0), "{text}");
    assert!(text.contains(r#"lvs_ipvs_service_connections_total{local_address="198.18.0.100",local_port="80",proto="TCP",local_mark=""} 0"#), "{text}");
    assert!(text.contains(r#"lvs_agent_info{agent="director",role="director","#), "{text}");
    assert_eq!(sample(&text, "lvs_agent_generation "), Some(1.0), "{text}");
    // The apply was counted and timed.
    assert_eq!(sample(&text, r#"lvs_agent_events_total{kind="apply"}"#), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"lvs_agent_reconcile_duration_seconds_count{operation="apply",outcome="ok"}"#),
        Some(1.0),
        "{text}"
    );
    let expiry = sample(&text, "lvs_agent_certificate_expiry_timestamp_seconds ").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(expiry > now + 80.0 * 86400.0, "{expiry}");
    assert!(!text.contains("# EOF"), "the classic format, unless OpenMetrics is asked for: {text}");
    check_metrics(&text);
}

/// Prometheus' own parser and linter on an exposition.
fn check_metrics(text: &str) {
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn a_revoked_caller_and_a_stranger_are_refused() {
    let d = director().await;
    let addr = d.serve(MetricsAuth::MutualTls).await;
    let admin = d.caller("alice", Role::Admin);
    scrape(&admin, "director", addr, DEADLINE).await.expect("an admin may scrape");
    d.pki.revoke("alice").unwrap();
    let list = d.pki.revocation_list().unwrap();
    let ca = std::fs::read(d.pki.ca().cert).unwrap();
    d.agent.revoked().replace(&list, &ca).unwrap();
    // Let in only to be told why (no caller's slot), then closed.
    match scrape(&admin, "director", addr, DEADLINE).await {
        Err(ScrapeError::Refused { status: 403, body, .. }) => assert!(body.contains("revoked"), "{body}"),
        other => panic!("{other:?}"),
    }
    // Another cluster's CA: the handshake itself fails.
    let other = tempfile::tempdir().unwrap();
    let stranger = Pki::new(other.path().join("pki"));
    stranger.init("other", false).unwrap();
    match scrape(&stranger, "director", addr, DEADLINE).await {
        Err(ScrapeError::Connect { reason, .. }) => assert!(reason.contains("TLS"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Plain HTTP to a mutual-TLS endpoint gets no exposition.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("lvs_"), "{}", String::from_utf8_lossy(&got));
}

/// A plain HTTP/1.1 exchange; the status code and the body.
fn get(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_string())
}

#[tokio::test]
async fn open_mode_serves_plain_http_on_one_path_and_method() {
    let d = director().await;
    let addr = d.serve(MetricsAuth::Open).await;
    let (status, body) = tokio::task::spawn_blocking(move || {
        get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("lvs_ipvs_backend_weight{"), "{body}");
    assert!(body.contains("# TYPE lvs_agent_events_total counter"), "{body}");
    // Prometheus asks for OpenMetrics and gets it.
    let (status, body) = tokio::task::spawn_blocking(move || {
        get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE lvs_agent_events counter") && body.ends_with("# EOF\n"), "{body}");
    let (status, _) = tokio::task::spawn_blocking(move || {
        get(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(status, 405);
    let (status, body) = tokio::task::spawn_blocking(move || {
        get(addr, "GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!((status, body.trim()), (404, "only /metrics is served here"));
}

/// A director in an HA pair with every metric family present: two services (one by
/// firewall mark), checked real servers, a clock reading, VRRP and sync daemons.
fn everything() -> String {
    use lvs_agent::health::DestHealth;
    use lvs_agent::kernel::IpvsService;
    use lvs_ipvs::{Destination, DestinationEntry, Protocol, Service, ServiceKey, Stats};
    let vip: SocketAddr = "198.18.0.100:80".parse().unwrap();
    let rs = |a: &str| DestinationEntry {
        dest: Destination::route(a.parse().unwrap(), 1),
        active_conns: 3,
        inactive_conns: 5,
        persist_conns: 0,
        stats: Stats { conns: 10, inpkts: 100, inbytes: 6400, ..Default::default() },
    };
    let services = [ServiceKey::Addr(Protocol::Tcp, vip), ServiceKey::Fwmark(7, false)]
        .into_iter()
        .map(|k| IpvsService {
            service: Service::new(k, "rr"),
            stats: Stats { conns: 20, inpkts: 200, inbytes: 12800, ..Default::default() },
            destinations: vec![rs("198.18.0.11:80"), rs("198.18.0.12:80")],
        })
        .collect();
    let health = vec![DestHealth {
        service: lvs_proto::spec::ServiceKey::Addr { protocol: lvs_proto::spec::Protocol::Tcp, address: vip },
        dest: "198.18.0.11:80".parse().unwrap(),
        up: true,
        quarantined: false,
        successes: 3,
        failures: 0,
        transitions: 1,
        probes: 42,
        last_error: String::new(),
    }];
    let snap = lvs_agent::telemetry::Snapshot {
        node: "director".into(),
        role: "director".into(),
        generation: 3,
        services,
        health,
        quorum: vec![lvs_proto::reply::ServiceHealth {
            service: lvs_proto::spec::ServiceKey::Addr {
                protocol: lvs_proto::spec::Protocol::Tcp,
                address: vip,
            },
            name: "web".into(),
            in_service: 1,
            total: 2,
            quorum: 2,
            degraded: true,
        }],
        certificate_not_after_unix: Some(2_000_000_000),
        clock_offset_ms: Some(-12),
        clock_limit_ms: Some(1000),
        vrrp: Some(lvs_proto::reply::VrrpStatus {
            instance: "web".into(),
            state: lvs_proto::reply::VrrpState::Master,
            priority: 150,
            since_unix_ms: 0,
            transitions: 2,
            error: None,
        }),
        sync_daemons: vec![lvs_proto::reply::SyncDaemon {
            state: "master".into(),
            interface: "eth1".into(),
            sync_id: 51,
        }],
        bgp: Some(lvs_proto::reply::BgpStatus {
            sessions: vec![lvs_proto::reply::BgpSession {
                peer: "router".into(),
                address: "198.18.0.1".into(),
                state: "Established".into(),
                up: true,
                since_unix_ms: 0,
                routes_received: 0,
                routes_sent: 1,
            }],
            announcements: vec![lvs_proto::reply::BgpAnnouncement {
                prefix: "198.18.0.100/32".into(),
                announced: true,
                reason: String::new(),
            }],
            error: None,
            drained: false,
        }),
        // (A router's, in one snapshot with a director's: every family is served somewhere.)
        arp_watch: Some(lvs_proto::reply::ArpWatchStatus {
            vips: vec![lvs_proto::reply::VipArp {
                address: "198.18.0.100".into(),
                answers: vec![lvs_proto::reply::ArpAnswer {
                    mac: "02:00:00:00:00:11".into(),
                    node: Some("rs1".into()),
                }],
                leak: Some("rs1 (02:00:00:00:00:11) answers ARP for it (only director may)".into()),
                holders: vec!["director".into()],
            }],
            rounds: 4,
            last_round_unix_ms: 0,
            error: None,
        }),
        drill: Some(lvs_agent::telemetry::DrillResult {
            name: "web".into(),
            tally: lvs_proto::reply::ProbeTally {
                sent: 320,
                answered: 320,
                slowest_ms: 41,
                longest_gap_ms: 55,
                ..Default::default()
            },
            unix_ms: 1_796_437_865_000,
        }),
        marks: vec![lvs_proto::reply::MarkCount {
            rule: lvs_proto::spec::MarkRule {
                service: "web".into(),
                address: "198.18.0.100".parse().unwrap(),
                protocol: lvs_proto::spec::Protocol::Tcp,
                ports: vec![
                    lvs_proto::spec::PortRange { first: 80, last: 80 },
                    lvs_proto::spec::PortRange { first: 8000, last: 8099 },
                ],
                mark: 7,
            },
            packets: 120,
            bytes: 7200,
        }],
    };
    let m = lvs_agent::telemetry::Metrics::default();
    m.event(lvs_proto::reply::EventKind::Drift);
    m.reconciled("apply", true, Duration::from_millis(12));
    m.probe_histogram(&ServiceKey::Addr(Protocol::Tcp, vip)).observe(0.002);
    m.probe_connections(&ServiceKey::Addr(Protocol::Tcp, vip)).inc();
    lvs_agent::telemetry::render(&m, &snap, lvs_agent::telemetry::Format::Classic)
}

/// Every `lvs_…` name in `expr`.
fn names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("lvs_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_and_the_alerts_ask_only_for_metrics_the_agent_serves() {
    let text = everything();
    check_metrics(&text);
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    // The dashboard: Grafana's JSON model, every query a known series.
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/lvs-dr.json")).unwrap();
    assert_eq!(dash["uid"], "lvs-dr");
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36, "a current Grafana model");
    let panels = dash["panels"].as_array().unwrap();
    let mut exprs = Vec::new();
    for p in panels {
        let g = &p["gridPos"];
        assert!(g["w"].as_u64().unwrap() <= 24 && g["h"].as_u64().is_some(), "{p}");
        assert!(p["id"].as_u64().is_some() && p["type"].as_str().is_some(), "{p}");
        for t in p["targets"].as_array().into_iter().flatten() {
            assert!(t["refId"].as_str().is_some(), "{t}");
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 15, "{}", exprs.len());
    let rules = include_str!("../../deploy/prometheus/lvs-dr.rules.yml");
    exprs.extend(rules.lines().filter_map(|l| l.trim().strip_prefix("expr: ")).map(String::from));
    let mut asked = 0;
    for e in &exprs {
        for n in names(e) {
            asked += 1;
            assert!(served.contains(n.as_str()), "`{n}` (in `{e}`) is not served; served: {served:?}");
        }
    }
    assert!(asked > 20, "{asked}");
    // Prometheus' own checks: the rules parse, and each alert fires where it should.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
    for args in [
        &["check", "rules", "lvs-dr.rules.yml"][..],
        &["test", "rules", "lvs-dr.rules.test.yml"],
        &["check", "config", "--syntax-only", "prometheus.yml"],
    ] {
        let o = std::process::Command::new(promtool()).args(args).current_dir(dir).output().unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[tokio::test]
async fn a_taken_metrics_port_stops_the_agent_before_it_changes_anything() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("metrics", false).unwrap();
    let me = pki.issue_agent("director", false).unwrap();
    // A stored spec the agent would re-apply at start.
    let c = lvs_controller::load::load_str("lab.toml", LAB).unwrap().cluster;
    let spec = lvs_controller::planner::plan(&c).into_iter().find(|s| s.node == "director").unwrap();
    let state = dir.path().join("state");
    let a = Agent::new("director", Arc::new(FakeSystem::new(&["eth1"], true)), Store::new(&state));
    a.apply(&spec, "", false).await.unwrap();
    drop(a);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = lvs_proto::agent_config::Config {
        node: "director".into(),
        listen: listener.local_addr().unwrap(),
        state_dir: state,
        heal_interval: Duration::ZERO,
        tls: TlsPaths { ca: pki.ca().cert, cert: me.cert, key: me.key },
        scripts: Default::default(),
        metrics: Some(MetricsConfig { listen: taken.local_addr().unwrap(), auth: MetricsAuth::Open }),
    };
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let kernel = Arc::clone(&sys);
    let e = lvs_agent::run::serve(&config, listener, move || Ok(kernel), std::future::pending())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&taken.local_addr().unwrap().to_string()), "{e}");
    assert!(sys.calls.lock().unwrap().is_empty(), "nothing touched: {:?}", sys.calls.lock().unwrap());
}

#[test]
fn each_marking_rule_is_a_counter_by_service_vip_protocol_ports_and_mark() {
    let text = everything();
    let labels = "{service=\"web\",vip=\"198.18.0.100\",protocol=\"tcp\",ports=\"80,8000-8099\",mark=\"7\"}";
    assert!(text.contains(&format!("lvs_mark_packets_total{labels} 120")), "{text}");
    assert!(text.contains(&format!("lvs_mark_bytes_total{labels} 7200")), "{text}");
    assert!(text.contains("# TYPE lvs_mark_packets_total counter"), "{text}");
}
