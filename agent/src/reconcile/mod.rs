//! Desired state against observed state: [`diff`](self) turns a spec and what the kernel
//! holds into ordered actions, `apply` carries them out one by one and reports each one's
//! outcome, the [`Reconciler`] serializes both behind one lock and is the only writer of
//! the kernel, and the [`Store`] holds the accepted spec and what the agent owns, in
//! memory and written through to `state.json`.
pub(crate) mod action;
pub(crate) mod apply;
pub(crate) mod diff;
pub(crate) mod error;
pub(crate) mod ipvs_diff;
pub(crate) mod ownership;
pub(crate) mod preflight;
pub(crate) mod reconciler;
pub(crate) mod report;
pub(crate) mod state;

pub use action::{Action, route_text};
pub use error::ReconcileError;
pub use ipvs_diff::{MASTER_SYNC_MAXLEN, daemon_word};
pub use reconciler::Reconciler;
pub use state::{DestKey, Runtime, State, Store, StoreError, override_key};
