//! Why a call to the agent was not carried out.

use crate::kernel::system::SystemError;
use crate::reconcile::error::ReconcileError;

/// Why a request was not carried out, with its source kept typed. The gRPC layer maps
/// each to one status code, in one place (`grpc::status`).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Too many of this kind of request are running: try again.
    #[error("{0}")]
    Busy(String),
    /// Another controller holds this generation's reservation.
    #[error("{0}")]
    Leased(String),
    /// The reconciler refused or failed (its kind decides the code).
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// The state file.
    #[error(transparent)]
    Store(#[from] crate::reconcile::state::StoreError),
    /// A kernel read or change.
    #[error(transparent)]
    System(#[from] SystemError),
    /// This kernel has no IPVS.
    #[error("this kernel has no IPVS (load ip_vs)")]
    NoIpvs,
    /// A live weight change the kernel does not show.
    #[error("weight change not applied: {0}")]
    NotApplied(String),
    /// The apply task panicked or was cancelled.
    #[error("the apply task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The VRRP engine (director HA).
    #[error("VRRP engine: {0}")]
    Vrrp(#[from] crate::ha::vrrp::VrrpError),
}
