//! The connection table, read from `/proc/net/ip_vs_conn` (`ipvsadm -Lnc`).
//!
//! IPVS exports connections only through procfs; IPv4 addresses are 8 hex digits,
//! IPv6 ones are written in brackets, ports are 4 hex digits.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One connection entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `TCP`, `UDP`, `SCTP`, ...
    pub protocol: String,
    /// Client.
    pub client: SocketAddr,
    /// Virtual address.
    pub virtual_addr: SocketAddr,
    /// Real server.
    pub destination: SocketAddr,
    /// Connection state (`ESTABLISHED`, `FIN_WAIT`, ...).
    pub state: String,
    /// Seconds until it expires.
    pub expires_s: u32,
}

/// Parse the text of `/proc/net/ip_vs_conn`. Lines that do not parse are skipped with
/// their number in the error list.
pub fn parse(text: &str) -> (Vec<Connection>, Vec<usize>) {
    let mut conns = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(c) => conns.push(c),
            None => bad.push(n + 1),
        }
    }
    (conns, bad)
}

fn parse_line(line: &str) -> Option<Connection> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 9 {
        return None;
    }
    Some(Connection {
        protocol: f[0].to_owned(),
        client: sock(f[1], f[2])?,
        virtual_addr: sock(f[3], f[4])?,
        destination: sock(f[5], f[6])?,
        state: f[7].to_owned(),
        expires_s: f[8].parse().ok()?,
    })
}

fn sock(addr: &str, port: &str) -> Option<SocketAddr> {
    let ip = if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        IpAddr::V6(v6.parse().ok()?)
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?))
    };
    Some(SocketAddr::new(ip, u16::from_str_radix(port, 16).ok()?))
}

/// Read and parse the connection table of the calling thread's network namespace.
///
/// `/proc/net` follows the namespace of the process's main thread, so a thread that
/// entered another namespace must read through `/proc/thread-self`.
pub fn read() -> std::io::Result<Vec<Connection>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/ip_vs_conn")
        .or_else(|_| std::fs::read_to_string("/proc/net/ip_vs_conn"))?;
    Ok(parse(&text).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6_entries() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C613000A E23C C6120064 0050 C612000C 0050 FIN_WAIT        118\n\
UDP [2001:db8::1] 1F90 [2001:db8::100] 0035 [2001:db8::11] 0035 UDP             298\n\
garbage\n";
        let (c, bad) = parse(text);
        assert_eq!(bad, vec![4]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].client, "198.19.0.10:57916".parse().unwrap());
        assert_eq!(c[0].virtual_addr, "198.18.0.100:80".parse().unwrap());
        assert_eq!(c[0].destination, "198.18.0.12:80".parse().unwrap());
        assert_eq!((c[0].state.as_str(), c[0].expires_s), ("FIN_WAIT", 118));
        assert_eq!(c[1].destination, "[2001:db8::11]:53".parse().unwrap());
    }
}
