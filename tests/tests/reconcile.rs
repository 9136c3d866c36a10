//! The reconciler's logic on the recording fake, fed with real planned specs of the lab.
//! (The real kernel is exercised by the netns and VM tests.)
use std::sync::Arc;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::reconcile::Store;
use lvs_agent::reconcile::{ReconcileError, Reconciler};
use lvs_proto::NodeSpec;
use lvs_proto::reply::Outcome;

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

fn spec_of(text: &str, node: &str) -> NodeSpec {
    let c = lvs_controller::load::load_str("lab.toml", text).unwrap().cluster;
    lvs_controller::planner::plan(&c).into_iter().find(|s| s.node == node).unwrap()
}

fn reconciler(links: &[&str], ipvs: bool, node: &str) -> (Reconciler<FakeSystem>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = Reconciler::new(node, Arc::new(FakeSystem::new(links, ipvs)), Store::new(dir.path()));
    (r, dir)
}

fn calls(r: &Reconciler<FakeSystem>) -> Vec<String> {
    r.system().calls.lock().unwrap().clone()
}

#[tokio::test]
async fn real_server_in_the_articles_order_then_idempotent() {
    let (r, _d) = reconciler(&["eth0"], false, "rs1");
    let spec = spec_of(LAB, "rs1");
    let rep = r.apply(&spec, false).await.unwrap();
    assert!(rep.converged, "{rep:#?}");
    assert_eq!(
        calls(&r),
        [
            "add address eth0 198.18.0.11/24",
            "add route 0.0.0.0/0 via 198.18.0.1",
            "sysctl net.ipv4.conf.all.arp_ignore=1",
            "sysctl net.ipv4.conf.eth0.arp_ignore=1",
            "sysctl net.ipv4.conf.all.arp_announce=2",
            "sysctl net.ipv4.conf.eth0.arp_announce=2",
            "add address lo 198.18.0.100/32",
            "add route 198.18.0.100/32 dev lo",
        ]
    );
    let again = r.apply(&spec, false).await.unwrap();
    assert!(again.actions.is_empty(), "second apply does nothing: {again:#?}");
    assert_eq!(calls(&r).len(), 8);
}

#[tokio::test]
async fn generations_stale_and_conflicting_are_refused() {
    let (r, _d) = reconciler(&["eth0"], false, "rs1");
    let v2 = spec_of(&LAB.replace("generation = 1", "generation = 2"), "rs1");
    r.apply(&v2, false).await.unwrap();
    let (calls_before, state_before) = (calls(&r), r.state().unwrap());
    let v1 = spec_of(LAB, "rs1");
    let e = r.apply(&v1, false).await.unwrap_err();
    assert!(matches!(e, ReconcileError::Stale { stored: 2, got: 1 }), "{e}");
    assert_eq!(calls(&r), calls_before, "a stale spec changes nothing in the kernel");
    assert_eq!(r.state().unwrap(), state_before, "nor in the stored state");
    let other = spec_of(
        &LAB.replace("generation = 1", "generation = 2")
            .replace("max_offset = \"1s\"", "max_offset = \"2s\""),
        "rs1",
    );
    let e = r.apply(&other, false).await.unwrap_err();
    assert!(matches!(e, ReconcileError::Conflict { generation: 2, .. }), "{e}");
    assert!(e.to_string().contains("bump the generation"));
    assert_eq!(calls(&r), calls_before, "a conflicting spec changes nothing in the kernel");
    assert_eq!(r.state().unwrap(), state_before, "nor in the stored state");
    assert!(r.apply(&v2, false).await.unwrap().actions.is_empty(), "same generation, same content: fine");
}

#[tokio::test]
async fn spec_for_another_node_is_refused() {
    let (r, _d) = reconciler(&["eth0"], false, "rs2");
    let e = r.apply(&spec_of(LAB, "rs1"), false).await.unwrap_err();
    assert_eq!(e.to_string(), "spec is for node rs1, this agent is rs2");
    assert!(calls(&r).is_empty());
}

#[tokio::test]
async fn preflight_failure_changes_nothing() {
    let (r, dir) = reconciler(&["eth9"], false, "rs1");
    let e = r.apply(&spec_of(LAB, "rs1"), false).await.unwrap_err();
    assert!(e.to_string().contains("interface eth0 (for address 198.18.0.11/24) does not exist"), "{e}");
    assert!(e.to_string().contains("sysctl net.ipv4.conf.eth0.arp_ignore does not exist"), "{e}");
    assert!(calls(&r).is_empty());
    assert!(!dir.path().join("state.json").exists(), "a refused spec is not accepted");
}

#[tokio::test]
async fn failure_reports_what_was_and_was_not_applied_and_restart_converges() {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth0"], false));
    *sys.fail_on.lock().unwrap() = Some("add address lo".into());
    let r = Reconciler::new("rs1", sys.clone(), Store::new(dir.path()));
    let rep = r.apply(&spec_of(LAB, "rs1"), false).await.unwrap();
    let outcomes: Vec<&Outcome> = rep.actions.iter().map(|a| &a.outcome).collect();
    assert_eq!(outcomes[..6], [&Outcome::Applied; 6]);
    assert!(matches!(outcomes[6], Outcome::Failed(m) if m.to_string().contains("injected")));
    assert_eq!(outcomes[7], &Outcome::NotAttempted);
    assert!(!rep.converged);
    assert_eq!(rep.drift_after.len(), 2, "{:?}", rep.drift_after);
    // A new agent process on the same state directory re-applies the accepted spec.
    *sys.fail_on.lock().unwrap() = None;
    let restarted = Reconciler::new("rs1", sys.clone(), Store::new(dir.path()));
    let rep = restarted.reapply_stored().await.unwrap().unwrap();
    assert!(rep.converged, "{rep:#?}");
    assert_eq!(rep.actions.len(), 2);
}

#[tokio::test]
async fn director_ipvs_and_one_weight_change_is_one_action() {
    let (r, _d) = reconciler(&["eth1"], true, "director");
    r.apply(&spec_of(LAB, "director"), false).await.unwrap();
    let c = calls(&r);
    assert!(c.contains(&"ipvs add service TCP 198.18.0.100:80".to_string()), "{c:?}");
    assert!(c.contains(&"add address eth1 198.18.0.100/32".to_string()), "{c:?}");
    let bumped = LAB
        .replace("generation = 1", "generation = 2")
        .replace("{ node = \"rs2\", weight = 1 }", "{ node = \"rs2\", weight = 3 }");
    let rep = r.apply(&spec_of(&bumped, "director"), false).await.unwrap();
    let actions: Vec<String> = rep.actions.iter().map(|a| a.change.to_string()).collect();
    assert_eq!(actions, ["ipvs: edit destination 198.18.0.12:80 of TCP 198.18.0.100:80"]);
}

#[tokio::test]
async fn foreign_things_are_reported_never_removed_and_owned_ones_are_cleaned_up() {
    let (r, _d) = reconciler(&["eth1"], true, "director");
    // Someone else's service, and an address the OS configured before the agent came.
    let foreign = lvs_ipvs::Service::new(
        lvs_ipvs::ServiceKey::Addr(lvs_ipvs::Protocol::Udp, "198.18.0.200:53".parse().unwrap()),
        "rr",
    );
    r.system().ipvs.lock().unwrap().as_mut().unwrap().push(lvs_agent::kernel::IpvsService {
        service: foreign,
        stats: Default::default(),
        destinations: vec![],
    });
    r.system().addresses.lock().unwrap().push(lvs_agent::kernel::Address {
        interface: "eth1".into(),
        address: "198.18.0.2/24".parse().unwrap(),
        label: None,
    });
    let rep = r.apply(&spec_of(LAB, "director"), false).await.unwrap();
    assert_eq!(rep.foreign, ["IPVS service UDP 198.18.0.200:53 (not created by this agent; left alone)"]);
    assert!(!calls(&r).iter().any(|c| c.contains("198.18.0.2/24")), "pre-existing DIP is not re-added");
    // The definition drops the service and the VIP: the agent removes what it created, only.
    let mut spec = spec_of(&LAB.replace("generation = 1", "generation = 2"), "director");
    spec.virtual_services.clear();
    spec.addresses.retain(|a| a.label.is_none());
    let rep = r.apply(&spec, false).await.unwrap();
    let actions: Vec<String> = rep.actions.iter().map(|a| a.change.to_string()).collect();
    assert_eq!(
        actions,
        ["ipvs: delete service TCP 198.18.0.100:80", "remove address 198.18.0.100/32 from eth1 label eth1:0"]
    );
    spec.addresses.clear();
    let spec3 = NodeSpec { generation: 3, ..spec };
    let rep = r.apply(&spec3, false).await.unwrap();
    assert!(rep.actions.is_empty(), "the DIP was not created by the agent: {rep:#?}");
    assert_eq!(r.system().ipvs.lock().unwrap().as_ref().unwrap().len(), 1, "foreign service still there");
}

#[tokio::test]
async fn ipvs_clear_withdraws_only_owned_services_survives_restart_and_apply_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(FakeSystem::new(&["eth1"], true));
    let foreign = lvs_ipvs::Service::new(
        lvs_ipvs::ServiceKey::Addr(lvs_ipvs::Protocol::Udp, "198.18.0.200:53".parse().unwrap()),
        "rr",
    );
    sys.ipvs.lock().unwrap().as_mut().unwrap().push(lvs_agent::kernel::IpvsService {
        service: foreign,
        stats: Default::default(),
        destinations: vec![],
    });
    let agent = lvs_agent::node::Agent::new("director", sys.clone(), Store::new(dir.path()));
    let spec = spec_of(LAB, "director");
    agent.apply(&spec, "", false).await.unwrap();
    let services = |s: &FakeSystem| {
        s.ipvs.lock().unwrap().as_ref().unwrap().iter().map(|x| x.service.key.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(services(&sys).len(), 2);
    let rep = agent.clear_ipvs().await.unwrap();
    assert!(rep.converged, "{rep:#?}");
    assert_eq!(services(&sys), ["UDP 198.18.0.200:53"], "only the agent's own service is withdrawn");
    let st = agent.status(None).await.unwrap();
    assert!(st.checks.iter().any(|c| !c.ok && c.detail.contains("lvsctl ipvs clear")), "{:?}", st.checks);
    // A restart re-applies the stored spec but keeps the clear.
    let again = lvs_agent::node::Agent::new("director", sys.clone(), Store::new(dir.path()));
    again.start().await.unwrap();
    assert_eq!(services(&sys).len(), 1);
    // The admin's next apply restores the service.
    again.apply(&spec, "", false).await.unwrap();
    assert_eq!(services(&sys).len(), 2);
}

#[tokio::test]
async fn the_sorry_server_takes_over_only_while_every_destination_is_quarantined() {
    let (r, _d) = reconciler(&["eth1"], true, "director");
    let mut spec = spec_of(LAB, "director");
    let mut sorry = spec.virtual_services[0].destinations[0].clone();
    sorry.node = "sorry".into();
    sorry.address = "198.18.0.50:80".parse().unwrap();
    spec.virtual_services[0].sorry = Some(sorry);
    r.apply(&spec, false).await.unwrap();
    let dests = |r: &Reconciler<FakeSystem>| {
        let t = r.system().ipvs.lock().unwrap();
        let mut v: Vec<(String, u32)> = t.as_ref().unwrap()[0]
            .destinations
            .iter()
            .map(|d| (d.dest.addr.to_string(), d.dest.weight))
            .collect();
        v.sort();
        v
    };
    let key = |a: &str| lvs_agent::reconcile::override_key(&spec.virtual_services[0].key, a.parse().unwrap());
    let quarantine = |addrs: &'static [&'static str], on: bool| {
        let keys: Vec<lvs_agent::reconcile::DestKey> = addrs.iter().map(|a| key(a)).collect();
        move |_: &NodeSpec, rt: &mut lvs_agent::reconcile::Runtime| {
            for k in keys {
                if on {
                    rt.quarantined.insert(k)
                } else {
                    rt.quarantined.remove(&k)
                };
            }
            Ok(())
        }
    };
    r.update_runtime(quarantine(&["198.18.0.11:80"], true)).await.unwrap();
    assert_eq!(
        dests(&r),
        [("198.18.0.11:80".into(), 0), ("198.18.0.12:80".into(), 1)],
        "one left: no sorry server"
    );
    r.update_runtime(quarantine(&["198.18.0.12:80"], true)).await.unwrap();
    assert_eq!(
        dests(&r),
        [("198.18.0.11:80".into(), 0), ("198.18.0.12:80".into(), 0), ("198.18.0.50:80".into(), 1)],
        "all down: the sorry server takes the traffic"
    );
    r.update_runtime(quarantine(&["198.18.0.12:80"], false)).await.unwrap();
    assert_eq!(
        dests(&r),
        [("198.18.0.11:80".into(), 0), ("198.18.0.12:80".into(), 1)],
        "back: sorry server removed"
    );
}

// --- item 9 of issue 10: what the agent does not own is never deleted to make room ---

#[tokio::test]
async fn a_foreign_address_with_another_prefix_is_a_conflict_never_deleted() {
    let (r, dir) = reconciler(&["eth0"], false, "rs1");
    let theirs = lvs_agent::kernel::Address {
        interface: "eth0".into(),
        address: "198.18.0.11/16".parse().unwrap(),
        label: None,
    };
    r.system().addresses.lock().unwrap().push(theirs.clone());
    let e = r.apply(&spec_of(LAB, "rs1"), false).await.unwrap_err();
    assert!(matches!(e, ReconcileError::Preflight(_)), "{e}");
    assert!(e.to_string().contains("address 198.18.0.11/16 on eth0 was not created by this agent"), "{e}");
    assert!(calls(&r).is_empty(), "nothing deleted, nothing added: {:?}", calls(&r));
    assert_eq!(*r.system().addresses.lock().unwrap(), [theirs]);
    assert!(!dir.path().join("state.json").exists(), "a refused spec is not accepted");
}

#[tokio::test]
async fn a_foreign_default_route_is_a_conflict_never_replaced() {
    let (r, _d) = reconciler(&["eth0"], false, "rs1");
    let theirs = lvs_agent::kernel::Route {
        destination: "0.0.0.0/0".parse().unwrap(),
        gateway: Some("198.18.0.254".parse().unwrap()),
        device: None,
    };
    r.system().routes.lock().unwrap().push(theirs.clone());
    let e = r.apply(&spec_of(LAB, "rs1"), false).await.unwrap_err();
    assert!(e.to_string().contains("route 0.0.0.0/0 via 198.18.0.254 was not created by this agent"), "{e}");
    assert!(calls(&r).is_empty(), "{:?}", calls(&r));
    assert_eq!(*r.system().routes.lock().unwrap(), [theirs]);
}

#[tokio::test]
async fn an_owned_address_and_route_are_still_swapped_when_the_spec_changes() {
    let (r, _d) = reconciler(&["eth0"], false, "rs1");
    r.apply(&spec_of(LAB, "rs1"), false).await.unwrap();
    // Generation 2 moves rs1 to a /25 and another gateway: both were the agent's, so both
    // are swapped in place rather than reported as conflicts.
    let lab2 = LAB.replace("generation = 1", "generation = 2").replacen(
        "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.1\"",
        "address = \"198.18.0.11/25\" }]\ngateway = \"198.18.0.3\"",
        1,
    );
    assert!(lab2.contains("198.18.0.11/25"), "test setup: the edit applied");
    let rep = r.apply(&spec_of(&lab2, "rs1"), false).await.unwrap();
    assert!(rep.converged, "{rep:#?}");
    let actions: Vec<String> = rep.actions.iter().map(|a| a.change.to_string()).collect();
    assert_eq!(
        actions,
        [
            "remove address 198.18.0.11/24 from eth0",
            "add address 198.18.0.11/25 on eth0",
            "replace route 0.0.0.0/0 via 198.18.0.3",
        ]
    );
    // Ownership follows: the old route and address are no longer claimed.
    let st = r.state().unwrap();
    let routes: Vec<String> = st.owned.routes.iter().map(lvs_agent::reconcile::route_text).collect();
    assert_eq!(routes, ["0.0.0.0/0 via 198.18.0.3", "198.18.0.100/32 dev lo"]);
    assert!(!st.owned.addresses.iter().any(|a| a.address.to_string() == "198.18.0.11/24"));
}

/// The agent's own tests and unit tests read planned specs from fixtures, so that they need
/// no controller and a planner change breaks this test alone, not theirs. `LVS_BLESS=1`
/// writes them anew (then read the diff: it is what the planner now sends the agents).
#[test]
fn the_agents_spec_fixtures_are_what_the_planner_makes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/tests/fixtures");
    let lab =
        lvs_controller::planner::plan(&lvs_controller::load::load_str("lab.toml", LAB).unwrap().cluster);
    let director = lab.iter().find(|s| s.node == "director").unwrap();
    let wanted = [
        ("director-spec.json", serde_json::to_string_pretty(director).unwrap()),
        ("lab-specs.json", serde_json::to_string_pretty(&lab).unwrap()),
    ];
    let bless = std::env::var_os("LVS_BLESS").is_some();
    for (name, text) in wanted {
        let path = format!("{dir}/{name}");
        if bless {
            std::fs::write(&path, format!("{text}\n")).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let (have, want): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(&on_disk).unwrap_or_default(), serde_json::from_str(&text).unwrap());
        assert_eq!(have, want, "{path} is not what the planner makes: re-make it with LVS_BLESS=1");
    }
}

#[tokio::test]
async fn another_tools_service_with_the_specs_key_is_adopted_only_when_asked() {
    let (r, _d) = reconciler(&["eth1"], true, "director");
    // keepalived's virtual server for the same VIP:port, with a real server of its own.
    let key = lvs_ipvs::ServiceKey::Addr(lvs_ipvs::Protocol::Tcp, "198.18.0.100:80".parse().unwrap());
    let theirs: std::net::SocketAddr = "198.18.0.99:80".parse().unwrap();
    r.system().ipvs.lock().unwrap().as_mut().unwrap().push(lvs_agent::kernel::IpvsService {
        service: lvs_ipvs::Service::new(key, "wlc"),
        stats: Default::default(),
        destinations: vec![lvs_ipvs::DestinationEntry {
            dest: lvs_ipvs::Destination {
                addr: theirs,
                forward: lvs_ipvs::Forward::Route,
                weight: 5,
                upper_threshold: 0,
                lower_threshold: 0,
            },
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: Default::default(),
        }],
    });
    let spec = spec_of(LAB, "director");
    // Not asked: refused whole, nothing touched.
    let e = r.plan(&spec, false).await.unwrap_err();
    assert!(
        e.to_string().contains("was not created by this agent") && e.to_string().contains("--adopt"),
        "{e}"
    );
    let e = r.apply(&spec, false).await.unwrap_err();
    assert!(matches!(e, ReconcileError::Preflight(_)), "{e}");
    assert!(calls(&r).is_empty(), "nothing changed: {:?}", calls(&r));
    // Asked: the plan shows the takeover, the apply makes it the definition's.
    let p = r.plan(&spec, true).await.unwrap();
    let words: Vec<String> = p.actions.iter().map(|a| a.change.to_string()).collect();
    assert!(words.iter().any(|w| w.contains("delete destination 198.18.0.99:80")), "{words:?}");
    let rep = r.apply(&spec, true).await.unwrap();
    assert!(rep.converged, "{rep:?}");
    let table = r.system().ipvs.lock().unwrap().clone().unwrap();
    let svc = table.iter().find(|s| s.service.key == key).unwrap();
    assert_eq!(svc.service.scheduler, "rr");
    assert!(!svc.destinations.iter().any(|d| d.dest.addr == theirs));
    // Now it is the agent's: later applies need no --adopt.
    assert!(r.apply(&spec, false).await.unwrap().actions.is_empty());
    assert!(r.state().unwrap().owned.services.iter().any(|k| k.to_string() == "TCP 198.18.0.100:80"));
}

#[tokio::test]
async fn ipvs_timeouts_from_the_definition_are_set_once_and_leave_the_unnamed_ones() {
    let (r, _d) = reconciler(&["eth1"], true, "director");
    let text = format!("{LAB}\n[ipvs]\ntimeouts = {{ tcp = \"15m\", udp = \"1m\" }}\n");
    let spec = spec_of(&text, "director");
    assert_eq!(
        spec.ipvs_timeouts,
        Some(lvs_proto::spec::IpvsTimeouts { tcp_s: Some(900), tcp_fin_s: None, udp_s: Some(60) })
    );
    let rep = r.apply(&spec, false).await.unwrap();
    assert!(rep.converged, "{rep:?}");
    assert!(rep.actions.iter().any(|a| a.change.to_string() == "ipvs: set timeouts"), "{rep:?}");
    let t = r.system().ipvs_timeouts.lock().unwrap().unwrap();
    // tcp was already 900 (the kernel's default) but udp was 300: one change; tcp_fin kept.
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (900, 120, 60));
    assert!(r.apply(&spec, false).await.unwrap().actions.is_empty(), "idempotent");
    // Drift (someone ran ipvsadm --set) is put back.
    *r.system().ipvs_timeouts.lock().unwrap() = Some(lvs_ipvs::Timeouts { tcp: 900, tcp_fin: 120, udp: 10 });
    let again = r.apply(&spec, false).await.unwrap();
    assert_eq!(again.actions.len(), 1);
    assert_eq!(r.system().ipvs_timeouts.lock().unwrap().unwrap().udp, 60);
}

#[tokio::test]
async fn decommissioning_another_topologys_director_removes_only_what_it_owns() {
    let wide = include_str!("../../tests/topologies/wide.toml");
    let (r, _d) = reconciler(&["eth1"], true, "lb1");
    // Another tool's service, which must survive the decommission.
    let theirs = lvs_ipvs::ServiceKey::Addr(lvs_ipvs::Protocol::Udp, "198.18.10.200:53".parse().unwrap());
    r.system().ipvs.lock().unwrap().as_mut().unwrap().push(lvs_agent::kernel::IpvsService {
        service: lvs_ipvs::Service::new(theirs, "rr"),
        stats: Default::default(),
        destinations: vec![],
    });
    let spec = spec_of(wide, "lb1");
    assert!(spec.virtual_services.len() > 1, "the wide topology has several services");
    assert!(r.apply(&spec, false).await.unwrap().converged);
    let r2 = r.decommission().await.unwrap();
    assert!(r2.converged, "{r2:?}");
    let table = r.system().ipvs.lock().unwrap().clone().unwrap();
    assert_eq!(table.iter().map(|s| s.service.key).collect::<Vec<_>>(), [theirs], "only theirs is left");
    let addrs = r.system().addresses.lock().unwrap().clone();
    assert!(
        !addrs.iter().any(|a| a.label.as_deref().is_some_and(|l| l.contains(':'))),
        "VIP aliases gone: {addrs:?}"
    );
    // (Sysctls put back as found: a director plans none; the netns suite checks a real server's.)
    let st = r.state().unwrap();
    assert!(st.spec.is_none() && st.owned.services.is_empty() && st.owned.addresses.is_empty(), "{st:?}");
    assert!(r.drift().await.unwrap().is_none(), "nothing left to heal");
}

#[tokio::test]
async fn a_decommission_cut_short_reports_what_is_left_and_a_second_one_finishes() {
    let (r, _d) = reconciler(&["eth0"], false, "rs1");
    let spec = spec_of(LAB, "rs1");
    assert!(r.apply(&spec, false).await.unwrap().converged);
    // Removing the hidden VIP fails once.
    *r.system().fail_on.lock().unwrap() = Some("del address lo".into());
    let rep = r.decommission().await.unwrap();
    assert!(!rep.converged);
    let failed: Vec<String> = rep
        .actions
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed(_)))
        .map(|a| a.change.to_string())
        .collect();
    assert_eq!(failed.len(), 1, "{rep:?}");
    assert!(failed[0].contains("198.18.0.100/32 from lo"), "{failed:?}");
    let st = r.state().unwrap();
    assert!(st.spec.is_none(), "nothing is healed back");
    assert_eq!(st.owned.addresses.len(), 1, "what was not undone stays owned: {:?}", st.owned);
    assert!(r.drift().await.unwrap().is_none());
    // The fault clears; the second decommission undoes the rest.
    *r.system().fail_on.lock().unwrap() = None;
    let again = r.decommission().await.unwrap();
    assert!(again.converged, "{again:?}");
    assert!(
        !r.system()
            .addresses
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.interface == "lo" && a.address.addr().to_string() == "198.18.0.100")
    );
    assert!(matches!(r.decommission().await.unwrap_err(), ReconcileError::NoSpec), "nothing left");
}

#[tokio::test]
async fn an_ha_director_runs_both_sync_daemons_leaves_the_vip_alone_and_stops_them_when_it_leaves() {
    let ha = include_str!("../../deploy/examples/lab-ha.toml");
    let (r, _d) = reconciler(&["eth1"], true, "director2");
    let mut spec = spec_of(ha, "director2");
    let rep = r.apply(&spec, false).await.unwrap();
    assert!(rep.converged, "{rep:?}");
    let daemons = r.system().daemons.lock().unwrap().clone();
    let mut states: Vec<_> = daemons
        .iter()
        .map(|d| (lvs_agent::reconcile::daemon_word(d.state), d.mcast_ifn.as_str(), d.sync_id))
        .collect();
    states.sort();
    assert_eq!(states, [("backup", "eth1", 51), ("master", "eth1", 51)]);
    // The master sends one connection per message (the last one still waits for the
    // kernel's 2 s timer; a hand-over covers it: agent/src/ha/straddle.rs); the backup
    // keeps the kernel's receive size.
    let maxlen = |s| daemons.iter().find(|d| d.state == s).and_then(|d| d.sync_maxlen);
    assert_eq!(maxlen(lvs_ipvs::DaemonState::Master), Some(lvs_agent::reconcile::MASTER_SYNC_MAXLEN));
    assert_eq!(maxlen(lvs_ipvs::DaemonState::Backup), None);
    // The shared VIP is the VRRP engine's: the agent neither added it nor calls it drift.
    assert!(
        !calls(&r).iter().any(|c| c.contains("address") && c.contains("198.18.0.100")),
        "{:?}",
        calls(&r)
    );
    // Connections are synced on state changes (from the handshake's ACK), not at the
    // 3rd packet; the kernel reads the pair back tab-separated, which is no drift.
    let sysctl = |k: &str| r.system().sysctls.lock().unwrap().get(k).cloned();
    assert_eq!(sysctl("net.ipv4.vs.sync_threshold").as_deref(), Some("3 0"));
    assert_eq!(sysctl("net.ipv4.vs.sync_refresh_period").as_deref(), Some("10"));
    r.system().sysctls.lock().unwrap().insert("net.ipv4.vs.sync_threshold".into(), "3\t0".into());
    let again = r.apply(&spec, false).await.unwrap();
    assert!(again.actions.is_empty(), "idempotent: {:?}", again.actions);
    // A master daemon of ours started with the kernel's message size (an older agent's)
    // is restarted with one connection per message.
    for d in r.system().daemons.lock().unwrap().iter_mut() {
        if d.state == lvs_ipvs::DaemonState::Master {
            d.sync_maxlen = Some(1472);
        }
    }
    let upgraded = r.apply(&spec, false).await.unwrap();
    let changes: Vec<String> = upgraded.actions.iter().map(|a| a.change.to_string()).collect();
    assert_eq!(changes.len(), 2, "stop and start the master daemon: {changes:?}");
    assert_eq!(maxlen_now(&r), Some(lvs_agent::reconcile::MASTER_SYNC_MAXLEN));
    // Another sync id: the owned daemons are restarted with it.
    spec.generation += 1;
    spec.vrrp.as_mut().unwrap().sync_daemon.as_mut().unwrap().sync_id = 52;
    r.apply(&spec, false).await.unwrap();
    assert!(r.system().daemons.lock().unwrap().iter().all(|d| d.sync_id == 52));
    // Leaving the cluster stops what it started.
    r.decommission().await.unwrap();
    assert!(r.system().daemons.lock().unwrap().is_empty());
}

/// The size of the master sync daemon's messages as the (fake) kernel holds it.
fn maxlen_now(r: &Reconciler<FakeSystem>) -> Option<u16> {
    let daemons = r.system().daemons.lock().unwrap();
    daemons.iter().find(|d| d.state == lvs_ipvs::DaemonState::Master).and_then(|d| d.sync_maxlen)
}

#[tokio::test]
async fn a_sync_daemon_another_tool_started_is_a_conflict_not_a_casualty() {
    let ha = include_str!("../../deploy/examples/lab-ha.toml");
    let (r, _d) = reconciler(&["eth1"], true, "director");
    r.system().daemons.lock().unwrap().push(lvs_ipvs::Daemon::new(lvs_ipvs::DaemonState::Master, "eth9", 7));
    let e = r.apply(&spec_of(ha, "director"), false).await.unwrap_err();
    assert!(matches!(&e, ReconcileError::Preflight(_)), "{e}");
    assert!(e.to_string().contains("keepalived's lvs_sync_daemon"), "{e}");
    assert_eq!(r.system().daemons.lock().unwrap().len(), 1, "nothing changed");
}
