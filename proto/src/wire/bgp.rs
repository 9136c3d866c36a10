//! [`BgpSpec`] to and from the wire. Every value that reaches the routing daemon's
//! configuration is checked here first: names are DNS labels, addresses parse, numbers are
//! in the protocol's ranges, and lists are bounded.
use super::fields::{WireError, err, parse, shaped};
use crate::spec::{BgpPeer, BgpSpec, MAX_BGP_PEERS, MAX_BGP_PREFIXES, asn_problem};
use crate::{names, pb};

impl From<&BgpSpec> for pb::BgpSpec {
    fn from(b: &BgpSpec) -> Self {
        pb::BgpSpec {
            local_asn: b.local_asn,
            router_id: b.router_id.to_string(),
            peers: b
                .peers
                .iter()
                .map(|p| pb::BgpPeer {
                    name: p.name.clone(),
                    address: p.address.to_string(),
                    asn: p.asn,
                    local_address: p.local_address.to_string(),
                })
                .collect(),
            announce: b.announce.iter().map(ToString::to_string).collect(),
            hold_s: b.hold_s.into(),
            bfd_interval_ms: b.bfd_interval_ms,
            bfd_multiplier: b.bfd_multiplier.into(),
            install_routes: b.install_routes,
        }
    }
}

fn asn(field: &str, a: u32) -> Result<u32, WireError> {
    match asn_problem(a) {
        None => Ok(a),
        Some(why) => err(field, why),
    }
}

/// A wire BGP spec as a domain one, or the first field that is wrong.
pub(super) fn bgp_from(b: &pb::BgpSpec) -> Result<BgpSpec, WireError> {
    if b.peers.is_empty() || b.peers.len() > MAX_BGP_PEERS {
        return err("bgp.peers", format!("{} session(s): 1..={MAX_BGP_PEERS}", b.peers.len()));
    }
    if b.announce.len() > MAX_BGP_PREFIXES {
        return err("bgp.announce", format!("{} prefixes: at most {MAX_BGP_PREFIXES}", b.announce.len()));
    }
    if !(3..=65_535).contains(&b.hold_s) {
        return err("bgp.hold_s", format!("{} outside 3..=65535", b.hold_s));
    }
    if !(10..=10_000).contains(&b.bfd_interval_ms) {
        return err("bgp.bfd_interval_ms", format!("{} outside 10..=10000", b.bfd_interval_ms));
    }
    if !(1..=255).contains(&b.bfd_multiplier) {
        return err("bgp.bfd_multiplier", format!("{} outside 1..=255", b.bfd_multiplier));
    }
    let mut peers: Vec<BgpPeer> = Vec::with_capacity(b.peers.len());
    for (i, p) in b.peers.iter().enumerate() {
        let f = format!("bgp.peers[{i}]");
        let peer = BgpPeer {
            name: shaped(&format!("{f}.name"), &p.name, names::dns_label_problem)?,
            address: parse(&format!("{f}.address"), &p.address)?,
            asn: asn(&format!("{f}.asn"), p.asn)?,
            local_address: parse(&format!("{f}.local_address"), &p.local_address)?,
        };
        if peers.iter().any(|q| q.name == peer.name || q.address == peer.address) {
            return err(f, format!("{} ({}) is a session twice", peer.name, peer.address));
        }
        peers.push(peer);
    }
    let mut announce = Vec::with_capacity(b.announce.len());
    for (i, a) in b.announce.iter().enumerate() {
        let f = format!("bgp.announce[{i}]");
        let net: ipnet::IpNet = parse(&f, a)?;
        if net.prefix_len() != net.max_prefix_len() {
            return err(
                f,
                format!("{net} is not one address (/32 or /128): directors announce their VIPs only"),
            );
        }
        announce.push(net);
    }
    Ok(BgpSpec {
        local_asn: asn("bgp.local_asn", b.local_asn)?,
        router_id: parse("bgp.router_id", &b.router_id)?,
        peers,
        announce,
        hold_s: b.hold_s as u16,
        bfd_interval_ms: b.bfd_interval_ms,
        bfd_multiplier: b.bfd_multiplier as u8,
        install_routes: b.install_routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> pb::BgpSpec {
        pb::BgpSpec {
            local_asn: 65001,
            router_id: "198.18.0.2".into(),
            peers: vec![pb::BgpPeer {
                name: "router".into(),
                address: "198.18.0.1".into(),
                asn: 65000,
                local_address: "198.18.0.2".into(),
            }],
            announce: vec!["198.18.0.100/32".into()],
            hold_s: 3,
            bfd_interval_ms: 100,
            bfd_multiplier: 3,
            install_routes: false,
        }
    }

    #[test]
    fn a_spec_survives_the_round_trip() {
        let d = bgp_from(&good()).unwrap();
        assert_eq!(pb::BgpSpec::from(&d), good());
    }

    #[test]
    fn what_would_reach_birds_configuration_unchecked_is_refused_by_field() {
        type Bad = (&'static str, fn(&mut pb::BgpSpec));
        let cases: &[Bad] = &[
            ("bgp.local_asn", |b| b.local_asn = 23_456),
            ("bgp.local_asn", |b| b.local_asn = 0),
            ("bgp.router_id", |b| b.router_id = "2001:db8::1".into()),
            ("bgp.peers[0].name", |b| b.peers[0].name = "r\"; protocol x {".into()),
            ("bgp.peers[0].address", |b| b.peers[0].address = "198.18.0.1; }".into()),
            ("bgp.peers[1]", |b| b.peers.push(b.peers[0].clone())),
            ("bgp.peers", |b| b.peers.clear()),
            ("bgp.announce[0]", |b| b.announce[0] = "0.0.0.0/0".into()),
            ("bgp.announce", |b| b.announce = vec!["198.18.0.100/32".into(); 257]),
            ("bgp.hold_s", |b| b.hold_s = 2),
            ("bgp.bfd_interval_ms", |b| b.bfd_interval_ms = 5),
            ("bgp.bfd_multiplier", |b| b.bfd_multiplier = 0),
        ];
        for (field, spoil) in cases {
            let mut b = good();
            spoil(&mut b);
            let e = bgp_from(&b).unwrap_err();
            assert_eq!(e.field, *field, "{e}");
        }
    }
}
