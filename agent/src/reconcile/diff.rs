//! Desired state diffed against observed state, as keyed maps, into ordered actions.
//!
//! The order is the spec's apply order ([`NodeSpec::steps`]): LAN addresses, gateway,
//! sysctls, VIPs, VIP routes, IPVS; removals of what the agent owns but the spec no
//! longer wants come last, IPVS first (stop sending traffic before taking addresses).
//! Nothing the agent did not create is ever removed: it is reported as foreign.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use lvs_ipvs::{Daemon, DaemonState, Destination, Op, Service, ServiceKey};
use lvs_proto::NodeSpec;
use lvs_proto::reply::Change;
use lvs_proto::spec::Step;

use crate::kernel::observe::Observed;
use crate::kernel::system::{Address, Route};
use crate::kernel::translate;
use crate::reconcile::state::{Owned, Runtime, override_key};
use lvs_proto::spec::OnFailure;

/// One change to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Add an address.
    AddAddress(Address),
    /// Remove an address.
    DelAddress(Address),
    /// Add (or, with `replace`, swap) a route.
    AddRoute {
        /// The route.
        route: Route,
        /// Replace an existing route to the same destination.
        replace: bool,
    },
    /// Remove a route.
    DelRoute(Route),
    /// Write a sysctl.
    SetSysctl {
        /// Key.
        key: String,
        /// Value found.
        from: String,
        /// Value wanted.
        to: String,
    },
    /// Change the IPVS table.
    Ipvs(Op),
}

impl Action {
    /// The action as a reply names it.
    pub fn to_change(&self) -> Change {
        match self {
            Action::AddAddress(x) => Change::AddAddress(translate::address_ref(x)),
            Action::DelAddress(x) => Change::DelAddress(translate::address_ref(x)),
            Action::AddRoute { route, replace } => {
                Change::AddRoute { route: translate::route_ref(route), replace: *replace }
            }
            Action::DelRoute(r) => Change::DelRoute(translate::route_ref(r)),
            Action::SetSysctl { key, from, to } => {
                Change::SetSysctl { key: key.clone(), from: from.clone(), to: to.clone() }
            }
            Action::Ipvs(op) => Change::Ipvs(translate::ipvs_change(op)),
        }
    }
}

impl fmt::Display for Action {
    /// In the words every report uses (one vocabulary: [`lvs_proto::reply::Change`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_change().fmt(f)
    }
}

fn label(a: &Address) -> String {
    a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default()
}

/// `0.0.0.0/0 via 198.18.0.1 dev eth0`.
pub fn route_text(r: &Route) -> String {
    translate::route_ref(r).to_string()
}

/// The result of a diff.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes, in apply order.
    pub actions: Vec<Action>,
    /// Things present that the spec does not mention and the agent did not create.
    pub foreign: Vec<String>,
    /// Things the agent did not create that stand where the spec wants something else
    /// (the same IP with another prefix or label, another route to the same
    /// destination). They are never deleted to make room: the apply is refused instead.
    pub conflicts: Vec<String>,
}

/// The destination as the kernel must hold it now, or `None` when it must be absent:
/// quarantine (weight 0, or removal) wins over an admin weight, which wins over the spec.
pub fn effective_destination(
    v: &lvs_proto::spec::VirtualServiceSpec,
    d: &lvs_proto::spec::DestinationSpec,
    runtime: &Runtime,
) -> Option<Destination> {
    let key = override_key(&v.key, d.address);
    let mut dest = translate::destination(d);
    if runtime.quarantined.contains(&key) {
        let remove = v.check_of(d).is_some_and(|h| h.on_failure == OnFailure::Remove);
        if remove {
            return None;
        }
        dest.weight = 0;
    } else if let Some(w) = runtime.weights.get(&key) {
        dest.weight = *w;
    }
    Some(dest)
}

/// Diff `spec` (with the runtime layer on top) against `observed`.
pub fn diff(spec: &NodeSpec, observed: &Observed, owned: &Owned, runtime: &Runtime) -> Plan {
    let mut plan = Plan::default();
    let mut wanted = Wanted::default();
    let table: BTreeMap<ServiceKey, &crate::kernel::system::IpvsService> =
        observed.ipvs.iter().flatten().map(|s| (s.service.key, s)).collect();
    for step in spec.steps() {
        match step {
            Step::Address(a) => address(&mut plan, translate::address(a), observed, owned, &mut wanted),
            Step::Route(r) => route(&mut plan, translate::route(r), observed, owned, &mut wanted),
            Step::Sysctl(s) => {
                let found = observed.sysctls.get(&s.key).cloned().flatten().unwrap_or_default();
                // Multi-value sysctls read back tab-separated (`3\t0` for `3 0`).
                let words = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
                if words(&found) != words(&s.value) {
                    plan.actions.push(Action::SetSysctl {
                        key: s.key.clone(),
                        from: words(&found),
                        to: s.value.clone(),
                    });
                }
            }
            // Cleared by the admin: wanted nowhere, so what the agent owns is removed.
            Step::VirtualService(_) if runtime.ipvs_cleared => {}
            Step::VirtualService(v) => {
                let svc = translate::service(v);
                wanted.services.insert(svc.key);
                let mut dests: Vec<Destination> =
                    v.destinations.iter().filter_map(|d| effective_destination(v, d, runtime)).collect();
                if let Some(s) = &v.sorry
                    && crate::health::quorum::degraded(v, runtime)
                {
                    dests.push(Destination { weight: 1, ..translate::destination(s) });
                }
                let mine = owned.services.iter().any(|k| translate::service_key(k) == svc.key);
                match table.get(&svc.key) {
                    // Another tool's service with this key (keepalived's, during a migration):
                    // never edited, its destinations never deleted, unless the admin adopts it.
                    Some(_) if !mine => plan.conflicts.push(format!(
                        "IPVS service {} exists and was not created by this agent (another tool's?); \
                         it is left alone: take it over with `lvsctl apply --adopt`, or remove it",
                        svc.key
                    )),
                    have => ipvs_service(&mut plan, &svc, &dests, have.copied()),
                }
            }
            Step::Check(_) => {}
        }
    }
    if !runtime.ipvs_cleared {
        timeouts(&mut plan, spec, observed);
    }
    sync_daemons(&mut plan, spec, observed, owned);
    removals(&mut plan, &table, observed, owned, &wanted);
    plan
}

/// The spec's IPVS timeouts, when the kernel holds others (`0` in the change: leave it).
fn timeouts(plan: &mut Plan, spec: &NodeSpec, observed: &Observed) {
    let (Some(want), Some(have)) = (spec.ipvs_timeouts, observed.ipvs_timeouts) else { return };
    let off = |w: Option<u32>, h: u32| w.is_some_and(|w| w != h);
    if off(want.tcp_s, have.tcp) || off(want.tcp_fin_s, have.tcp_fin) || off(want.udp_s, have.udp) {
        plan.actions.push(Action::Ipvs(Op::SetTimeouts(lvs_ipvs::Timeouts {
            tcp: want.tcp_s.unwrap_or(0),
            tcp_fin: want.tcp_fin_s.unwrap_or(0),
            udp: want.udp_s.unwrap_or(0),
        })));
    }
}

/// The word a daemon state is owned under.
pub fn daemon_word(s: DaemonState) -> &'static str {
    match s {
        DaemonState::Master => "master",
        DaemonState::Backup => "backup",
    }
}

/// The connection-sync daemons of a VRRP director: a master *and* a backup daemon on the
/// sync interface, on every director of the instance. The kernel runs both at once, so
/// whichever director is VRRP master sends its connections and every other one already
/// receives them: a failover (or a failback) never waits for a daemon to be started.
/// One started by another tool (keepalived's `lvs_sync_daemon`) is left alone.
/// The master sync daemon's message size: one connection per message. The kernel sends a
/// full message at once but holds a partly filled one until it is 2 s old; with room for
/// one connection, each connection's message leaves as soon as the next connection is
/// synced, and the last one leaves when the hand-over kicks the table
/// (`Keepalived::hand_over`). The cost is one UDP datagram per synced state change
/// instead of one per ~20: at 10,000 new connections a second, about 20,000 small
/// datagrams a second on the sync link. (The kernel raises 1 to one connection's size.)
pub const MASTER_SYNC_MAXLEN: u16 = 1;

fn sync_daemons(plan: &mut Plan, spec: &NodeSpec, observed: &Observed, owned: &Owned) {
    let Some(have) = &observed.sync_daemons else { return };
    let want: Vec<Daemon> = match spec.vrrp.as_ref().and_then(|v| v.sync_daemon.as_ref()) {
        Some(d) => [DaemonState::Master, DaemonState::Backup]
            .into_iter()
            .map(|s| {
                let mut daemon = Daemon::new(s, &d.interface, d.sync_id);
                if s == DaemonState::Master {
                    daemon.sync_maxlen = Some(MASTER_SYNC_MAXLEN);
                }
                daemon
            })
            .collect(),
        None => Vec::new(),
    };
    let mine = |s: DaemonState| owned.sync_daemons.contains(daemon_word(s));
    for w in &want {
        match have.iter().find(|h| h.state == w.state) {
            Some(h)
                if h.mcast_ifn == w.mcast_ifn
                    && h.sync_id == w.sync_id
                    && (w.sync_maxlen.is_none() || h.sync_maxlen == w.sync_maxlen) => {}
            Some(h) if mine(h.state) => {
                plan.actions.push(Action::Ipvs(Op::StopDaemon(h.state)));
                plan.actions.push(Action::Ipvs(Op::StartDaemon(w.clone())));
            }
            Some(h) => plan.conflicts.push(format!(
                "a {} IPVS sync daemon (on {}, id {}) runs and was not started by this agent \
                 (keepalived's lvs_sync_daemon?): stop it, the agent runs the sync daemons",
                daemon_word(h.state),
                h.mcast_ifn,
                h.sync_id
            )),
            None => plan.actions.push(Action::Ipvs(Op::StartDaemon(w.clone()))),
        }
    }
    for h in have.iter().filter(|h| !want.iter().any(|w| w.state == h.state)) {
        if mine(h.state) {
            plan.actions.push(Action::Ipvs(Op::StopDaemon(h.state)));
        } else {
            plan.foreign.push(format!(
                "IPVS {} sync daemon on {} (not started by this agent; left alone)",
                daemon_word(h.state),
                h.mcast_ifn
            ));
        }
    }
}

/// What the spec wants, gathered while diffing, for the removals at the end.
#[derive(Default)]
struct Wanted {
    addrs: BTreeSet<Address>,
    routes: BTreeSet<Route>,
    services: BTreeSet<ServiceKey>,
}

fn address(plan: &mut Plan, want: Address, observed: &Observed, owned: &Owned, wanted: &mut Wanted) {
    wanted.addrs.insert(want.clone());
    if observed.addresses.contains(&want) {
        return;
    }
    // Same address on the same interface with another prefix or label: swap it when it is
    // ours (an older spec), refuse when someone else put it there.
    if let Some(old) = observed
        .addresses
        .iter()
        .find(|o| o.interface == want.interface && o.address.addr() == want.address.addr())
    {
        if !owned.addresses.contains(old) {
            plan.conflicts.push(format!(
                "address {} on {}{} was not created by this agent and differs from the wanted {}{}; \
                 remove or correct it by hand",
                old.address,
                old.interface,
                label(old),
                want.address,
                label(&want)
            ));
            return;
        }
        plan.actions.push(Action::DelAddress(old.clone()));
    }
    plan.actions.push(Action::AddAddress(want));
}

fn route(plan: &mut Plan, want: Route, observed: &Observed, owned: &Owned, wanted: &mut Wanted) {
    wanted.routes.insert(want.clone());
    if observed.routes.contains(&want) {
        return;
    }
    let existing: Vec<&Route> =
        observed.routes.iter().filter(|o| o.destination == want.destination).collect();
    if let Some(other) = existing.iter().find(|o| !owned.routes.contains(**o)) {
        plan.conflicts.push(format!(
            "route {} was not created by this agent and differs from the wanted {}; \
             remove it by hand (or let the agent own it by deleting it once)",
            route_text(other),
            route_text(&want)
        ));
        return;
    }
    let replace = !existing.is_empty();
    plan.actions.push(Action::AddRoute { route: want, replace });
}

/// Removals, last: only what the agent created and the spec no longer wants; IPVS first
/// (stop sending traffic before taking addresses away).
fn removals(
    plan: &mut Plan,
    table: &BTreeMap<ServiceKey, &crate::kernel::system::IpvsService>,
    observed: &Observed,
    owned: &Owned,
    wanted: &Wanted,
) {
    for (key, s) in table {
        if wanted.services.contains(key) {
            continue;
        }
        if owned.services.iter().any(|k| translate::service_key(k) == *key) {
            plan.actions.push(Action::Ipvs(Op::DelService(s.service.key)));
        } else {
            plan.foreign.push(format!("IPVS service {key} (not created by this agent; left alone)"));
        }
    }
    // (An owned route or address already swapped above is gone by then: not twice.)
    let replaced: BTreeSet<_> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::AddRoute { route, replace: true } => Some(route.destination),
            _ => None,
        })
        .collect();
    let swapped: BTreeSet<Address> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DelAddress(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    for r in owned.routes.iter().filter(|r| {
        !wanted.routes.contains(*r) && observed.routes.contains(r) && !replaced.contains(&r.destination)
    }) {
        plan.actions.push(Action::DelRoute(r.clone()));
    }
    for a in owned
        .addresses
        .iter()
        .filter(|a| !wanted.addrs.contains(*a) && observed.addresses.contains(a) && !swapped.contains(*a))
    {
        plan.actions.push(Action::DelAddress(a.clone()));
    }
}

fn ipvs_service(
    plan: &mut Plan,
    want: &Service,
    dests: &[Destination],
    have: Option<&crate::kernel::system::IpvsService>,
) {
    let key = want.key;
    let Some(have) = have else {
        plan.actions.push(Action::Ipvs(Op::AddService(want.clone())));
        plan.actions.extend(dests.iter().map(|d| Action::Ipvs(Op::AddDest(key, *d))));
        return;
    };
    let h = &have.service;
    if h.scheduler != want.scheduler
        || h.flags.settable() != want.flags.settable()
        || h.timeout != want.timeout
        || (want.timeout > 0 && h.netmask != want.netmask)
        || h.pe_name != want.pe_name
    {
        plan.actions.push(Action::Ipvs(Op::EditService(want.clone())));
    }
    let have_dests: BTreeMap<SocketAddr, &Destination> =
        have.destinations.iter().map(|d| (d.dest.addr, &d.dest)).collect();
    for d in dests {
        match have_dests.get(&d.addr) {
            None => plan.actions.push(Action::Ipvs(Op::AddDest(key, *d))),
            Some(h) if *h != d => plan.actions.push(Action::Ipvs(Op::EditDest(key, *d))),
            Some(_) => {}
        }
    }
    let wanted: BTreeSet<SocketAddr> = dests.iter().map(|d| d.addr).collect();
    for addr in have_dests.keys().filter(|a| !wanted.contains(a)) {
        plan.actions.push(Action::Ipvs(Op::DelDest(key, *addr)));
    }
}
