//! The node as a whole: its role, its spec, and the order a spec is applied in (VRRP and the sync daemons of a director with it).
use std::net::IpAddr;

use super::checks::CheckSpec;
use super::host::AddressPurpose;
use super::host::AddressSpec;
use super::host::RoutePurpose;
use super::host::RouteSpec;
use super::host::SysctlSpec;
use super::services::VirtualServiceSpec;
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
    /// Active-active directors behind ECMP: this node's BGP sessions and what a director
    /// announces; `None`: no routing daemon. (Absent from state files written before it
    /// existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<super::bgp::BgpSpec>,
    /// The router: the VIPs it asks for in ARP and who may answer; `None`: no watch.
    /// (Absent from state files written before it existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_watch: Option<super::arp::ArpWatchSpec>,
    /// A director: the marking rules of its firewall-mark services, kept in the agent's own
    /// nftables table (`inet lvs_dr`); empty: no table. (Absent from state files written
    /// before it existed.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<super::marks::MarkRule>,
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
    /// UDP, in seconds (`None` leaves the kernel's value).
    pub udp_s: Option<u32>,
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
