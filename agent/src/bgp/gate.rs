//! Which VIPs a director announces, and why not the others: only what works. A VIP is
//! announced while the director is not drained and every service on it is in the kernel's
//! IPVS table and at its quorum (or has a sorry server to take its traffic). Pure: the
//! caller reads the kernel and the runtime state.
use ipnet::IpNet;
use lvs_proto::reply::BgpAnnouncement;
use lvs_proto::spec::{NodeSpec, ServiceKey};

use crate::health::quorum;
use crate::reconcile::state::Runtime;

/// Every prefix `spec` announces, announced or withdrawn with its reason. `in_kernel`
/// says whether a service of the spec is in the IPVS table now.
pub fn announcements(
    spec: &NodeSpec,
    runtime: &Runtime,
    drained: bool,
    in_kernel: impl Fn(&ServiceKey) -> bool,
) -> Vec<BgpAnnouncement> {
    let Some(bgp) = &spec.bgp else { return Vec::new() };
    bgp.announce
        .iter()
        .map(|prefix| {
            let reason = why_withdrawn(spec, runtime, drained, &in_kernel, prefix);
            BgpAnnouncement {
                prefix: prefix.to_string(),
                announced: reason.is_none(),
                reason: reason.unwrap_or_default(),
            }
        })
        .collect()
}

fn why_withdrawn(
    spec: &NodeSpec,
    runtime: &Runtime,
    drained: bool,
    in_kernel: &impl Fn(&ServiceKey) -> bool,
    prefix: &IpNet,
) -> Option<String> {
    if drained {
        return Some("drained by an admin (lvsctl director enable brings it back)".into());
    }
    let mine: Vec<_> = spec
        .virtual_services
        .iter()
        .filter(|v| matches!(v.key, ServiceKey::Addr { address, .. } if address.ip() == prefix.addr()))
        .collect();
    if mine.is_empty() {
        return Some("no service on this VIP".into());
    }
    for v in mine {
        if !in_kernel(&v.key) {
            return Some(format!("service {} is not in IPVS", v.name));
        }
        if quorum::degraded(v, runtime) && v.sorry.is_none() {
            return Some(format!(
                "below quorum: service {} has {} of {} real servers in service, quorum {}",
                v.name,
                quorum::in_service(v, runtime),
                v.destinations.len(),
                v.quorum
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::state::override_key;
    use lvs_proto::spec::{BgpPeer, BgpSpec};

    fn spec() -> NodeSpec {
        // The lab's director, from the planner's fixture (`tests/tests/reconcile.rs` keeps it fresh).
        let mut s: NodeSpec =
            serde_json::from_str(include_str!("../../tests/fixtures/director-spec.json")).unwrap();
        s.bgp = Some(BgpSpec {
            local_asn: 65001,
            router_id: "198.18.0.2".parse().unwrap(),
            peers: vec![BgpPeer {
                name: "router".into(),
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                local_address: "198.18.0.2".parse().unwrap(),
            }],
            announce: vec!["198.18.0.100/32".parse().unwrap(), "198.18.0.200/32".parse().unwrap()],
            hold_s: 3,
            bfd_interval_ms: 100,
            bfd_multiplier: 3,
            install_routes: false,
        });
        s
    }

    #[test]
    fn only_what_works_is_announced_and_each_withdrawal_says_why() {
        let s = spec();
        let mut rt = Runtime::default();
        let a = announcements(&s, &rt, false, |_| true);
        assert!(a[0].announced, "{a:?}");
        assert_eq!(a[1].reason, "no service on this VIP");
        assert!(announcements(&s, &rt, true, |_| true)[0].reason.starts_with("drained"));
        assert_eq!(announcements(&s, &rt, false, |_| false)[0].reason, "service web is not in IPVS");
        // Every real server quarantined: below a quorum of 1.
        let v = &s.virtual_services[0];
        for d in &v.destinations {
            rt.quarantined.insert(override_key(&v.key, d.address));
        }
        let a = announcements(&s, &rt, false, |_| true);
        assert!(!a[0].announced && a[0].reason.starts_with("below quorum: service web has 0 of"), "{a:?}");
    }
}
