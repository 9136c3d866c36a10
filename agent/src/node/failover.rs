//! The director's side of VRRP the admin sees: its state and the planned hand-over.
use std::net::SocketAddr;

use lvs_proto::spec::ServiceKey;

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
        self.vrrp.hand_over(&self.flush_targets()).await?;
        Ok(self.vrrp.status())
    }

    /// The TCP virtual services on this director's VRRP VIPs: what a hand-over connects
    /// to so that its last connection-sync message leaves at once ([`crate::ha::sync_flush`]).
    pub(super) fn flush_targets(&self) -> Vec<SocketAddr> {
        let Some(spec) = self.rec.state().ok().and_then(|st| st.spec) else { return Vec::new() };
        let Some(vrrp) = &spec.vrrp else { return Vec::new() };
        spec.virtual_services
            .iter()
            .filter_map(|v| match v.key {
                ServiceKey::Addr { protocol: lvs_proto::spec::Protocol::Tcp, address }
                    if vrrp.vips.iter().any(|a| a.address.addr() == address.ip()) =>
                {
                    Some(address)
                }
                _ => None,
            })
            .collect()
    }
}
