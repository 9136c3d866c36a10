//! Planning the router's ARP watch: on each of its LANs that a director's VIP is on, per
//! address family, the VIPs to ask for (ARP for IPv4, neighbour solicitation for IPv6) and
//! the nodes that may answer for each, and every node's own address there (so the watch can
//! name the MAC that answers).
//!
//! Who may answer a VIP: the director that holds it on a LAN interface, or any one of a
//! VRRP instance's directors (the master). An ECMP director holds its VIPs on `lo` and is
//! reached through BGP next hops, and a real server holds the VIP on `lo` hidden: neither
//! may ever answer.
use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_proto::spec::{ArpWatchLan, ArpWatchNode, ArpWatchSpec, ArpWatchVip, Role};

use crate::model::{Cluster, Node};

/// How often the router asks: a leak is found within about this plus the answer window.
pub const ARP_WATCH_INTERVAL_MS: u32 = 1000;

/// The router's watch; `None` for any other node, or when no VIP is on its LANs.
pub(super) fn plan(cluster: &Cluster, node: &Node) -> Option<ArpWatchSpec> {
    if node.role != Role::Router {
        return None;
    }
    let mut lans = Vec::new();
    for iface in &node.interfaces {
        let source = iface.address.addr();
        let vips = vips_on(cluster, &iface.lan, source.is_ipv6());
        if vips.is_empty() {
            continue;
        }
        let nodes = cluster
            .nodes
            .iter()
            .filter(|n| n.name != node.name)
            .filter_map(|n| {
                let a = n.on_lan_like(&iface.lan, source)?.address.addr();
                Some(ArpWatchNode { name: n.name.clone(), address: a })
            })
            .collect();
        lans.push(ArpWatchLan {
            interface: iface.name.clone(),
            source,
            vips: vips.into_iter().map(|(address, holders)| ArpWatchVip { address, holders }).collect(),
            nodes,
        });
    }
    (!lans.is_empty()).then_some(ArpWatchSpec { interval_ms: ARP_WATCH_INTERVAL_MS, lans })
}

/// The VIPs of one family of the directors on `lan`, each with the directors that may
/// answer for it.
fn vips_on(cluster: &Cluster, lan: &str, v6: bool) -> BTreeMap<IpAddr, Vec<String>> {
    let mut vips: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for d in cluster.nodes.iter().filter(|n| n.role == Role::Director && n.on_lan(lan).is_some()) {
        for v in &d.vips {
            let a = v.address.addr();
            if a.is_ipv6() != v6 {
                continue;
            }
            let holders = vips.entry(a).or_default();
            // On a LAN interface (alone or in VRRP) the director answers for it; on lo it
            // never does (ECMP directors, and anyone's hidden VIP).
            let answers = v.interface != "lo" && !cluster.ecmp_director(&d.name);
            if answers && !holders.contains(&d.name) {
                holders.push(d.name.clone());
            }
        }
    }
    vips
}
