//! The director's side of VRRP the admin sees: its state and the planned hand-over.
use super::agent::Agent;
use super::error::AgentError;
use crate::kernel::system::System;

impl<S: System + 'static> Agent<S> {
    /// This director's VRRP state (none outside a VRRP instance).
    pub fn vrrp_status(&self) -> Option<lvs_proto::reply::VrrpStatus> {
        self.vrrp.status()
    }

    /// Planned failover: hand the VIPs to the next director now, rejoin as a backup.
    pub async fn hand_over(&self) -> Result<Option<lvs_proto::reply::VrrpStatus>, AgentError> {
        self.vrrp.hand_over().await?;
        Ok(self.vrrp.status())
    }
}
