//! `cargo bench -p lvs-tests --bench health` (root): the director agent's health checker.
//!
//! 1. CPU: 200 destinations checked by HTTP GET every second against a real httpd
//!    (busybox, a child process: its CPU is not ours); the agent's CPU time over 10 s,
//!    from getrusage of this process, which holds only the agent.
//! 2. Latency: interval 200 ms, fall 3: the httpd is stopped, then the time until every
//!    destination has weight 0 in the (recording) IPVS table.
//!
//! Runs in a private network namespace where 198.18.0.0/16 is local on `lo`.
mod common;

use common::{cpu, enter_private_netns, httpd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_agent::fake::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::state::Store;
use lvs_proto::spec::NodeSpec;

fn spec(dests: usize, interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> NodeSpec {
    let rips = (0..dests).map(|i| format!("198.18.{}.{}", 1 + i / 250, 1 + i % 250));
    common::director(vec![common::http_service(
        "web",
        "198.18.255.100:80",
        rips,
        interval_ms,
        timeout_ms,
        rise,
        fall,
    )])
}

fn weights(sys: &FakeSystem) -> Vec<u32> {
    sys.ipvs
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .flat_map(|s| s.destinations.iter().map(|d| d.dest.weight))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    enter_private_netns();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let www = tempfile::tempdir().unwrap();
    let mut server = httpd(www.path());

    // 1. CPU of 200 destinations every second.
    let state = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let agent = Agent::new("director", sys.clone(), Store::new(state.path()));
    let (probes, used, window) = rt.block_on(async {
        let r = agent.apply(&spec(200, 1000, 500, 2, 3), "", false).await.unwrap();
        assert!(r.converged());
        tokio::time::sleep(Duration::from_secs(2)).await; // every task has started
        let before = (
            cpu(),
            Instant::now(),
            agent.status(None).await.unwrap().health.iter().map(|h| h.probes).sum::<u64>(),
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        let st = agent.status(None).await.unwrap();
        let after: u64 = st.health.iter().map(|h| h.probes).sum();
        assert!(st.health.iter().all(|h| h.up && !h.quarantined), "all healthy");
        (after - before.2, cpu() - before.0, before.1.elapsed())
    });
    drop(agent);
    println!(
        "health checks: 200 destinations, HTTP GET every 1 s, real httpd (the agent: 2 worker threads and its checker thread)"
    );
    println!(
        "  {probes} probes in {:.1} s; agent CPU {:.0} ms = {:.1}% of one core; {:.0} µs per probe",
        window.as_secs_f64(),
        used.as_secs_f64() * 1000.0,
        100.0 * used.as_secs_f64() / window.as_secs_f64(),
        used.as_secs_f64() * 1e6 / probes.max(1) as f64
    );

    // 2. Quarantine latency, interval 200 ms, fall 3.
    for dests in [1usize, 200] {
        let state = tempfile::tempdir().unwrap();
        let sys = Arc::new(FakeSystem::new(&["eth1"], true));
        let agent = Agent::new("director", sys.clone(), Store::new(state.path()));
        let (first, all) = rt.block_on(async {
            agent.apply(&spec(dests, 200, 100, 2, 3), "", false).await.unwrap();
            tokio::time::sleep(Duration::from_millis(800)).await;
            if !weights(&sys).iter().all(|w| *w == 1) {
                let st = agent.status(None).await.unwrap();
                let bad: Vec<_> =
                    st.health.iter().filter(|h| !h.up).map(|h| (h.dest, h.last_error.clone())).collect();
                panic!("not all healthy before the stop: {} failing, e.g. {:?}", bad.len(), bad.first());
            }
            let t0 = Instant::now();
            server.kill().unwrap();
            server.wait().unwrap();
            let mut first = None;
            loop {
                let w = weights(&sys);
                if first.is_none() && w.contains(&0) {
                    first = Some(t0.elapsed());
                }
                if w.iter().all(|w| *w == 0) {
                    return (first.unwrap_or_default(), t0.elapsed());
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "not quarantined: {w:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        println!(
            "quarantine, interval 200 ms, fall 3, {dests} destination(s): httpd stopped -> first weight 0 in {} ms, all in {} ms",
            first.as_millis(),
            all.as_millis()
        );
        drop(agent);
        server = httpd(www.path());
    }
    let _ = server.kill();
    let _ = server.wait();
}
