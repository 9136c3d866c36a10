//! Director high availability: the [`VrrpEngine`] the agent drives (keepalived, configured
//! from the spec and supervised as a child), the watchers a planned hand-over waits on
//! (the new master's first advert and gratuitous ARP), and how the connections a
//! hand-over catches half-way still reach their real server ([`straddle`]).
pub(crate) mod advert_watch;
mod hand_over;
pub(crate) mod keepalived;
pub(crate) mod keepalived_conf;
mod notify_fifo;
pub mod straddle;
pub(crate) mod supervisor;
pub(crate) mod vrrp;

pub use keepalived::{Keepalived, VipHands};
pub use vrrp::{NoVrrp, VrrpEngine, VrrpError};
