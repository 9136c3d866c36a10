//! The controller: definition → validated cluster → per-node desired state, and the
//! fleet it is pushed to.
//!
//! ```text
//! cluster.toml ──source──► Definition ──validate──► Cluster ──planner──► NodeSpec per node
//! fleet (typed calls, replies decoded once) ◄── ops (fleet operations) ◄── commands (views)
//! ```
//! The command line is the `lvsctl` crate; the namespace lab is `lvs-lab`.
pub mod commands;
pub mod definition;
pub mod diagnostics;
pub mod enrol;
pub mod fleet;
pub mod import;
pub mod ipvsadm;
pub mod load;
pub mod model;
pub mod ops;
pub mod paths;
pub mod peering;
pub mod pki;
pub mod planner;
pub mod render;
pub mod rules;
pub mod scrape;
pub mod source;
pub mod table;
pub mod validate;
