//! What an import produces before it is written as TOML: the definition's pieces, each
//! with the keepalived options that could not be mapped onto it.
use std::net::IpAddr;

use ipnet::IpNet;

/// What keepalived.conf does not say about the cluster, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Cluster name (default: global_defs' router_id, else `imported`).
    pub name: Option<String>,
    /// The router: the real servers' gateway and the NTP server.
    pub router: IpAddr,
    /// On a dual-stack LAN, the other family: the router's and each director's address.
    pub other_family: Option<OtherFamily>,
    /// One director per file, in the same order: name and address with prefix (the LAN).
    pub directors: Vec<(String, IpNet)>,
    /// The directors' interface on the LAN (default: the VRRP instance's, else `eth0`).
    pub interface: Option<String>,
    /// The real servers' interface on the LAN.
    pub rs_interface: String,
    /// Agents' port.
    pub agent_port: u16,
    /// The directors' `iptables-save` dump, whose mangle rules set the fwmark services'
    /// marks (`--firewall`).
    pub firewall: Option<Input>,
}

/// One input file (a keepalived.conf, an iptables-save dump).
#[derive(Debug, Clone)]
pub struct Input {
    /// How it is named in comments and errors (its path).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// The other family of a dual-stack LAN (`--router` and `--director NAME=…` given a second
/// time, with addresses of the other family): keepalived.conf lists IPv4 and IPv6
/// `virtual_server`s side by side but never says a host's other address.
#[derive(Debug, Clone, Default)]
pub struct OtherFamily {
    /// The router's address of that family.
    pub router: Option<IpAddr>,
    /// Directors' addresses of that family, with the LAN's prefix.
    pub directors: Vec<(String, IpNet)>,
}

/// A keepalived option the import did not carry over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The file it is in.
    pub file: String,
    /// Its line.
    pub line: usize,
    /// The option as written.
    pub text: String,
    /// Why it was not mapped, or how it was.
    pub why: String,
}

/// A TOML value of an inline table: keys in the order they are written.
pub type Pairs = Vec<(&'static str, toml::Value)>;

/// One real server of a service.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Its address.
    pub ip: IpAddr,
    /// keepalived's `weight` (1 when not given).
    pub weight: u32,
    /// Its check as keepalived had it (every key explicit), `None`: no checker.
    pub check: Option<Pairs>,
    /// `inhibit_on_failure`: weight 0 rather than removal.
    pub inhibit: bool,
    /// `uthreshold`.
    pub upper: Option<u32>,
    /// `lthreshold`.
    pub lower: Option<u32>,
}

/// One `virtual_server`.
#[derive(Debug, Clone, Default)]
pub struct Service {
    /// The file it is from.
    pub file: String,
    /// Name in the definition.
    pub name: String,
    /// `tcp`, `udp`, `sctp` or `fwmark`.
    pub protocol: String,
    /// The VIP.
    pub vip: Option<IpAddr>,
    /// Virtual port.
    pub port: Option<u16>,
    /// Firewall mark.
    pub fwmark: Option<u32>,
    /// What its marking rules mark: protocol and ports as the definition writes them
    /// (from `--firewall`; empty: not known).
    pub marks: Vec<(String, Vec<String>)>,
    /// keepalived's `lb_algo` (an IPVS scheduler name).
    pub scheduler: String,
    /// Persistence timeout in seconds and netmask.
    pub persistence: Option<(u64, Option<String>)>,
    /// Scheduler and service flags, as keepalived names them (`ops`, `sh-port`, …).
    pub flags: Vec<String>,
    /// Real servers.
    pub real_servers: Vec<RealServer>,
    /// The sorry server's address.
    pub sorry: Option<IpAddr>,
    /// Quorum in real servers.
    pub quorum: Option<u32>,
    /// Hysteresis in real servers.
    pub hysteresis: Option<u32>,
    /// Options not carried over.
    pub notes: Vec<Note>,
}

/// A `vrrp_instance` with each director's priority.
#[derive(Debug, Clone)]
pub struct Vrrp {
    /// Instance name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Advert interval in milliseconds.
    pub advert_ms: u64,
    /// `false` when the instance says `nopreempt`.
    pub preempt: bool,
    /// Director names and priorities.
    pub directors: Vec<(String, u8)>,
    /// Its VIPs.
    pub vips: Vec<IpAddr>,
    /// The interface keepalived ran it on.
    pub interface: Option<String>,
    /// Whether keepalived ran an IPVS sync daemon for it.
    pub sync_daemon: bool,
}

/// A whole import.
#[derive(Debug, Clone, Default)]
pub struct Skeleton {
    /// Cluster name.
    pub name: String,
    /// Every `virtual_server` block read, in file order.
    pub services: Vec<Service>,
    /// VRRP instances (only with a file per director).
    pub vrrp: Vec<Vrrp>,
    /// VIPs keepalived held that no virtual_server uses.
    pub extra_vips: Vec<IpAddr>,
    /// Options that belong to no service.
    pub notes: Vec<Note>,
    /// The LAN every node is on.
    pub lan: Option<IpNet>,
}

/// `s` as a DNS label, as definitions want names (`LVS_WEB` becomes `lvs-web`); `fallback`
/// when nothing is left.
pub fn label(s: &str, fallback: &str) -> String {
    let dashed: String =
        s.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let l: String = dashed.trim_matches('-').chars().take(63).collect();
    if l.is_empty() { fallback.to_string() } else { l }
}
