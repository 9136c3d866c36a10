//! The agent of one node: everything the gRPC handlers hand their work to, one module per
//! responsibility over the one [`Agent`] struct.
mod agent;
mod announce;
mod arp_watch;
mod error;
mod failover;
mod ipvs;
mod lease;
mod lifecycle;
mod status;
mod vip_probe;

pub use agent::{Agent, Engines};
pub use error::AgentError;
pub use vip_probe::ProbeRequest;
