//! Where the lab puts what the definition does not name: the client and the admin box.
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_controller::model::{Cluster, Lan};
use lvs_proto::spec::Role;

/// Host `n` of a LAN (`.10`, `.250`).
pub fn host(cidr: &IpNet, n: u32) -> Option<IpNet> {
    match cidr {
        IpNet::V4(c) => {
            let a = u32::from(c.network()) + n;
            IpNet::new(IpAddr::V4(a.into()), c.prefix_len()).ok()
        }
        IpNet::V6(_) => None,
    }
}

/// The client's LAN: one the router is on that no director or real server shares.
pub fn client_lan(c: &Cluster) -> Option<(&Lan, IpAddr)> {
    let router = c.nodes.iter().find(|n| n.role == Role::Router)?;
    router.interfaces.iter().find_map(|i| {
        let shared = c.nodes.iter().any(|n| n.role != Role::Router && n.on_lan(&i.lan).is_some());
        if shared { None } else { c.lans.iter().find(|l| l.name == i.lan).map(|l| (l, i.address.addr())) }
    })
}

/// The LAN of the agents (the directors' first LAN) and the admin box's address on it.
pub fn admin_lan(c: &Cluster) -> Option<(&Lan, IpNet)> {
    let d = c.nodes.iter().find(|n| n.role == Role::Director)?;
    let first = &d.interfaces.first()?.lan;
    let lan = c.lans.iter().find(|l| &l.name == first)?;
    Some((lan, host(&lan.cidr, 250)?))
}
