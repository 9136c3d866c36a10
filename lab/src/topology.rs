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
        IpNet::V6(c) => {
            let a = u128::from(c.network()) + u128::from(n);
            IpNet::new(IpAddr::V6(a.into()), c.prefix_len()).ok()
        }
    }
}

/// The client's LAN: one the router is on that no director or real server shares, and
/// the router's address there in each family the LAN has (the client's gateways).
pub fn client_lan(c: &Cluster) -> Option<(&Lan, Vec<IpAddr>)> {
    let router = c.nodes.iter().find(|n| n.role == Role::Router)?;
    let i = router
        .interfaces
        .iter()
        .find(|i| !c.nodes.iter().any(|n| n.role != Role::Router && n.on_lan(&i.lan).is_some()))?;
    let lan = c.lans.iter().find(|l| l.name == i.lan)?;
    let gateways = router.interfaces.iter().filter(|x| x.lan == i.lan).map(|x| x.address.addr()).collect();
    Some((lan, gateways))
}

/// The LAN of the agents (the directors' first LAN) and the admin box's address on it.
pub fn admin_lan(c: &Cluster) -> Option<(&Lan, IpNet)> {
    let d = c.nodes.iter().find(|n| n.role == Role::Director)?;
    let first = &d.interfaces.first()?.lan;
    let lan = c.lans.iter().find(|l| &l.name == first)?;
    Some((lan, host(&lan.primary(), 250)?))
}
