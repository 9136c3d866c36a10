//! Who a node is and how it is doing: facts, checks, clock, health, VRRP, certificate.
use std::net::SocketAddr;

use serde::Serialize;

use super::changes::Change;
use super::table::IpvsTable;
use super::text::as_text;
use crate::spec::ServiceKey;

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
    /// Logical CPUs the node's kernel sees.
    pub cpus: u32,
    /// Total memory as the kernel reports it, in bytes.
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
    /// The check's name as the spec gives it (e.g. `sysctl net.ipv4.conf.all.arp_ignore`).
    pub check: String,
    /// Whether the check's condition holds now.
    pub ok: bool,
    /// The check could not decide (not ok, and not a failure either): a warning.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
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
    /// The virtual service the destination belongs to.
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
    /// The virtual service the destination belongs to.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// RIP:port.
    pub destination: SocketAddr,
    /// The weight in force; 0 while draining.
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
    /// Directors and the router in the cluster's BGP.
    pub bgp: Option<super::bgp::BgpStatus>,
    /// The router: who answers ARP for each VIP (its ARP watch); `None`: no watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp_watch: Option<super::arp::ArpWatchStatus>,
    /// A director: its marking table's rules as found, with their counters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<MarkCount>,
}

/// A marking rule found in a director's table, and what it has marked since it was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkCount {
    /// The rule.
    pub rule: crate::spec::MarkRule,
    /// Packets it marked.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A director's checked service: destinations in service against its quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceHealth {
    /// The virtual service, by its key.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// Its name in the definition.
    pub name: String,
    /// Destinations not quarantined.
    pub in_service: u32,
    /// Every destination the spec gives the service.
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
    /// Starting: keepalived says INIT, or has said nothing yet.
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
