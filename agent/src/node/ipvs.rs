//! The director's IPVS table as the admin reads and steers it: the table with its
//! connections, live connection counts, live weights, and withdrawing every service.
use std::net::SocketAddr;
use std::sync::Arc;

use lvs_proto::spec::ServiceKey;

use super::agent::Agent;
use super::error::AgentError;
use super::lifecycle::done;
use crate::kernel::system::{IpvsService, System};
use crate::kernel::translate;
use crate::reconcile::error::ReconcileError;
use crate::reconcile::state::override_key;
use lvs_proto::reply::Report;
use lvs_proto::reply::{EventKind, IpvsTable, WeightReply};

impl<S: System + 'static> Agent<S> {
    /// IPVS version, table size and timeouts; `NotFound` on a kernel without IPVS.
    pub(super) async fn ipvs_info(&self) -> Result<(lvs_ipvs::Info, lvs_ipvs::Timeouts), AgentError> {
        self.rec.system().ipvs_info().await.map_err(AgentError::System)?.ok_or(AgentError::NoIpvs)
    }

    /// The IPVS table.
    pub async fn ipvs_table(&self, connections: bool, limit: u32) -> Result<IpvsTable, AgentError> {
        let sys = self.rec.system();
        // Reading connections is the one heavy read a viewer can ask for: one at a time per
        // caller, a few at once in all (beyond: RESOURCE_EXHAUSTED, try again).
        let _turn = if connections { Some(self.heavy_reads.turn().map_err(AgentError::Busy)?) } else { None };
        let fail = AgentError::System;
        let (info, timeouts) = self.ipvs_info().await?;
        let owned = self.rec.state()?.owned.services;
        let services: Vec<(IpvsService, bool)> = sys
            .ipvs()
            .await
            .map_err(fail)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let managed = owned.iter().any(|k| translate::service_key(k) == s.service.key);
                (s, managed)
            })
            .collect();
        let limit = match limit {
            0 => DEFAULT_CONNECTIONS,
            n => (n as usize).min(MAX_CONNECTIONS_READ),
        };
        let (connections, connections_truncated) =
            if connections { sys.ipvs_connections(limit).await.map_err(fail)? } else { (Vec::new(), false) };
        Ok(translate::table(&info, &timeouts, &services, &connections, connections_truncated))
    }

    /// Connections of each of `dests` now (see [`lvs_ipvs::conn::count`]).
    pub async fn live_connections(
        &self,
        dests: &[SocketAddr],
        live_within_s: u32,
    ) -> Result<Vec<lvs_ipvs::conn::DestCount>, AgentError> {
        if dests.len() > MAX_COUNTED_DESTINATIONS {
            return Err(AgentError::Invalid(format!(
                "destinations: at most {MAX_COUNTED_DESTINATIONS} at a time"
            )));
        }
        let _turn = self.heavy_reads.turn().map_err(AgentError::Busy)?;
        let sys = self.rec.system();
        let (_, timeouts) = self.ipvs_info().await?;
        let live =
            lvs_ipvs::conn::Liveness { tcp_s: timeouts.tcp, udp_s: timeouts.udp, within_s: live_within_s };
        sys.ipvs_count_connections(dests, live).await.map_err(AgentError::System)
    }

    /// Withdraw every IPVS service this agent created until the next apply (foreign ones
    /// stay). The report lists what was removed.
    pub async fn clear_ipvs(self: &Arc<Self>) -> Result<Report, AgentError> {
        let (_, r) = self
            .rec
            .update_runtime(|_, rt| {
                rt.ipvs_cleared = true;
                Ok(())
            })
            .await?;
        self.events.emit_with(
            EventKind::Clear,
            format!("IPVS cleared by the admin: {} change(s)", r.actions.len()),
            done(&r),
        );
        Ok(r)
    }

    /// Set (or with `None` clear) the admin weight of one destination and apply it.
    pub async fn set_weight(
        self: &Arc<Self>,
        service: ServiceKey,
        dest: SocketAddr,
        weight: Option<u32>,
    ) -> Result<WeightReply, AgentError> {
        if weight.is_some_and(|w| w > 65535) {
            return Err(AgentError::Invalid(format!("weight {} is outside 0..=65535", weight.unwrap_or(0))));
        }
        let key = override_key(&service, dest);
        let k = key;
        let (_, report) = self
            .rec
            .update_runtime(move |spec, rt| {
                let known = spec
                    .virtual_services
                    .iter()
                    .any(|v| v.key == service && v.destinations.iter().any(|d| d.address == dest));
                if !known {
                    return Err(ReconcileError::NotInSpec(format!(
                        "{dest} is not a destination of {service} in this node's spec"
                    )));
                }
                match weight {
                    Some(w) => rt.weights.insert(k, w),
                    None => rt.weights.remove(&k),
                };
                Ok(())
            })
            .await?;
        if !report.converged {
            let left: Vec<String> = report.drift_after.iter().map(ToString::to_string).collect();
            return Err(AgentError::NotApplied(left.join("; ")));
        }
        let what = weight.map_or("spec weight restored".to_string(), |w| format!("weight {w}"));
        self.events.emit(EventKind::Weight, format!("{service} {dest}: {what}"));
        let table = self.rec.system().ipvs().await?;
        let entry = table
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.service.key == translate::service_key(&service))
            .flat_map(|s| s.destinations)
            .find(|d| d.dest.addr == dest);
        Ok(match entry {
            Some(d) => WeightReply {
                weight: d.dest.weight,
                active_conns: d.active_conns,
                inactive_conns: d.inactive_conns,
            },
            // Removed by quarantine (on_failure = remove): no connections can be scheduled.
            None => WeightReply { weight: 0, active_conns: 0, inactive_conns: 0 },
        })
    }
}

/// Most destinations one `LiveConnections` call may name.
const MAX_COUNTED_DESTINATIONS: usize = 1024;

/// Connection entries an `IpvsTable` read returns unless the caller asks for another number.
const DEFAULT_CONNECTIONS: usize = 10_000;
/// The most a caller may ask for (about 15 MiB on the wire).
const MAX_CONNECTIONS_READ: usize = 100_000;
