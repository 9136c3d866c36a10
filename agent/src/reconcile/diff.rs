//! Desired state diffed against observed state, as keyed maps, into ordered actions.
//!
//! The order is the spec's apply order ([`NodeSpec::steps`]): LAN addresses, gateway,
//! sysctls, VIPs, VIP routes, IPVS; removals of what the agent owns but the spec no
//! longer wants come last, IPVS first (stop sending traffic before taking addresses).
//! Nothing the agent did not create is ever removed: it is reported as foreign.
use std::collections::{BTreeMap, BTreeSet};

use lvs_ipvs::{Destination, Op, ServiceKey};
use lvs_proto::NodeSpec;
use lvs_proto::spec::Step;

use super::action::Action;
use super::action::Plan;
use super::action::label;
use super::action::route_text;
use super::ipvs_diff::effective_destination;
use super::ipvs_diff::ipvs_service;
use super::ipvs_diff::sync_daemons;
use super::ipvs_diff::timeouts;
use crate::kernel::observe::Observed;
use crate::kernel::system::{Address, Route};
use crate::kernel::translate;
use crate::reconcile::state::{Owned, Runtime};

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
    // After the services (a marked packet meets its service), before their removals.
    marks(&mut plan, spec, observed, owned);
    removals(&mut plan, &table, observed, owned, &wanted);
    plan
}

/// The marking table: loaded whole when it differs from the spec's rules, removed when
/// the spec has none and the agent made it; someone else's table of that name is a
/// conflict (never replaced), unless adopted.
fn marks(plan: &mut Plan, spec: &NodeSpec, observed: &Observed, owned: &Owned) {
    let mut wanted = spec.marks.clone();
    wanted.sort();
    match (&observed.marks, wanted.is_empty()) {
        (None, true) => {}
        (None, false) => plan.actions.push(Action::LoadMarks { rules: wanted, found: "absent".into() }),
        (Some(t), true) if owned.mark_table => {
            let found = format!("{} marking rule(s)", t.rules.len());
            plan.actions.push(Action::RemoveMarks { found });
        }
        (Some(_), true) => {}
        (Some(_), false) if !owned.mark_table => plan.conflicts.push(format!(
            "nftables table {} exists and was not created by this agent; it is left alone: \
             take it over with `lvsctl apply --adopt`, or delete it",
            crate::marks::TABLE
        )),
        (Some(t), false) => {
            if let Some(found) = t.differs_from(&wanted) {
                plan.actions.push(Action::LoadMarks { rules: wanted, found });
            }
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

#[cfg(test)]
mod tests;
