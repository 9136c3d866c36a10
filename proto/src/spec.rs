//! Declarative desired state of one node.
//!
//! A [`NodeSpec`] says *what must exist*, never how to get there; the agent diffs it
//! against what it observes. The one piece of "how" that belongs here is the order of
//! [`NodeSpec::steps`], because DR depends on it: a real server must stop answering ARP for
//! the VIP *before* the VIP exists on its loopback, or it will steal the VIP from the
//! director for a moment (the seed article, step 6.2 before 6.3).
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a node is in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Forwards between the client side and the cluster LAN; usually the NTP server.
    Router,
    /// Holds the VIP and the IPVS table.
    Director,
    /// Serves the VIP from a hidden loopback address and replies straight to the client.
    RealServer,
}

impl Role {
    /// The word used in definitions and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Director => "director",
            Role::RealServer => "real_server",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one node must look like, as computed by the planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Cluster name, from the definition.
    pub cluster: String,
    /// Node name, from the definition.
    pub node: String,
    /// The node's role.
    pub role: Role,
    /// Generation of the definition this spec was planned from; agents refuse older ones.
    pub generation: u64,
    /// Addresses the node must hold (LAN addresses, VIP aliases, hidden VIPs).
    pub addresses: Vec<AddressSpec>,
    /// Routes the node must hold.
    pub routes: Vec<RouteSpec>,
    /// Kernel parameters the node must have.
    pub sysctls: Vec<SysctlSpec>,
    /// IPVS virtual services (directors only).
    pub virtual_services: Vec<VirtualServiceSpec>,
    /// Observations the agent makes and reports; they change nothing.
    pub checks: Vec<CheckSpec>,
    /// IPVS connection timeouts (`ipvsadm --set`), directors only; `None`: the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<IpvsTimeouts>,
    /// Directors sharing their VIPs with others (VRRP); `None`: the VIPs are in
    /// `addresses`, held always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VrrpSpec>,
}

/// A director's part in one VRRP instance. Its VIPs are held only while it is master:
/// the VRRP engine adds and removes them, so they are not in [`NodeSpec::addresses`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpSpec {
    /// Instance name (the definition's `[[vrrp]] name`).
    pub instance: String,
    /// Interface the VIPs and the adverts are on.
    pub interface: String,
    /// Virtual router id, unique on its LAN.
    pub vrid: u8,
    /// This director's priority (the highest live one is master).
    pub priority: u8,
    /// Advert interval in milliseconds (VRRPv3: a multiple of 10).
    pub advert_ms: u32,
    /// Whether a higher priority coming back takes the VIPs back (a second flap).
    pub preempt: bool,
    /// This director's address on the LAN (unicast adverts leave from it).
    pub unicast_source: IpAddr,
    /// The other directors' addresses (unicast: multicast is blocked in many networks).
    pub unicast_peers: Vec<IpAddr>,
    /// The VIPs the master holds.
    pub vips: Vec<AddressSpec>,
    /// IPVS connection sync, when on.
    pub sync_daemon: Option<SyncDaemonSpec>,
    /// How long the engine sits out after the agent first starts it, before it takes part
    /// in elections: 0 on the instance's highest priority, longer on the others, so that
    /// directors started together elect the highest priority (without preemption the first
    /// to reach master keeps it). Not applied on a restart after a crash or a hand-over.
    /// (Absent from state files written before it existed: 0.)
    #[serde(default)]
    pub startup_delay_ms: u32,
}

/// The kernel's IPVS connection-sync daemon of a VRRP director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemonSpec {
    /// Interface the sync messages go out and come in on.
    pub interface: String,
    /// Sync id shared by the directors of one instance.
    pub sync_id: u32,
}

/// IPVS connection timeouts in seconds (`ipvsadm --set TCP TCPFIN UDP`); `None` leaves
/// that one as the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpvsTimeouts {
    /// Established TCP connections.
    pub tcp_s: Option<u32>,
    /// TCP connections after a FIN.
    pub tcp_fin_s: Option<u32>,
    /// UDP.
    pub udp_s: Option<u32>,
}

/// Why an address exists; decides where it goes in the apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressPurpose {
    /// The node's own address on a LAN (DIP, RIP, router leg).
    Lan,
    /// A VIP on the director, on a labelled alias; the director answers ARP for it.
    Vip,
    /// A VIP on a real server's loopback (/32, `lo:N`); never announced.
    HiddenVip,
}

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressSpec {
    /// Interface name (`eth1`, `lo`).
    pub interface: String,
    /// Address with prefix length.
    pub address: IpNet,
    /// Address label (`eth1:0`, `lo:0`), the modern form of an alias interface.
    pub label: Option<String>,
    /// Why the address exists.
    pub purpose: AddressPurpose,
}

/// Why a route exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePurpose {
    /// The default route through the router (never through the DIP, in DR).
    DefaultGateway,
    /// `route add -host VIP dev lo:0` on a real server.
    VipHost,
}

/// One route in the main table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination prefix (`0.0.0.0/0` for the default route).
    pub destination: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output device, if pinned.
    pub device: Option<String>,
    /// Why the route exists.
    pub purpose: RoutePurpose,
}

/// One kernel parameter under `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SysctlSpec {
    /// Dotted key, e.g. `net.ipv4.conf.all.arp_ignore`.
    pub key: String,
    /// Value to write.
    pub value: String,
    /// One line saying why the cluster needs it.
    pub reason: String,
}

/// Schedulers of the mainline kernel (`ip_vs_<name>.ko`), the one list the validator and
/// the agent share. `twos` came in Linux 6.2; the VM test holds this list against the
/// modules the test kernel actually ships.
pub const SCHEDULERS: &[&str] =
    &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"];

/// The shortest health-check interval anyone may ask for. Faster probing buys little (a
/// dead server is still noticed only after `fall` probes) and a spec from a stolen or buggy
/// controller must not be able to turn the director's checker into a flood.
pub const MIN_CHECK_INTERVAL_MS: u64 = 100;

/// Per-interface IPv4 sysctls an agent may be told to write (`net.ipv4.conf.<if>.<name>`):
/// the ARP behaviour of DR real servers and the reverse-path and forwarding switches that
/// go with it. Nothing outside this list and [`SysctlSpec::allowed`]'s other entries is ever
/// written, whoever signs the request: a stolen controller key must not reach `kernel.*`.
pub const IPV4_CONF_SYSCTLS: &[&str] = &[
    "arp_ignore",
    "arp_announce",
    "arp_filter",
    "rp_filter",
    "accept_local",
    "forwarding",
    "send_redirects",
];

impl SysctlSpec {
    /// Whether an agent may write `key`: `net.ipv4.ip_forward`, `net.ipv6.conf.*.forwarding`,
    /// `net.ipv4.conf.<interface>.<one of IPV4_CONF_SYSCTLS>` and the IPVS tunables
    /// `net.ipv4.vs.*`. The interface part follows the kernel's name rules (1–15 bytes, no
    /// `/`, not `.` or `..`; dots are allowed, as in VLAN names like `eth0.100`).
    pub fn allowed(key: &str) -> bool {
        let ifname_ok = |n: &str| {
            (1..=15).contains(&n.len())
                && n != "."
                && n != ".."
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
        };
        let word = |w: &str| {
            !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if key == "net.ipv4.ip_forward" {
            return true;
        }
        if let Some(rest) = key.strip_prefix("net.ipv4.vs.") {
            return word(rest);
        }
        if let Some(rest) = key.strip_prefix("net.ipv4.conf.") {
            return rest
                .rsplit_once('.')
                .is_some_and(|(i, name)| ifname_ok(i) && IPV4_CONF_SYSCTLS.contains(&name));
        }
        if let Some(rest) = key.strip_prefix("net.ipv6.conf.") {
            return rest.rsplit_once('.').is_some_and(|(i, name)| ifname_ok(i) && name == "forwarding");
        }
        false
    }

    /// Path of the key under `/proc/sys`.
    pub fn proc_path(&self) -> String {
        format!("/proc/sys/{}", self.key.replace('.', "/"))
    }
}

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Upper-case name as `ipvsadm` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ServiceKey {
    /// VIP:port for one protocol.
    Addr {
        /// Protocol.
        protocol: Protocol,
        /// VIP and port.
        address: SocketAddr,
    },
    /// Packets carrying a firewall mark.
    Fwmark {
        /// The mark (never 0).
        mark: u32,
        /// Whether the marked traffic is IPv6.
        ipv6: bool,
    },
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Addr { protocol, address } => {
                write!(f, "{} {}", protocol.as_str(), address)
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                write!(f, "FWM {mark}{}", if *ipv6 { " IPv6" } else { "" })
            }
        }
    }
}

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

fn one() -> u32 {
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

/// How a health check probes a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProbeKind {
    /// HTTP GET (HTTPS with `tls`).
    Http {
        /// Request path.
        path: String,
        /// The status codes that pass.
        expect_status: StatusSet,
        /// Text the body must contain, if any.
        expect_body: Option<String>,
        /// Host header, if not the destination address.
        host: Option<String>,
        /// MD5 of the body (lowercase hex), as keepalived's `digest` has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_digest: Option<String>,
        /// HTTPS: the TLS handshake's settings (keepalived `SSL_GET`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<TlsProbe>,
        /// Further pages fetched after `path`, in order (keepalived's further `url { }`
        /// blocks): the probe passes when every page does.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        urls: Vec<HttpUrl>,
        /// Keep the connection open between probes when the server does (HTTP keep-alive):
        /// a probe is then a request and an answer, without a connect, a handshake and a
        /// close. The agent still connects afresh after a failure and periodically.
        #[serde(default)]
        reuse_connection: bool,
    },
    /// TCP connect.
    Tcp,
    /// An executable run on the director (keepalived `MISC_CHECK`): exit status 0 is
    /// healthy. Its arguments are passed as they are, never through a shell; the
    /// destination comes in the environment (`LVS_RS_ADDRESS`, `LVS_RS_PORT`, ...).
    Exec {
        /// Absolute path of the executable, then its arguments.
        command: Vec<String>,
    },
}

/// One more page an HTTP check fetches, with what it must return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpUrl {
    /// Request path.
    pub path: String,
    /// The status codes that pass.
    pub expect_status: StatusSet,
    /// Text the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// MD5 of the body (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_digest: Option<String>,
    /// Host header; none: the check's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The status codes an HTTP check accepts: codes and inclusive ranges, each within
/// 100..=599 (keepalived's `status_code 200 201-204`). Stored and shown as a number when it
/// is one code, as `[[min, max], ...]` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StatusRepr", into = "StatusRepr")]
pub struct StatusSet(Vec<(u16, u16)>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StatusRepr {
    One(u16),
    Ranges(Vec<(u16, u16)>),
}

impl From<StatusSet> for StatusRepr {
    fn from(s: StatusSet) -> Self {
        match s.single() {
            Some(c) => StatusRepr::One(c),
            None => StatusRepr::Ranges(s.0),
        }
    }
}

impl TryFrom<StatusRepr> for StatusSet {
    type Error = String;
    fn try_from(r: StatusRepr) -> Result<Self, String> {
        match r {
            StatusRepr::One(c) => StatusSet::from_ranges(vec![(c, c)]),
            StatusRepr::Ranges(v) => StatusSet::from_ranges(v),
        }
    }
}

impl StatusSet {
    /// The lowest and highest status an HTTP server may send.
    pub const VALID: std::ops::RangeInclusive<u16> = 100..=599;

    /// Exactly `code`.
    pub fn one(code: u16) -> Self {
        StatusSet(vec![(code, code)])
    }

    /// Codes and ranges, checked: at least one, each `min <= max`, within [`Self::VALID`].
    pub fn from_ranges(ranges: Vec<(u16, u16)>) -> Result<Self, String> {
        if ranges.is_empty() {
            return Err("no status code".into());
        }
        for &(lo, hi) in &ranges {
            let show = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
            if !Self::VALID.contains(&lo) || !Self::VALID.contains(&hi) {
                return Err(format!("{show} is not an HTTP status (100-599)"));
            }
            if lo > hi {
                return Err(format!("{show} is a range from high to low"));
            }
        }
        Ok(StatusSet(ranges))
    }

    /// `"200"`, `"200-299 301"`, `"200-299, 301"`: codes and ranges separated by spaces or
    /// commas, as keepalived writes its `status_code`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("`{t}` is not a status code"));
        let ranges = text
            .split([',', ' '])
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once('-') {
                Some((lo, hi)) => Ok((code(lo)?, code(hi)?)),
                None => code(t).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_ranges(ranges)
    }

    /// Whether `status` passes.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// The one code, when the set is exactly one.
    pub fn single(&self) -> Option<u16> {
        match self.0.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }

    /// The codes and ranges, as given.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if lo == hi { write!(f, "{sep}{lo}")? } else { write!(f, "{sep}{lo}-{hi}")? }
        }
        Ok(())
    }
}

/// How an HTTPS check handshakes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsProbe {
    /// Server name sent (SNI) and verified; none: the certificate must name the address.
    pub sni: Option<String>,
    /// What the real server's certificate is verified against.
    pub verify: TlsVerify,
}

/// What an HTTPS check trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerify {
    /// The director's system trust store.
    System,
    /// A PEM file of CA certificates on the director.
    CaFile(String),
    /// Nothing: any certificate is accepted. Only when the definition says so.
    Skip,
}

/// What happens to a destination that fails its check `fall` times in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Weight 0: existing connections finish, no new ones.
    Weight0,
    /// Remove the destination from the service.
    Remove,
}

/// A health check of every destination of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    /// How to probe.
    pub probe: ProbeKind,
    /// Time between probes of one destination, in milliseconds.
    pub interval_ms: u64,
    /// Time a probe may take, in milliseconds (< interval).
    pub timeout_ms: u64,
    /// Successes in a row that restore a quarantined destination.
    pub rise: u32,
    /// Failures in a row that quarantine a destination.
    pub fall: u32,
    /// What quarantine means.
    pub on_failure: OnFailure,
    /// Probe this address instead of the destination's (keepalived `connect_ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Probe this port instead of the destination's (keepalived `connect_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// After a failure, the next probe comes this soon instead of one interval later
    /// (keepalived `delay_before_retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval_ms: Option<u64>,
}

impl HealthCheckSpec {
    /// Where a probe of destination `dest` connects.
    pub fn target(&self, dest: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.connect_ip.unwrap_or(dest.ip()), self.connect_port.unwrap_or(dest.port()))
    }
}

/// An observation the agent makes and reports. Checks never change the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CheckSpec {
    /// The kernel has IPVS and these schedulers (the article's `modprobe -l | grep ipvs`).
    KernelIpvs {
        /// Schedulers the node's services use.
        schedulers: Vec<String>,
    },
    /// The clock is within `max_offset_ms` of the NTP source (the article's step 1).
    ClockOffset {
        /// NTP server address.
        server: IpAddr,
        /// Largest allowed offset.
        max_offset_ms: u64,
    },
    /// This node runs the NTP server the cluster syncs to, and it answers.
    NtpServing {
        /// Address clients query.
        address: IpAddr,
    },
    /// A local HTTP server answers on the service port (the article's `curl http://localhost`).
    HttpLocal {
        /// Port.
        port: u16,
        /// Path.
        path: String,
    },
    /// The default gateway is none of these (a DR real server must not route through the DIP).
    GatewayIsNot {
        /// Forbidden next hops (the directors' addresses).
        forbidden: Vec<IpAddr>,
    },
    /// No firewall rule drops traffic to the service (reported, never flushed).
    FirewallAllows {
        /// The service.
        service: ServiceKey,
    },
}

/// One step of the apply order, borrowed from a [`NodeSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step<'a> {
    /// An address to hold.
    Address(&'a AddressSpec),
    /// A route to hold.
    Route(&'a RouteSpec),
    /// A kernel parameter to set.
    Sysctl(&'a SysctlSpec),
    /// A virtual service and its destinations.
    VirtualService(&'a VirtualServiceSpec),
    /// An observation.
    Check(&'a CheckSpec),
}

impl NodeSpec {
    /// The spec in the order the agent applies it:
    /// LAN addresses, default gateway, sysctls (ARP rules, forwarding), VIPs, VIP host
    /// routes, IPVS, then checks.
    ///
    /// Sysctls come strictly before any VIP: a real server that holds the VIP while
    /// `arp_ignore` is still 0 answers ARP for it and steals traffic from the director.
    pub fn steps(&self) -> Vec<Step<'_>> {
        let mut steps = Vec::new();
        let addrs = |p: AddressPurpose| self.addresses.iter().filter(move |a| a.purpose == p);
        let routes = |p: RoutePurpose| self.routes.iter().filter(move |r| r.purpose == p);
        steps.extend(addrs(AddressPurpose::Lan).map(Step::Address));
        steps.extend(routes(RoutePurpose::DefaultGateway).map(Step::Route));
        steps.extend(self.sysctls.iter().map(Step::Sysctl));
        steps.extend(addrs(AddressPurpose::Vip).map(Step::Address));
        steps.extend(addrs(AddressPurpose::HiddenVip).map(Step::Address));
        steps.extend(routes(RoutePurpose::VipHost).map(Step::Route));
        steps.extend(self.virtual_services.iter().map(Step::VirtualService));
        steps.extend(self.checks.iter().map(Step::Check));
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_set_is_a_number_when_it_is_one_code_and_ranges_otherwise() {
        let one: StatusSet = serde_json::from_str("200").unwrap();
        assert_eq!((one.single(), serde_json::to_string(&one).unwrap()), (Some(200), "200".into()));
        let many = StatusSet::parse("200-299, 301").unwrap();
        let json = serde_json::to_string(&many).unwrap();
        assert_eq!(json, "[[200,299],[301,301]]");
        assert_eq!(serde_json::from_str::<StatusSet>(&json).unwrap(), many);
        assert!(many.contains(250) && many.contains(301) && !many.contains(300) && !many.contains(302));
        // What no server sends is refused on the way in too.
        assert!(serde_json::from_str::<StatusSet>("[[300,200]]").is_err());
        assert!(serde_json::from_str::<StatusSet>("42").is_err());
    }
}
