//! `lvsctl`'s library: definition → validated cluster → per-node desired state.
//!
//! ```text
//! cluster.toml ──source──► Definition ──validate──► Cluster ──planner──► NodeSpec per node
//! ```
pub mod cli;
pub mod commands;
pub mod definition;
pub mod diagnostics;
pub mod fleet;
pub mod ipvsadm;
pub mod lab;
pub mod load;
pub mod model;
pub mod ops;
pub mod pki;
pub mod planner;
pub mod render;
pub mod rules;
pub mod source;
pub mod table;
pub mod validate;
