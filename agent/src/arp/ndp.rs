//! Neighbour solicitations (RFC 4861) from one interface, and the advertisements within a
//! window: IPv6's ARP. A raw ICMPv6 socket bound to the interface, filtered in the kernel to
//! neighbour advertisements; each solicitation goes to its target's solicited-node
//! multicast group with hop limit 255 (hosts ignore ND with any other), carrying our MAC.
//! Every advertisement is parsed once into an [`ArpReply`] (target and target link-layer
//! address), and no more than [`super::link::MAX_REPLIES`] are kept.
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::link::{ArpReply, hardware_address, last_error, read_replies};

const NEIGHBOUR_SOLICITATION: u8 = 135;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
const OPT_SOURCE_LINK_ADDRESS: u8 = 1;
const OPT_TARGET_LINK_ADDRESS: u8 = 2;
/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// The solicited-node multicast group of `target` (ff02::1:ffXX:XXXX).
fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The solicitation for `target` from `mac` (the kernel fills in the checksum).
fn solicitation(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = NEIGHBOUR_SOLICITATION;
    p[8..24].copy_from_slice(&target.octets());
    p[24] = OPT_SOURCE_LINK_ADDRESS;
    p[25] = 1; // in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// A neighbour advertisement with its target link-layer address, decoded; anything else
/// is `None`.
pub fn parse_advertisement(p: &[u8]) -> Option<ArpReply> {
    if p.len() < 24 || p[0] != NEIGHBOUR_ADVERTISEMENT || p[1] != 0 {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&p[8..24]);
    let mut opts = &p[24..];
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == OPT_TARGET_LINK_ADDRESS && len >= 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opts[2..8]);
            return Some(ArpReply { address: IpAddr::V6(Ipv6Addr::from(target)), mac });
        }
        opts = &opts[len..];
    }
    None
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
    what: &str,
) -> std::io::Result<()> {
    // SAFETY: a valid socket and an int option of its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 { last_error(what) } else { Ok(()) }
}

// Long on purpose: the socket's whole life in order (open, filter, bind, send, read until
// the window closes), each system call checked where it is made.
pub(super) fn ask_blocking(
    interface: &str,
    source: Ipv6Addr,
    targets: &[IpAddr],
    window: Duration,
) -> std::io::Result<Vec<ArpReply>> {
    let name = std::ffi::CString::new(interface).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return last_error(&format!("{interface}: no such interface"));
    }
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let raw =
        unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMPV6) };
    if raw < 0 {
        return last_error("ICMPv6 socket");
    }
    // SAFETY: `raw` is a socket just opened and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // Only advertisements reach us: a bit set blocks its type.
    let mut filter = [u32::MAX; 8];
    filter[usize::from(NEIGHBOUR_ADVERTISEMENT >> 5)] &= !(1u32 << (NEIGHBOUR_ADVERTISEMENT & 31));
    // SAFETY: a valid socket and the 32-byte filter the option takes.
    if unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::IPPROTO_ICMPV6, ICMP6_FILTER, filter.as_ptr().cast(), 32)
    } < 0
    {
        return last_error("ICMPv6 filter");
    }
    // SAFETY: a valid socket and a NUL-terminated name of the length given.
    if unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.as_bytes_with_nul().len() as libc::socklen_t,
        )
    } < 0
    {
        return last_error(&format!("{interface}: bind to device"));
    }
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255, "hop limit")?;
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, ifindex as libc::c_int, "multicast interface")?;
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0, "multicast loop")?;
    // SAFETY: sockaddr_in6 is plain data; all-zero is valid to fill in.
    let mut local: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    local.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    local.sin6_addr.s6_addr = source.octets();
    local.sin6_scope_id = ifindex;
    let len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: a valid sockaddr_in6 of the length given.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len) } < 0 {
        return last_error(&format!("{interface}: bind to {source}"));
    }
    let mac = hardware_address(&fd, interface)?;
    // Only this family's addresses are asked for here.
    for t in targets.iter().filter_map(|a| match a {
        IpAddr::V6(a) => Some(a),
        _ => None,
    }) {
        let p = solicitation(mac, *t);
        let mut to = local;
        to.sin6_addr.s6_addr = solicited_node(*t).octets();
        // SAFETY: a valid buffer and address of the lengths given.
        if unsafe { libc::sendto(fd.as_raw_fd(), p.as_ptr().cast(), p.len(), 0, (&raw const to).cast(), len) }
            < 0
        {
            return last_error(&format!("{interface}: send neighbour solicitation for {t}"));
        }
    }
    read_replies(&fd, window, targets, parse_advertisement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solicitation_goes_to_its_group_and_an_advertisement_is_decoded() {
        let t: Ipv6Addr = "2001:db8:18::100".parse().unwrap();
        assert_eq!(solicited_node(t), "ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap());
        let mac = [2, 0, 0, 0, 0, 9];
        let ns = solicitation(mac, t);
        assert_eq!((ns[0], &ns[8..24], &ns[26..32]), (135, &t.octets()[..], &mac[..]));
        let mut na = ns;
        na[0] = NEIGHBOUR_ADVERTISEMENT;
        na[24] = OPT_TARGET_LINK_ADDRESS;
        assert_eq!(parse_advertisement(&na), Some(ArpReply { address: IpAddr::V6(t), mac }));
        // A solicitation, no link-layer option, a zero-length option: nothing.
        assert_eq!(parse_advertisement(&ns), None);
        assert_eq!(parse_advertisement(&na[..24]), None);
        let mut bad = na;
        bad[25] = 0;
        assert_eq!(parse_advertisement(&bad), None);
    }
}
