//! The router's ARP watch: which VIPs it asks for in ARP, on which of its LANs, and who may
//! answer. A real server that answers for a VIP (wrong `arp_ignore`/`arp_announce`, the VIP
//! put on a LAN interface by hand, a sysctl reset by another tool) takes the VIP's traffic
//! from the director for every client that learned its MAC, and nothing else says why.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Most LANs one router watches.
pub const MAX_ARP_LANS: usize = 64;
/// Most VIPs asked for on one LAN.
pub const MAX_ARP_VIPS: usize = 256;
/// Most nodes named on one LAN.
pub const MAX_ARP_NODES: usize = 1024;
/// Most holders of one VIP.
pub const MAX_ARP_HOLDERS: usize = 64;

/// What the router asks, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpWatchSpec {
    /// Between rounds, ms (200..=60000).
    pub interval_ms: u32,
    /// One entry per router interface and address family.
    pub lans: Vec<ArpWatchLan>,
}

/// One LAN of the router's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpWatchLan {
    /// The router's interface on it.
    pub interface: String,
    /// The router's address there (the requests' sender address): its family is the
    /// entry's (IPv4: ARP; IPv6: neighbour solicitation), and every address below has it.
    pub source: IpAddr,
    /// The VIPs asked for.
    pub vips: Vec<ArpWatchVip>,
    /// The nodes on it: asked for their own addresses, so an answer's MAC has a name.
    pub nodes: Vec<ArpWatchNode>,
}

/// A VIP and the nodes that may answer ARP for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpWatchVip {
    /// The VIP.
    pub address: IpAddr,
    /// Who may answer, one at a time; empty: nobody (ECMP directors).
    pub holders: Vec<String>,
}

/// A node's address on a watched LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpWatchNode {
    /// The node.
    pub name: String,
    /// Its address on the LAN.
    pub address: IpAddr,
}
