//! What the kernel's IPVS table holds, as plain Rust values.
use std::net::{IpAddr, SocketAddr};

/// Transport protocol of an address-based service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// SCTP (`--sctp-service`).
    Sctp,
}

impl Protocol {
    /// IANA protocol number.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => crate::consts::IPPROTO_TCP,
            Protocol::Udp => crate::consts::IPPROTO_UDP,
            Protocol::Sctp => crate::consts::IPPROTO_SCTP,
        }
    }

    /// From an IANA protocol number.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            crate::consts::IPPROTO_TCP => Some(Protocol::Tcp),
            crate::consts::IPPROTO_UDP => Some(Protocol::Udp),
            crate::consts::IPPROTO_SCTP => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Upper-case name as `ipvsadm -L` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Identity of a virtual service in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// Protocol, VIP and port.
    Addr(Protocol, SocketAddr),
    /// Firewall mark and address family (`true` = IPv6).
    Fwmark(u32, bool),
}

impl ServiceKey {
    /// Whether the service is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Addr(_, a) => a.is_ipv6(),
            ServiceKey::Fwmark(_, v6) => *v6,
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Addr(p, a) => write!(f, "{} {a}", p.name()),
            ServiceKey::Fwmark(m, v6) => write!(f, "FWM {m}{}", if *v6 { " IPv6" } else { "" }),
        }
    }
}

/// Service flags (`IP_VS_SVC_F_*`), as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// Persistent (set by the kernel when a persistence timeout is given).
    pub const PERSISTENT: u32 = crate::consts::SVC_F_PERSISTENT;
    /// One-packet scheduling.
    pub const ONE_PACKET: u32 = crate::consts::SVC_F_ONEPACKET;
    /// `sh` fallback.
    pub const SH_FALLBACK: u32 = crate::consts::SVC_F_SCHED1;
    /// `sh` hashes the port.
    pub const SH_PORT: u32 = crate::consts::SVC_F_SCHED2;

    /// The flags user space sets (the kernel adds `HASHED` on its own).
    pub fn settable(self) -> u32 {
        self.0 & !crate::consts::SVC_F_HASHED
    }
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Protocol VIP:port or fwmark: what the kernel matches packets on.
    pub key: ServiceKey,
    /// Scheduler name.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` bits (persistent, hashed, one-packet, …).
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (0 = not persistent).
    pub timeout: u32,
    /// Persistence netmask: an IPv4 mask as a host-order u32, or an IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine name (e.g. `sip`), if any.
    pub pe_name: Option<String>,
}

impl Service {
    /// A service with the kernel's defaults (not persistent, /32 or /128 grouping).
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Self {
            key,
            scheduler: scheduler.to_owned(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: if key.is_ipv6() { 128 } else { u32::MAX },
            pe_name: None,
        }
    }
}

/// How a destination receives packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// Direct routing (`-g`).
    Route,
    /// IP-in-IP tunnel (`-i`).
    Tunnel,
    /// NAT (`-m`).
    Masq,
    /// The director itself.
    Local,
}

impl Forward {
    /// Connection flag value.
    pub fn flag(self) -> u32 {
        match self {
            Forward::Route => crate::consts::CONN_F_DROUTE,
            Forward::Tunnel => crate::consts::CONN_F_TUNNEL,
            Forward::Masq => crate::consts::CONN_F_MASQ,
            Forward::Local => crate::consts::CONN_F_LOCALNODE,
        }
    }

    /// From connection flags.
    pub fn from_flags(f: u32) -> Self {
        match f & crate::consts::CONN_F_FWD_MASK {
            crate::consts::CONN_F_DROUTE => Forward::Route,
            crate::consts::CONN_F_TUNNEL => Forward::Tunnel,
            crate::consts::CONN_F_LOCALNODE => Forward::Local,
            _ => Forward::Masq,
        }
    }

    /// The word `ipvsadm -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
            Forward::Local => "Local",
        }
    }
}

/// A destination (real server) as written to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Address and port.
    pub addr: SocketAddr,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight (0..=65535 in practice; the kernel takes an int).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
}

impl Destination {
    /// A DR destination with a weight and no thresholds.
    pub fn route(addr: SocketAddr, weight: u32) -> Self {
        Self { addr, forward: Forward::Route, weight, upper_threshold: 0, lower_threshold: 0 }
    }
}

/// Counters and rates (64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets (0 in DR: replies bypass the director).
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A service as dumped, with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service.
    pub service: Service,
    /// Its statistics.
    pub stats: Stats,
}

/// A destination as dumped, with its connections and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationEntry {
    /// The destination.
    pub dest: Destination,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Persistent connections (templates).
    pub persist_conns: u32,
    /// Counters of the destination since it was added.
    pub stats: Stats,
}

/// Connection timeouts in seconds (`ipvsadm --set`); 0 in a set leaves the value alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP, in seconds (0 leaves the kernel's value).
    pub udp: u32,
}

/// IPVS version and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Version code (`0x010201` = 1.2.1).
    pub version: u32,
    /// Size of the connection hash table.
    pub conn_tab_size: u32,
}

impl Info {
    /// `major.minor.patch`.
    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", (self.version >> 16) & 0xff, (self.version >> 8) & 0xff, self.version & 0xff)
    }
}

/// Role of a connection-synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonState {
    /// Sends the connection table.
    Master,
    /// Receives it.
    Backup,
}

/// A connection-synchronisation daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Master or backup.
    pub state: DaemonState,
    /// Multicast interface.
    pub mcast_ifn: String,
    /// Sync ID.
    pub sync_id: u32,
    /// UDP payload size, if set.
    pub sync_maxlen: Option<u16>,
    /// Multicast group, if not the default.
    pub mcast_group: Option<IpAddr>,
    /// Multicast port, if not the default.
    pub mcast_port: Option<u16>,
    /// Multicast TTL, if not the default.
    pub mcast_ttl: Option<u8>,
}

impl Daemon {
    /// A daemon with the kernel's defaults for everything optional.
    pub fn new(state: DaemonState, mcast_ifn: &str, sync_id: u32) -> Self {
        Self {
            state,
            mcast_ifn: mcast_ifn.to_owned(),
            sync_id,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }
}
