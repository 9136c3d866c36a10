//! What agents answer, as domain types: the same values the agent builds and the
//! controller decodes once, at its fleet boundary ([`crate::wire`] converts both ways and
//! checks every field on the way in). Nothing past that boundary reads a `pb::*` reply.
//!
//! Text is a view: every type here prints itself ([`std::fmt::Display`]) in the words
//! `lvsctl` has always used, and serialises (serde) to the JSON `-o json` prints.
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::spec::ServiceKey;

/// Serialise through `Display` (service keys as `TCP 198.18.0.100:80`, as in the text).
pub fn as_text<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_as_text<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

// ------------------------------------------------------------------ changes

/// An address as a change names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AddressRef {
    /// Interface.
    pub interface: String,
    /// Address and prefix.
    pub address: IpNet,
    /// Label (`lo:0`), when it has one other than the interface's name.
    pub label: Option<String>,
}

/// A route as a change names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RouteRef {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output device.
    pub device: Option<String>,
}

impl fmt::Display for RouteRef {
    /// `0.0.0.0/0 via 198.18.0.1 dev eth0`, as `ip route` words it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// One change to the IPVS table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IpvsChange {
    /// A new virtual service.
    AddService {
        /// Which.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// Its scheduler.
        scheduler: String,
    },
    /// A virtual service's scheduler, flags or persistence changed.
    EditService {
        /// Which.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// Its scheduler.
        scheduler: String,
    },
    /// A virtual service removed.
    DelService {
        /// Which.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
    },
    /// A new destination.
    AddDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
        /// Its weight.
        weight: u32,
    },
    /// A destination's weight, forwarding or thresholds changed.
    EditDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
        /// Its new weight.
        weight: u32,
    },
    /// A destination removed.
    DelDestination {
        /// Of which service.
        #[serde(serialize_with = "as_text")]
        service: ServiceKey,
        /// RIP:port.
        destination: SocketAddr,
    },
    /// Connection timeouts set.
    SetTimeouts,
    /// Counters zeroed (of one service, or all).
    Zero {
        /// Which service; all when absent.
        #[serde(serialize_with = "opt_as_text")]
        service: Option<ServiceKey>,
    },
    /// The whole table flushed.
    Flush,
    /// A connection-sync daemon started on an interface.
    StartDaemon {
        /// The multicast interface.
        interface: String,
    },
    /// A connection-sync daemon stopped.
    StopDaemon {
        /// `master` or `backup`.
        state: String,
    },
}

impl IpvsChange {
    /// The service it concerns, if one.
    pub fn service(&self) -> Option<&ServiceKey> {
        match self {
            IpvsChange::AddService { service, .. }
            | IpvsChange::EditService { service, .. }
            | IpvsChange::DelService { service }
            | IpvsChange::AddDestination { service, .. }
            | IpvsChange::EditDestination { service, .. }
            | IpvsChange::DelDestination { service, .. } => Some(service),
            IpvsChange::Zero { service } => service.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for IpvsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsChange::AddService { service, .. } => write!(f, "add service {service}"),
            IpvsChange::EditService { service, .. } => write!(f, "edit service {service}"),
            IpvsChange::DelService { service } => write!(f, "delete service {service}"),
            IpvsChange::AddDestination { service, destination, .. } => {
                write!(f, "add destination {destination} to {service}")
            }
            IpvsChange::EditDestination { service, destination, .. } => {
                write!(f, "edit destination {destination} of {service}")
            }
            IpvsChange::DelDestination { service, destination } => {
                write!(f, "delete destination {destination} from {service}")
            }
            IpvsChange::SetTimeouts => f.write_str("set timeouts"),
            IpvsChange::Zero { service: Some(k) } => write!(f, "zero counters of {k}"),
            IpvsChange::Zero { service: None } => f.write_str("zero all counters"),
            IpvsChange::Flush => f.write_str("flush the IPVS table"),
            IpvsChange::StartDaemon { interface } => write!(f, "start sync daemon on {interface}"),
            IpvsChange::StopDaemon { state } => write!(f, "stop {state} sync daemon"),
        }
    }
}

/// One change to a node: what a plan proposes, an apply reports, and drift is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Add an address.
    AddAddress(AddressRef),
    /// Remove an address.
    DelAddress(AddressRef),
    /// Add (or, with `replace`, swap) a route.
    AddRoute {
        /// The route.
        route: RouteRef,
        /// Replace an existing route to the same destination.
        replace: bool,
    },
    /// Remove a route.
    DelRoute(RouteRef),
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
    Ipvs(IpvsChange),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = |a: &AddressRef| a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
        match self {
            Change::AddAddress(a) => write!(f, "add address {} on {}{}", a.address, a.interface, label(a)),
            Change::DelAddress(a) => {
                write!(f, "remove address {} from {}{}", a.address, a.interface, label(a))
            }
            Change::AddRoute { route, replace } => {
                write!(f, "{} route {route}", if *replace { "replace" } else { "add" })
            }
            Change::DelRoute(r) => write!(f, "remove route {r}"),
            Change::SetSysctl { key, from, to } => write!(f, "set {key} = {to} (was {from})"),
            Change::Ipvs(op) => write!(f, "ipvs: {op}"),
        }
    }
}

// ------------------------------------------------------------------ outcomes

/// Why a change failed, by kind: decided once, by the agent, from the kernel's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Something already stands there (EEXIST).
    Exists,
    /// What it names is gone (ENOENT, ESRCH, ENODEV).
    NotFound,
    /// Not allowed (EPERM, EACCES).
    Permission,
    /// Try again (EBUSY, EAGAIN, EINTR).
    Busy,
    /// The kernel did not answer within the deadline.
    TimedOut,
    /// The kernel refused the value (EINVAL, ERANGE).
    Invalid,
    /// Not supported here (EOPNOTSUPP, EAFNOSUPPORT, no IPVS).
    Unsupported,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The kind of a kernel errno.
    pub fn of_errno(errno: i32) -> Self {
        // Linux errno values (asm-generic/errno-base.h, errno.h).
        match errno {
            17 => FailureKind::Exists,                // EEXIST
            2 | 3 | 19 => FailureKind::NotFound,      // ENOENT, ESRCH, ENODEV
            1 | 13 => FailureKind::Permission,        // EPERM, EACCES
            16 | 11 | 4 => FailureKind::Busy,         // EBUSY, EAGAIN, EINTR
            110 | 62 => FailureKind::TimedOut,        // ETIMEDOUT, ETIME
            22 | 34 => FailureKind::Invalid,          // EINVAL, ERANGE
            95 | 97 | 93 => FailureKind::Unsupported, // EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT
            _ => FailureKind::Other,
        }
    }
}

/// A failed change: its kind, the agent's sentence and the kernel's errno (0 when the
/// failure was not the kernel's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Kind.
    pub kind: FailureKind,
    /// The sentence.
    pub message: String,
    /// The errno, or 0.
    pub errno: i32,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "failure", rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Applied,
    /// Tried and failed.
    Failed(Failure),
    /// Not tried: an earlier change it depends on failed.
    NotAttempted,
}

/// One change and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    /// The change.
    pub change: Change,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A node's answer to plan, apply or clear: every change with its outcome (a plan's are
/// all "not attempted"), what it keeps but does not own, and what still differs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// Node (not in JSON: every view that prints a report names its node already).
    #[serde(skip_serializing)]
    pub node: String,
    /// Generation of the spec.
    pub generation: u64,
    /// Changes, in apply order.
    pub actions: Vec<ActionResult>,
    /// Objects present that the spec does not mention and the agent did not create.
    pub foreign: Vec<String>,
    /// What still differs after the apply.
    pub drift_after: Vec<Change>,
    /// Every change applied and nothing left to differ.
    pub converged: bool,
    /// The CRL number of the revocation list the answering agent holds (0: none; set in
    /// answers to Plan, where the controller decides whether to send its list).
    #[serde(skip_serializing, default)]
    pub revocation_number: u64,
}

impl Report {
    /// How many changes were applied.
    pub fn applied(&self) -> usize {
        self.actions.iter().filter(|a| a.outcome == Outcome::Applied).count()
    }
}

// ------------------------------------------------------------------ events

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The agent re-applied its stored spec at start-up.
    Start,
    /// An admin's apply.
    Apply,
    /// An admin's live weight.
    Weight,
    /// A destination's health check changed state.
    Health,
    /// The node no longer matches its spec.
    Drift,
    /// The agent re-applied its spec after drift.
    Heal,
    /// An admin's `ipvs clear`.
    Clear,
    /// The node was taken out of the cluster (`lvsctl node remove`).
    Decommission,
    /// The agent's certificate or revocation list changed (enrolment, rotation, revoke).
    Certificate,
    /// This director's VRRP state changed.
    Vrrp,
}

impl EventKind {
    /// The word `lvsctl events` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Apply => "apply",
            EventKind::Weight => "weight",
            EventKind::Health => "health",
            EventKind::Drift => "drift",
            EventKind::Heal => "heal",
            EventKind::Clear => "ipvs",
            EventKind::Decommission => "decommission",
            EventKind::Certificate => "certificate",
            EventKind::Vrrp => "vrrp",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most changes an event carries (drift of a whole table is summarised, not shipped).
pub const EVENT_MAX_CHANGES: usize = 64;

/// One thing that happened on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Node.
    pub node: String,
    /// About what.
    pub kind: EventKind,
    /// What, in words.
    pub message: String,
    /// The spec generation it concerns (0: none).
    pub generation: u64,
    /// Drift: what differs; heal, apply, clear: what was done (at most
    /// [`EVENT_MAX_CHANGES`]).
    pub changes: Vec<Change>,
    /// The apply or heal failed as a whole.
    pub failure: Option<Failure>,
    /// Who asked (`admin:alice`); empty when the agent acted on its own (start, drift,
    /// heal, health).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub by: String,
}

// ------------------------------------------------------------------ status

/// Who and what a node is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Facts {
    /// Node name (from its certificate's configuration).
    pub node: String,
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// Whether IPVS answers.
    pub ipvs: bool,
    /// IPVS version (`1.2.1`).
    pub ipvs_version: String,
    /// Schedulers the kernel has modules for.
    pub schedulers: Vec<String>,
    /// CPUs.
    pub cpus: u32,
    /// Memory.
    pub memory_total_bytes: u64,
    /// Memory in use.
    pub memory_used_bytes: u64,
    /// The agent's version.
    pub agent_version: String,
    /// The agent's resident memory.
    pub agent_rss_bytes: u64,
    /// Host uptime.
    pub uptime_s: u64,
}

/// One local check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Which.
    pub check: String,
    /// Passed.
    pub ok: bool,
    /// In words.
    pub detail: String,
}

/// A node's clock against its NTP source (in JSON: `clock_offset_ms`, `clock_rtt_ms`,
/// `clock_error` beside the node's other fields, as `lvsctl status -o json` has always said).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Clock {
    /// Offset, when measured.
    #[serde(rename = "clock_offset_ms")]
    pub offset_ms: Option<i64>,
    /// Round trip of the measurement.
    #[serde(rename = "clock_rtt_ms")]
    pub rtt_ms: Option<u64>,
    /// Why it was not measured.
    #[serde(rename = "clock_error")]
    pub error: Option<String>,
}

/// A director's view of one destination's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationHealth {
    /// Service.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// RIP:port.
    pub destination: SocketAddr,
    /// Last decision: up.
    pub up: bool,
    /// Out of service by the health check.
    pub quarantined: bool,
    /// Successes in a row.
    pub successes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// State changes so far.
    pub transitions: u64,
    /// Probes so far.
    pub probes: u64,
    /// The last failure's reason.
    pub last_error: String,
}

impl DestinationHealth {
    /// At least one probe finished.
    pub fn checked(&self) -> bool {
        self.probes > 0
    }
}

/// A live weight an admin set (`lvsctl rs drain|weight`), in force over the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightOverride {
    /// Service.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// RIP:port.
    pub destination: SocketAddr,
    /// Weight.
    pub weight: u32,
}

/// Everything a node says of itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NodeStatus {
    /// Who and what it is.
    pub facts: Facts,
    /// The accepted spec's generation.
    pub generation: u64,
    /// Whether it has accepted any spec.
    pub has_spec: bool,
    /// What differs from its spec now.
    pub drift: Vec<Change>,
    /// Objects it keeps but does not own.
    pub foreign: Vec<String>,
    /// Local checks.
    pub checks: Vec<CheckResult>,
    /// Directors: the IPVS table.
    pub ipvs: Option<IpvsTable>,
    /// The clock.
    #[serde(flatten)]
    pub clock: Clock,
    /// Directors: every destination's health check.
    pub health: Vec<DestinationHealth>,
    /// Live weights set by an admin.
    pub overrides: Vec<WeightOverride>,
    /// The certificate the agent presents now (agents before rotation: none).
    pub certificate: Option<CertificateInfo>,
    /// Directors in a VRRP instance: its state here.
    pub vrrp: Option<VrrpStatus>,
    /// The kernel's IPVS connection-sync daemons.
    pub sync_daemons: Vec<SyncDaemon>,
    /// Directors: every checked service against its quorum.
    pub services: Vec<ServiceHealth>,
}

/// A director's checked service: destinations in service against its quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceHealth {
    /// Service.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// Its name in the definition.
    pub name: String,
    /// Destinations not quarantined.
    pub in_service: u32,
    /// Destinations.
    pub total: u32,
    /// The quorum.
    pub quorum: u32,
    /// Below quorum (with hysteresis): the sorry server, if any, takes traffic.
    pub degraded: bool,
}

/// A director's VRRP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VrrpState {
    /// Starting.
    Init,
    /// Not holding the VIPs; ready to take over.
    Backup,
    /// Holding the VIPs.
    Master,
    /// Its interface or engine failed.
    Fault,
    /// The engine stopped.
    Stopped,
}

impl VrrpState {
    /// As `status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
            VrrpState::Stopped => "STOPPED",
        }
    }
}

/// One director's view of its VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VrrpStatus {
    /// Instance name.
    pub instance: String,
    /// State now.
    pub state: VrrpState,
    /// Its priority.
    pub priority: u8,
    /// Since when (ms since the epoch).
    pub since_unix_ms: u64,
    /// State changes since the agent started.
    pub transitions: u64,
    /// Why the engine is not running, while it is restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A running IPVS connection-sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncDaemon {
    /// `master` or `backup`.
    pub state: String,
    /// Its interface.
    pub interface: String,
    /// Its sync id.
    pub sync_id: u32,
}

/// A certificate, as far as rotation and revocation care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// Serial number, lower-case hex without separators.
    pub serial: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after_unix: u64,
}

impl CertificateInfo {
    /// Whole days from `now_unix` until expiry (negative: expired).
    pub fn days_left(&self, now_unix: u64) -> i64 {
        // Saturating: a lying agent's expiry must not overflow (and panic) the reader.
        let after = i64::try_from(self.not_after_unix).unwrap_or(i64::MAX);
        let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
        after.saturating_sub(now).div_euclid(86_400)
    }
}

impl NodeStatus {
    /// The health of one destination of one service.
    pub fn health_of(&self, service: &ServiceKey, destination: SocketAddr) -> Option<&DestinationHealth> {
        self.health.iter().find(|h| h.service == *service && h.destination == destination)
    }

    /// The admin weight of one destination of one service.
    pub fn override_of(&self, service: &ServiceKey, destination: SocketAddr) -> Option<u32> {
        self.overrides
            .iter()
            .find(|o| o.service == *service && o.destination == destination)
            .map(|o| o.weight)
    }
}

// ------------------------------------------------------------------ the IPVS table

/// How IPVS forwards to a destination, as observed (a spec never says `Local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// Direct routing (`-g`).
    Route,
    /// IP-in-IP (`-i`).
    Tunnel,
    /// NAT (`-m`).
    Masq,
    /// The director itself.
    Local,
}

impl Forward {
    /// The word `ipvsadm -L` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
            Forward::Local => "Local",
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters and rates of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[allow(missing_docs)] // the kernel's own names (struct ip_vs_stats_user)
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One destination in the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDestination {
    /// RIP:port.
    pub address: SocketAddr,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight.
    pub weight: u32,
    /// Connection threshold (0: none).
    pub upper_threshold: u32,
    /// Threshold to resume at.
    pub lower_threshold: u32,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Persistence templates.
    pub persist_conns: u32,
    /// Counters.
    pub stats: Stats,
}

/// One virtual service in the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableService {
    /// Identity.
    #[serde(serialize_with = "as_text")]
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout.
    pub timeout_s: u32,
    /// Persistence netmask.
    pub netmask: u32,
    /// Counters.
    pub stats: Stats,
    /// Destinations.
    pub destinations: Vec<TableDestination>,
    /// Created by this agent (else foreign).
    pub managed: bool,
}

/// Connection timeouts (`ipvsadm --set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Timeouts {
    /// TCP.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// One connection entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// `TCP`, `UDP`, `SCTP`.
    pub protocol: String,
    /// CIP:port.
    pub client: SocketAddr,
    /// VIP:port.
    pub virtual_address: SocketAddr,
    /// RIP:port.
    pub destination: SocketAddr,
    /// `ESTABLISHED`, `FIN_WAIT`, …
    pub state: String,
    /// Seconds left.
    pub expires_s: u32,
}

/// A director's IPVS table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IpvsTable {
    /// `1.2.1`.
    pub version: String,
    /// Connection hash table size.
    pub conn_tab_size: u32,
    /// Services.
    pub services: Vec<TableService>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Connections, when asked for (at most the number asked for).
    pub connections: Vec<Connection>,
    /// The table held more connections than were asked for.
    #[serde(default)]
    pub connections_truncated: bool,
}

impl IpvsTable {
    /// The table in ipvsadm's order: services and their destinations sorted by key, so
    /// every view (and every agent) shows the same order.
    pub fn sorted(mut self) -> Self {
        // By protocol word, then address (`FWM` < `SCTP` < `TCP` < `UDP`), as ipvsadm users
        // read the table.
        self.services.sort_by_key(|s| match s.key {
            ServiceKey::Addr { protocol, address } => (protocol.as_str(), Some(address), 0),
            ServiceKey::Fwmark { mark, .. } => ("FWM", None, mark),
        });
        for s in &mut self.services {
            s.destinations.sort_by_key(|d| d.address);
        }
        self
    }
}

// ------------------------------------------------------------------ small replies

/// Connections to one destination, counted by the director's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DestinationConnections {
    /// RIP:port.
    pub destination: SocketAddr,
    /// Live: ESTABLISHED and reset recently.
    pub live: u32,
    /// All entries.
    pub total: u32,
}

/// A destination's weight after a live change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightReply {
    /// Weight in force.
    pub weight: u32,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
}

/// The tally of N HTTP requests sent from a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProbeTally {
    /// Requests sent.
    pub sent: u32,
    /// Answered.
    pub answered: u32,
    /// Failed.
    pub failed: u32,
    /// First line of the body → count.
    pub bodies: std::collections::BTreeMap<String, u32>,
    /// Distinct errors, first few.
    pub errors: Vec<String>,
    /// How long it took.
    pub elapsed_ms: u64,
    /// Body first lines in order of completion (count ≤ 64).
    pub sequence: Vec<String>,
}

#[cfg(test)]
mod lying_agents {
    use super::*;

    #[test]
    fn an_expiry_past_any_clock_does_not_overflow() {
        let c = CertificateInfo { serial: "01".into(), not_after_unix: u64::MAX };
        assert!(c.days_left(0) > 0);
        assert!(c.days_left(u64::MAX) <= 0);
    }
}
