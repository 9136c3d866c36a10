//! The director's IPVS table with counters, rates, timeouts and connections.
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use super::text::as_text;
use crate::spec::ServiceKey;

// ------------------------------------------------------------------ the IPVS table

/// How IPVS forwards to a destination, as observed (a spec never says `Local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// Direct routing (`-g`).
    Route,
    /// IP-in-IP (`-i`).
    Tunnel,
    /// NAT (`-m`).
    Masq,
    /// The director itself.
    Local,
}

impl Forward {
    /// The word `ipvsadm -L` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
            Forward::Local => "Local",
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters and rates of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[allow(missing_docs)] // the kernel's own names (struct ip_vs_stats_user)
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One destination in the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDestination {
    /// RIP:port.
    pub address: SocketAddr,
    /// Forwarding method.
    pub forward: Forward,
    /// The weight in the kernel now (0: draining or quarantined).
    pub weight: u32,
    /// Connection threshold (0: none).
    pub upper_threshold: u32,
    /// Threshold to resume at.
    pub lower_threshold: u32,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Persistence templates.
    pub persist_conns: u32,
    /// Counters since the destination was added.
    pub stats: Stats,
}

/// One virtual service in the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableService {
    /// Protocol VIP:port or fwmark.
    #[serde(serialize_with = "as_text")]
    pub key: ServiceKey,
    /// The scheduler module name.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout.
    pub timeout_s: u32,
    /// Persistence netmask.
    pub netmask: u32,
    /// Counters since the service was added.
    pub stats: Stats,
    /// Its destinations, in the kernel's order.
    pub destinations: Vec<TableDestination>,
    /// Created by this agent (else foreign).
    pub managed: bool,
}

/// Connection timeouts (`ipvsadm --set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Timeouts {
    /// Established TCP, in seconds.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP, in seconds.
    pub udp: u32,
}

/// One connection entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// `TCP`, `UDP`, `SCTP`.
    pub protocol: String,
    /// CIP:port.
    pub client: SocketAddr,
    /// VIP:port.
    pub virtual_address: SocketAddr,
    /// RIP:port.
    pub destination: SocketAddr,
    /// `ESTABLISHED`, `FIN_WAIT`, …
    pub state: String,
    /// Seconds left.
    pub expires_s: u32,
}

/// A director's IPVS table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IpvsTable {
    /// `1.2.1`.
    pub version: String,
    /// Connection hash table size.
    pub conn_tab_size: u32,
    /// Every virtual service in the kernel, ours or not.
    pub services: Vec<TableService>,
    /// Connection timeouts (`ipvsadm -L --timeout`).
    pub timeouts: Timeouts,
    /// Connections, when asked for (at most the number asked for).
    pub connections: Vec<Connection>,
    /// The table held more connections than were asked for.
    #[serde(default)]
    pub connections_truncated: bool,
}

impl IpvsTable {
    /// The table in ipvsadm's order: services and their destinations sorted by key, so
    /// every view (and every agent) shows the same order.
    pub fn sorted(mut self) -> Self {
        // libipvs's `ipvs_cmp_services`, which `ipvsadm -L` and `-S` sort by: the mark
        // (address services, mark 0, first), then the family (IPv4 first), then the protocol
        // number (TCP 6, UDP 17, SCTP 132), then the address and the port.
        self.services.sort_by_key(|s| match s.key {
            ServiceKey::Addr { protocol, address } => {
                let number = match protocol {
                    crate::spec::Protocol::Tcp => 6u8,
                    crate::spec::Protocol::Udp => 17,
                    crate::spec::Protocol::Sctp => 132,
                };
                (0, address.is_ipv6(), number, Some(address))
            }
            ServiceKey::Fwmark { mark, ipv6 } => (mark, ipv6, 0, None),
        });
        for s in &mut self.services {
            s.destinations.sort_by_key(|d| d.address);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Protocol;

    fn service(key: &str) -> TableService {
        let key = match key.split_once(' ') {
            Some(("FWM", m)) => ServiceKey::Fwmark {
                mark: m.trim_end_matches(" IPv6").parse().unwrap(),
                ipv6: m.ends_with("IPv6"),
            },
            Some((p, a)) => ServiceKey::Addr {
                protocol: match p {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    _ => Protocol::Sctp,
                },
                address: a.parse().unwrap(),
            },
            None => unreachable!(),
        };
        TableService {
            key,
            scheduler: "rr".into(),
            flags: 0,
            timeout_s: 0,
            netmask: 0,
            stats: Stats::default(),
            destinations: Vec::new(),
            managed: true,
        }
    }

    #[test]
    fn the_table_is_in_the_order_ipvsadm_sorts_it() {
        // libipvs's ipvs_cmp_services, as `ipvsadm -S -n` printed the dual-stack test's
        // table: address services before marks, IPv4 before IPv6, TCP < UDP < SCTP.
        let shuffled = [
            "FWM 6 IPv6",
            "SCTP 198.18.0.100:80",
            "TCP [2001:db8:6::100]:80",
            "FWM 6",
            "UDP 198.18.0.100:53",
            "TCP 198.18.0.100:443",
            "TCP 198.18.0.100:80",
            "FWM 2",
        ];
        let t = IpvsTable { services: shuffled.iter().map(|k| service(k)).collect(), ..IpvsTable::default() };
        let got: Vec<String> = t.sorted().services.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(
            got,
            [
                "TCP 198.18.0.100:80",
                "TCP 198.18.0.100:443",
                "UDP 198.18.0.100:53",
                "SCTP 198.18.0.100:80",
                "TCP [2001:db8:6::100]:80",
                "FWM 2",
                "FWM 6",
                "FWM 6 IPv6",
            ]
        );
    }
}
