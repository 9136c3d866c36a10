//! Director high availability: the [`VrrpEngine`] the agent drives (keepalived, configured
//! from the spec and supervised as a child), the watchers a planned hand-over waits on
//! (the new master's first advert and gratuitous ARP), and the push of the last
//! connection-sync message before the VIPs leave.
pub(crate) mod advert_watch;
mod hand_over;
pub(crate) mod keepalived;
pub(crate) mod keepalived_conf;
pub(crate) mod supervisor;
pub(crate) mod sync_flush;
pub(crate) mod vrrp;

pub use keepalived::{Keepalived, Release};
pub use vrrp::{NoVrrp, VrrpEngine, VrrpError};
