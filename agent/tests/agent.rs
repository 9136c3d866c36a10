//! The agent's request rules on the recording fake (issue 10, items 2, 8 and 10): leases,
//! wire input, and an apply that outlives its caller. The fake stands in for the kernel
//! only; what is asserted is the agent's own bookkeeping (lease, state, events).
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::{Agent, AgentError};
use lvs_agent::reconcile::Store;
use lvs_proto::NodeSpec;

/// What the controller plans for the lab's nodes (`deploy/examples/lab.toml`), kept fresh by
/// `tests/tests/reconcile.rs`.
const LAB_SPECS: &str = include_str!("fixtures/lab-specs.json");

fn spec_of(node: &str) -> NodeSpec {
    let specs: Vec<NodeSpec> = serde_json::from_str(LAB_SPECS).unwrap();
    specs.into_iter().find(|s| s.node == node).unwrap()
}

fn agent() -> (Arc<Agent<FakeSystem>>, Arc<FakeSystem>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth0"], false));
    let a = Agent::new("rs1", Arc::clone(&sys), Store::new(dir.path()));
    (a, sys, dir)
}

const TTL: Duration = Duration::from_secs(60);

fn is_conflict(e: &AgentError) -> bool {
    matches!(e, AgentError::Leased(m) if m.starts_with("conflict: another controller"))
}

#[tokio::test]
async fn an_apply_that_fails_observing_releases_its_lease() {
    let (a, sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL, false).await.unwrap();
    // The reservation holds against another controller...
    assert!(is_conflict(&a.plan(&spec, "lease-b", TTL, false).await.unwrap_err()));
    // ...until A's apply fails (here: reading the node fails, as EBUSY did).
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    let e = a.apply(&spec, "lease-a", false).await.unwrap_err();
    assert!(e.to_string().contains("list addresses: injected failure"), "{e}");
    *sys.fail_on.lock().unwrap() = None;
    a.plan(&spec, "lease-b", TTL, false).await.expect("the failed apply must not keep its lease");
}

#[tokio::test]
async fn an_apply_refused_by_preflight_releases_its_lease() {
    let (a, sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL, false).await.unwrap();
    sys.links.lock().unwrap().retain(|l| l != "eth0"); // the NIC vanished between plan and apply
    let e = a.apply(&spec, "lease-a", false).await.unwrap_err();
    assert!(e.to_string().contains("preflight failed"), "{e}");
    assert!(sys.calls.lock().unwrap().is_empty(), "preflight changes nothing");
    sys.links.lock().unwrap().push("eth0".into());
    a.plan(&spec, "lease-b", TTL, false).await.expect("the refused apply must not keep its lease");
}

#[tokio::test(start_paused = true)]
async fn an_apply_runs_to_completion_when_its_caller_goes_away() {
    let (a, sys, dir) = agent();
    let spec = spec_of("rs1");
    let mut events = a.events().subscribe();
    *sys.delay.lock().unwrap() = Duration::from_secs(1); // 8 changes: 8 s
    a.plan(&spec, "lease-a", TTL, false).await.unwrap();
    // The controller's deadline passes (or it is killed) after 2.5 s: its future is dropped.
    let cut = tokio::time::timeout(Duration::from_millis(2500), a.apply(&spec, "lease-a", false)).await;
    assert!(cut.is_err(), "the apply should still have been running");
    assert!(sys.calls.lock().unwrap().len() < 8, "not finished yet when the caller left");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(sys.calls.lock().unwrap().len(), 8, "every change was still made");
    let st = Store::new(dir.path()).load().unwrap();
    assert_eq!(st.generation, spec.generation);
    let ev = events.try_recv().expect("the outcome is in the event feed");
    assert_eq!(ev.kind, lvs_proto::reply::EventKind::Apply);
    assert!(ev.message.contains("8/8 action(s) applied, converged true"), "{}", ev.message);
    // Structured too: the generation and every applied change, for programs.
    assert_eq!(ev.generation, spec.generation);
    assert_eq!(ev.changes.len(), 8, "{:?}", ev.changes);
    a.plan(&spec, "lease-b", TTL, false).await.expect("and its lease was released");
}

#[tokio::test]
async fn a_malformed_lease_id_is_refused_and_poisons_nothing() {
    let (a, _sys, _d) = agent();
    let spec = spec_of("rs1");
    for bad in ["é-non-ascii-lease-id", "a b", &"x".repeat(65)] {
        let e = a.plan(&spec, bad, TTL, false).await.unwrap_err();
        assert!(matches!(e, AgentError::Invalid(_)), "{bad}: {e}");
        let e = a.apply(&spec, bad, false).await.unwrap_err();
        assert!(matches!(e, AgentError::Invalid(_)), "{bad}: {e}");
    }
    // A valid reservation and the conflict message that quotes it: no panic, no poisoning.
    a.plan(&spec, "0123456789abcdef", TTL, false).await.unwrap();
    assert!(is_conflict(&a.plan(&spec, "other", TTL, false).await.unwrap_err()));
    a.apply(&spec, "0123456789abcdef", false).await.expect("the lease mutex still works");
}

// --- item 3: live IPVS changes reach the kernel on their own, and only what it shows is recorded ---

/// The lab's director, converged on the fake. Its health checks are taken out of the spec:
/// the real servers they would probe do not exist here, and a quarantine they make (which
/// removes a destination) would race with what each test does to the weights.
async fn converged_director() -> (Arc<Agent<FakeSystem>>, Arc<FakeSystem>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let a = Agent::new("director", Arc::clone(&sys), Store::new(dir.path()));
    let mut spec = spec_of("director");
    for v in &mut spec.virtual_services {
        v.health_check = None;
        v.destinations.iter_mut().for_each(|d| d.check = lvs_proto::spec::DestinationCheck::Off);
    }
    assert!(a.apply(&spec, "", false).await.unwrap().converged);
    (a, sys, dir)
}

fn web() -> lvs_proto::spec::ServiceKey {
    spec_of("director").virtual_services[0].key
}

fn kernel_weight(sys: &FakeSystem, dest: &str) -> Option<u32> {
    let addr: std::net::SocketAddr = dest.parse().unwrap();
    sys.ipvs
        .lock()
        .unwrap()
        .as_ref()?
        .iter()
        .flat_map(|s| &s.destinations)
        .find(|d| d.dest.addr == addr)
        .map(|d| d.dest.weight)
}

#[tokio::test]
async fn a_drain_reaches_ipvs_while_an_unrelated_part_of_the_node_cannot_be_applied() {
    let (a, sys, _d) = converged_director().await;
    // Someone removed the VIP alias and the kernel now refuses to add it back.
    sys.addresses.lock().unwrap().retain(|x| x.address.to_string() != "198.18.0.100/32");
    *sys.fail_on.lock().unwrap() = Some("add address eth1 198.18.0.100".into());
    let v =
        a.set_weight(web(), "198.18.0.11:80".parse().unwrap(), Some(0)).await.expect("the drain is applied");
    assert_eq!(v.weight, 0);
    assert_eq!(kernel_weight(&sys, "198.18.0.11:80"), Some(0), "the kernel shows the drain");
    let last = sys.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last, "ipvs edit destination 198.18.0.11:80 of TCP 198.18.0.100:80", "only IPVS was touched");
}

#[tokio::test]
async fn a_weight_change_the_kernel_refuses_is_reported_and_not_recorded() {
    let (a, sys, dir) = converged_director().await;
    *sys.fail_on.lock().unwrap() = Some("ipvs edit destination".into());
    let e = a.set_weight(web(), "198.18.0.11:80".parse().unwrap(), Some(0)).await.unwrap_err();
    assert!(e.to_string().contains("not in force"), "{e}");
    assert_eq!(kernel_weight(&sys, "198.18.0.11:80"), Some(1));
    let st = Store::new(dir.path()).load().unwrap();
    assert!(
        st.runtime.weights.is_empty(),
        "nothing recorded that the kernel does not show: {:?}",
        st.runtime
    );
}

#[tokio::test]
async fn a_quarantine_reaches_ipvs_on_its_own_and_a_refused_one_is_not_recorded() {
    let (a, sys, dir) = converged_director().await;
    let rec = lvs_agent::reconcile::Reconciler::new("director", Arc::clone(&sys), Store::new(dir.path()));
    drop(a);
    let key = lvs_agent::reconcile::override_key(&web(), "198.18.0.12:80".parse().unwrap());
    // An unrelated failure (the VIP cannot be re-added) does not hold the quarantine back.
    sys.addresses.lock().unwrap().retain(|x| x.address.to_string() != "198.18.0.100/32");
    *sys.fail_on.lock().unwrap() = Some("add address".into());
    let k = key;
    rec.update_runtime(move |_, rt| Ok(rt.quarantined.insert(k))).await.expect("quarantine applied");
    assert_eq!(kernel_weight(&sys, "198.18.0.12:80"), Some(0));
    // Lifting it while the kernel refuses IPVS changes: reported, and still quarantined.
    *sys.fail_on.lock().unwrap() = Some("ipvs".into());
    let k = key;
    let e = rec.update_runtime(move |_, rt| Ok(rt.quarantined.remove(&k))).await.unwrap_err();
    assert!(matches!(e, lvs_agent::reconcile::ReconcileError::NotInForce(_)), "{e}");
    assert!(rec.state().unwrap().runtime.quarantined.contains(&key));
    assert_eq!(kernel_weight(&sys, "198.18.0.12:80"), Some(0));
}

#[tokio::test]
async fn a_plan_without_a_lease_is_a_read_and_never_conflicts() {
    // Found by the VM's concurrent-use test: `lvsctl plan` beside a running apply.
    let (a, _sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL, false).await.unwrap();
    a.plan(&spec, "", TTL, false).await.expect("a read is not refused by another's reservation");
    assert!(
        is_conflict(&a.plan(&spec, "lease-b", TTL, false).await.unwrap_err()),
        "the reservation still holds"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconciler_stuck_in_a_change_is_reported_unresponsive_to_the_watchdog() {
    // Item 5: the watchdog is fed only while the reconciler answers. Each change here takes
    // 10 s (a kernel call that hangs up to its deadline): while the apply holds the lock,
    // the watchdog's question gets "no".
    let (a, sys, _d) = agent();
    assert!(a.responsive(Duration::from_secs(1)).await, "idle: responsive");
    *sys.delay.lock().unwrap() = Duration::from_secs(10);
    let spec = spec_of("rs1");
    let busy = {
        let a = Arc::clone(&a);
        tokio::spawn(async move { a.apply(&spec, "", false).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!a.responsive(Duration::from_secs(5)).await, "stuck for longer than asked: unresponsive");
    busy.await.unwrap().unwrap();
    assert!(a.responsive(Duration::from_secs(1)).await, "free again");
}

#[tokio::test]
async fn vip_readiness_is_decided_on_the_pending_changes_themselves() {
    let (a, sys, _d) = agent();
    a.apply(&spec_of("rs1"), "", false).await.unwrap();
    let ready = |v: &lvs_proto::reply::NodeStatus| {
        v.checks.iter().find(|c| c.check.starts_with("kernel accepts VIP traffic")).cloned().unwrap()
    };
    assert!(ready(&a.status(None).await.unwrap()).ok);
    // The default route going away is drift, but not about accepting VIP traffic.
    sys.routes.lock().unwrap().retain(|r| r.gateway.is_none());
    assert!(ready(&a.status(None).await.unwrap()).ok);
    // The hidden VIP going away is.
    sys.addresses.lock().unwrap().retain(|x| x.interface != "lo");
    let c = ready(&a.status(None).await.unwrap());
    assert!(!c.ok && c.detail.contains("add address 198.18.0.100/32 on lo label lo:0"), "{c:?}");
    // A node that cannot be read is not called ready.
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    let c = ready(&a.status(None).await.unwrap());
    assert!(!c.ok && c.detail.starts_with("cannot tell"), "{c:?}");
}

#[tokio::test]
async fn a_decommission_for_another_node_or_before_any_spec_changes_nothing() {
    let (a, sys, _d) = agent();
    let e = a.decommission("rs1").await.unwrap_err();
    assert!(e.to_string().contains("no accepted spec"), "{e}");
    a.apply(&spec_of("rs1"), "", false).await.unwrap();
    let made = sys.calls.lock().unwrap().len();
    let e = a.decommission("rs2").await.unwrap_err();
    assert!(matches!(&e, AgentError::Invalid(m) if m.contains("not rs2")), "{e}");
    assert_eq!(sys.calls.lock().unwrap().len(), made, "a refused decommission changes nothing");
    // The right name undoes all of it, once; a second one has nothing to undo.
    let r = a.decommission("rs1").await.unwrap();
    assert!(r.converged && r.applied() == r.actions.len(), "{r:?}");
    assert!(a.decommission("rs1").await.is_err(), "no spec any more");
}

/// `Release` frees the caller's reservation without diffing the node: it works while the
/// node cannot even be read (a release by a zero-lifetime plan failed there and left the
/// node reserved), leaves another controller's reservation alone, and says which it did.
#[tokio::test]
async fn release_frees_only_the_callers_reservation_even_when_the_node_cannot_be_read() {
    let (a, sys, _d) = agent();
    let spec = spec_of("rs1");
    a.plan(&spec, "lease-a", TTL, false).await.unwrap();
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    assert!(a.plan(&spec, "lease-a", Duration::ZERO, false).await.is_err(), "a plan cannot release here");
    assert!(!a.release("lease-b").unwrap(), "another controller's release frees nothing");
    assert!(a.release("lease-a").unwrap(), "A's release frees its reservation");
    assert!(!a.release("lease-a").unwrap(), "twice: nothing held any more");
    *sys.fail_on.lock().unwrap() = None;
    a.plan(&spec, "lease-b", TTL, false).await.expect("free after A's release");
    assert!(!a.release("lease-a").unwrap(), "B's reservation is not A's to free");
    assert!(is_conflict(&a.plan(&spec, "lease-c", TTL, false).await.unwrap_err()), "B still holds it");
    assert!(matches!(a.release("a b").unwrap_err(), AgentError::Invalid(_)));
}

/// One stop ends every background task the agent started (clock loop, healer, start-up
/// retry) and starts none after.
#[tokio::test]
async fn a_stop_ends_every_background_task() {
    let (a, sys, _d) = agent();
    a.apply(&spec_of("rs1"), "", false).await.unwrap();
    *sys.fail_on.lock().unwrap() = Some("list addresses".into());
    a.start().await.unwrap_err(); // the stored spec cannot be re-applied: the retry runs too
    a.spawn_healer(Duration::from_secs(1));
    assert_eq!(a.tasks().live(), 5, "clock loop, BGP announcer, ARP watch, start-up retry, healer");
    assert!(a.stop(Duration::from_secs(5)).await, "no apply in progress");
    assert_eq!(a.tasks().live(), 0);
    a.spawn_healer(Duration::from_secs(1));
    assert_eq!(a.tasks().live(), 0, "nothing starts once stopped");
}

/// What the registry does not hold (a director's health probes, the task that writes their
/// verdicts, the notify hooks' runner) ends with a stop too: the runtime counts no task of
/// the agent's once it is stopped.
#[tokio::test]
async fn a_stopped_director_leaves_no_task_of_its_own_alive() {
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let a = Agent::new("director", Arc::clone(&sys), Store::new(dir.path()));
    let spec = spec_of("director");
    assert!(spec.virtual_services.iter().any(|v| v.health_check.is_some()), "the lab checks its servers");
    a.apply(&spec, "", false).await.unwrap();
    a.start().await.unwrap();
    a.spawn_healer(Duration::from_secs(1));
    let running = alive();
    assert!(running >= before + 4, "probes, their writer and the loops run: {before} → {running}");
    assert!(a.stop(Duration::from_secs(5)).await);
    // An aborted task is counted until the runtime has dropped it: give it a few turns.
    for _ in 0..100 {
        if alive() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alive(), before, "tasks left running after the stop (were {running})");
}
