//! Virtual services and their destinations, as IPVS holds them.
use std::net::SocketAddr;

use super::checks::HealthCheckSpec;
use super::key::ServiceKey;
use serde::{Deserialize, Serialize};

/// IPVS forwarding method of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarding {
    /// Direct routing (`-g`): only the destination MAC is rewritten.
    Route,
    /// IP-in-IP tunnel (`-i`).
    Tunnel,
    /// NAT (`-m`).
    Masq,
}

impl Forwarding {
    /// The word `ipvsadm -L` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Forwarding::Route => "Route",
            Forwarding::Tunnel => "Tunnel",
            Forwarding::Masq => "Masq",
        }
    }
}

/// Session persistence of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// Timeout in seconds.
    pub timeout_s: u32,
    /// Netmask (IPv4) or prefix length (IPv6) grouping clients.
    pub netmask: u32,
}

/// Service flags beyond persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceFlag {
    /// One-packet scheduling (UDP): every datagram is scheduled on its own.
    OnePacket,
    /// `sh` scheduler: fall back to another server when the hashed one is unavailable.
    ShFallback,
    /// `sh` scheduler: hash the source port too.
    ShPort,
}

impl ServiceFlag {
    /// The word used in definitions and by `ipvsadm -b`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceFlag::OnePacket => "one-packet",
            ServiceFlag::ShFallback => "sh-fallback",
            ServiceFlag::ShPort => "sh-port",
        }
    }
}

/// One IPVS virtual service with its destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualServiceSpec {
    /// Service name, from the definition.
    pub name: String,
    /// Kernel identity.
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wrr`, ...).
    pub scheduler: String,
    /// Persistence, when the service is persistent.
    pub persistence: Option<Persistence>,
    /// Further flags.
    pub flags: Vec<ServiceFlag>,
    /// Real servers.
    pub destinations: Vec<DestinationSpec>,
    /// Health check the director runs against every destination.
    pub health_check: Option<HealthCheckSpec>,
    /// Takes traffic (weight 1, beside the healthy destinations) while the service is
    /// below its quorum: by default, while every destination is quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry: Option<DestinationSpec>,
    /// Destinations in service below which the service is degraded (keepalived `quorum`,
    /// counted in destinations rather than summed weights). At least 1.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Dead band around the quorum (keepalived `hysteresis`): degraded below
    /// `quorum - hysteresis`, healthy again from `quorum + hysteresis`; in between the
    /// service keeps its state.
    #[serde(default)]
    pub hysteresis: u32,
    /// An executable and its arguments, run (never through a shell) on every health
    /// transition of the service: a destination down or up, quorum lost or regained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

pub(super) fn one() -> u32 {
    1
}

impl VirtualServiceSpec {
    /// The check that applies to `d`: its own, the service's, or none.
    pub fn check_of<'a>(&'a self, d: &'a DestinationSpec) -> Option<&'a HealthCheckSpec> {
        match &d.check {
            DestinationCheck::Service => self.health_check.as_ref(),
            DestinationCheck::Own(h) => Some(h),
            DestinationCheck::Off => None,
        }
    }
}

/// Which health check a destination gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationCheck {
    /// The service's check (or none, if the service has none).
    #[default]
    Service,
    /// A check of its own: the service's with this destination's overrides merged in.
    Own(Box<HealthCheckSpec>),
    /// Not checked, although the service is (`check = { kind = "none" }`).
    Off,
}

impl DestinationCheck {
    fn is_service(&self) -> bool {
        matches!(self, DestinationCheck::Service)
    }
}

/// One real server behind a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSpec {
    /// Node name of the real server.
    pub node: String,
    /// RIP and port (in DR the port is the virtual port).
    pub address: SocketAddr,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Scheduling weight, 0..=65535 (0: no new connections).
    pub weight: u32,
    /// Upper connection threshold, 0 for none.
    pub upper_threshold: u32,
    /// Lower connection threshold, 0 for none.
    pub lower_threshold: u32,
    /// Its health check, when not the service's.
    #[serde(default, skip_serializing_if = "DestinationCheck::is_service")]
    pub check: DestinationCheck,
}
