//! `cargo bench -p lvs-tests --bench metrics` (root): what serving `/metrics` costs a
//! director with 1,000 destinations (10 services × 100 real servers, each health-checked).
//!
//! 1. Render: a snapshot of the agent (its IPVS table, here the recording fake's, and its
//!    health table) and the exposition, CPU per scrape (getrusage of this process).
//! 2. Scrape: the agent's own HTTPS server and mutual TLS, fetched as `lvsctl metrics`
//!    (and Prometheus) fetch it, one new connection per scrape: wall time per scrape, and
//!    this process's CPU per scrape (client and server both, so an upper bound for the
//!    agent's share).
//!
//! Runs in a private network namespace where 198.18.0.0/16 is local on `lo`, with a real
//! httpd answering the health checks (every 60 s: the probes barely touch the numbers).
mod common;

use common::cpu;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::Store;
use lvs_proto::spec::NodeSpec;

const SERVICES: usize = 10;
const PER_SERVICE: usize = 100;

fn spec() -> NodeSpec {
    common::director(
        (0..SERVICES)
            .map(|s| {
                let rips = (0..PER_SERVICE).map(move |i| format!("198.18.{}.{}", 1 + s, 1 + i));
                common::http_service(
                    &format!("web{s}"),
                    &format!("198.18.255.{}:80", 1 + s),
                    rips,
                    60_000,
                    1000,
                    2,
                    3,
                )
            })
            .collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rt, _www, mut server) = common::start(common::httpd);
    let dir = tempfile::tempdir().unwrap();
    let pki = lvs_controller::pki::Pki::new(dir.path().join("pki"));
    pki.init("bench", false).unwrap();
    let me = pki.agent("director");
    pki.issue_agent("director", false).unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let agent = Agent::new("director", sys, Store::new(&dir.path().join("state")));
    rt.block_on(async {
        let r = agent.apply(&spec(), "", false).await.unwrap();
        assert!(r.converged);
        // Every destination probed once (the first probes are spread over the interval:
        // wait for the table to fill rather than for the interval).
        let t0 = Instant::now();
        while agent.status(None).await.unwrap().health.iter().filter(|h| h.probes > 0).count() < 200 {
            assert!(t0.elapsed() < Duration::from_secs(60), "probes do not run");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // 1. Render.
    let n = 200u32;
    let (c0, t0) = (cpu(), Instant::now());
    let mut bytes = 0;
    for _ in 0..n {
        let snap = rt.block_on(agent.metrics_snapshot(Some(0)));
        bytes = lvs_agent::telemetry::render(
            agent.events().metrics(),
            &snap,
            lvs_agent::telemetry::Format::Classic,
        )
        .len();
    }
    let (used, wall) = (cpu() - c0, t0.elapsed());
    println!(
        "metrics, {} destinations ({SERVICES} services × {PER_SERVICE}), each health-checked",
        SERVICES * PER_SERVICE
    );
    println!(
        "  render (snapshot + classic text): {:.2} ms CPU per scrape, {:.2} ms wall; exposition {} KiB",
        used.as_secs_f64() * 1000.0 / f64::from(n),
        wall.as_secs_f64() * 1000.0 / f64::from(n),
        bytes / 1024
    );

    // 2. Scrape over HTTPS with mutual TLS, a new connection each time.
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let paths = lvs_proto::agent_config::TlsPaths {
            ca: pki.ca().cert,
            cert: me.cert.clone(),
            key: me.key.clone(),
        };
        let tls = lvs_agent::server::server_config("director", &paths).unwrap();
        let config = lvs_proto::agent_config::MetricsConfig {
            listen: addr,
            auth: lvs_proto::agent_config::MetricsAuth::MutualTls,
        };
        let a = Arc::clone(&agent);
        tokio::spawn(async move {
            lvs_agent::telemetry::serve_metrics(a, l, &config, &tls, std::future::pending()).await
        });
        addr
    });
    let n = 100u32;
    let mut walls = Vec::new();
    let c0 = cpu();
    for _ in 0..n {
        let t = Instant::now();
        let text = rt
            .block_on(lvs_controller::scrape::scrape(&pki, "director", addr, Duration::from_secs(10)))
            .unwrap();
        walls.push(t.elapsed());
        assert!(text.len() > 100_000, "{}", text.len());
    }
    let used = cpu() - c0;
    walls.sort();
    println!(
        "  HTTPS scrape (mutual TLS, new connection each): p50 {:.2} ms, max {:.2} ms wall; {:.2} ms CPU per scrape (client + server)",
        walls[walls.len() / 2].as_secs_f64() * 1000.0,
        walls[walls.len() - 1].as_secs_f64() * 1000.0,
        used.as_secs_f64() * 1000.0 / f64::from(n)
    );
    println!(
        "  at a 15 s scrape interval: {:.3}% of one core",
        100.0 * used.as_secs_f64() / f64::from(n) / 15.0
    );
    let _ = server.kill();
    let _ = server.wait();
}
