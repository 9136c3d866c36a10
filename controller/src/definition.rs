//! What the definition file says, before any rule is checked.
//!
//! Addresses, durations and names stay strings and numbers stay `i64` here on purpose:
//! a bad value becomes one diagnostic among all the others found by validation, instead
//! of stopping the parser at the first one.
use serde::Deserialize;

/// A whole `cluster.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Definition {
    /// `[cluster]`: name and generation.
    pub cluster: ClusterDef,
    /// `[time]`: the NTP source and the allowed offset.
    pub time: Option<TimeDef>,
    /// `[[lans]]`: physical segments.
    #[serde(default)]
    pub lans: Vec<LanDef>,
    /// `[[nodes]]`: every host with an agent.
    #[serde(default)]
    pub nodes: Vec<NodeDef>,
    /// `[[services]]`: IPVS virtual services.
    #[serde(default)]
    pub services: Vec<ServiceDef>,
    /// `[ipvs]`: settings of the directors' IPVS as a whole.
    pub ipvs: Option<IpvsDef>,
    /// `[[vrrp]]`: directors sharing their VIPs, one master at a time (director HA).
    #[serde(default)]
    pub vrrp: Vec<VrrpDef>,
    /// `[bgp]`: active-active directors, each announcing its VIPs to the router, which
    /// spreads flows over them with ECMP.
    pub bgp: Option<BgpDef>,
}

/// `[bgp]`: directors that all carry traffic at once. Each announces its VIPs (held on
/// `lo`) to the router over BGP while it can serve them; the router installs one ECMP
/// route per VIP; BFD takes a dead director out in well under a second.
#[derive(Debug, Clone, Deserialize)]
pub struct BgpDef {
    /// The router's ASN (the `router` node of the definition).
    pub router_asn: i64,
    /// The directors' ASN (one for all of them: eBGP to the router).
    pub director_asn: i64,
    /// The directors that announce (each lists the same VIPs, `interface = "lo"`).
    #[serde(default)]
    pub directors: Vec<String>,
    /// BGP hold time (default `"3s"`; keepalives every third of it).
    pub hold: Option<String>,
    /// BFD: `{ interval = "100ms", multiplier = 3 }` (the defaults: down in 0.3 s).
    pub bfd: Option<BfdDef>,
    /// Routers outside the definition (network gear, AS `router_asn`) the directors peer
    /// with instead of the `router` node: `[{ name = "tor1", address = "198.18.0.254" }]`.
    /// `lvsctl peering frr|bird` prints their side of the sessions.
    #[serde(default)]
    pub external_routers: Vec<ExternalRouterDef>,
}

/// `[bgp] external_routers` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ExternalRouterDef {
    /// Its name in sessions, status and metrics (a DNS label, no node's name).
    pub name: String,
    /// Its address on the directors' LAN (the BGP session's far end and the ECMP router).
    pub address: String,
}

/// `[bgp] bfd`.
#[derive(Debug, Clone, Deserialize)]
pub struct BfdDef {
    /// Interval both ways (default `"100ms"`).
    pub interval: Option<String>,
    /// Missed intervals before a session is down (default 3).
    pub multiplier: Option<i64>,
}

/// `[[vrrp]]`: one VRRP instance. Its directors each list the same VIPs in their `vips`;
/// the live one with the highest priority holds them.
#[derive(Debug, Clone, Deserialize)]
pub struct VrrpDef {
    /// Instance name (default `vi-VRID`).
    pub name: Option<String>,
    /// Virtual router id, 1..=255, unique on the LAN.
    pub vrid: i64,
    /// Advert interval (default `"1s"`; `"100ms"` fails over in about 0.4 s).
    pub advert: Option<String>,
    /// Whether a higher-priority director coming back takes the VIPs back (default false:
    /// one flap, not two).
    #[serde(default)]
    pub preempt: bool,
    /// IPVS connection sync between the directors (default true).
    pub sync_daemon: Option<bool>,
    /// The directors and their priorities.
    #[serde(default)]
    pub directors: Vec<VrrpMemberDef>,
}

/// `[[vrrp]] directors = [{ node = "director", priority = 150 }]`.
#[derive(Debug, Clone, Deserialize)]
pub struct VrrpMemberDef {
    /// A director node.
    pub node: String,
    /// 1..=254; distinct within the instance.
    pub priority: i64,
}

/// `[ipvs]`.
#[derive(Debug, Clone, Deserialize)]
pub struct IpvsDef {
    /// `timeouts = { tcp = "15m", tcp_fin = "2m", udp = "5m" }` (`ipvsadm --set`); each optional.
    pub timeouts: Option<IpvsTimeoutsDef>,
}

/// `[ipvs] timeouts`.
#[derive(Debug, Clone, Deserialize)]
pub struct IpvsTimeoutsDef {
    /// Established TCP connections.
    pub tcp: Option<String>,
    /// TCP after a FIN.
    pub tcp_fin: Option<String>,
    /// UDP (`ipvsadm --set` third value), as a duration such as `5m`.
    pub udp: Option<String>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterDef {
    /// Cluster name.
    pub name: String,
    /// Generation; bump it on every change. Agents refuse an older one.
    #[serde(default = "one")]
    pub generation: i64,
}

fn one() -> i64 {
    1
}

/// `[time]`.
#[derive(Debug, Clone, Deserialize)]
pub struct TimeDef {
    /// Address of the NTP server every node syncs to.
    pub ntp_server: String,
    /// Largest allowed clock offset, e.g. `"1s"` (the article's rule) or `"500ms"`.
    pub max_offset: Option<String>,
}

/// `[[lans]]`: one physical segment (no router inside it).
#[derive(Debug, Clone, Deserialize)]
pub struct LanDef {
    /// LAN name, referenced by interfaces.
    pub name: String,
    /// Its subnet, or one subnet per family on a dual-stack segment:
    /// `cidr = ["198.18.0.0/24", "2001:db8:18::/64"]`.
    pub cidr: OneOrMany,
}

/// `[[nodes]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeDef {
    /// Node name.
    pub name: String,
    /// `router`, `director` or `real_server`.
    pub role: String,
    /// Agent endpoint, `host:port`.
    pub agent: String,
    /// Interfaces on LANs.
    #[serde(default)]
    pub interfaces: Vec<InterfaceDef>,
    /// Default gateway, or one per family: `gateway = ["198.18.0.1", "2001:db8:18::1"]`.
    pub gateway: Option<OneOrMany>,
    /// VIPs this director holds (directors only).
    #[serde(default)]
    pub vips: Vec<VipDef>,
}

/// One interface address on a LAN.
#[derive(Debug, Clone, Deserialize)]
pub struct InterfaceDef {
    /// Interface name.
    pub name: String,
    /// The LAN it is plugged into.
    pub lan: String,
    /// Address with prefix, e.g. `192.168.40.11/24`, or one per family on a dual-stack
    /// LAN: `address = ["198.18.0.11/24", "2001:db8:18::11/64"]`.
    pub address: OneOrMany,
}

/// A VIP held by a director.
#[derive(Debug, Clone, Deserialize)]
pub struct VipDef {
    /// Address with prefix (`/32` is usual; the article uses `/16`).
    pub address: String,
    /// Interface carrying the alias.
    pub interface: String,
    /// Label, default `<interface>:<n>`.
    pub label: Option<String>,
}

/// `[[services]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceDef {
    /// Service name.
    pub name: String,
    /// `tcp`, `udp`, `sctp` or `fwmark`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// The VIP (for `fwmark`: the address the mark stands for, hidden on real servers), or
    /// one per family for a dual-stack service: `vip = ["198.18.0.100", "2001:db8:18::100"]`
    /// (one IPVS service per family, the same real servers, each family checked).
    pub vip: Option<OneOrMany>,
    /// Virtual port (not for `fwmark`).
    pub port: Option<i64>,
    /// Firewall mark (for `fwmark` only).
    pub fwmark: Option<i64>,
    /// What the directors mark for a `fwmark` service, in their own nftables table
    /// (`inet lvs_dr`), on each of the service's VIPs: `marks = [{ protocol = "tcp",
    /// ports = [80, 443] }]`. Absent: the marking rules are the admin's own.
    pub marks: Option<Vec<MarkDef>>,
    /// IPVS scheduler module name (`rr`, `wlc`, `sh`, …); `rr` when left out.
    #[serde(default = "rr")]
    pub scheduler: String,
    /// Sticky clients: timeout and netmask, as `ipvsadm -p`/`-M`.
    pub persistence: Option<PersistenceDef>,
    /// Flags: `one-packet`, `sh-fallback`, `sh-port` (`mh-fallback`, `mh-port`: the same bits).
    #[serde(default)]
    pub flags: Vec<String>,
    /// `dr` (the default, and the only method this tool plans).
    #[serde(default = "dr")]
    pub forwarding: String,
    /// Directors that hold it (default: every director holding the VIP).
    pub directors: Option<Vec<String>>,
    /// Health check of every real server.
    pub check: Option<CheckDef>,
    /// Real servers.
    #[serde(default)]
    pub real_servers: Vec<RealServerDef>,
    /// A real_server node that takes traffic while the service is below its quorum.
    pub sorry_server: Option<RealServerDef>,
    /// Real servers in service below which the service is degraded (default 1).
    pub quorum: Option<i64>,
    /// Dead band around the quorum (default 0).
    pub hysteresis: Option<i64>,
    /// An executable on the director and its arguments, run on every health transition.
    pub notify: Option<Vec<String>>,
}

/// One entry of a fwmark service's `marks`.
#[derive(Debug, Clone, Deserialize)]
pub struct MarkDef {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Destination ports, each `80` or `"8000-8099"`; absent or empty: every port.
    #[serde(default)]
    pub ports: Vec<PortDef>,
}

/// A port or an inclusive range of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PortDef {
    /// `80`.
    Number(i64),
    /// `"8000-8099"` (or `"80"`).
    Range(String),
}

/// A key that takes one string or a list of them (one address per family).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `key = "…"`.
    One(String),
    /// `key = ["…", "…"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every value with the index it has in a list (`None` for a single value), so that a
    /// diagnostic can name `address[1]` rather than `address`.
    pub fn items(&self) -> Vec<(Option<usize>, &str)> {
        match self {
            OneOrMany::One(s) => vec![(None, s.as_str())],
            OneOrMany::Many(v) => v.iter().enumerate().map(|(i, s)| (Some(i), s.as_str())).collect(),
        }
    }
}

impl From<&str> for OneOrMany {
    fn from(s: &str) -> Self {
        OneOrMany::One(s.to_string())
    }
}

fn tcp() -> String {
    "tcp".into()
}
fn rr() -> String {
    "rr".into()
}
fn dr() -> String {
    "dr".into()
}

/// `persistence = { timeout = "300s", netmask = "255.255.255.255" }`.
#[derive(Debug, Clone, Deserialize)]
pub struct PersistenceDef {
    /// Timeout, e.g. `"300s"`.
    pub timeout: String,
    /// Client grouping netmask (IPv4 dotted or a prefix length).
    pub netmask: Option<String>,
}

/// `check = { kind = "http", ... }`: a service's check, or a real server's overrides of it
/// (then every key is optional and the service's fill the gaps).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckDef {
    /// `http`, `https`, `tcp`, `exec` or `none`.
    pub kind: Option<String>,
    /// HTTP path (default `/`).
    pub path: Option<String>,
    /// The HTTP status that passes (default 200), or several: `"200-299, 301"`.
    pub expect_status: Option<StatusDef>,
    /// Text the body must contain.
    pub expect_body: Option<String>,
    /// MD5 of the body, hex (keepalived `digest`).
    pub expect_digest: Option<String>,
    /// Host header.
    pub host: Option<String>,
    /// HTTP(S): further pages fetched after `path`, each of which must pass too
    /// (keepalived's further `url { }` blocks).
    pub urls: Option<Vec<UrlDef>>,
    /// HTTP(S): keep the connection open between probes when the server does (default
    /// true); false opens a connection for every probe, as keepalived does.
    pub reuse_connection: Option<bool>,
    /// HTTPS: the server name sent and verified (SNI; default: the Host header, if any).
    pub sni: Option<String>,
    /// HTTPS: verify the certificate (default true).
    pub verify: Option<bool>,
    /// HTTPS: a PEM file of CA certificates on the director (default: its trust store).
    pub ca_file: Option<String>,
    /// `exec`: absolute path of an executable on the director, then its arguments.
    pub command: Option<Vec<String>>,
    /// Probe this address instead of the real server's (keepalived `connect_ip`).
    pub connect_ip: Option<String>,
    /// Probe this port instead of the service's (keepalived `connect_port`).
    pub port: Option<i64>,
    /// Interval, default `"2s"`.
    pub interval: Option<String>,
    /// Timeout, default `"1s"`.
    pub timeout: Option<String>,
    /// After a failure, probe again this soon (keepalived `delay_before_retry`).
    pub retry_interval: Option<String>,
    /// Successes to restore, default 2.
    pub rise: Option<i64>,
    /// Failures to quarantine, default 3.
    pub fall: Option<i64>,
    /// `weight0` (default) or `remove`.
    pub on_failure: Option<String>,
}

/// One more page of an HTTP check: `{ path = "/deep", expect_status = 200, expect_body =
/// "ok", expect_digest = "...", host = "..." }` (the check's `host` when none).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UrlDef {
    /// Request path (default `/`).
    pub path: Option<String>,
    /// The status that passes (default 200), or several.
    pub expect_status: Option<StatusDef>,
    /// Text the body must contain.
    pub expect_body: Option<String>,
    /// MD5 of the body, hex.
    pub expect_digest: Option<String>,
    /// Host header.
    pub host: Option<String>,
}

/// A check's `expect_status`: one code, or codes and ranges in a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusDef {
    /// `expect_status = 200`.
    Code(i64),
    /// `expect_status = "200-299, 301"` (keepalived's `status_code 200-299 301`).
    Codes(String),
}

/// One real server of a service.
#[derive(Debug, Clone, Deserialize)]
pub struct RealServerDef {
    /// Node name (a `real_server`).
    pub node: String,
    /// Weight, default 1.
    pub weight: Option<i64>,
    /// Port; in DR it must equal the virtual port.
    pub port: Option<i64>,
    /// Which of the node's addresses (default: its address on the director's LAN).
    pub address: Option<String>,
    /// Upper connection threshold.
    pub upper_threshold: Option<i64>,
    /// Lower connection threshold.
    pub lower_threshold: Option<i64>,
    /// Overrides of the service's check for this real server (`kind = "none"`: unchecked).
    pub check: Option<CheckDef>,
}
