//! [`ArpWatchSpec`] to and from the wire. What reaches the router's ARP and ND sockets is
//! checked here first: interface names are kernel names, addresses parse and are of their
//! entry's family, node names are DNS labels, the interval is sane and every list is bounded.
use super::fields::{WireError, err, parse, shaped};
use crate::spec::{
    ArpWatchLan, ArpWatchNode, ArpWatchSpec, ArpWatchVip, MAX_ARP_HOLDERS, MAX_ARP_LANS, MAX_ARP_NODES,
    MAX_ARP_VIPS,
};
use crate::{names, pb};

impl From<&ArpWatchSpec> for pb::ArpWatchSpec {
    fn from(a: &ArpWatchSpec) -> Self {
        pb::ArpWatchSpec {
            interval_ms: a.interval_ms,
            lans: a
                .lans
                .iter()
                .map(|l| pb::ArpWatchLan {
                    interface: l.interface.clone(),
                    source: l.source.to_string(),
                    vips: l
                        .vips
                        .iter()
                        .map(|v| pb::ArpWatchVip {
                            address: v.address.to_string(),
                            holders: v.holders.clone(),
                        })
                        .collect(),
                    nodes: l
                        .nodes
                        .iter()
                        .map(|n| pb::ArpWatchNode { name: n.name.clone(), address: n.address.to_string() })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn bounded<T>(field: &str, v: &[T], max: usize) -> Result<(), WireError> {
    if v.len() > max {
        return err(field, format!("{} entries: at most {max}", v.len()));
    }
    Ok(())
}

/// `address` is of `source`'s family: one entry asks in one protocol (ARP or ND).
fn same_family(field: &str, source: std::net::IpAddr, address: std::net::IpAddr) -> Result<(), WireError> {
    if source.is_ipv6() != address.is_ipv6() {
        return err(field, format!("{address} is not of the family of the entry's source {source}"));
    }
    Ok(())
}

/// A wire ARP watch as a domain one, or the first field that is wrong.
pub(super) fn arp_watch_from(a: &pb::ArpWatchSpec) -> Result<ArpWatchSpec, WireError> {
    if !(200..=60_000).contains(&a.interval_ms) {
        return err("arp_watch.interval_ms", format!("{} outside 200..=60000", a.interval_ms));
    }
    bounded("arp_watch.lans", &a.lans, MAX_ARP_LANS)?;
    let mut lans = Vec::with_capacity(a.lans.len());
    for (i, l) in a.lans.iter().enumerate() {
        let f = format!("arp_watch.lans[{i}]");
        bounded(&format!("{f}.vips"), &l.vips, MAX_ARP_VIPS)?;
        bounded(&format!("{f}.nodes"), &l.nodes, MAX_ARP_NODES)?;
        let source: std::net::IpAddr = parse(&format!("{f}.source"), &l.source)?;
        let mut vips = Vec::with_capacity(l.vips.len());
        for (j, v) in l.vips.iter().enumerate() {
            let vf = format!("{f}.vips[{j}]");
            bounded(&format!("{vf}.holders"), &v.holders, MAX_ARP_HOLDERS)?;
            let holders = v
                .holders
                .iter()
                .enumerate()
                .map(|(k, h)| shaped(&format!("{vf}.holders[{k}]"), h, names::dns_label_problem))
                .collect::<Result<_, _>>()?;
            let address = parse(&format!("{vf}.address"), &v.address)?;
            same_family(&format!("{vf}.address"), source, address)?;
            vips.push(ArpWatchVip { address, holders });
        }
        let mut nodes = Vec::with_capacity(l.nodes.len());
        for (j, n) in l.nodes.iter().enumerate() {
            let nf = format!("{f}.nodes[{j}]");
            let address = parse(&format!("{nf}.address"), &n.address)?;
            same_family(&format!("{nf}.address"), source, address)?;
            nodes.push(ArpWatchNode {
                name: shaped(&format!("{nf}.name"), &n.name, names::dns_label_problem)?,
                address,
            });
        }
        lans.push(ArpWatchLan {
            interface: shaped(&format!("{f}.interface"), &l.interface, names::ifname_problem)?,
            source,
            vips,
            nodes,
        });
    }
    Ok(ArpWatchSpec { interval_ms: a.interval_ms, lans })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> pb::ArpWatchSpec {
        pb::ArpWatchSpec {
            interval_ms: 1000,
            lans: vec![pb::ArpWatchLan {
                interface: "eth1".into(),
                source: "198.18.0.1".into(),
                vips: vec![pb::ArpWatchVip {
                    address: "198.18.0.100".into(),
                    holders: vec!["director".into()],
                }],
                nodes: vec![pb::ArpWatchNode { name: "rs1".into(), address: "198.18.0.11".into() }],
            }],
        }
    }

    #[test]
    fn a_watch_survives_the_round_trip() {
        let d = arp_watch_from(&good()).unwrap();
        assert_eq!(pb::ArpWatchSpec::from(&d), good());
    }

    #[test]
    fn each_spoiled_field_is_refused_by_name() {
        type Spoil = Box<dyn Fn(&mut pb::ArpWatchSpec)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("arp_watch.interval_ms", Box::new(|a| a.interval_ms = 10)),
            ("arp_watch.lans", Box::new(|a| a.lans = vec![a.lans[0].clone(); MAX_ARP_LANS + 1])),
            ("arp_watch.lans[0].interface", Box::new(|a| a.lans[0].interface = "eth1; reboot".into())),
            ("arp_watch.lans[0].source", Box::new(|a| a.lans[0].source = "198.18.0.1/24".into())),
            (
                "arp_watch.lans[0].vips[0].address",
                Box::new(|a| a.lans[0].vips[0].address = "2001:db8::100".into()),
            ),
            (
                "arp_watch.lans[0].nodes[0].address",
                Box::new(|a| a.lans[0].nodes[0].address = "2001:db8::11".into()),
            ),
            ("arp_watch.lans[0].vips[0].address", Box::new(|a| a.lans[0].vips[0].address = "x".into())),
            (
                "arp_watch.lans[0].vips[0].holders[0]",
                Box::new(|a| a.lans[0].vips[0].holders[0] = "Bad_Name".into()),
            ),
            ("arp_watch.lans[0].nodes[0].name", Box::new(|a| a.lans[0].nodes[0].name = String::new())),
            (
                "arp_watch.lans[0].nodes",
                Box::new(|a| a.lans[0].nodes = vec![a.lans[0].nodes[0].clone(); MAX_ARP_NODES + 1]),
            ),
        ];
        for (field, spoil) in cases {
            let mut a = good();
            spoil(&mut a);
            let e = arp_watch_from(&a).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }
}
