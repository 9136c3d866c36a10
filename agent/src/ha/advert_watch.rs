//! Seeing another director take over: its first VRRP advertisement.
//!
//! A planned hand-over must know when the router sends to the new master, to move the VIPs
//! to `lo` at that moment ([`crate::ha::straddle`]) and not a fixed time later: keepalived
//! sends its priority-0 advert at once on SIGTERM but takes about a second more to exit. A backup is silent; the director that becomes master
//! advertises at once, to its unicast peers, this one among them. So a raw socket for
//! protocol 112 (VRRP; keepalived holds its own, each gets a copy) sees the takeover as it
//! happens.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// IP protocol number of VRRP.
const IPPROTO_VRRP: libc::c_int = 112;
/// VRRP message type of an advertisement (RFC 5798 §5.2.2).
const ADVERTISEMENT: u8 = 1;

/// A watch opened before the hand-over starts, so no advert is missed.
pub struct AdvertWatch {
    fd: AsyncFd<OwnedFd>,
    vrid: u8,
    peers: Vec<IpAddr>,
    /// IPv4 raw sockets deliver the IP header; IPv6 ones do not.
    v4: bool,
}

impl AdvertWatch {
    /// Watch for adverts of virtual router `vrid` from `peers` (all of one family, that
    /// of `local`). Needs `CAP_NET_RAW`, which the agent holds for keepalived, and a tokio
    /// runtime.
    pub fn open(local: IpAddr, vrid: u8, peers: &[IpAddr]) -> std::io::Result<Self> {
        let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(family, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, IPPROTO_VRRP)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as the
        // AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
        Ok(Self { fd, vrid, peers: peers.to_vec(), v4: local.is_ipv4() })
    }

    /// The first peer that advertises itself as master (priority above 0) within `within`;
    /// `None` if none did.
    pub async fn next_master(&self, within: Duration) -> Option<IpAddr> {
        tokio::time::timeout(within, async {
            loop {
                let Ok(mut ready) = self.fd.readable().await else { return None };
                match ready.try_io(|fd| recv_from(fd.get_ref().as_raw_fd())) {
                    Ok(Ok((from, packet))) => {
                        if let Some(master) = self.master_in(from, &packet) {
                            return Some(master);
                        }
                    }
                    Ok(Err(_)) => return None,
                    Err(_would_block) => continue,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// `from`, if `packet` (as the raw socket gave it) is its advertisement as a master of
    /// our virtual router.
    fn master_in(&self, from: IpAddr, packet: &[u8]) -> Option<IpAddr> {
        let vrrp = if self.v4 {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            packet.get(ihl..)?
        } else {
            packet
        };
        let (kind, vrid, priority) = (vrrp.first()? & 0x0f, *vrrp.get(1)?, *vrrp.get(2)?);
        (kind == ADVERTISEMENT && vrid == self.vrid && priority > 0 && self.peers.contains(&from))
            .then_some(from)
    }
}

/// Seeing another host claim an address: its gratuitous ARP, as the router sees it (the
/// same broadcast reaches every host of the LAN). A new master sends one for each VIP as
/// it takes over, and the router sends to it from then on: the moment the old master can
/// let go of the VIPs without losing a packet still on its way to it.
pub struct GarpWatch {
    fd: AsyncFd<OwnedFd>,
    addresses: Vec<Ipv4Addr>,
}

/// `ETH_P_ARP`, in network order as `socket(2)` and `sockaddr_ll` want it.
const ETH_P_ARP_BE: u16 = (libc::ETH_P_ARP as u16).to_be();

impl GarpWatch {
    /// Watch `interface` for ARP from another host claiming one of `addresses` (IPv4; an
    /// empty list watches for nothing). Needs `CAP_NET_RAW` and a tokio runtime.
    pub fn open(interface: &str, addresses: &[Ipv4Addr]) -> std::io::Result<Self> {
        let name = std::ffi::CString::new(interface).map_err(std::io::Error::other)?;
        // SAFETY: a NUL-terminated name that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(ETH_P_ARP_BE),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is a valid value.
        let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as libc::sa_family_t;
        at.sll_protocol = ETH_P_ARP_BE;
        at.sll_ifindex = index as libc::c_int;
        // SAFETY: the address outlives the call and its length is its own.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const at).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as the
        // AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
        Ok(Self { fd, addresses: addresses.to_vec() })
    }

    /// The first address of ours another host claims within `within`; `None` if none.
    pub async fn claimed(&self, within: Duration) -> Option<Ipv4Addr> {
        if self.addresses.is_empty() {
            return None;
        }
        tokio::time::timeout(within, async {
            loop {
                let Ok(mut ready) = self.fd.readable().await else { return None };
                match ready.try_io(|fd| recv_incoming(fd.get_ref().as_raw_fd())) {
                    Ok(Ok(Some(arp))) => {
                        if let Some(a) = claimed_in(&arp, &self.addresses) {
                            return Some(a);
                        }
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(_)) => return None,
                    Err(_would_block) => continue,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// The sender address of an IPv4-over-Ethernet ARP message, if it is one of `addresses`.
fn claimed_in(arp: &[u8], addresses: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    // htype 1, ptype 0x0800, hlen 6, plen 4; the sender's protocol address at 14..18.
    if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let sender = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    addresses.contains(&sender).then_some(sender)
}

/// One ARP message another host sent (`None`: one this host sent, which a packet socket
/// sees too).
fn recv_incoming(fd: std::os::fd::RawFd) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 128];
    // SAFETY: an all-zero sockaddr_ll is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the buffers outlive the call and their lengths are theirs.
    let n = unsafe {
        libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), 0, (&raw mut from).cast(), &raw mut len)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok((from.sll_pkttype != libc::PACKET_OUTGOING).then_some(buf))
}

/// One datagram and its source address.
fn recv_from(fd: std::os::fd::RawFd) -> std::io::Result<(IpAddr, Vec<u8>)> {
    let mut buf = vec![0u8; 1500];
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the buffers outlive the call and their lengths are theirs.
    let n = unsafe {
        libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), 0, (&raw mut addr).cast(), &raw mut len)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    let from = match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled a sockaddr_in for this family.
            let a: libc::sockaddr_in = unsafe { std::ptr::read((&raw const addr).cast()) };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))
        }
        _ => {
            // SAFETY: the kernel filled a sockaddr_in6 for this family.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const addr).cast()) };
            IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr))
        }
    };
    Ok((from, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Option<AdvertWatch> {
        // Needs CAP_NET_RAW: skipped (and said) without it.
        AdvertWatch::open("127.0.0.1".parse().unwrap(), 51, &["127.0.0.1".parse().unwrap()])
            .map_err(|e| eprintln!("SKIPPED: no raw socket: {e}"))
            .ok()
    }

    /// A VRRP packet as a raw IPv4 socket delivers it: a 20-byte IP header, then VRRP.
    fn packet(kind: u8, vrid: u8, priority: u8) -> Vec<u8> {
        let mut p = vec![0x45; 1];
        p.resize(20, 0);
        p.extend([0x30 | kind, vrid, priority, 1, 0, 10, 0, 0]);
        p
    }

    #[tokio::test]
    async fn only_a_peers_master_advert_of_our_router_counts() {
        let Some(w) = watch() else { return };
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(w.master_in(peer, &packet(ADVERTISEMENT, 51, 100)), Some(peer));
        assert_eq!(w.master_in(peer, &packet(ADVERTISEMENT, 51, 0)), None, "priority 0: one leaving");
        assert_eq!(w.master_in(peer, &packet(ADVERTISEMENT, 52, 100)), None, "another router");
        assert_eq!(w.master_in(peer, &packet(2, 51, 100)), None, "not an advert");
        assert_eq!(
            w.master_in("127.0.0.9".parse().unwrap(), &packet(ADVERTISEMENT, 51, 100)),
            None,
            "not a peer"
        );
        assert_eq!(w.master_in(peer, &[0x45]), None, "truncated");
    }

    #[test]
    fn a_gratuitous_arp_names_the_address_it_claims() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend([2, 0, 0, 0, 0, 9]);
        arp.extend(vip.octets());
        arp.extend([0; 6]);
        arp.extend(vip.octets());
        assert_eq!(claimed_in(&arp, &[vip]), Some(vip));
        assert_eq!(claimed_in(&arp, &[Ipv4Addr::new(198, 18, 0, 101)]), None, "not ours");
        assert_eq!(claimed_in(&arp[..20], &[vip]), None, "truncated");
        let mut ipv6 = arp.clone();
        ipv6[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(claimed_in(&ipv6, &[vip]), None, "not IPv4");
    }

    /// Over the loopback: an advert sent to us is seen; silence times out.
    #[tokio::test]
    async fn an_advert_sent_to_us_is_seen_and_silence_times_out() {
        let Some(w) = watch() else { return };
        assert_eq!(w.next_master(Duration::from_millis(100)).await, None);
        let tx = AdvertWatch::open("127.0.0.1".parse().unwrap(), 51, &[]).unwrap();
        let advert = [0x31u8, 51, 100, 1, 0, 10, 0, 0];
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffers outlive the call and their lengths are theirs.
        let n = unsafe {
            libc::sendto(
                tx.fd.get_ref().as_raw_fd(),
                advert.as_ptr().cast(),
                advert.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(n, advert.len() as isize);
        assert_eq!(w.next_master(Duration::from_secs(2)).await, Some("127.0.0.1".parse().unwrap()));
    }
}
