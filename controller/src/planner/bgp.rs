//! Planning `[bgp]`: active-active directors behind the router's ECMP. Each director holds
//! its VIPs on `lo` (hidden, like a real server's), forwards flows it never saw begin
//! (`sloppy_tcp`), and announces the VIPs to the router over BGP with BFD; the router
//! installs one multipath route per VIP and hashes flows over it on their ports.
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_proto::spec::{AddressPurpose, AddressSpec, BgpPeer, BgpSpec, NodeSpec};

use crate::model::{BgpGroup, BgpRouter, Cluster, ExternalRouter, Node};

/// An ECMP director: its VIPs sit on `lo`, so it must never answer ARP for them (the
/// router would send the VIP's every flow to whichever director answered), and a flow the
/// router moves to it mid-way is forwarded, not dropped.
pub(super) const ECMP_DIRECTOR_SYSCTLS: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.conf.{if}.arp_ignore",
        "1",
        "answer ARP only for addresses of the receiving interface: the VIPs on lo are reached through the router's BGP next hops, never by ARP",
    ),
    (
        "net.ipv4.conf.{if}.arp_announce",
        "2",
        "source ARP requests from the interface's own address, never from a VIP",
    ),
    (
        "net.ipv4.vs.sloppy_tcp",
        "1",
        "a TCP flow whose SYN went to another director (the router's ECMP moved it when the director set changed) is scheduled at its first packet here; the mh scheduler picks the real server the first director picked",
    ),
];

/// The router of ECMP directors hashes flows on their ports too: one client's many
/// connections spread over the directors instead of all following its address.
pub(super) const ECMP_ROUTER_SYSCTLS: &[(&str, &str, &str)] = &[(
    "net.ipv4.fib_multipath_hash_policy",
    "1",
    "hash multipath routes on addresses, protocol and ports (L4): flows, not clients, spread over the directors",
)];
pub(super) const ECMP_ROUTER_SYSCTLS_V6: &[(&str, &str, &str)] = &[(
    "net.ipv6.fib_multipath_hash_policy",
    "1",
    "hash IPv6 multipath routes on addresses, protocol and ports (L4)",
)];

/// Sessions from `me` to `other` on the group's LAN, one per family both have there.
fn sessions(g: &BgpGroup, me: &Node, other: &Node, asn: u32) -> Vec<BgpPeer> {
    me.interfaces
        .iter()
        .filter(|i| i.lan == g.lan)
        .filter_map(|mine| {
            let theirs = other.on_lan_like(&g.lan, mine.address.addr())?;
            Some(BgpPeer {
                name: other.name.clone(),
                address: theirs.address.addr(),
                asn,
                local_address: mine.address.addr(),
            })
        })
        .collect()
}

/// Sessions from `me` to each external router it shares the group's LAN with, from its
/// address of the router's family.
fn external_sessions(g: &BgpGroup, me: &Node, routers: &[ExternalRouter]) -> Vec<BgpPeer> {
    routers
        .iter()
        .filter_map(|r| {
            let mine = me.on_lan_like(&g.lan, r.address)?;
            Some(BgpPeer {
                name: r.name.clone(),
                address: r.address,
                asn: g.router_asn,
                local_address: mine.address.addr(),
            })
        })
        .collect()
}

fn base(g: &BgpGroup, node: &Node, local_asn: u32) -> Option<BgpSpec> {
    let router_id = node.interfaces.iter().find_map(|i| match i.address.addr() {
        IpAddr::V4(a) if i.lan == g.lan => Some(a),
        _ => None,
    })?;
    Some(BgpSpec {
        local_asn,
        router_id,
        peers: Vec::new(),
        announce: Vec::new(),
        hold_s: g.hold.as_secs() as u16,
        bfd_interval_ms: g.bfd_interval.as_millis() as u32,
        bfd_multiplier: g.bfd_multiplier,
        install_routes: false,
    })
}

/// The router's part: a session with every director, the learned routes installed.
/// Returns the sysctl rows it needs ([`ECMP_ROUTER_SYSCTLS`], and the IPv6 ones with an
/// IPv6 session).
#[must_use = "the router needs these sysctl rows"]
pub(super) fn plan_router(cluster: &Cluster, node: &Node, spec: &mut NodeSpec) -> Vec<Rows> {
    let Some(g) = cluster.bgp.as_ref().filter(|g| g.router_node() == Some(node.name.as_str())) else {
        return Vec::new();
    };
    let Some(mut b) = base(g, node, g.router_asn) else { return Vec::new() };
    for d in g.directors.iter().filter_map(|d| cluster.nodes.iter().find(|n| &n.name == d)) {
        b.peers.extend(sessions(g, node, d, g.director_asn));
    }
    b.install_routes = true;
    let mut rows = vec![ECMP_ROUTER_SYSCTLS];
    if b.peers.iter().any(|p| p.address.is_ipv6()) {
        rows.push(ECMP_ROUTER_SYSCTLS_V6);
    }
    spec.bgp = Some(b);
    rows
}

/// A table of sysctl rows: key (`{if}` for each interface), value, reason.
pub(super) type Rows = &'static [(&'static str, &'static str, &'static str)];

/// An ECMP director's part, given its VIPs: they go on `lo`, hidden, and are announced.
/// Returns the interfaces [`ECMP_DIRECTOR_SYSCTLS`] are set on; `None` when `node` is no
/// `[bgp]` director (its VIPs are planned as usual).
pub(super) fn plan_director(
    cluster: &Cluster,
    node: &Node,
    vips: &[AddressSpec],
    spec: &mut NodeSpec,
) -> Option<Vec<String>> {
    let g = cluster.bgp.as_ref().filter(|g| g.directors.contains(&node.name))?;
    let mut b = base(g, node, g.director_asn)?;
    b.peers = match &g.router {
        BgpRouter::Node(r) => sessions(g, node, cluster.nodes.iter().find(|n| &n.name == r)?, g.router_asn),
        BgpRouter::External(routers) => external_sessions(g, node, routers),
    };
    for v in vips {
        let host = IpNet::from(v.address.addr());
        // A VIP is announced only over a session of its family.
        if b.peers.iter().any(|p| p.address.is_ipv6() == host.addr().is_ipv6()) && !b.announce.contains(&host)
        {
            b.announce.push(host);
        }
        spec.addresses.push(AddressSpec {
            interface: "lo".into(),
            address: host,
            label: v.label.clone(),
            purpose: AddressPurpose::HiddenVip,
        });
    }
    let mut ifaces = vec!["all".to_string()];
    ifaces.extend(node.interfaces.iter().find(|i| i.lan == g.lan).map(|i| i.name.clone()));
    spec.bgp = Some(b);
    Some(ifaces)
}
