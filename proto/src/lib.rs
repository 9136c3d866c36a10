//! The contract between `lvsctl` and `lvs-agent`.
//!
//! [`spec`] holds the declarative desired state of one node ([`spec::NodeSpec`]), the
//! output of the controller's planner and the input of the agent's reconciler. It is plain
//! data (serde), so the same value is printed by `lvsctl plan -o json`, persisted by the
//! agent and carried on the wire.
pub mod spec;

pub use spec::NodeSpec;
