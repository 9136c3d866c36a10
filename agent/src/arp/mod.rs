//! The router's ARP watch (issue 30): who answers ARP for each VIP.
//!
//! - [`ask`]: the side effect, behind [`ArpAsker`]: from one interface, ARP requests (IPv4,
//!   an `AF_PACKET` socket) or neighbour solicitations (IPv6, a raw ICMPv6 socket), and the
//!   replies that come back within a window ([`ask::PacketArp`]).
//! - [`judge`]: pure: the replies of one round against the spec's holders, as the status
//!   reports it (a leak when a node that may not answer did, or more than one MAC did).
//!
//! The loop that runs a round every interval, reports leaks as events and keeps the last
//! round for status and metrics is `node::arp_watch`.
mod arp4;
pub mod ask;
pub mod judge;
mod link;
mod ndp;

pub use ask::{ArpAsker, NoArp};
pub use link::ArpReply;
