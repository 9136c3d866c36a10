//! ARP requests from one interface, and the replies within a window. An `AF_PACKET`
//! `SOCK_DGRAM` socket bound to the interface and to ARP: the kernel writes and strips the
//! Ethernet header, so what is sent and read is the 28-byte ARP payload alone. Every reply
//! is parsed once into an [`ArpReply`], and no more than
//! [`super::link::MAX_REPLIES`] are kept: a LAN flooding us with ARP cannot grow the
//! agent's memory.
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::link::{ArpReply, hardware_address, last_error, read_replies};

const ETH_P_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// `sockaddr_ll` for `ifindex`, to the broadcast address.
fn link_address(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value to fill in.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = ETH_P_ARP.to_be();
    sa.sll_ifindex = ifindex;
    sa.sll_halen = 6;
    sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    sa
}

/// The ARP request for `target` from (`mac`, `source`).
fn request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&source.octets());
    p[24..28].copy_from_slice(&target.octets());
    p
}

/// An ARP reply for IPv4 over Ethernet, decoded; anything else is `None`.
pub fn parse_reply(p: &[u8]) -> Option<ArpReply> {
    if p.len() < 28 || p[0..2] != [0, 1] || p[2..4] != [8, 0] || p[4] != 6 || p[5] != 4 {
        return None;
    }
    if u16::from_be_bytes([p[6], p[7]]) != ARP_REPLY {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p[8..14]);
    Some(ArpReply { address: IpAddr::V4(Ipv4Addr::new(p[14], p[15], p[16], p[17])), mac })
}

// Long on purpose: the socket's whole life in order (open, bind, send, read until the
// window closes), each system call checked where it is made.
pub(super) fn ask_blocking(
    interface: &str,
    source: Ipv4Addr,
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
    let raw = unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(ETH_P_ARP.to_be()))
    };
    if raw < 0 {
        return last_error("ARP socket");
    }
    // SAFETY: `raw` is a socket just opened and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sa = link_address(ifindex as i32);
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: a valid sockaddr_ll of the length given.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } < 0 {
        return last_error(&format!("{interface}: bind"));
    }
    let mac = hardware_address(&fd, interface)?;
    // Only this family's addresses are asked for here.
    for t in targets.iter().filter_map(|a| match a {
        IpAddr::V4(a) => Some(a),
        _ => None,
    }) {
        let p = request(mac, source, *t);
        // SAFETY: a valid buffer and address of the lengths given.
        if unsafe { libc::sendto(fd.as_raw_fd(), p.as_ptr().cast(), p.len(), 0, (&raw const sa).cast(), len) }
            < 0
        {
            return last_error(&format!("{interface}: send ARP request for {t}"));
        }
    }
    read_replies(&fd, window, targets, parse_reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_decoded_and_anything_else_is_not() {
        let mac = [2, 0, 0, 0, 0, 7];
        let mut reply = request(mac, "198.18.0.100".parse().unwrap(), "198.18.0.1".parse().unwrap());
        reply[6..8].copy_from_slice(&ARP_REPLY.to_be_bytes());
        assert_eq!(parse_reply(&reply), Some(ArpReply { address: "198.18.0.100".parse().unwrap(), mac }));
        // Our own request, a short frame, another protocol: nothing.
        assert_eq!(
            parse_reply(&request(mac, "198.18.0.1".parse().unwrap(), "198.18.0.100".parse().unwrap())),
            None
        );
        assert_eq!(parse_reply(&reply[..20]), None);
        let mut v6 = reply;
        v6[2..4].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(parse_reply(&v6), None);
    }
}
