//! The agent's request rules on the recording fake (issue 10, items 2, 8 and 10): leases,
//! wire input, and an apply that outlives its caller. The fake stands in for the kernel
//! only; what is asserted is the agent's own bookkeeping (lease, state, events).
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::fake::FakeSystem;
use lvs_agent::node::{Agent, AgentError};
use lvs_agent::state::Store;
use lvs_proto::NodeSpec;

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

fn spec_of(node: &str) -> NodeSpec {
    let c = lvs_controller::load::load_str("lab.toml", LAB).unwrap().cluster;
    lvs_controller::planner::plan(&c).into_iter().find(|s| s.node == node).unwrap()
}

fn agent() -> (Arc<Agent<FakeSystem>>, Arc<FakeSystem>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth0"], false));
    let a = Agent::new("rs1", Arc::clone(&sys), Store::new(dir.path()));
    (a, sys, dir)
}

const TTL: Duration = Duration::from_secs(60);

fn is_conflict(e: &AgentError) -> bool {
    matches!(e, AgentError::Refused(m) if m.starts_with("conflict: another controller"))
}

#[tokio::test]
async fn an_apply_that_fails_observing_releases_its_lease() {
    let (a, sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL).await.unwrap();
    // The reservation holds against another controller...
    assert!(is_conflict(&a.plan(&spec, "lease-b", TTL).await.unwrap_err()));
    // ...until A's apply fails (here: reading the node fails, as EBUSY did).
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    let e = a.apply(&spec, "lease-a").await.unwrap_err();
    assert!(e.to_string().contains("list addresses: injected failure"), "{e}");
    *sys.fail_on.lock().unwrap() = None;
    a.plan(&spec, "lease-b", TTL).await.expect("the failed apply must not keep its lease");
}

#[tokio::test]
async fn an_apply_refused_by_preflight_releases_its_lease() {
    let (a, sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL).await.unwrap();
    sys.links.lock().unwrap().retain(|l| l != "eth0"); // the NIC vanished between plan and apply
    let e = a.apply(&spec, "lease-a").await.unwrap_err();
    assert!(e.to_string().contains("preflight failed"), "{e}");
    assert!(sys.calls.lock().unwrap().is_empty(), "preflight changes nothing");
    sys.links.lock().unwrap().push("eth0".into());
    a.plan(&spec, "lease-b", TTL).await.expect("the refused apply must not keep its lease");
}

#[tokio::test(start_paused = true)]
async fn an_apply_runs_to_completion_when_its_caller_goes_away() {
    let (a, sys, dir) = agent();
    let spec = spec_of("rs1");
    let mut events = a.events().subscribe();
    *sys.delay.lock().unwrap() = Duration::from_secs(1); // 8 changes: 8 s
    a.plan(&spec, "lease-a", TTL).await.unwrap();
    // The controller's deadline passes (or it is killed) after 2.5 s: its future is dropped.
    let cut = tokio::time::timeout(Duration::from_millis(2500), a.apply(&spec, "lease-a")).await;
    assert!(cut.is_err(), "the apply should still have been running");
    assert!(sys.calls.lock().unwrap().len() < 8, "not finished yet when the caller left");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(sys.calls.lock().unwrap().len(), 8, "every change was still made");
    let st = Store::new(dir.path()).load().unwrap();
    assert_eq!(st.generation, spec.generation);
    let ev = events.try_recv().expect("the outcome is in the event feed");
    assert_eq!(ev.kind, "apply");
    assert!(ev.message.contains("8/8 action(s) applied, converged true"), "{}", ev.message);
    a.plan(&spec, "lease-b", TTL).await.expect("and its lease was released");
}

#[tokio::test]
async fn a_malformed_lease_id_is_refused_and_poisons_nothing() {
    let (a, _sys, _d) = agent();
    let spec = spec_of("rs1");
    for bad in ["é-non-ascii-lease-id", "a b", &"x".repeat(65)] {
        let e = a.plan(&spec, bad, TTL).await.unwrap_err();
        assert!(matches!(e, AgentError::Invalid(_)), "{bad}: {e}");
        let e = a.apply(&spec, bad).await.unwrap_err();
        assert!(matches!(e, AgentError::Invalid(_)), "{bad}: {e}");
    }
    // A valid reservation and the conflict message that quotes it: no panic, no poisoning.
    a.plan(&spec, "0123456789abcdef", TTL).await.unwrap();
    assert!(is_conflict(&a.plan(&spec, "other", TTL).await.unwrap_err()));
    a.apply(&spec, "0123456789abcdef").await.expect("the lease mutex still works");
}
