//! Who has an address: the seam ([`ArpAsker`]) and the real asker, which sends ARP
//! requests for IPv4 ([`super::arp4`]) and neighbour solicitations for IPv6
//! ([`super::ndp`]) from one interface, and reads the replies within a window.
use std::net::IpAddr;
use std::time::Duration;

use futures::future::BoxFuture;

use super::link::ArpReply;

/// Asks who has an address (the seam the watch is tested through): ARP for IPv4,
/// neighbour solicitation for IPv6, by `source`'s family.
pub trait ArpAsker: Send + Sync {
    /// Ask for each of `targets` on `interface`, from `source`; the replies within `window`
    /// for those targets, each (address, MAC) once.
    fn ask(
        &self,
        interface: String,
        source: IpAddr,
        targets: Vec<IpAddr>,
        window: Duration,
    ) -> BoxFuture<'static, std::io::Result<Vec<ArpReply>>>;
}

/// No ARP (agents made in tests): every round says so.
pub struct NoArp;

impl ArpAsker for NoArp {
    fn ask(
        &self,
        _: String,
        _: IpAddr,
        _: Vec<IpAddr>,
        _: Duration,
    ) -> BoxFuture<'static, std::io::Result<Vec<ArpReply>>> {
        Box::pin(async { Err(std::io::Error::other("this agent was made without an ARP socket")) })
    }
}

/// The real asker: a socket per round (a raw packet socket for ARP, a raw ICMPv6 socket for
/// ND), on a blocking thread.
pub struct PacketArp;

impl ArpAsker for PacketArp {
    fn ask(
        &self,
        interface: String,
        source: IpAddr,
        targets: Vec<IpAddr>,
        window: Duration,
    ) -> BoxFuture<'static, std::io::Result<Vec<ArpReply>>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || match source {
                IpAddr::V4(s) => super::arp4::ask_blocking(&interface, s, &targets, window),
                IpAddr::V6(s) => super::ndp::ask_blocking(&interface, s, &targets, window),
            })
            .await
            .map_err(std::io::Error::other)?
        })
    }
}
