//! Facts, status and VRRP state to and from the wire.

use super::changes::changes;
use super::changes::each;
use super::table::ipvs_table;
use crate::pb;
use crate::reply::{
    CertificateInfo, CheckResult, Clock, DestinationHealth, Facts, NodeStatus, ServiceHealth, SyncDaemon,
    VrrpState, VrrpStatus, WeightOverride,
};
use crate::wire::fields::{WireError, err, parse, required, service_key};

// ------------------------------------------------------------------ status

impl From<&Facts> for pb::FactsResponse {
    fn from(f: &Facts) -> Self {
        pb::FactsResponse {
            node: f.node.clone(),
            hostname: f.hostname.clone(),
            kernel: f.kernel.clone(),
            ipvs: f.ipvs,
            ipvs_version: f.ipvs_version.clone(),
            schedulers: f.schedulers.clone(),
            cpus: f.cpus,
            memory_total_bytes: f.memory_total_bytes,
            memory_used_bytes: f.memory_used_bytes,
            agent_version: f.agent_version.clone(),
            agent_rss_bytes: f.agent_rss_bytes,
            uptime_s: f.uptime_s,
        }
    }
}

impl From<&pb::FactsResponse> for Facts {
    fn from(f: &pb::FactsResponse) -> Self {
        Facts {
            node: f.node.clone(),
            hostname: f.hostname.clone(),
            kernel: f.kernel.clone(),
            ipvs: f.ipvs,
            ipvs_version: f.ipvs_version.clone(),
            schedulers: f.schedulers.clone(),
            cpus: f.cpus,
            memory_total_bytes: f.memory_total_bytes,
            memory_used_bytes: f.memory_used_bytes,
            agent_version: f.agent_version.clone(),
            agent_rss_bytes: f.agent_rss_bytes,
            uptime_s: f.uptime_s,
        }
    }
}

impl From<&NodeStatus> for pb::StatusResponse {
    fn from(s: &NodeStatus) -> Self {
        pb::StatusResponse {
            facts: Some((&s.facts).into()),
            generation: s.generation,
            has_spec: s.has_spec,
            drift: s.drift.iter().map(Into::into).collect(),
            foreign: s.foreign.clone(),
            checks: s
                .checks
                .iter()
                .map(|c| pb::CheckResult {
                    check: c.check.clone(),
                    ok: c.ok,
                    detail: c.detail.clone(),
                    unknown: c.unknown,
                })
                .collect(),
            ipvs: s.ipvs.as_ref().map(Into::into),
            clock_offset_ms: s.clock.offset_ms,
            clock_rtt_ms: s.clock.rtt_ms,
            clock_error: s.clock.error.clone().unwrap_or_default(),
            health: s
                .health
                .iter()
                .map(|h| pb::DestinationHealth {
                    service: Some((&h.service).into()),
                    destination: h.destination.to_string(),
                    up: h.up,
                    quarantined: h.quarantined,
                    successes: h.successes,
                    failures: h.failures,
                    transitions: h.transitions,
                    probes: h.probes,
                    last_error: h.last_error.clone(),
                    checked: h.checked(),
                })
                .collect(),
            overrides: s
                .overrides
                .iter()
                .map(|o| pb::WeightOverride {
                    service: Some((&o.service).into()),
                    destination: o.destination.to_string(),
                    weight: o.weight,
                })
                .collect(),
            certificate: s
                .certificate
                .as_ref()
                .map(|c| pb::Certificate { serial: c.serial.clone(), not_after_unix: c.not_after_unix }),
            vrrp: s.vrrp.as_ref().map(Into::into),
            bgp: s.bgp.as_ref().map(Into::into),
            arp_watch: s.arp_watch.as_ref().map(Into::into),
            marks: crate::wire::marks::counts_to(&s.marks),
            sync_daemons: s
                .sync_daemons
                .iter()
                .map(|d| pb::SyncDaemon {
                    state: d.state.clone(),
                    interface: d.interface.clone(),
                    sync_id: d.sync_id,
                })
                .collect(),
            services: s
                .services
                .iter()
                .map(|v| pb::ServiceHealth {
                    service: Some((&v.service).into()),
                    name: v.name.clone(),
                    in_service: v.in_service,
                    total: v.total,
                    quorum: v.quorum,
                    degraded: v.degraded,
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::StatusResponse> for NodeStatus {
    type Error = WireError;

    fn try_from(s: &pb::StatusResponse) -> Result<Self, WireError> {
        let key = |f: &str, k: &Option<pb::ServiceKey>| service_key(f, required(f, k)?);
        Ok(NodeStatus {
            facts: s.facts.as_ref().map(Facts::from).unwrap_or_default(),
            generation: s.generation,
            has_spec: s.has_spec,
            drift: changes("drift", &s.drift)?,
            foreign: s.foreign.clone(),
            checks: s
                .checks
                .iter()
                .map(|c| CheckResult {
                    check: c.check.clone(),
                    ok: c.ok && !c.unknown,
                    unknown: c.unknown,
                    detail: c.detail.clone(),
                })
                .collect(),
            ipvs: s.ipvs.as_ref().map(|t| ipvs_table("ipvs", t)).transpose()?,
            clock: Clock {
                offset_ms: s.clock_offset_ms,
                rtt_ms: s.clock_rtt_ms,
                error: Some(s.clock_error.clone()).filter(|e| !e.is_empty()),
            },
            health: each("health", &s.health, |f, h| {
                Ok(DestinationHealth {
                    service: key(&format!("{f}.service"), &h.service)?,
                    destination: parse(&format!("{f}.destination"), &h.destination)?,
                    up: h.up,
                    quarantined: h.quarantined,
                    successes: h.successes,
                    failures: h.failures,
                    transitions: h.transitions,
                    probes: h.probes,
                    last_error: h.last_error.clone(),
                })
            })?,
            overrides: each("overrides", &s.overrides, |f, o| {
                Ok(WeightOverride {
                    service: key(&format!("{f}.service"), &o.service)?,
                    destination: parse(&format!("{f}.destination"), &o.destination)?,
                    weight: o.weight,
                })
            })?,
            certificate: s
                .certificate
                .as_ref()
                .map(|c| CertificateInfo { serial: c.serial.clone(), not_after_unix: c.not_after_unix }),
            vrrp: s.vrrp.as_ref().map(VrrpStatus::try_from).transpose()?,
            bgp: s.bgp.as_ref().map(crate::reply::BgpStatus::try_from).transpose()?,
            arp_watch: s.arp_watch.as_ref().map(crate::reply::ArpWatchStatus::try_from).transpose()?,
            marks: crate::wire::marks::counts_from(&s.marks)?,
            sync_daemons: s
                .sync_daemons
                .iter()
                .map(|d| SyncDaemon {
                    state: d.state.clone(),
                    interface: d.interface.clone(),
                    sync_id: d.sync_id,
                })
                .collect(),
            services: each("services", &s.services, |f, v| {
                Ok(ServiceHealth {
                    service: key(&format!("{f}.service"), &v.service)?,
                    name: v.name.clone(),
                    in_service: v.in_service,
                    total: v.total,
                    quorum: v.quorum,
                    degraded: v.degraded,
                })
            })?,
        })
    }
}

impl From<&VrrpStatus> for pb::VrrpStatus {
    fn from(v: &VrrpStatus) -> Self {
        pb::VrrpStatus {
            instance: v.instance.clone(),
            state: match v.state {
                VrrpState::Init => pb::VrrpState::Init,
                VrrpState::Backup => pb::VrrpState::Backup,
                VrrpState::Master => pb::VrrpState::Master,
                VrrpState::Fault => pb::VrrpState::Fault,
                VrrpState::Stopped => pb::VrrpState::Stopped,
            } as i32,
            priority: v.priority.into(),
            since_unix_ms: v.since_unix_ms,
            transitions: v.transitions,
            error: v.error.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<&pb::VrrpStatus> for VrrpStatus {
    type Error = WireError;

    fn try_from(v: &pb::VrrpStatus) -> Result<Self, WireError> {
        let state = match pb::VrrpState::try_from(v.state) {
            Ok(pb::VrrpState::Init) => VrrpState::Init,
            Ok(pb::VrrpState::Backup) => VrrpState::Backup,
            Ok(pb::VrrpState::Master) => VrrpState::Master,
            Ok(pb::VrrpState::Fault) => VrrpState::Fault,
            Ok(pb::VrrpState::Stopped) => VrrpState::Stopped,
            _ => return err("vrrp.state", format!("unknown VRRP state {}", v.state)),
        };
        Ok(VrrpStatus {
            instance: v.instance.clone(),
            state,
            priority: u8::try_from(v.priority).or_else(|_| err("vrrp.priority", "over 255"))?,
            since_unix_ms: v.since_unix_ms,
            transitions: v.transitions,
            error: Some(v.error.clone()).filter(|e| !e.is_empty()),
        })
    }
}
