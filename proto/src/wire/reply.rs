//! Replies ([`crate::reply`]) to and from the wire. The agent encodes with `From`; the
//! controller decodes with `TryFrom` once, at its fleet boundary, and a reply with a field
//! it cannot read is named (`actions[3].change.ipvs.destination: ...`), never guessed.
use std::net::SocketAddr;

use ipnet::IpNet;

use super::fields::{WireError, err, parse, required, service_key};
use crate::pb;
use crate::reply::{
    ActionResult, AddressRef, CertificateInfo, Change, CheckResult, Clock, Connection,
    DestinationConnections, DestinationHealth, Event, EventKind, Facts, Failure, FailureKind, Forward,
    IpvsChange, IpvsTable, NodeStatus, Outcome, ProbeTally, Report, RouteRef, ServiceHealth, Stats,
    SyncDaemon, TableDestination, TableService, Timeouts, VrrpState, VrrpStatus, WeightOverride, WeightReply,
};

fn each<'a, W: 'a, D>(
    field: &str,
    items: impl IntoIterator<Item = &'a W>,
    f: impl Fn(&str, &'a W) -> Result<D, WireError>,
) -> Result<Vec<D>, WireError> {
    items.into_iter().enumerate().map(|(i, w)| f(&format!("{field}[{i}]"), w)).collect()
}

// ------------------------------------------------------------------ changes

impl From<&AddressRef> for pb::AddressRef {
    fn from(a: &AddressRef) -> Self {
        pb::AddressRef {
            interface: a.interface.clone(),
            address: a.address.to_string(),
            label: a.label.clone(),
        }
    }
}

fn address_ref(f: &str, a: &pb::AddressRef) -> Result<AddressRef, WireError> {
    Ok(AddressRef {
        interface: a.interface.clone(),
        address: parse::<IpNet>(&format!("{f}.address"), &a.address)?,
        label: a.label.clone(),
    })
}

impl From<&RouteRef> for pb::RouteRef {
    fn from(r: &RouteRef) -> Self {
        pb::RouteRef {
            destination: r.destination.to_string(),
            gateway: r.gateway.map(|g| g.to_string()),
            device: r.device.clone(),
        }
    }
}

fn route_ref(f: &str, r: &pb::RouteRef) -> Result<RouteRef, WireError> {
    Ok(RouteRef {
        destination: parse(&format!("{f}.destination"), &r.destination)?,
        gateway: r.gateway.as_deref().map(|g| parse(&format!("{f}.gateway"), g)).transpose()?,
        device: r.device.clone(),
    })
}

impl From<&IpvsChange> for pb::IpvsChange {
    fn from(c: &IpvsChange) -> Self {
        use pb::ipvs_change::Op;
        let mut w = pb::IpvsChange { service: c.service().map(Into::into), ..Default::default() };
        let op = match c {
            IpvsChange::AddService { scheduler, .. } => {
                w.scheduler = scheduler.clone();
                Op::AddService
            }
            IpvsChange::EditService { scheduler, .. } => {
                w.scheduler = scheduler.clone();
                Op::EditService
            }
            IpvsChange::DelService { .. } => Op::DelService,
            IpvsChange::AddDestination { destination, weight, .. } => {
                w.destination = destination.to_string();
                w.weight = Some(*weight);
                Op::AddDestination
            }
            IpvsChange::EditDestination { destination, weight, .. } => {
                w.destination = destination.to_string();
                w.weight = Some(*weight);
                Op::EditDestination
            }
            IpvsChange::DelDestination { destination, .. } => {
                w.destination = destination.to_string();
                Op::DelDestination
            }
            IpvsChange::SetTimeouts => Op::SetTimeouts,
            IpvsChange::Zero { .. } => Op::Zero,
            IpvsChange::Flush => Op::Flush,
            IpvsChange::StartDaemon { interface } => {
                w.detail = interface.clone();
                Op::StartDaemon
            }
            IpvsChange::StopDaemon { state } => {
                w.detail = state.clone();
                Op::StopDaemon
            }
        };
        w.op = op as i32;
        w
    }
}

fn ipvs_change(f: &str, c: &pb::IpvsChange) -> Result<IpvsChange, WireError> {
    use pb::ipvs_change::Op;
    let service = || service_key(&format!("{f}.service"), required(&format!("{f}.service"), &c.service)?);
    let destination = || parse::<SocketAddr>(&format!("{f}.destination"), &c.destination);
    let weight =
        || c.weight.ok_or_else(|| WireError { field: format!("{f}.weight"), reason: "missing".into() });
    Ok(match Op::try_from(c.op) {
        Ok(Op::AddService) => IpvsChange::AddService { service: service()?, scheduler: c.scheduler.clone() },
        Ok(Op::EditService) => {
            IpvsChange::EditService { service: service()?, scheduler: c.scheduler.clone() }
        }
        Ok(Op::DelService) => IpvsChange::DelService { service: service()? },
        Ok(Op::AddDestination) => {
            IpvsChange::AddDestination { service: service()?, destination: destination()?, weight: weight()? }
        }
        Ok(Op::EditDestination) => IpvsChange::EditDestination {
            service: service()?,
            destination: destination()?,
            weight: weight()?,
        },
        Ok(Op::DelDestination) => {
            IpvsChange::DelDestination { service: service()?, destination: destination()? }
        }
        Ok(Op::SetTimeouts) => IpvsChange::SetTimeouts,
        Ok(Op::Zero) => IpvsChange::Zero { service: c.service.as_ref().map(|_| service()).transpose()? },
        Ok(Op::Flush) => IpvsChange::Flush,
        Ok(Op::StartDaemon) => IpvsChange::StartDaemon { interface: c.detail.clone() },
        Ok(Op::StopDaemon) => IpvsChange::StopDaemon { state: c.detail.clone() },
        Ok(Op::Unspecified) | Err(_) => {
            return err(format!("{f}.op"), format!("unknown IPVS operation {}", c.op));
        }
    })
}

impl From<&Change> for pb::Change {
    fn from(c: &Change) -> Self {
        use pb::change::Kind;
        let kind = match c {
            Change::AddAddress(a) => Kind::AddAddress(a.into()),
            Change::DelAddress(a) => Kind::DelAddress(a.into()),
            Change::AddRoute { route, replace } => {
                Kind::AddRoute(pb::RouteChange { route: Some(route.into()), replace: *replace })
            }
            Change::DelRoute(r) => Kind::DelRoute(r.into()),
            Change::SetSysctl { key, from, to } => {
                Kind::SetSysctl(pb::SysctlChange { key: key.clone(), from: from.clone(), to: to.clone() })
            }
            Change::Ipvs(op) => Kind::Ipvs(op.into()),
        };
        pb::Change { kind: Some(kind) }
    }
}

/// A wire change as a domain change.
pub fn change(f: &str, c: &pb::Change) -> Result<Change, WireError> {
    use pb::change::Kind;
    Ok(match required(f, &c.kind)? {
        Kind::AddAddress(a) => Change::AddAddress(address_ref(&format!("{f}.add_address"), a)?),
        Kind::DelAddress(a) => Change::DelAddress(address_ref(&format!("{f}.del_address"), a)?),
        Kind::AddRoute(r) => {
            let g = format!("{f}.add_route.route");
            Change::AddRoute { route: route_ref(&g, required(&g, &r.route)?)?, replace: r.replace }
        }
        Kind::DelRoute(r) => Change::DelRoute(route_ref(&format!("{f}.del_route"), r)?),
        Kind::SetSysctl(s) => {
            Change::SetSysctl { key: s.key.clone(), from: s.from.clone(), to: s.to.clone() }
        }
        Kind::Ipvs(op) => Change::Ipvs(ipvs_change(&format!("{f}.ipvs"), op)?),
    })
}

fn changes(f: &str, cs: &[pb::Change]) -> Result<Vec<Change>, WireError> {
    each(f, cs, change)
}

// ------------------------------------------------------------------ outcomes and reports

impl From<FailureKind> for pb::FailureKind {
    fn from(k: FailureKind) -> Self {
        match k {
            FailureKind::Exists => pb::FailureKind::Exists,
            FailureKind::NotFound => pb::FailureKind::NotFound,
            FailureKind::Permission => pb::FailureKind::Permission,
            FailureKind::Busy => pb::FailureKind::Busy,
            FailureKind::TimedOut => pb::FailureKind::TimedOut,
            FailureKind::Invalid => pb::FailureKind::Invalid,
            FailureKind::Unsupported => pb::FailureKind::Unsupported,
            FailureKind::Other => pb::FailureKind::Other,
        }
    }
}

impl From<&Failure> for pb::Failure {
    fn from(x: &Failure) -> Self {
        pb::Failure { kind: pb::FailureKind::from(x.kind) as i32, message: x.message.clone(), errno: x.errno }
    }
}

// A newer agent's kind this controller does not know is still a failure: `Other`.
fn failure(x: &pb::Failure) -> Failure {
    let kind = match pb::FailureKind::try_from(x.kind) {
        Ok(pb::FailureKind::Exists) => FailureKind::Exists,
        Ok(pb::FailureKind::NotFound) => FailureKind::NotFound,
        Ok(pb::FailureKind::Permission) => FailureKind::Permission,
        Ok(pb::FailureKind::Busy) => FailureKind::Busy,
        Ok(pb::FailureKind::TimedOut) => FailureKind::TimedOut,
        Ok(pb::FailureKind::Invalid) => FailureKind::Invalid,
        Ok(pb::FailureKind::Unsupported) => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure { kind, message: x.message.clone(), errno: x.errno }
}

impl From<&ActionResult> for pb::ActionResult {
    fn from(a: &ActionResult) -> Self {
        let (outcome, failure) = match &a.outcome {
            Outcome::Applied => (pb::Outcome::Applied, None),
            Outcome::Failed(x) => (pb::Outcome::Failed, Some(x.into())),
            Outcome::NotAttempted => (pb::Outcome::NotAttempted, None),
        };
        pb::ActionResult { change: Some((&a.change).into()), outcome: outcome as i32, failure }
    }
}

fn action_result(f: &str, a: &pb::ActionResult) -> Result<ActionResult, WireError> {
    let change = change(&format!("{f}.change"), required(&format!("{f}.change"), &a.change)?)?;
    let outcome = match pb::Outcome::try_from(a.outcome) {
        Ok(pb::Outcome::Applied) => Outcome::Applied,
        Ok(pb::Outcome::NotAttempted) => Outcome::NotAttempted,
        Ok(pb::Outcome::Failed) => Outcome::Failed(failure(required(&format!("{f}.failure"), &a.failure)?)),
        _ => return err(format!("{f}.outcome"), format!("unknown outcome {}", a.outcome)),
    };
    Ok(ActionResult { change, outcome })
}

impl From<&Report> for pb::Report {
    fn from(r: &Report) -> Self {
        pb::Report {
            node: r.node.clone(),
            generation: r.generation,
            actions: r.actions.iter().map(Into::into).collect(),
            foreign: r.foreign.clone(),
            drift_after: r.drift_after.iter().map(Into::into).collect(),
            converged: r.converged,
            revocation_number: r.revocation_number,
        }
    }
}

impl TryFrom<&pb::Report> for Report {
    type Error = WireError;

    fn try_from(r: &pb::Report) -> Result<Self, WireError> {
        Ok(Report {
            node: r.node.clone(),
            generation: r.generation,
            actions: each("actions", &r.actions, action_result)?,
            foreign: r.foreign.clone(),
            drift_after: changes("drift_after", &r.drift_after)?,
            converged: r.converged,
            revocation_number: r.revocation_number,
        })
    }
}

impl From<&Clock> for pb::ClockResponse {
    fn from(c: &Clock) -> Self {
        pb::ClockResponse {
            offset_ms: c.offset_ms,
            rtt_ms: c.rtt_ms,
            error: c.error.clone().unwrap_or_default(),
        }
    }
}

impl From<&pb::ClockResponse> for Clock {
    fn from(c: &pb::ClockResponse) -> Self {
        Clock {
            offset_ms: c.offset_ms,
            rtt_ms: c.rtt_ms,
            error: Some(c.error.clone()).filter(|e| !e.is_empty()),
        }
    }
}

// ------------------------------------------------------------------ events

impl From<EventKind> for pb::EventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Start => pb::EventKind::Start,
            EventKind::Apply => pb::EventKind::Apply,
            EventKind::Weight => pb::EventKind::Weight,
            EventKind::Health => pb::EventKind::Health,
            EventKind::Drift => pb::EventKind::Drift,
            EventKind::Heal => pb::EventKind::Heal,
            EventKind::Clear => pb::EventKind::Clear,
            EventKind::Decommission => pb::EventKind::Decommission,
            EventKind::Certificate => pb::EventKind::Certificate,
            EventKind::Vrrp => pb::EventKind::Vrrp,
        }
    }
}

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> Self {
        pb::Event {
            unix_ms: e.unix_ms,
            node: e.node.clone(),
            kind: pb::EventKind::from(e.kind) as i32,
            message: e.message.clone(),
            generation: e.generation,
            changes: e.changes.iter().map(Into::into).collect(),
            failure: e.failure.as_ref().map(Into::into),
            by: e.by.clone(),
        }
    }
}

impl TryFrom<&pb::Event> for Event {
    type Error = WireError;

    fn try_from(e: &pb::Event) -> Result<Self, WireError> {
        let kind = match pb::EventKind::try_from(e.kind) {
            Ok(pb::EventKind::Start) => EventKind::Start,
            Ok(pb::EventKind::Apply) => EventKind::Apply,
            Ok(pb::EventKind::Weight) => EventKind::Weight,
            Ok(pb::EventKind::Health) => EventKind::Health,
            Ok(pb::EventKind::Drift) => EventKind::Drift,
            Ok(pb::EventKind::Heal) => EventKind::Heal,
            Ok(pb::EventKind::Clear) => EventKind::Clear,
            Ok(pb::EventKind::Decommission) => EventKind::Decommission,
            Ok(pb::EventKind::Certificate) => EventKind::Certificate,
            Ok(pb::EventKind::Vrrp) => EventKind::Vrrp,
            _ => return err("kind", format!("unknown event kind {}", e.kind)),
        };
        Ok(Event {
            unix_ms: e.unix_ms,
            node: e.node.clone(),
            kind,
            message: e.message.clone(),
            generation: e.generation,
            changes: changes("changes", &e.changes)?,
            failure: e.failure.as_ref().map(failure),
            by: e.by.clone(),
        })
    }
}

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
                .map(|c| pb::CheckResult { check: c.check.clone(), ok: c.ok, detail: c.detail.clone() })
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
                .map(|c| CheckResult { check: c.check.clone(), ok: c.ok, detail: c.detail.clone() })
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

// ------------------------------------------------------------------ the IPVS table

impl From<&Stats> for pb::Stats {
    fn from(s: &Stats) -> Self {
        pb::Stats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

impl From<&pb::Stats> for Stats {
    fn from(s: &pb::Stats) -> Self {
        Stats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

impl From<Forward> for pb::Forwarding {
    fn from(f: Forward) -> Self {
        match f {
            Forward::Route => pb::Forwarding::Route,
            Forward::Tunnel => pb::Forwarding::Tunnel,
            Forward::Masq => pb::Forwarding::Masq,
            Forward::Local => pb::Forwarding::Local,
        }
    }
}

impl From<&IpvsTable> for pb::IpvsTableResponse {
    fn from(t: &IpvsTable) -> Self {
        pb::IpvsTableResponse {
            version: t.version.clone(),
            conn_tab_size: t.conn_tab_size,
            services: t
                .services
                .iter()
                .map(|s| pb::IpvsService {
                    key: Some((&s.key).into()),
                    scheduler: s.scheduler.clone(),
                    flags: s.flags,
                    timeout_s: s.timeout_s,
                    netmask: s.netmask,
                    stats: Some((&s.stats).into()),
                    destinations: s
                        .destinations
                        .iter()
                        .map(|d| pb::IpvsDestination {
                            address: d.address.to_string(),
                            forward: pb::Forwarding::from(d.forward) as i32,
                            weight: d.weight,
                            upper_threshold: d.upper_threshold,
                            lower_threshold: d.lower_threshold,
                            active_conns: d.active_conns,
                            inactive_conns: d.inactive_conns,
                            persist_conns: d.persist_conns,
                            stats: Some((&d.stats).into()),
                        })
                        .collect(),
                    managed: s.managed,
                })
                .collect(),
            timeouts: Some(pb::Timeouts {
                tcp: t.timeouts.tcp,
                tcp_fin: t.timeouts.tcp_fin,
                udp: t.timeouts.udp,
            }),
            connections: t.connections.iter().map(Into::into).collect(),
            connections_truncated: t.connections_truncated,
        }
    }
}

impl From<&Connection> for pb::Connection {
    fn from(c: &Connection) -> Self {
        pb::Connection {
            protocol: c.protocol.clone(),
            client: c.client.to_string(),
            virtual_address: c.virtual_address.to_string(),
            destination: c.destination.to_string(),
            state: c.state.clone(),
            expires_s: c.expires_s,
        }
    }
}

fn table_destination(f: &str, d: &pb::IpvsDestination) -> Result<TableDestination, WireError> {
    Ok(TableDestination {
        address: parse(&format!("{f}.address"), &d.address)?,
        forward: match pb::Forwarding::try_from(d.forward) {
            Ok(pb::Forwarding::Route) => Forward::Route,
            Ok(pb::Forwarding::Tunnel) => Forward::Tunnel,
            Ok(pb::Forwarding::Masq) => Forward::Masq,
            Ok(pb::Forwarding::Local) => Forward::Local,
            _ => return err(format!("{f}.forward"), format!("unknown forwarding method {}", d.forward)),
        },
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        active_conns: d.active_conns,
        inactive_conns: d.inactive_conns,
        persist_conns: d.persist_conns,
        stats: d.stats.as_ref().map(Stats::from).unwrap_or_default(),
    })
}

/// A wire IPVS table as a domain table.
pub fn ipvs_table(f: &str, t: &pb::IpvsTableResponse) -> Result<IpvsTable, WireError> {
    Ok(IpvsTable {
        version: t.version.clone(),
        conn_tab_size: t.conn_tab_size,
        services: each(&format!("{f}.services"), &t.services, |g, s| {
            Ok(TableService {
                key: service_key(&format!("{g}.key"), required(&format!("{g}.key"), &s.key)?)?,
                scheduler: s.scheduler.clone(),
                flags: s.flags,
                timeout_s: s.timeout_s,
                netmask: s.netmask,
                stats: s.stats.as_ref().map(Stats::from).unwrap_or_default(),
                destinations: each(&format!("{g}.destinations"), &s.destinations, table_destination)?,
                managed: s.managed,
            })
        })?,
        timeouts: t
            .timeouts
            .as_ref()
            .map(|x| Timeouts { tcp: x.tcp, tcp_fin: x.tcp_fin, udp: x.udp })
            .unwrap_or_default(),
        connections: each(&format!("{f}.connections"), &t.connections, |g, c| {
            Ok(Connection {
                protocol: c.protocol.clone(),
                client: parse(&format!("{g}.client"), &c.client)?,
                virtual_address: parse(&format!("{g}.virtual_address"), &c.virtual_address)?,
                destination: parse(&format!("{g}.destination"), &c.destination)?,
                state: c.state.clone(),
                expires_s: c.expires_s,
            })
        })?,
        connections_truncated: t.connections_truncated,
    })
}

impl TryFrom<&pb::IpvsTableResponse> for IpvsTable {
    type Error = WireError;

    fn try_from(t: &pb::IpvsTableResponse) -> Result<Self, WireError> {
        ipvs_table("table", t)
    }
}

// ------------------------------------------------------------------ small replies

impl TryFrom<&pb::LiveConnectionsResponse> for Vec<DestinationConnections> {
    type Error = WireError;

    fn try_from(r: &pb::LiveConnectionsResponse) -> Result<Self, WireError> {
        each("counts", &r.counts, |f, c| {
            Ok(DestinationConnections {
                destination: parse(&format!("{f}.destination"), &c.destination)?,
                live: c.live,
                total: c.total,
            })
        })
    }
}

impl From<&DestinationConnections> for pb::DestinationConnections {
    fn from(c: &DestinationConnections) -> Self {
        pb::DestinationConnections { destination: c.destination.to_string(), live: c.live, total: c.total }
    }
}

impl From<&pb::SetWeightResponse> for WeightReply {
    fn from(r: &pb::SetWeightResponse) -> Self {
        WeightReply { weight: r.weight, active_conns: r.active_conns, inactive_conns: r.inactive_conns }
    }
}

impl From<&WeightReply> for pb::SetWeightResponse {
    fn from(r: &WeightReply) -> Self {
        pb::SetWeightResponse {
            weight: r.weight,
            active_conns: r.active_conns,
            inactive_conns: r.inactive_conns,
        }
    }
}

impl From<&pb::ProbeResponse> for ProbeTally {
    fn from(r: &pb::ProbeResponse) -> Self {
        ProbeTally {
            sent: r.sent,
            answered: r.answered,
            failed: r.failed,
            bodies: r.bodies.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            errors: r.errors.clone(),
            elapsed_ms: r.elapsed_ms,
            sequence: r.sequence.clone(),
        }
    }
}

impl From<&ProbeTally> for pb::ProbeResponse {
    fn from(r: &ProbeTally) -> Self {
        pb::ProbeResponse {
            sent: r.sent,
            answered: r.answered,
            failed: r.failed,
            bodies: r.bodies.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            errors: r.errors.clone(),
            elapsed_ms: r.elapsed_ms,
            sequence: r.sequence.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Protocol, ServiceKey};

    fn key() -> ServiceKey {
        ServiceKey::Addr { protocol: Protocol::Tcp, address: "198.18.0.100:80".parse().unwrap() }
    }

    fn every_change() -> Vec<Change> {
        let k = key();
        let d: SocketAddr = "198.18.0.11:80".parse().unwrap();
        let route = RouteRef {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("198.18.0.1".parse().unwrap()),
            device: Some("eth0".into()),
        };
        let addr = AddressRef {
            interface: "lo".into(),
            address: "198.18.0.100/32".parse().unwrap(),
            label: Some("lo:0".into()),
        };
        vec![
            Change::AddAddress(addr.clone()),
            Change::DelAddress(AddressRef { label: None, ..addr }),
            Change::AddRoute { route: route.clone(), replace: true },
            Change::DelRoute(RouteRef { gateway: None, ..route }),
            Change::SetSysctl {
                key: "net.ipv4.conf.all.arp_ignore".into(),
                from: "0".into(),
                to: "1".into(),
            },
            Change::Ipvs(IpvsChange::AddService { service: k, scheduler: "wrr".into() }),
            Change::Ipvs(IpvsChange::EditService { service: k, scheduler: "rr".into() }),
            Change::Ipvs(IpvsChange::DelService { service: ServiceKey::Fwmark { mark: 7, ipv6: true } }),
            Change::Ipvs(IpvsChange::AddDestination { service: k, destination: d, weight: 3 }),
            Change::Ipvs(IpvsChange::EditDestination { service: k, destination: d, weight: 0 }),
            Change::Ipvs(IpvsChange::DelDestination { service: k, destination: d }),
            Change::Ipvs(IpvsChange::SetTimeouts),
            Change::Ipvs(IpvsChange::Zero { service: Some(k) }),
            Change::Ipvs(IpvsChange::Zero { service: None }),
            Change::Ipvs(IpvsChange::Flush),
            Change::Ipvs(IpvsChange::StartDaemon { interface: "eth1".into() }),
            Change::Ipvs(IpvsChange::StopDaemon { state: "backup".into() }),
        ]
    }

    #[test]
    fn a_report_with_every_change_and_outcome_survives_the_wire() {
        let failure =
            Failure { kind: FailureKind::Exists, message: "add service: already exists".into(), errno: 17 };
        let changes = every_change();
        let r = Report {
            node: "director".into(),
            generation: 4,
            actions: changes
                .iter()
                .enumerate()
                .map(|(i, c)| ActionResult {
                    change: c.clone(),
                    outcome: match i % 3 {
                        0 => Outcome::Applied,
                        1 => Outcome::Failed(failure.clone()),
                        _ => Outcome::NotAttempted,
                    },
                })
                .collect(),
            foreign: vec!["IPVS service UDP 198.18.0.9:53".into()],
            drift_after: changes.clone(),
            converged: false,
            revocation_number: 3,
        };
        assert_eq!(Report::try_from(&pb::Report::from(&r)).unwrap(), r);
        let e = Event {
            unix_ms: 1,
            node: "rs1".into(),
            kind: EventKind::Drift,
            message: "m".into(),
            generation: 4,
            changes,
            failure: Some(failure),
            by: "admin:alice".into(),
        };
        assert_eq!(Event::try_from(&pb::Event::from(&e)).unwrap(), e);
    }

    #[test]
    fn a_status_with_a_table_survives_the_wire() {
        let d: SocketAddr = "198.18.0.11:80".parse().unwrap();
        let s = NodeStatus {
            facts: Facts { node: "director".into(), ipvs: true, cpus: 2, ..Default::default() },
            generation: 3,
            has_spec: true,
            drift: vec![Change::Ipvs(IpvsChange::Flush)],
            foreign: vec![],
            checks: vec![CheckResult { check: "kernel has IPVS".into(), ok: true, detail: "1.2.1".into() }],
            ipvs: Some(IpvsTable {
                version: "1.2.1".into(),
                conn_tab_size: 4096,
                services: vec![TableService {
                    key: key(),
                    scheduler: "wrr".into(),
                    flags: 2,
                    timeout_s: 0,
                    netmask: u32::MAX,
                    stats: Stats { conns: 5, inpkts: 9, ..Default::default() },
                    destinations: vec![TableDestination {
                        address: d,
                        forward: Forward::Local,
                        weight: 2,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        active_conns: 1,
                        inactive_conns: 2,
                        persist_conns: 0,
                        stats: Stats::default(),
                    }],
                    managed: true,
                }],
                timeouts: Timeouts { tcp: 900, tcp_fin: 120, udp: 300 },
                connections: vec![Connection {
                    protocol: "TCP".into(),
                    client: "198.19.0.10:40000".parse().unwrap(),
                    virtual_address: "198.18.0.100:80".parse().unwrap(),
                    destination: d,
                    state: "ESTABLISHED".into(),
                    expires_s: 899,
                }],
                connections_truncated: true,
            }),
            clock: Clock { offset_ms: Some(-3), rtt_ms: Some(1), error: None },
            health: vec![DestinationHealth {
                service: key(),
                destination: d,
                up: true,
                quarantined: false,
                successes: 3,
                failures: 0,
                transitions: 1,
                probes: 9,
                last_error: String::new(),
            }],
            overrides: vec![WeightOverride { service: key(), destination: d, weight: 0 }],
            certificate: Some(CertificateInfo { serial: "0a1b".into(), not_after_unix: 1_900_000_000 }),
            vrrp: Some(VrrpStatus {
                instance: "web".into(),
                state: VrrpState::Master,
                priority: 150,
                since_unix_ms: 5,
                transitions: 2,
                error: None,
            }),
            sync_daemons: vec![SyncDaemon { state: "master".into(), interface: "eth1".into(), sync_id: 51 }],
            services: vec![ServiceHealth {
                service: key(),
                name: "web".into(),
                in_service: 1,
                total: 2,
                quorum: 2,
                degraded: true,
            }],
        };
        assert_eq!(NodeStatus::try_from(&pb::StatusResponse::from(&s)).unwrap(), s);
    }

    #[test]
    fn an_unreadable_reply_names_its_field() {
        let mut w = pb::Report::from(&Report {
            actions: vec![ActionResult {
                change: Change::Ipvs(IpvsChange::DelService { service: key() }),
                outcome: Outcome::Applied,
            }],
            ..Default::default()
        });
        w.actions[0].change.as_mut().unwrap().kind = None;
        assert_eq!(Report::try_from(&w).unwrap_err().field, "actions[0].change");
        let mut w = pb::Report::from(&Report {
            actions: vec![ActionResult {
                change: Change::Ipvs(IpvsChange::DelService { service: key() }),
                outcome: Outcome::Applied,
            }],
            ..Default::default()
        });
        w.actions[0].outcome = pb::Outcome::Failed as i32; // failed, but no failure given
        assert_eq!(Report::try_from(&w).unwrap_err().field, "actions[0].failure");
        let mut t = pb::IpvsTableResponse::from(&IpvsTable::default());
        t.connections.push(pb::Connection { client: "nope".into(), ..Default::default() });
        assert_eq!(IpvsTable::try_from(&t).unwrap_err().field, "table.connections[0].client");
    }

    #[test]
    fn a_change_reads_as_it_always_has() {
        let words: Vec<String> = every_change().iter().map(ToString::to_string).collect();
        assert_eq!(words[0], "add address 198.18.0.100/32 on lo label lo:0");
        assert_eq!(words[2], "replace route 0.0.0.0/0 via 198.18.0.1 dev eth0");
        assert_eq!(words[4], "set net.ipv4.conf.all.arp_ignore = 1 (was 0)");
        assert_eq!(words[8], "ipvs: add destination 198.18.0.11:80 to TCP 198.18.0.100:80");
    }
}
