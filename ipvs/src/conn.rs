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
    /// The client's address and port as the director saw it.
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

/// The first `limit` entries of a connection table read line by line from `r`, and whether
/// there were more (then reading stops: memory and time are bounded by `limit`, not by the
/// table, which may hold millions of entries).
pub fn read_from(r: impl std::io::BufRead, limit: usize) -> std::io::Result<(Vec<Connection>, bool)> {
    let mut conns = Vec::new();
    for line in r.lines().skip(1) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some(c) = parse_line(&line) else { continue };
        if conns.len() == limit {
            return Ok((conns, true));
        }
        conns.push(c);
    }
    Ok((conns, false))
}

/// [`read_from`] the connection table of the calling thread's network namespace (empty
/// without IPVS).
///
/// `/proc/net` follows the namespace of the process's main thread, so a thread that
/// entered another namespace must read through `/proc/thread-self`.
pub fn read(limit: usize) -> std::io::Result<(Vec<Connection>, bool)> {
    let f = std::fs::File::open("/proc/thread-self/net/ip_vs_conn")
        .or_else(|_| std::fs::File::open("/proc/net/ip_vs_conn"));
    match f {
        Ok(f) => read_from(std::io::BufReader::with_capacity(64 * 1024, f), limit),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), false)),
        Err(e) => Err(e),
    }
}

/// When an entry of the connection table still carries traffic: its timer, reset to the
/// protocol's timeout by every client packet, has `within_s` or less gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The kernel's TCP (ESTABLISHED) timeout, seconds.
    pub tcp_s: u32,
    /// The kernel's UDP timeout, seconds.
    pub udp_s: u32,
    /// How recently a client packet must have come.
    pub within_s: u32,
}

impl Liveness {
    /// Whether an entry of protocol `pro`, in `state`, with `expires` seconds left, is live:
    /// TCP when ESTABLISHED (in DR the director never sees the real server's FIN, so an
    /// ESTABLISHED entry idle for longer is a dead one waiting out its 900 s); UDP in its
    /// one state (a UDP flow has no ESTABLISHED: a drain that waited for it would end at
    /// once, while the flow still sends).
    pub fn is_live(&self, pro: &str, state: &str, expires: u32) -> bool {
        match pro {
            "TCP" => state == "ESTABLISHED" && expires + self.within_s >= self.tcp_s,
            "UDP" => expires + self.within_s >= self.udp_s,
            _ => false,
        }
    }
}

/// Connections of one destination, as the drain wait needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestCount {
    /// Entries for the destination, in any state.
    pub total: u32,
    /// Entries still carrying traffic ([`Liveness`]).
    pub live: u32,
}

/// Count, per destination in `dests`, the entries of a connection table read line by line
/// from `r`, without keeping any entry: the memory used does not depend on the table's
/// size. Which entries are live, `live` says.
pub fn count(
    r: impl std::io::BufRead,
    dests: &[SocketAddr],
    live: Liveness,
) -> std::io::Result<Vec<DestCount>> {
    let mut out = vec![DestCount::default(); dests.len()];
    // One lookup per line, whatever the number of destinations asked about.
    let index: std::collections::HashMap<SocketAddr, usize> =
        dests.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    for line in r.lines().skip(1) {
        let line = line?;
        let mut f = line.split_ascii_whitespace();
        let (Some(pro), Some(_), Some(_), Some(_), Some(_)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Some(daddr), Some(dport), Some(state), Some(expires)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some(dest) = sock(daddr, dport) else { continue };
        let Some(&i) = index.get(&dest) else { continue };
        out[i].total += 1;
        let expires: u32 = expires.parse().unwrap_or(0);
        if live.is_live(pro, state, expires) {
            out[i].live += 1;
        }
    }
    Ok(out)
}

/// [`count`] over the connection table of the calling thread's network namespace
/// (empty without IPVS).
pub fn count_table(dests: &[SocketAddr], live: Liveness) -> std::io::Result<Vec<DestCount>> {
    let f = std::fs::File::open("/proc/thread-self/net/ip_vs_conn")
        .or_else(|_| std::fs::File::open("/proc/net/ip_vs_conn"));
    match f {
        Ok(f) => count(std::io::BufReader::with_capacity(64 * 1024, f), dests, live),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![DestCount::default(); dests.len()]),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_destination_without_keeping_entries() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C613000A E23C C6120064 0050 C612000C 0050 ESTABLISHED     899\n\
TCP C613000A E23D C6120064 0050 C612000C 0050 ESTABLISHED     300\n\
TCP C613000A E23E C6120064 0050 C612000C 0050 FIN_WAIT        118\n\
TCP C613000A E23F C6120064 0050 C612000B 0050 ESTABLISHED     890\n\
UDP C613000A 9C55 C6120064 0035 C612000C 0035 UDP             295\n\
UDP C613000A 9C56 C6120064 0035 C612000C 0035 UDP             200\n\
garbage\n";
        let dests = [
            "198.18.0.12:80".parse().unwrap(),
            "198.18.0.13:80".parse().unwrap(),
            "198.18.0.12:53".parse().unwrap(),
        ];
        let live = Liveness { tcp_s: 900, udp_s: 300, within_s: 15 };
        let c = count(text.as_bytes(), &dests, live).unwrap();
        assert_eq!(c[0], DestCount { total: 3, live: 1 });
        assert_eq!(c[1], DestCount::default());
        // A UDP flow is live while its client still sends: 5 s since its last datagram,
        // not 100 s.
        assert_eq!(c[2], DestCount { total: 2, live: 1 });
    }

    #[test]
    fn a_read_stops_at_its_limit_and_says_there_was_more() {
        let mut text =
            String::from("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n");
        for i in 0..100u32 {
            text.push_str(&format!(
                "TCP C613000A {:04X} C6120064 0050 C612000C 0050 ESTABLISHED     899\n",
                i + 1
            ));
        }
        let (c, more) = read_from(text.as_bytes(), 10).unwrap();
        assert_eq!((c.len(), more), (10, true));
        let (c, more) = read_from(text.as_bytes(), 100).unwrap();
        assert_eq!((c.len(), more), (100, false));
    }

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
