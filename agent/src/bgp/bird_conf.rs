//! bird.conf rendered from a BGP spec and the prefixes announced now. Every string in it
//! has passed the wire's checks (DNS-label names, parsed addresses, numbers in range), and
//! nothing but what the spec says is written: no includes, no filters of the user's.
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_proto::spec::{BgpPeer, BgpSpec};

/// BIRD's name of the session with `p`: DNS labels hold `-`, BIRD names may not; `_`
/// never occurs in a label, so the mapping cannot merge two peers; the prefix keeps a
/// node called `router` or `bgp` from being read as a keyword.
pub fn session_name(p: &BgpPeer) -> String {
    let family = if p.address.is_ipv6() { 6 } else { 4 };
    format!("peer_{}_{family}", p.name.replace('-', "_"))
}

/// The node's name back from a session name; `None` for BIRD's own protocols.
pub fn peer_of<'a>(spec: &'a BgpSpec, session: &str) -> Option<&'a BgpPeer> {
    spec.peers.iter().find(|p| session_name(p) == session)
}

fn channel(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() { "ipv6" } else { "ipv4" }
}

// Long on purpose: the configuration file top to bottom, in the order BIRD reads it.
/// The configuration for `spec` with `announced` (a subset of `spec.announce`) exported.
pub fn render(spec: &BgpSpec, announced: &[IpNet]) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "# Written by lvs-agent from its spec; rewritten on every change: do not edit.");
    // Session changes, errors and what peers say, into the agent's log (BIRD's stderr).
    let _ = writeln!(c, "log stderr {{ info, remote, warning, error, auth, fatal, bug }};");
    let _ = writeln!(c, "timeformat protocol \"%s\";");
    let _ = writeln!(c, "router id {};", spec.router_id);
    let _ = writeln!(c, "protocol device {{ scan time 10; }}");
    let interval = spec.bfd_interval_ms;
    let _ = writeln!(
        c,
        "protocol bfd {{ interface \"*\" {{ min rx interval {interval} ms; min tx interval {interval} ms; idle tx interval 1000 ms; multiplier {}; }}; }}",
        spec.bfd_multiplier
    );
    for family in ["ipv4", "ipv6"] {
        let routes: Vec<&IpNet> = announced.iter().filter(|n| channel(n.addr()) == family).collect();
        let sessions = spec.peers.iter().any(|p| channel(p.address) == family);
        if !spec.install_routes && sessions {
            // What the director announces: blackhole routes in BIRD's own table, never
            // exported to the kernel (no kernel protocol here). Empty while withdrawn.
            let _ = writeln!(c, "protocol static vips_{family} {{");
            let _ = writeln!(c, "    {family};");
            for r in routes {
                let _ = writeln!(c, "    route {r} blackhole;");
            }
            let _ = writeln!(c, "}}");
        }
        if spec.install_routes && sessions {
            // The router: what the directors announce, into the kernel, routes of equal
            // standing merged into one multipath route.
            let _ = writeln!(c, "protocol kernel kernel_{family} {{");
            let _ = writeln!(c, "    {family} {{ import none; export all; }};");
            let _ = writeln!(c, "    merge paths on;");
            let _ = writeln!(c, "}}");
        }
    }
    let keepalive = (spec.hold_s / 3).max(1);
    for p in &spec.peers {
        let family = channel(p.address);
        let _ = writeln!(c, "protocol bgp {} {{", session_name(p));
        let _ = writeln!(c, "    local {} as {};", p.local_address, spec.local_asn);
        let _ = writeln!(c, "    neighbor {} as {};", p.address, p.asn);
        let _ = writeln!(c, "    hold time {}; keepalive time {keepalive};", spec.hold_s);
        // A session that failed is tried again within seconds, not BIRD's default minutes.
        let _ = writeln!(c, "    connect retry time 2; error wait time 1, 10;");
        let _ = writeln!(c, "    bfd on;");
        if spec.install_routes {
            let _ = writeln!(c, "    {family} {{ import all; export none; }};");
        } else {
            let _ = writeln!(c, "    {family} {{ import none; export where proto = \"vips_{family}\"; }};");
        }
        let _ = writeln!(c, "}}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn director() -> BgpSpec {
        BgpSpec {
            local_asn: 65001,
            router_id: "198.18.0.2".parse().unwrap(),
            peers: vec![BgpPeer {
                name: "edge-1".into(),
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                local_address: "198.18.0.2".parse().unwrap(),
            }],
            announce: vec!["198.18.0.100/32".parse().unwrap()],
            hold_s: 3,
            bfd_interval_ms: 100,
            bfd_multiplier: 3,
            install_routes: false,
        }
    }

    #[test]
    fn a_director_announces_only_what_it_is_told_and_installs_nothing() {
        let spec = director();
        let on = render(&spec, &spec.announce);
        for want in [
            "router id 198.18.0.2;",
            "protocol bgp peer_edge_1_4 {",
            "local 198.18.0.2 as 65001;",
            "neighbor 198.18.0.1 as 65000;",
            "hold time 3; keepalive time 1;",
            "bfd on;",
            "min rx interval 100 ms; min tx interval 100 ms;",
            "multiplier 3;",
            "route 198.18.0.100/32 blackhole;",
            "ipv4 { import none; export where proto = \"vips_ipv4\"; };",
        ] {
            assert!(on.contains(want), "missing {want}:\n{on}");
        }
        assert!(!on.contains("protocol kernel"), "a director installs nothing:\n{on}");
        let off = render(&spec, &[]);
        assert!(!off.contains("198.18.0.100"), "withdrawn means not in the static protocol:\n{off}");
        assert!(off.contains("protocol static vips_ipv4"), "{off}");
        assert_eq!(peer_of(&spec, "peer_edge_1_4").map(|p| p.name.as_str()), Some("edge-1"));
        assert_eq!(peer_of(&spec, "bfd1"), None);
    }

    #[test]
    fn the_router_installs_merged_paths_and_exports_nothing() {
        let mut spec = director();
        spec.announce.clear();
        spec.install_routes = true;
        spec.peers.push(BgpPeer {
            name: "lb2".into(),
            address: "2001:db8:18::3".parse().unwrap(),
            asn: 65001,
            local_address: "2001:db8:18::1".parse().unwrap(),
        });
        let c = render(&spec, &[]);
        for want in [
            "protocol kernel kernel_ipv4 {",
            "protocol kernel kernel_ipv6 {",
            "merge paths on;",
            "ipv4 { import all; export none; };",
            "protocol bgp peer_lb2_6 {",
            "ipv6 { import all; export none; };",
        ] {
            assert!(c.contains(want), "missing {want}:\n{c}");
        }
        assert!(!c.contains("protocol static"), "{c}");
    }
}
