//! One round's replies against the spec: who answered for each VIP, named by the MAC each
//! node answers its own address with, and whether that is a leak.
use lvs_proto::reply::{ArpAnswer, VipArp};
use lvs_proto::spec::ArpWatchLan;

use super::link::ArpReply;

/// Most answers kept per VIP.
pub const MAX_ANSWERS: usize = 16;

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Each VIP of `lan` as the `replies` of one round say.
pub fn judge(lan: &ArpWatchLan, replies: &[ArpReply]) -> Vec<VipArp> {
    let name_of = |mac: &[u8; 6]| {
        lan.nodes
            .iter()
            .find(|n| replies.iter().any(|r| r.address == n.address && r.mac == *mac))
            .map(|n| n.name.clone())
    };
    lan.vips
        .iter()
        .map(|v| {
            let answers: Vec<ArpAnswer> = replies
                .iter()
                .filter(|r| r.address == v.address)
                .take(MAX_ANSWERS)
                .map(|r| ArpAnswer { mac: mac_text(&r.mac), node: name_of(&r.mac) })
                .collect();
            let mut vip =
                VipArp { address: v.address.to_string(), leak: None, answers, holders: v.holders.clone() };
            vip.leak = leak(&vip);
            vip
        })
        .collect()
}

/// Why `vip`'s answers are a leak; `None` when they are not.
fn leak(vip: &VipArp) -> Option<String> {
    let leakers = vip.leakers();
    if leakers.is_empty() {
        return None;
    }
    let names: Vec<String> = leakers.iter().map(ToString::to_string).collect();
    let asked = if vip.address.contains(':') { "neighbour solicitation" } else { "ARP" };
    let holders_only = leakers.iter().all(|a| a.node.as_ref().is_some_and(|n| vip.holders.contains(n)));
    if holders_only {
        // Two VRRP masters at once (split brain).
        return Some(format!("{} answer {asked} for it at once (one may at a time)", names.join(", ")));
    }
    let may = if vip.holders.is_empty() {
        "nobody may: the directors are reached by BGP next hop".to_string()
    } else {
        format!("only {} may", vip.holders.join(" or "))
    };
    let verb = if names.len() == 1 { "answers" } else { "answer" };
    Some(format!("{} {verb} {asked} for it ({may})", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::spec::{ArpWatchNode, ArpWatchVip};

    fn lan(holders: &[&str]) -> ArpWatchLan {
        ArpWatchLan {
            interface: "eth1".into(),
            source: "198.18.0.1".parse().unwrap(),
            vips: vec![ArpWatchVip {
                address: "198.18.0.100".parse().unwrap(),
                holders: holders.iter().map(ToString::to_string).collect(),
            }],
            nodes: [("director", "198.18.0.2"), ("director2", "198.18.0.3"), ("rs1", "198.18.0.11")]
                .iter()
                .map(|(n, a)| ArpWatchNode { name: n.to_string(), address: a.parse().unwrap() })
                .collect(),
        }
    }

    fn r(address: &str, last: u8) -> ArpReply {
        ArpReply { address: address.parse().unwrap(), mac: [2, 0, 0, 0, 0, last] }
    }

    /// Replies from director (MAC ..02), director2 (..03) and rs1 (..11) for their own
    /// addresses, plus `vip` for the VIP.
    fn round(vip: &[u8]) -> Vec<ArpReply> {
        let mut v = vec![r("198.18.0.2", 2), r("198.18.0.3", 3), r("198.18.0.11", 0x11)];
        v.extend(vip.iter().map(|m| r("198.18.0.100", *m)));
        v
    }

    #[test]
    fn the_holder_answering_alone_is_no_leak() {
        let v = &judge(&lan(&["director"]), &round(&[2]))[0];
        assert_eq!(v.leak, None);
        assert_eq!(v.answers[0].node.as_deref(), Some("director"));
        assert_eq!(v.answers[0].mac, "02:00:00:00:00:02");
        // Nobody answering is no leak either (the director may be down: other checks say so).
        assert_eq!(judge(&lan(&["director"]), &round(&[]))[0].leak, None);
    }

    #[test]
    fn a_real_server_answering_is_named() {
        let v = &judge(&lan(&["director"]), &round(&[2, 0x11]))[0];
        assert_eq!(v.leak.as_deref(), Some("rs1 (02:00:00:00:00:11) answers ARP for it (only director may)"));
        // Alone, too: the router would send everything to it.
        let v = &judge(&lan(&["director"]), &round(&[0x11]))[0];
        assert!(v.leak.as_deref().unwrap().starts_with("rs1 (02:00:00:00:00:11) answers"), "{v:?}");
    }

    #[test]
    fn an_unknown_mac_two_masters_and_ecmp() {
        let v = &judge(&lan(&["director"]), &round(&[0x99]))[0];
        assert_eq!(
            v.leak.as_deref(),
            Some("an unknown host (02:00:00:00:00:99) answers ARP for it (only director may)")
        );
        let v = &judge(&lan(&["director", "director2"]), &round(&[2, 3]))[0];
        assert!(
            v.leak.as_deref().unwrap().ends_with("answer ARP for it at once (one may at a time)"),
            "{v:?}"
        );
        let v = &judge(&lan(&[]), &round(&[2]))[0];
        assert!(v.leak.as_deref().unwrap().contains("nobody may"), "{v:?}");
        assert_eq!(judge(&lan(&[]), &round(&[]))[0].leak, None);
    }
}
