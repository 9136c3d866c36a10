//! What the ARP and ND askers share: the reply type, the bound on replies kept, the
//! interface's hardware address, reading replies until the window closes, and errors that
//! name the call that failed.
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Most replies one round keeps.
pub const MAX_REPLIES: usize = 4096;

/// One ARP reply or neighbour advertisement: who says it has `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpReply {
    /// The address it answered for.
    pub address: IpAddr,
    /// Its hardware address.
    pub mac: [u8; 6],
}

/// The last OS error, naming `what` failed.
pub(super) fn last_error<T>(what: &str) -> std::io::Result<T> {
    let e = std::io::Error::last_os_error();
    Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// The interface's hardware address (`SIOCGIFHWADDR`).
pub(super) fn hardware_address(fd: &OwnedFd, interface: &str) -> std::io::Result<[u8; 6]> {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(interface.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    // SAFETY: a valid socket and a valid, NUL-terminated ifreq the kernel fills in.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return last_error(&format!("{interface}: hardware address"));
    }
    // SAFETY: SIOCGIFHWADDR filled the union's hardware-address member.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok(mac)
}

/// Read from `fd` until `window` closes (or [`MAX_REPLIES`] are kept): each datagram decoded
/// by `parse`, kept once when it answers for one of `targets`.
pub(super) fn read_replies(
    fd: &OwnedFd,
    window: Duration,
    targets: &[IpAddr],
    parse: impl Fn(&[u8]) -> Option<ArpReply>,
) -> std::io::Result<Vec<ArpReply>> {
    let deadline = Instant::now() + window;
    let mut replies: Vec<ArpReply> = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || replies.len() >= MAX_REPLIES {
            return Ok(replies);
        }
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return last_error("poll");
        }
        if n == 0 {
            continue;
        }
        // SAFETY: a valid buffer of the length given.
        let got =
            unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if got < 0 {
            continue;
        }
        if let Some(r) = parse(&buf[..got as usize])
            && targets.contains(&r.address)
            && !replies.contains(&r)
        {
            replies.push(r);
        }
    }
}
