//! What an address added by the agent carries besides the address: its label (IPv4 only:
//! the kernel keeps none on IPv6 addresses) and, for an IPv6 VIP, the flags keepalived
//! gives its own.
use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};

use super::system::Address;

/// Complete the `RTM_NEWADDR` request `m` for `a`.
pub(crate) fn complete(m: &mut AddressMessage, a: &Address) {
    if let Some(l) = &a.label
        && a.address.addr().is_ipv4()
    {
        m.attributes.push(AddressAttribute::Label(l.clone()));
    }
    if is_ipv6_vip(a) {
        // Usable at once instead of `tentative` for a second, never `dadfailed` after a
        // brief split brain, and deprecated (preferred lifetime 0) so that the director
        // never picks it as the source of its own traffic: a health check sourced from the
        // VIP would be answered to the real server's own `lo`.
        m.header.flags |= AddressHeaderFlags::Nodad;
        m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        let mut lifetimes = CacheInfo::default();
        lifetimes.ifa_preferred = 0;
        lifetimes.ifa_valid = u32::MAX;
        m.attributes.push(AddressAttribute::CacheInfo(lifetimes));
    }
}

/// Whether `a` is an IPv6 VIP: a /128 on an interface other than the loopback (LAN
/// prefixes are at most /127 by validation, and hidden VIPs sit on `lo`, where there is no
/// duplicate address detection).
fn is_ipv6_vip(a: &Address) -> bool {
    matches!(a.address, IpNet::V6(n) if n.prefix_len() == 128) && a.interface != "lo"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(interface: &str, address: &str, label: Option<&str>) -> AddressMessage {
        let a = Address {
            interface: interface.into(),
            address: address.parse().unwrap(),
            label: label.map(Into::into),
        };
        let mut m = AddressMessage::default();
        complete(&mut m, &a);
        m
    }

    #[test]
    fn an_ipv6_vip_is_added_without_dad_and_deprecated_and_nothing_else_is() {
        let vip = message("eth1", "2001:db8:6::100/128", Some("eth1:0"));
        assert!(vip.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(vip.attributes.contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
        assert!(
            vip.attributes.iter().any(|x| matches!(x, AddressAttribute::CacheInfo(c) if c.ifa_preferred == 0 && c.ifa_valid == u32::MAX)),
            "{vip:?}"
        );
        assert!(!vip.attributes.iter().any(|x| matches!(x, AddressAttribute::Label(_))), "no label on IPv6");
        for (iface, addr) in
            [("eth1", "2001:db8:6::2/64"), ("lo", "2001:db8:6::100/128"), ("eth1", "198.18.6.100/32")]
        {
            let m = message(iface, addr, None);
            assert!(!m.header.flags.contains(AddressHeaderFlags::Nodad), "{addr} on {iface}");
            assert!(m.attributes.is_empty(), "{addr} on {iface}: {m:?}");
        }
        let v4 = message("lo", "198.18.6.100/32", Some("lo:0"));
        assert_eq!(v4.attributes, [AddressAttribute::Label("lo:0".into())]);
    }
}
