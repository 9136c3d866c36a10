//! What identifies a virtual service: its protocol and address, or a firewall mark.
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Transmission Control Protocol (`ipvsadm -t`).
    Tcp,
    /// User Datagram Protocol (`ipvsadm -u`).
    Udp,
    /// Stream Control Transmission Protocol (`ipvsadm --sctp-service`).
    Sctp,
}

impl Protocol {
    /// Upper-case name as `ipvsadm` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ServiceKey {
    /// VIP:port for one protocol.
    Addr {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// VIP and port.
        address: SocketAddr,
    },
    /// Packets carrying a firewall mark.
    Fwmark {
        /// The mark (never 0).
        mark: u32,
        /// Whether the marked traffic is IPv6.
        ipv6: bool,
    },
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Addr { protocol, address } => {
                write!(f, "{} {}", protocol.as_str(), address)
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                write!(f, "FWM {mark}{}", if *ipv6 { " IPv6" } else { "" })
            }
        }
    }
}
