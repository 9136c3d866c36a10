//! `lvsctl peering frr|bird`: the router side of `[bgp]` for routers no agent runs (the
//! definition's `external_routers`). The directors' side is planned and run by their
//! agents; this is what the network team pastes into the router: one session per director
//! with BFD at the definition's timers, an import filter that takes nothing but the VIPs as
//! host routes (and, on BIRD, stops a director that sends more), nothing exported to the
//! directors, and multipath so the VIP's flows spread over every director announcing it.
//!
//! The output is plain text for a human and a router, so every value in it is one the
//! validator already parsed (addresses, numbers) or checked as a DNS label (names).
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{BgpGroup, BgpRouter, Cluster, ExternalRouter};

/// Which router's configuration language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// FRRouting (8.x): `bgpd` and `bfdd`, as `vtysh` reads it.
    Frr,
    /// BIRD 2.
    Bird,
}

/// Why there is nothing to print.
#[derive(Debug, thiserror::Error)]
pub enum PeeringError {
    /// No active-active directors at all.
    #[error("the definition has no [bgp] section")]
    NoBgp,
    #[error(
        "[bgp] peers with router node {0}, whose agent configures it; name network gear in [bgp] external_routers to print its side"
    )]
    /// The directors peer with the router node, whose agent writes its side.
    RouterIsANode(String),
    /// `--router` named none of the external routers (the names there are).
    #[error("no external router {0} in [bgp] (there are: {1})")]
    UnknownRouter(String, String),
}

/// Everything one external router needs to know about its side of the sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSide {
    /// The router.
    pub router: ExternalRouter,
    /// Its ASN.
    pub asn: u32,
    /// The directors' ASN.
    pub director_asn: u32,
    /// Each director it peers with: name and address (of the router's family).
    pub directors: Vec<(String, IpAddr)>,
    /// What the directors announce: the VIPs of the router's family, as host prefixes.
    pub vips: Vec<IpNet>,
    /// BGP hold time, s.
    pub hold_s: u64,
    /// BFD interval, ms.
    pub bfd_ms: u128,
    /// BFD multiplier.
    pub bfd_multiplier: u8,
}

impl RouterSide {
    fn family(&self) -> u8 {
        if self.router.address.is_ipv6() { 6 } else { 4 }
    }
}

/// The router sides of `cluster`'s `[bgp]`: every external router, or the one named `only`.
pub fn sides(cluster: &Cluster, only: Option<&str>) -> Result<Vec<RouterSide>, PeeringError> {
    let g = cluster.bgp.as_ref().ok_or(PeeringError::NoBgp)?;
    let routers = match &g.router {
        BgpRouter::Node(n) => return Err(PeeringError::RouterIsANode(n.clone())),
        BgpRouter::External(r) => r,
    };
    let picked: Vec<&ExternalRouter> = routers.iter().filter(|r| only.is_none_or(|o| o == r.name)).collect();
    if let (Some(name), true) = (only, picked.is_empty()) {
        let known = routers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(PeeringError::UnknownRouter(name.to_string(), known));
    }
    Ok(picked.into_iter().map(|r| side(cluster, g, r)).collect())
}

fn side(cluster: &Cluster, g: &BgpGroup, r: &ExternalRouter) -> RouterSide {
    let v6 = r.address.is_ipv6();
    let directors: Vec<(String, IpAddr)> = g
        .directors
        .iter()
        .filter_map(|d| cluster.nodes.iter().find(|n| &n.name == d))
        .filter_map(|n| Some((n.name.clone(), n.on_lan_like(&g.lan, r.address)?.address.addr())))
        .collect();
    let mut vips: Vec<IpNet> = Vec::new();
    for n in cluster.nodes.iter().filter(|n| g.directors.contains(&n.name)) {
        for v in n.vips.iter().filter(|v| v.address.addr().is_ipv6() == v6) {
            let host = IpNet::from(v.address.addr());
            if !vips.contains(&host) {
                vips.push(host);
            }
        }
    }
    RouterSide {
        router: r.clone(),
        asn: g.router_asn,
        director_asn: g.director_asn,
        directors,
        vips,
        hold_s: g.hold.as_secs(),
        bfd_ms: g.bfd_interval.as_millis(),
        bfd_multiplier: g.bfd_multiplier,
    }
}

/// The configuration of every side in `dialect`, each under a header saying what it is.
pub fn render(cluster: &Cluster, sides: &[RouterSide], dialect: Dialect) -> String {
    let mut out = String::new();
    for s in sides {
        let mark = if dialect == Dialect::Frr { "!" } else { "#" };
        let _ = writeln!(
            out,
            "{mark} lvsctl peering: router {} ({}, AS {}) of cluster {} generation {}.",
            s.router.name, s.router.address, s.asn, cluster.name, cluster.generation
        );
        let _ = writeln!(
            out,
            "{mark} Sessions with the LVS directors (AS {}): each announces the VIPs while it can serve them;",
            s.director_asn
        );
        let _ = writeln!(
            out,
            "{mark} this router installs one multipath route per VIP over the directors announcing it."
        );
        let _ = writeln!(
            out,
            "{mark} On a Linux router also set net.ipv{}.fib_multipath_hash_policy=1: flows, not clients, spread.",
            s.family()
        );
        match dialect {
            Dialect::Frr => frr(s, &mut out),
            Dialect::Bird => bird(s, &mut out),
        }
        out.push('\n');
    }
    out
}

// Long on purpose: the FRR configuration top to bottom, in the order vtysh reads it.
fn frr(s: &RouterSide, c: &mut String) {
    let (ip, af) = if s.family() == 6 { ("ipv6", "ipv6 unicast") } else { ("ip", "ipv4 unicast") };
    let keepalive = (s.hold_s / 3).max(1);
    let _ = writeln!(c, "frr defaults traditional");
    let _ = writeln!(c, "!");
    for (i, v) in s.vips.iter().enumerate() {
        let _ = writeln!(c, "{ip} prefix-list LVS-VIPS seq {} permit {v}", (i + 1) * 5);
    }
    let _ = writeln!(c, "!");
    let _ = writeln!(c, "route-map LVS-DIRECTORS-IN permit 10");
    let _ = writeln!(c, " match {ip} address prefix-list LVS-VIPS");
    let _ = writeln!(c, "exit");
    let _ = writeln!(c, "!");
    // Nothing of this router's table goes to the directors: they need no routes from it.
    let _ = writeln!(c, "route-map LVS-DIRECTORS-OUT deny 10");
    let _ = writeln!(c, "exit");
    let _ = writeln!(c, "!");
    let _ = writeln!(c, "bfd");
    let _ = writeln!(c, " profile lvs-directors");
    let _ = writeln!(c, "  detect-multiplier {}", s.bfd_multiplier);
    let _ = writeln!(c, "  receive-interval {}", s.bfd_ms);
    let _ = writeln!(c, "  transmit-interval {}", s.bfd_ms);
    let _ = writeln!(c, " exit");
    let _ = writeln!(c, " !");
    let _ = writeln!(c, "exit");
    let _ = writeln!(c, "!");
    let _ = writeln!(c, "router bgp {}", s.asn);
    if let IpAddr::V4(id) = s.router.address {
        let _ = writeln!(c, " bgp router-id {id}");
    }
    let _ = writeln!(c, " neighbor LVS-DIRECTORS peer-group");
    let _ = writeln!(c, " neighbor LVS-DIRECTORS remote-as {}", s.director_asn);
    let _ = writeln!(c, " neighbor LVS-DIRECTORS timers {keepalive} {}", s.hold_s);
    let _ = writeln!(c, " neighbor LVS-DIRECTORS timers connect 2");
    let _ = writeln!(c, " neighbor LVS-DIRECTORS bfd profile lvs-directors");
    for (name, a) in &s.directors {
        let _ = writeln!(c, " neighbor {a} peer-group LVS-DIRECTORS");
        let _ = writeln!(c, " neighbor {a} description lvs director {name}");
    }
    let _ = writeln!(c, " !");
    let _ = writeln!(c, " address-family {af}");
    if s.family() == 6 {
        let _ = writeln!(c, "  neighbor LVS-DIRECTORS activate");
    }
    // One path per director, all of them used at once.
    let _ = writeln!(c, "  maximum-paths {}", s.directors.len().max(1));
    let _ = writeln!(c, "  neighbor LVS-DIRECTORS route-map LVS-DIRECTORS-IN in");
    let _ = writeln!(c, "  neighbor LVS-DIRECTORS route-map LVS-DIRECTORS-OUT out");
    // A cap on what the filter lets in. (FRR 8.4 does not stop a session for prefixes its
    // filter refused, even with `force`: tried in the host test; BIRD's `receive limit` does.)
    let _ = writeln!(c, "  neighbor LVS-DIRECTORS maximum-prefix {}", s.vips.len().max(1));
    let _ = writeln!(c, " exit-address-family");
    let _ = writeln!(c, "exit");
    let _ = writeln!(c, "!");
}

// Long on purpose: the BIRD configuration top to bottom, in the order BIRD reads it.
fn bird(s: &RouterSide, c: &mut String) {
    let f = s.family();
    let keepalive = (s.hold_s / 3).max(1);
    let vips: Vec<String> = s.vips.iter().map(ToString::to_string).collect();
    if let IpAddr::V4(id) = s.router.address {
        let _ = writeln!(c, "router id {id};");
    }
    let _ = writeln!(c, "protocol device lvs_device {{ }}");
    let _ = writeln!(c, "filter lvs_vips_{f} {{");
    let _ = writeln!(c, "    if net ~ [ {} ] then accept;", vips.join(", "));
    let _ = writeln!(c, "    reject;");
    let _ = writeln!(c, "}}");
    // BFD at the definition's timers on this router's interfaces (BIRD 2.0 sets them per
    // interface, not per session).
    let _ = writeln!(
        c,
        "protocol bfd lvs_bfd {{ interface \"*\" {{ min rx interval {0} ms; min tx interval {0} ms; multiplier {1}; }}; }}",
        s.bfd_ms, s.bfd_multiplier
    );
    // The VIP routes into the kernel, equal ones merged into one multipath route.
    let _ = writeln!(c, "protocol kernel lvs_kernel_{f} {{");
    let _ = writeln!(c, "    ipv{f} {{ import none; export filter lvs_vips_{f}; }};");
    let _ = writeln!(c, "    merge paths on limit {};", s.directors.len().max(1));
    let _ = writeln!(c, "}}");
    let _ = writeln!(c, "template bgp lvs_director_{f} {{");
    let _ = writeln!(c, "    local {} as {};", s.router.address, s.asn);
    let _ = writeln!(c, "    hold time {}; keepalive time {keepalive};", s.hold_s);
    let _ = writeln!(c, "    connect retry time 2; error wait time 1, 10;");
    let _ = writeln!(c, "    bfd on;");
    // A director that sends more than the VIPs is stopped, not believed (the limit counts
    // the routes the filter refused too, which BIRD remembers only with `keep filtered`).
    let _ = writeln!(
        c,
        "    ipv{f} {{ import filter lvs_vips_{f}; import keep filtered on; receive limit {} action disable; export none; }};",
        s.vips.len().max(1)
    );
    let _ = writeln!(c, "}}");
    for (name, a) in &s.directors {
        let _ = writeln!(
            c,
            "protocol bgp lvs_{}_{f} from lvs_director_{f} {{ description \"lvs director {name}\"; neighbor {a} as {}; }}",
            name.replace('-', "_"),
            s.director_asn
        );
    }
}
