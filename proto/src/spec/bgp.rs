//! A node's part in the cluster's BGP (active-active directors behind ECMP): what the
//! agent's routing daemon is configured from. The limits here are the protocol's; the
//! wire decoder refuses anything outside them.
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// ASN 23456 (`AS_TRANS`) stands for a 4-byte ASN to old speakers; no one may use it.
pub const AS_TRANS: u32 = 23_456;
/// Most sessions one node runs (the router: one per director).
pub const MAX_BGP_PEERS: usize = 64;
/// Most prefixes one director announces.
pub const MAX_BGP_PREFIXES: usize = 256;

/// Why `asn` is no usable autonomous system number, if it is not.
pub fn asn_problem(asn: u32) -> Option<String> {
    match asn {
        0 => Some("ASN 0 is reserved (RFC 7607)".into()),
        AS_TRANS => Some("ASN 23456 is AS_TRANS, reserved for 2-byte speakers (RFC 6793)".into()),
        u32::MAX => Some("ASN 4294967295 is reserved (RFC 7300)".into()),
        _ => None,
    }
}

/// A node's BGP: its ASN, its sessions and, on a director, the VIPs it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSpec {
    /// This node's autonomous system number.
    pub local_asn: u32,
    /// The BGP router id (its IPv4 LAN address).
    pub router_id: std::net::Ipv4Addr,
    /// One session per peer: the router on a director, every director on the router.
    pub peers: Vec<BgpPeer>,
    /// Directors: the VIP prefixes announced while this director can serve them.
    pub announce: Vec<IpNet>,
    /// Hold time, s (0 or 3..=65535 in BGP; the planner never plans 0).
    pub hold_s: u16,
    /// BFD interval both ways, ms.
    pub bfd_interval_ms: u32,
    /// BFD: missed intervals before a session is down.
    pub bfd_multiplier: u8,
    /// The router: install what is learned into the kernel, as multipath routes.
    pub install_routes: bool,
}

/// One BGP session of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeer {
    /// The peer node's name (names the session in BIRD, status and metrics).
    pub name: String,
    /// Its address on the shared LAN.
    pub address: IpAddr,
    /// Its ASN.
    pub asn: u32,
    /// This node's address the session runs from.
    pub local_address: IpAddr,
}
