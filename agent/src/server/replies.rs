//! The agent's views as replies (`lvs_proto::reply`): the one place where what the agent
//! knows becomes what it answers. `grpc.rs` only encodes these with `lvs_proto::wire`.
use lvs_proto::reply::{self, NodeStatus};

use crate::kernel::translate;
use crate::node::{IpvsView, ProbeView, StatusView, WeightView};
use crate::reconcile::state::override_key;

/// The IPVS table with what surrounds it.
pub fn ipvs_table(v: &IpvsView) -> reply::IpvsTable {
    reply::IpvsTable {
        version: v.info.version_string(),
        conn_tab_size: v.info.conn_tab_size,
        services: v
            .services
            .iter()
            .map(|(s, managed)| reply::TableService {
                key: translate::spec_service_key(&s.service.key),
                scheduler: s.service.scheduler.clone(),
                flags: s.service.flags.0,
                timeout_s: s.service.timeout,
                netmask: s.service.netmask,
                stats: translate::stats(&s.stats),
                destinations: s
                    .destinations
                    .iter()
                    .map(|d| reply::TableDestination {
                        address: d.dest.addr,
                        forward: translate::forward(d.dest.forward),
                        weight: d.dest.weight,
                        upper_threshold: d.dest.upper_threshold,
                        lower_threshold: d.dest.lower_threshold,
                        active_conns: d.active_conns,
                        inactive_conns: d.inactive_conns,
                        persist_conns: d.persist_conns,
                        stats: translate::stats(&d.stats),
                    })
                    .collect(),
                managed: *managed,
            })
            .collect(),
        timeouts: reply::Timeouts { tcp: v.timeouts.tcp, tcp_fin: v.timeouts.tcp_fin, udp: v.timeouts.udp },
        connections: v.connections.iter().map(connection).collect(),
        connections_truncated: v.connections_truncated,
    }
}

/// One IPVS connection entry.
pub fn connection(c: &lvs_ipvs::conn::Connection) -> reply::Connection {
    reply::Connection {
        protocol: c.protocol.clone(),
        client: c.client,
        virtual_address: c.virtual_addr,
        destination: c.destination,
        state: c.state.clone(),
        expires_s: c.expires_s,
    }
}

/// Everything `status` reports.
pub fn status(v: &StatusView) -> NodeStatus {
    let spec = v.state.spec.as_ref();
    NodeStatus {
        facts: v.facts.clone(),
        generation: v.state.generation,
        has_spec: spec.is_some(),
        drift: v.drift.iter().map(crate::reconcile::action::Action::to_change).collect(),
        foreign: v.foreign.clone(),
        checks: v
            .checks
            .iter()
            .map(|c| reply::CheckResult { check: c.check.clone(), ok: c.ok, detail: c.detail.clone() })
            .collect(),
        ipvs: v.ipvs.as_ref().map(ipvs_table),
        clock: v
            .clock
            .as_ref()
            .map(|c| reply::Clock { offset_ms: c.offset_ms, rtt_ms: c.rtt_ms, error: c.error.clone() })
            .unwrap_or_default(),
        health: v
            .health
            .iter()
            .map(|h| reply::DestinationHealth {
                service: h.service,
                destination: h.dest,
                up: h.up,
                quarantined: h.quarantined,
                successes: h.successes,
                failures: h.failures,
                transitions: h.transitions,
                probes: h.probes,
                last_error: h.last_error.clone(),
            })
            .collect(),
        overrides: spec
            .iter()
            .flat_map(|s| &s.virtual_services)
            .flat_map(|vs| vs.destinations.iter().map(move |d| (vs, d)))
            .filter_map(|(vs, d)| {
                let w = v.state.runtime.weights.get(&override_key(&vs.key, d.address))?;
                Some(reply::WeightOverride { service: vs.key, destination: d.address, weight: *w })
            })
            .collect(),
        // The door's to fill in: the node's state does not hold its certificate.
        certificate: None,
        // The handler's, from the engine and the kernel.
        vrrp: None,
        sync_daemons: Vec::new(),
        services: spec.map(|s| crate::health::quorum::view(s, &v.state.runtime)).unwrap_or_default(),
    }
}

/// A live weight change's result.
pub fn weight(v: &WeightView) -> reply::WeightReply {
    reply::WeightReply { weight: v.weight, active_conns: v.active, inactive_conns: v.inactive }
}

/// A probe's tally.
pub fn probe(v: ProbeView) -> reply::ProbeTally {
    reply::ProbeTally {
        sent: v.sent,
        answered: v.answered,
        failed: v.failed,
        bodies: v.bodies,
        errors: v.errors,
        elapsed_ms: v.elapsed.as_millis() as u64,
        sequence: v.sequence,
    }
}
