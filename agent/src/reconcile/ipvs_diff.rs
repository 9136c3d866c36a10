//! The IPVS side of a diff: each service and its destinations as the spec and the runtime layer (admin weights, quarantine) want them, the table's timeouts and the connection-sync daemons.
use super::action::Action;
use super::action::Plan;
use crate::kernel::observe::Observed;
use crate::kernel::translate;
use crate::reconcile::state::{Owned, Runtime, override_key};
use lvs_ipvs::{Daemon, DaemonState, Destination, Op, Service};
use lvs_proto::NodeSpec;
use lvs_proto::spec::OnFailure;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

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

/// The spec's IPVS timeouts, when the kernel holds others (`0` in the change: leave it).
pub(crate) fn timeouts(plan: &mut Plan, spec: &NodeSpec, observed: &Observed) {
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
/// synced, and the last one on the kernel's timer (a hand-over meanwhile passes its
/// packets to the old master: `crate::ha::straddle`). The cost is one UDP datagram per synced state change
/// instead of one per ~20: at 10,000 new connections a second, about 20,000 small
/// datagrams a second on the sync link. (The kernel raises 1 to one connection's size.)
pub const MASTER_SYNC_MAXLEN: u16 = 1;

pub(crate) fn sync_daemons(plan: &mut Plan, spec: &NodeSpec, observed: &Observed, owned: &Owned) {
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

pub(crate) fn ipvs_service(
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
