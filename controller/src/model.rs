//! The validated cluster: typed addresses, resolved references. Built only by
//! [`crate::validate`], so every value here already satisfies the rules of DR.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use lvs_proto::spec::{DestinationCheck, HealthCheckSpec, Persistence, Role, ServiceFlag, ServiceKey};

/// A checked cluster definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Definition generation (≥ 1).
    pub generation: u64,
    /// NTP source and allowed offset.
    pub time: TimeSource,
    /// Physical segments.
    pub lans: Vec<Lan>,
    /// Every host that runs an agent, in definition order.
    pub nodes: Vec<Node>,
    /// Virtual services.
    pub services: Vec<Service>,
    /// IPVS connection timeouts for every director (`[ipvs] timeouts`), when set.
    pub ipvs_timeouts: Option<lvs_proto::spec::IpvsTimeouts>,
    /// VRRP instances: directors sharing their VIPs (director HA).
    pub vrrp: Vec<VrrpGroup>,
    /// Active-active directors behind ECMP (`[bgp]`), when defined.
    pub bgp: Option<BgpGroup>,
}

/// `[bgp]`, checked: the router and the directors that announce their VIPs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpGroup {
    /// Whom the directors peer with.
    pub router: BgpRouter,
    /// Its ASN.
    pub router_asn: u32,
    /// The directors' ASN.
    pub director_asn: u32,
    /// The directors, in definition order.
    pub directors: Vec<String>,
    /// The LAN the sessions run on (the router's and every director's).
    pub lan: String,
    /// Hold time.
    pub hold: Duration,
    /// BFD interval.
    pub bfd_interval: Duration,
    /// BFD multiplier.
    pub bfd_multiplier: u8,
}

/// The far end of the directors' sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BgpRouter {
    /// The definition's router node (its agent runs the router's BIRD).
    Node(String),
    /// Routers no agent runs (network gear): the directors peer with each; their side is
    /// configured by hand from `lvsctl peering`.
    External(Vec<ExternalRouter>),
}

/// A router outside the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRouter {
    /// Its name (sessions, status, metrics).
    pub name: String,
    /// Its address on the directors' LAN.
    pub address: IpAddr,
}

impl BgpGroup {
    /// The router node whose agent peers with the directors, if it is one of ours.
    pub fn router_node(&self) -> Option<&str> {
        match &self.router {
            BgpRouter::Node(n) => Some(n),
            BgpRouter::External(_) => None,
        }
    }
}

/// One VRRP instance: directors on one LAN holding the same VIPs, one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpGroup {
    /// Instance name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Advert interval.
    pub advert: Duration,
    /// A higher priority coming back takes over.
    pub preempt: bool,
    /// IPVS connection sync on.
    pub sync_daemon: bool,
    /// Directors and priorities, in definition order.
    pub members: Vec<(String, u8)>,
    /// The LAN the VIPs and adverts are on.
    pub lan: String,
}

impl Cluster {
    /// The VRRP instance `node` is in, if any.
    pub fn vrrp_of(&self, node: &str) -> Option<&VrrpGroup> {
        self.vrrp.iter().find(|g| g.members.iter().any(|(n, _)| n == node))
    }

    /// Whether `node` is a director of `[bgp]` (announces its VIPs, holds them on `lo`).
    pub fn ecmp_director(&self, node: &str) -> bool {
        self.bgp.as_ref().is_some_and(|b| b.directors.iter().any(|d| d == node))
    }
}

/// Where clocks sync from and how far they may drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSource {
    /// NTP server.
    pub ntp_server: IpAddr,
    /// Largest allowed offset (the article: 1 s).
    pub max_offset: Duration,
}

/// A physical segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    /// The segment's name, which nodes' interfaces refer to.
    pub name: String,
    /// The segment's subnets, at most one per family (dual stack: both); every address on
    /// it falls inside one of them.
    pub cidrs: Vec<IpNet>,
}

impl Lan {
    /// The LAN's subnet of `ip`'s family, if it has one.
    pub fn cidr_for(&self, ip: IpAddr) -> Option<IpNet> {
        self.cidrs.iter().copied().find(|c| c.addr().is_ipv6() == ip.is_ipv6())
    }

    /// The IPv4 subnet if any, else the first (for the lab's hosts and messages).
    pub fn primary(&self) -> IpNet {
        self.cidrs.iter().copied().find(|c| c.addr().is_ipv4()).unwrap_or(self.cidrs[0])
    }
}

/// A host with an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique in the cluster; also the agent certificate's name.
    pub name: String,
    /// Router, director or real server: what the planner gives it to do.
    pub role: Role,
    /// Agent endpoint `host:port`.
    pub agent: String,
    /// LAN interface addresses: one entry per address, so a dual-stack interface appears
    /// twice (same name and LAN, one address per family), IPv4 first as written.
    pub interfaces: Vec<Interface>,
    /// Default gateways, at most one per family.
    pub gateways: Vec<IpAddr>,
    /// VIPs held (directors).
    pub vips: Vec<Vip>,
}

impl Node {
    /// The node's interface on `lan`, if any (its first address there: IPv4 on a dual-stack LAN).
    pub fn on_lan(&self, lan: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.lan == lan)
    }

    /// The node's address on `lan` of the family of `like`, if it has one.
    pub fn on_lan_like(&self, lan: &str, like: IpAddr) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.lan == lan && i.address.addr().is_ipv6() == like.is_ipv6())
    }
}

/// An interface address on a LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// LAN name.
    pub lan: String,
    /// Address with prefix.
    pub address: IpNet,
}

/// A VIP alias on a director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Address with prefix.
    pub address: IpNet,
    /// The director's interface the VIP is added to.
    pub interface: String,
    /// Label (`eth1:0`).
    pub label: String,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Unique in the cluster; commands and metrics name the service by it.
    pub name: String,
    /// Kernel identity.
    pub key: ServiceKey,
    /// The VIP (hidden on every real server).
    pub vip: IpAddr,
    /// IPVS scheduler module name (`rr`, `wlc`, `sh`, …).
    pub scheduler: String,
    /// Sticky clients (`ipvsadm -p`/`-M`), when set.
    pub persistence: Option<Persistence>,
    /// Scheduler and service flags passed to IPVS unchanged.
    pub flags: Vec<ServiceFlag>,
    /// Directors holding it.
    pub directors: Vec<String>,
    /// Health check.
    pub check: Option<HealthCheckSpec>,
    /// Real servers.
    pub real_servers: Vec<RealServer>,
    /// Takes traffic while the service is below its quorum.
    pub sorry: Option<RealServer>,
    /// Real servers in service below which the service is degraded.
    pub quorum: u32,
    /// Dead band around the quorum.
    pub hysteresis: u32,
    /// Run on every health transition (argv, no shell).
    pub notify: Vec<String>,
    /// A fwmark service: what its directors mark for it on its VIP (empty: the admin's
    /// own rules do).
    pub marks: Vec<Marking>,
}

/// What a fwmark service's directors mark for it: packets of `protocol` to its VIP on one
/// of `ports` (all ports when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marking {
    /// TCP, UDP or SCTP.
    pub protocol: lvs_proto::spec::Protocol,
    /// Inclusive ranges, normalized (sorted, merged).
    pub ports: Vec<lvs_proto::spec::PortRange>,
}

impl Service {
    /// Real servers and the sorry server: every node that must hold the VIP hidden.
    pub fn serving(&self) -> impl Iterator<Item = &RealServer> {
        self.real_servers.iter().chain(&self.sorry)
    }
}

impl Service {
    /// The port real servers listen on (the virtual port; `None` for fwmark services).
    pub fn port(&self) -> Option<u16> {
        match self.key {
            ServiceKey::Addr { address, .. } => Some(address.port()),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Node name.
    pub node: String,
    /// RIP:port.
    pub address: SocketAddr,
    /// IPVS weight; 0 keeps existing connections and sends no new ones.
    pub weight: u32,
    /// Upper threshold.
    pub upper_threshold: u32,
    /// Lower threshold.
    pub lower_threshold: u32,
    /// Its health check, when not the service's.
    pub check: DestinationCheck,
}
