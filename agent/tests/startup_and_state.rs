//! Start-up and the state file under faults (issue 10, items 4 and 11): a failed start-up
//! re-apply neither stops the health checks nor stays silent, and a damaged `state.json`
//! neither wedges the agent nor loses what it owns.
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::{Store, StoreError};
use lvs_proto::NodeSpec;

/// What the controller plans for the lab's nodes (`deploy/examples/lab.toml`), kept fresh by
/// `tests/tests/reconcile.rs`.
const LAB_SPECS: &str = include_str!("fixtures/lab-specs.json");

fn spec_of(node: &str) -> NodeSpec {
    let specs: Vec<NodeSpec> = serde_json::from_str(LAB_SPECS).unwrap();
    specs.into_iter().find(|s| s.node == node).unwrap()
}

fn failed_checks(v: &lvs_proto::reply::NodeStatus) -> Vec<(String, String)> {
    v.checks.iter().filter(|c| !c.ok).map(|c| (c.check.clone(), c.detail.clone())).collect()
}

/// A director that accepted the lab's spec once, then "rebooted": a new agent on the same
/// state directory over a kernel whose reads fail.
async fn rebooted_director() -> (Arc<Agent<FakeSystem>>, Arc<FakeSystem>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let before = Agent::new("director", Arc::new(FakeSystem::new(&["eth1"], true)), Store::new(dir.path()));
    before.apply(&spec_of("director"), "", false).await.unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    let a = Agent::new("director", Arc::clone(&sys), Store::new(dir.path()));
    (a, sys, dir)
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_up_still_checks_health_shows_why_and_retries_until_it_works() {
    let (a, sys, _d) = rebooted_director().await;
    let e = a.start().await.unwrap_err();
    assert!(e.to_string().contains("list addresses: injected failure"), "{e}");
    // Health checking runs for the stored spec's destinations all the same.
    let dests: Vec<String> =
        a.status(None).await.unwrap().health.iter().map(|h| h.destination.to_string()).collect();
    assert_eq!(dests, ["198.18.0.11:80", "198.18.0.12:80"]);
    let failed = failed_checks(&a.status(None).await.unwrap());
    assert!(
        failed.iter().any(|(c, d)| c == "stored spec re-applied at start" && d.contains("injected failure")),
        "{failed:#?}"
    );
    // The kernel recovers; the back-off retry converges without anyone asking.
    *sys.fail_on.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = a.status(None).await.unwrap();
    assert!(!failed_checks(&v).iter().any(|(c, _)| c.contains("at start")), "{:#?}", failed_checks(&v));
    assert!(sys.calls.lock().unwrap().iter().any(|c| c == "ipvs add service TCP 198.18.0.100:80"));
}

fn owned_addresses(dir: &std::path::Path) -> usize {
    Store::new(dir).load().unwrap().owned.addresses.len()
}

#[tokio::test]
async fn a_corrupt_state_file_is_recovered_from_the_previous_copy_with_its_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(dir.path()));
    a.apply(&spec_of("rs1"), "", false).await.unwrap();
    let owned = owned_addresses(dir.path());
    assert_eq!(owned, 2, "LAN address and hidden VIP");
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"generation\": 1, \"fingerp").unwrap();

    // A new agent process (as after a crash) loads it: the previous copy stands in.
    let store = Store::new(dir.path());
    let b = Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), store.clone());
    let v = b.status(None).await.expect("status answers");
    assert_eq!(v.generation, 1);
    assert_eq!(store.load().unwrap().owned.addresses.len(), owned, "ownership records survive");
    let failed = failed_checks(&v);
    assert!(failed.iter().any(|(c, d)| c == "state file intact" && d.contains("is corrupt")), "{failed:#?}");
    assert!(dir.path().join("state.json.corrupt").exists(), "the damaged file is kept for inspection");
    assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&state).unwrap()).is_ok());
    // An admin's apply acknowledges it.
    b.apply(&spec_of("rs1"), "", false).await.unwrap();
    let failed = failed_checks(&b.status(None).await.unwrap());
    assert!(!failed.iter().any(|(c, _)| c.starts_with("state file")), "{failed:#?}");
}

#[tokio::test]
async fn a_state_file_damaged_beyond_recovery_is_reported_and_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), b"garbage").unwrap();
    std::fs::write(dir.path().join("state.json.prev"), b"more garbage").unwrap();
    let store = Store::new(dir.path());
    assert!(matches!(store.inspect(), Err(StoreError::Unrecoverable { .. })));
    let sys = Arc::new(FakeSystem::new(&["eth0"], false));
    let a = Agent::new("rs1", Arc::clone(&sys), store);
    let v = a.status(None).await.expect("status still answers");
    let failed = failed_checks(&v);
    assert!(
        failed.iter().any(|(c, d)| c == "state file readable" && d.contains("no good previous copy")),
        "{failed:#?}"
    );
    let e = a.apply(&spec_of("rs1"), "", false).await.unwrap_err();
    assert!(e.to_string().contains("move it aside"), "{e}");
    assert!(sys.calls.lock().unwrap().is_empty(), "nothing changed");
    assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"garbage", "nothing overwritten");
}

/// The state has one owner in memory: an agent reads `state.json` once, at start, and
/// afterwards only writes it through. Applies, status, metrics and the clock loop read the
/// copy in memory.
#[tokio::test]
async fn the_state_file_is_read_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let a = Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), store.clone());
    a.start().await.unwrap();
    for _ in 0..3 {
        a.apply(&spec_of("rs1"), "", false).await.unwrap();
        a.status(None).await.unwrap();
        a.metrics_snapshot(None).await;
    }
    assert_eq!(store.disk_reads(), 1, "one read at start, none per apply or status");
    // What was written through is what a new process reads.
    let fresh = Store::new(dir.path()).load().unwrap();
    assert_eq!(fresh, store.load().unwrap());
    assert_eq!(fresh.owned.addresses.len(), 2, "LAN address and hidden VIP");
}
