//! The impact read from a hand-built report and table: which changes count, what each says.
use super::*;
use lvs_proto::reply::{ActionResult, Forward, Outcome, Stats, TableDestination, TableService};
use lvs_proto::spec::Protocol;

fn key(port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: Protocol::Tcp, address: format!("198.18.0.100:{port}").parse().unwrap() }
}

fn dest(addr: &str, weight: u32, active: u32, inactive: u32, persist: u32) -> TableDestination {
    TableDestination {
        address: addr.parse().unwrap(),
        forward: Forward::Route,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: active,
        inactive_conns: inactive,
        persist_conns: persist,
        stats: Stats::default(),
    }
}

fn table() -> IpvsTable {
    let svc = |port, destinations| TableService {
        key: key(port),
        scheduler: "wrr".into(),
        flags: 0,
        timeout_s: 0,
        netmask: 0,
        stats: Stats::default(),
        destinations,
        managed: true,
    };
    IpvsTable {
        services: vec![
            svc(80, vec![dest("198.18.0.11:80", 1, 1204, 17, 310), dest("198.18.0.12:80", 1, 5, 2, 0)]),
            svc(443, vec![dest("198.18.0.11:443", 3, 40, 1, 0), dest("198.18.0.12:443", 3, 0, 0, 0)]),
        ],
        ..Default::default()
    }
}

fn report(changes: Vec<IpvsChange>) -> Report {
    Report {
        node: "director".into(),
        generation: 2,
        actions: changes
            .into_iter()
            .map(|c| ActionResult { change: Change::Ipvs(c), outcome: Outcome::NotAttempted })
            .collect(),
        foreign: vec![],
        drift_after: vec![],
        converged: false,
        revocation_number: 0,
    }
}

#[test]
fn each_change_that_moves_traffic_names_what_the_destination_holds() {
    let rs1: SocketAddr = "198.18.0.11:80".parse().unwrap();
    let rs2: SocketAddr = "198.18.0.12:80".parse().unwrap();
    let got = impacts(
        &report(vec![
            IpvsChange::EditDestination { service: key(80), destination: rs1, weight: 0 },
            IpvsChange::EditDestination { service: key(80), destination: rs2, weight: 4 },
            IpvsChange::DelService { service: key(443) },
        ]),
        &table(),
    );
    let line = |i: &Impact| (i.destination.to_string(), i.effect, i.active, i.inactive, i.persistent);
    assert_eq!(
        got.iter().map(line).collect::<Vec<_>>(),
        vec![
            ("198.18.0.11:80".into(), Effect::Drained, 1204, 17, 310),
            ("198.18.0.12:80".into(), Effect::Reweighted { from: 1, to: 4 }, 5, 2, 0),
            ("198.18.0.11:443".into(), Effect::Removed, 40, 1, 0),
            ("198.18.0.12:443".into(), Effect::Removed, 0, 0, 0),
        ]
    );
    assert_eq!(
        got[0].to_string(),
        "198.18.0.11:80 of TCP 198.18.0.100:80 drained: holds 1204 active and 17 inactive connections, \
         310 persistence templates"
    );
}

#[test]
fn changes_that_move_no_traffic_have_no_impact() {
    let rs1: SocketAddr = "198.18.0.11:80".parse().unwrap();
    let new: SocketAddr = "198.18.0.13:80".parse().unwrap();
    let got = impacts(
        &report(vec![
            // Same weight: a threshold or forwarding edit.
            IpvsChange::EditDestination { service: key(80), destination: rs1, weight: 1 },
            // Not in the kernel yet: nothing to lose.
            IpvsChange::DelDestination { service: key(80), destination: new },
            IpvsChange::AddDestination { service: key(80), destination: new, weight: 1 },
            IpvsChange::AddService { service: key(8080), scheduler: "rr".into() },
            IpvsChange::SetTimeouts,
        ]),
        &table(),
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_removed_destination_is_removed_whatever_its_weight() {
    let rs2: SocketAddr = "198.18.0.12:80".parse().unwrap();
    let got =
        impacts(&report(vec![IpvsChange::DelDestination { service: key(80), destination: rs2 }]), &table());
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].effect, got[0].active), (Effect::Removed, 5));
}

/// A rollout step's templates: those of the drained server's placements only, summed over
/// its services (issue 30, item 2's rollout line).
#[test]
fn a_rollout_step_counts_the_templates_of_its_server_only() {
    use crate::ops::weights::{Placement, held_templates};
    let place = |port: u16, rs: &str| Placement {
        director: "director".into(),
        service: key(port),
        dest: format!("{rs}:{port}").parse().unwrap(),
        weight: 1,
    };
    let mut t = table();
    t.services[1].destinations[0].persist_conns = 4;
    let rs1 = [place(80, "198.18.0.11"), place(443, "198.18.0.11")];
    assert_eq!(held_templates(&t, &rs1.iter().collect::<Vec<_>>()), 314);
    let rs2 = [place(80, "198.18.0.12"), place(443, "198.18.0.12")];
    assert_eq!(held_templates(&t, &rs2.iter().collect::<Vec<_>>()), 0);
}
