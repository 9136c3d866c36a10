//! `lvsctl`'s library: definition → validated cluster → per-node desired state.
//!
//! ```text
//! cluster.toml ──source──► Definition ──validate──► Cluster ──planner──► NodeSpec per node
//! ```
pub mod cli;
pub mod definition;
pub mod diagnostics;
pub mod load;
pub mod model;
pub mod planner;
pub mod render;
pub mod source;
pub mod validate;
