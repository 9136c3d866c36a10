//! The diff alone, table-driven: a hand-built spec and observed node in, the actions,
//! conflicts and foreign items out, in the words reports use. No planner, no kernel: a
//! planner change cannot break these, and each row names the one rule it holds.
use std::collections::BTreeSet;

use lvs_proto::NodeSpec;
use lvs_proto::spec::{AddressPurpose, AddressSpec, Role, RoutePurpose, RouteSpec, SysctlSpec};

use super::diff;
use crate::kernel::observe::Observed;
use crate::kernel::system::{Address, IpvsService, Route};
use crate::kernel::translate;
use crate::reconcile::state::{DestKey, Owned, Runtime};

fn addr(iface: &str, net: &str, label: Option<&str>) -> Address {
    Address { interface: iface.into(), address: net.parse().unwrap(), label: label.map(Into::into) }
}

fn route(dest: &str, via: &str, dev: &str) -> Route {
    Route {
        destination: dest.parse().unwrap(),
        gateway: Some(via.parse().unwrap()),
        device: Some(dev.into()),
    }
}

/// A real server as the article wires it: its address, the default route, one ARP sysctl.
fn real_server() -> NodeSpec {
    NodeSpec {
        cluster: "t".into(),
        node: "rs1".into(),
        role: Role::RealServer,
        generation: 1,
        addresses: vec![AddressSpec {
            interface: "eth0".into(),
            address: "198.18.1.11/16".parse().unwrap(),
            label: None,
            purpose: AddressPurpose::Lan,
        }],
        routes: vec![RouteSpec {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("198.18.0.1".parse().unwrap()),
            device: Some("eth0".into()),
            purpose: RoutePurpose::DefaultGateway,
        }],
        sysctls: vec![SysctlSpec {
            key: "net.ipv4.conf.all.arp_ignore".into(),
            value: "1".into(),
            reason: "answer ARP only for addresses on the asking interface".into(),
        }],
        virtual_services: vec![],
        checks: vec![],
        ipvs_timeouts: None,
        vrrp: None,
        bgp: None,
        arp_watch: None,
        marks: vec![],
    }
}

/// The real server with everything already in place.
fn converged() -> Observed {
    let mut o = Observed {
        links: vec!["eth0".into()],
        addresses: vec![addr("eth0", "198.18.1.11/16", None)],
        routes: vec![route("0.0.0.0/0", "198.18.0.1", "eth0")],
        ..Observed::default()
    };
    o.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), Some("1".into()));
    o
}

/// The lab's director, with one web service and its real servers, from the planner's
/// fixture (`tests/tests/reconcile.rs` keeps it fresh).
fn director() -> NodeSpec {
    serde_json::from_str(include_str!("../../../tests/fixtures/director-spec.json")).unwrap()
}

/// The director's IPVS table exactly as its spec wants it.
fn table_of(spec: &NodeSpec) -> Vec<IpvsService> {
    spec.virtual_services
        .iter()
        .map(|v| IpvsService {
            service: translate::service(v),
            stats: Default::default(),
            destinations: v
                .destinations
                .iter()
                .map(|d| lvs_ipvs::DestinationEntry {
                    dest: translate::destination(d),
                    active_conns: 0,
                    inactive_conns: 0,
                    persist_conns: 0,
                    stats: Default::default(),
                })
                .collect(),
        })
        .collect()
}

fn director_converged(spec: &NodeSpec) -> (Observed, Owned) {
    let mut o = Observed {
        addresses: spec.addresses.iter().map(translate::address).collect(),
        routes: spec.routes.iter().map(translate::route).collect(),
        ipvs: Some(table_of(spec)),
        sync_daemons: Some(vec![]),
        ..Observed::default()
    };
    for s in &spec.sysctls {
        o.sysctls.insert(s.key.clone(), Some(s.value.clone()));
    }
    let owned = Owned {
        addresses: o.addresses.iter().cloned().collect(),
        routes: o.routes.iter().cloned().collect(),
        services: spec.virtual_services.iter().map(|v| v.key).collect(),
        ..Owned::default()
    };
    (o, owned)
}

/// One row: what differs from the converged node, and what the diff must say.
struct Row {
    rule: &'static str,
    spec: NodeSpec,
    observed: Observed,
    owned: Owned,
    runtime: Runtime,
    actions: &'static [&'static str],
    conflicts: &'static [&'static str],
    foreign: &'static [&'static str],
}

fn rs_row(rule: &'static str, edit: impl FnOnce(&mut NodeSpec, &mut Observed, &mut Owned)) -> Row {
    let (mut spec, mut observed, mut owned) = (real_server(), converged(), Owned::default());
    edit(&mut spec, &mut observed, &mut owned);
    Row {
        rule,
        spec,
        observed,
        owned,
        runtime: Runtime::default(),
        actions: &[],
        conflicts: &[],
        foreign: &[],
    }
}

fn dir_row(
    rule: &'static str,
    edit: impl FnOnce(&mut NodeSpec, &mut Observed, &mut Owned, &mut Runtime),
) -> Row {
    let spec = director();
    let (mut observed, mut owned) = director_converged(&spec);
    let (mut spec, mut runtime) = (spec, Runtime::default());
    edit(&mut spec, &mut observed, &mut owned, &mut runtime);
    Row { rule, spec, observed, owned, runtime, actions: &[], conflicts: &[], foreign: &[] }
}

/// Every rule the diff keeps, one row each: the table is the specification.
// Long on purpose: a table reads best whole; splitting it would scatter the rules.
fn rows() -> Vec<Row> {
    let vip: std::net::SocketAddr = "198.18.0.100:80".parse().unwrap();
    let rs1: std::net::SocketAddr = "198.18.0.11:80".parse().unwrap();
    vec![
        rs_row("a converged node needs nothing", |_, _, _| {}),
        Row {
            actions: &[
                "add address 198.18.1.11/16 on eth0",
                "add route 0.0.0.0/0 via 198.18.0.1 dev eth0",
                "set net.ipv4.conf.all.arp_ignore = 1 (was 0)",
            ],
            ..rs_row("a bare node gets every step, in the spec's order", |_, o, _| {
                o.addresses.clear();
                o.routes.clear();
                o.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), Some("0".into()));
            })
        },
        rs_row("a multi-value sysctl read back tab-separated is equal", |s, o, _| {
            s.sysctls[0].value = "3 0".into();
            o.sysctls.insert(s.sysctls[0].key.clone(), Some("3\t0".into()));
        }),
        Row {
            actions: &["remove address 198.18.1.11/24 from eth0", "add address 198.18.1.11/16 on eth0"],
            ..rs_row("its own address with another prefix is swapped", |_, o, w| {
                o.addresses = vec![addr("eth0", "198.18.1.11/24", None)];
                w.addresses.insert(o.addresses[0].clone());
            })
        },
        Row {
            conflicts: &["address 198.18.1.11/24 on eth0 was not created by this agent"],
            ..rs_row("someone else's address with another prefix is a conflict, never removed", |_, o, _| {
                o.addresses = vec![addr("eth0", "198.18.1.11/24", None)];
            })
        },
        Row {
            actions: &["replace route 0.0.0.0/0 via 198.18.0.1 dev eth0"],
            ..rs_row("its own route to the same destination is replaced in one step", |_, o, w| {
                o.routes = vec![route("0.0.0.0/0", "198.18.0.254", "eth0")];
                w.routes.insert(o.routes[0].clone());
            })
        },
        Row {
            conflicts: &["route 0.0.0.0/0 via 198.18.0.254 dev eth0 was not created by this agent"],
            ..rs_row("someone else's route to the same destination is a conflict", |_, o, _| {
                o.routes = vec![route("0.0.0.0/0", "198.18.0.254", "eth0")];
            })
        },
        Row {
            actions: &[
                "remove route 198.18.9.0/24 via 198.18.0.1 dev eth0",
                "remove address 198.18.9.9/32 from lo label lo:0",
            ],
            ..rs_row("what it made and the spec dropped goes, routes before addresses", |_, o, w| {
                o.addresses.push(addr("lo", "198.18.9.9/32", Some("lo:0")));
                o.routes.push(route("198.18.9.0/24", "198.18.0.1", "eth0"));
                w.addresses.insert(o.addresses[1].clone());
                w.routes.insert(o.routes[1].clone());
            })
        },
        rs_row("what it never made is left alone, even unwanted", |_, o, _| {
            o.addresses.push(addr("lo", "198.18.9.9/32", Some("lo:0")));
            o.routes.push(route("198.18.9.0/24", "198.18.0.1", "eth0"));
        }),
        rs_row("what it made that is gone already is not removed twice", |_, _, w| {
            w.addresses.insert(addr("lo", "198.18.9.9/32", Some("lo:0")));
        }),
        dir_row("a converged director needs nothing", |_, _, _, _| {}),
        Row {
            actions: &["ipvs: edit destination 198.18.0.11:80 of TCP 198.18.0.100:80"],
            ..dir_row("an admin's drain sets the weight to 0", |_, _, _, rt| {
                rt.weights.insert(
                    DestKey::new(
                        lvs_proto::spec::ServiceKey::Addr {
                            protocol: lvs_proto::spec::Protocol::Tcp,
                            address: vip,
                        },
                        rs1,
                    ),
                    0,
                );
            })
        },
        Row {
            conflicts: &["IPVS service TCP 198.18.0.100:80 exists and was not created by this agent"],
            ..dir_row("another tool's service with the spec's key is a conflict", |_, _, w, _| {
                w.services.clear();
            })
        },
        Row {
            actions: &["ipvs: delete service TCP 198.18.0.100:80"],
            ..dir_row("a cleared table withdraws its own services", |_, _, _, rt| rt.ipvs_cleared = true)
        },
        Row {
            foreign: &["IPVS service TCP 198.18.0.100:80 (not created by this agent; left alone)"],
            ..dir_row("a service the spec dropped and it never made is foreign", |s, _, w, _| {
                s.virtual_services.clear();
                w.services.clear();
            })
        },
        Row {
            actions: &["ipvs: delete destination 198.18.0.12:80 from TCP 198.18.0.100:80"],
            ..dir_row("a destination the spec dropped leaves the table", |s, _, _, _| {
                let rs2: std::net::SocketAddr = "198.18.0.12:80".parse().unwrap();
                s.virtual_services[0].destinations.retain(|d| d.address != rs2);
            })
        },
        Row {
            actions: &["nftables: load table inet lvs_dr with 1 marking rule (found: absent)"],
            ..dir_row("marks and no table: the table is loaded whole", |s, _, _, _| s.marks = vec![mark()])
        },
        dir_row("its own table as the spec wants it needs nothing", |s, o, w, _| {
            s.marks = vec![mark()];
            o.marks = Some(table(&[mark()], &[]));
            w.mark_table = true;
        }),
        Row {
            actions: &[
                "nftables: load table inet lvs_dr with 1 marking rule (found: rule handle 4 in chain marks is not a marking rule)",
            ],
            ..dir_row("its own table with a rule of another shape is loaded whole again", |s, o, w, _| {
                s.marks = vec![mark()];
                o.marks = Some(table(&[mark()], &["rule handle 4 in chain marks is not a marking rule"]));
                w.mark_table = true;
            })
        },
        Row {
            actions: &[
                "nftables: load table inet lvs_dr with 1 marking rule (found: missing TCP 198.18.0.100 ports 80,443 → mark 7 (web))",
            ],
            ..dir_row("its own table emptied by hand is loaded whole again", |s, o, w, _| {
                s.marks = vec![mark()];
                o.marks = Some(table(&[], &[]));
                w.mark_table = true;
            })
        },
        Row {
            conflicts: &["nftables table inet lvs_dr exists and was not created by this agent"],
            ..dir_row("someone else's table of that name is a conflict, never replaced", |s, o, _, _| {
                s.marks = vec![mark()];
                o.marks = Some(table(&[], &[]));
            })
        },
        Row {
            actions: &[
                "nftables: remove table inet lvs_dr (it held 1 marking rule(s))",
                "ipvs: delete service TCP 198.18.0.100:80",
            ],
            ..dir_row("its own table the spec dropped goes, before the services it fed", |s, o, w, _| {
                s.virtual_services.clear();
                o.marks = Some(table(&[mark()], &[]));
                w.mark_table = true;
            })
        },
        dir_row("a table it never made and the spec does not want is left alone", |_, o, _, _| {
            o.marks = Some(table(&[mark()], &[]));
        }),
    ]
}

/// The web service's marking rule: TCP 80 and 443 to the VIP, mark 7.
fn mark() -> lvs_proto::spec::MarkRule {
    let p = |n| lvs_proto::spec::PortRange { first: n, last: n };
    lvs_proto::spec::MarkRule {
        service: "web".into(),
        address: "198.18.0.100".parse().unwrap(),
        protocol: lvs_proto::spec::Protocol::Tcp,
        ports: vec![p(80), p(443)],
        mark: 7,
    }
}

/// A marking table as found: these rules, and these strange things beside them.
fn table(rules: &[lvs_proto::spec::MarkRule], strange: &[&str]) -> crate::marks::MarkTable {
    crate::marks::MarkTable {
        rules: rules
            .iter()
            .map(|r| crate::marks::FoundRule { rule: r.clone(), packets: 0, bytes: 0 })
            .collect(),
        strange: strange.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn each_rule_of_the_diff_holds() {
    let mut failed = Vec::new();
    for row in rows() {
        let plan = diff(&row.spec, &row.observed, &row.owned, &row.runtime);
        let actions: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
        let starts = |have: &[String], want: &[&str]| {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| h.starts_with(w))
        };
        if actions != row.actions
            || !starts(&plan.conflicts, row.conflicts)
            || !starts(&plan.foreign, row.foreign)
        {
            failed.push(format!(
                "{}:\n  actions   {actions:?}\n  wanted    {:?}\n  conflicts {:?}\n  foreign   {:?}",
                row.rule, row.actions, plan.conflicts, plan.foreign
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn the_rules_are_each_tested_once() {
    let names: Vec<_> = rows().iter().map(|r| r.rule).collect();
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len(), "two rows say the same rule");
}

#[test]
fn a_drain_changes_the_weight_and_nothing_else() {
    let spec = director();
    let (observed, owned) = director_converged(&spec);
    let (vs, rs1) = (&spec.virtual_services[0], &spec.virtual_services[0].destinations[0]);
    let mut runtime = Runtime::default();
    runtime.weights.insert(DestKey::new(vs.key, rs1.address), 0);
    let plan = diff(&spec, &observed, &owned, &runtime);
    let want = lvs_ipvs::Destination { weight: 0, ..translate::destination(rs1) };
    assert_eq!(
        plan.actions,
        vec![super::Action::Ipvs(lvs_ipvs::Op::EditDest(translate::service_key(&vs.key), want))]
    );
}
