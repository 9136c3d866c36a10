//! Why the reconciler refused a spec or could not carry it out; each kind decides the gRPC code the caller gets.
use crate::kernel::system::SystemError;
use crate::reconcile::state::StoreError;

/// Why a spec was refused or could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec names another node.
    #[error("spec is for node {got}, this agent is {me}")]
    WrongNode {
        /// This agent's node.
        me: String,
        /// The spec's node.
        got: String,
    },
    /// The spec is older than the last accepted one.
    #[error("stale generation {got}: this node already accepted generation {stored}")]
    Stale {
        /// Accepted generation.
        stored: u64,
        /// Offered generation.
        got: u64,
    },
    /// Same generation, different content: two definitions raced.
    #[error(
        "conflict: generation {generation} was already accepted with different content (fingerprint {stored}); bump the generation"
    )]
    Conflict {
        /// The generation.
        generation: u64,
        /// Fingerprint of what was accepted.
        stored: String,
    },
    /// The spec names things this node does not have; nothing was changed.
    #[error("preflight failed, nothing was changed: {}", .0.join("; "))]
    Preflight(Vec<String>),
    /// Reading the node failed.
    #[error("observing the node: {0}")]
    Observe(#[from] SystemError),
    /// The state file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A live change was asked before any spec was accepted.
    #[error("this node has no accepted spec yet; run `lvsctl apply` first")]
    NoSpec,
    /// A live change names something the spec does not have.
    #[error("{0}")]
    NotInSpec(String),
    /// A live IPVS change did not take effect; it was not recorded.
    #[error("IPVS change not in force, nothing recorded: {0}")]
    NotInForce(String),
}

impl ReconcileError {
    /// The failure as an event reports it: the kernel's kind when the kernel failed.
    pub fn failure(&self) -> lvs_proto::reply::Failure {
        use lvs_proto::reply::{Failure, FailureKind};
        match self {
            ReconcileError::Observe(e) => e.failure(),
            _ => Failure { kind: FailureKind::Other, message: self.to_string(), errno: 0 },
        }
    }
}
