//! The impact of a plan before it is made: for every real server a director's plan removes,
//! drains or reweights, the connections and persistence templates it holds in the kernel
//! now. An admin reads "rs3 holds 1204 active connections and 310 persistence templates"
//! before saying yes, not after.
use std::net::SocketAddr;

use lvs_proto::reply::{Change, IpvsChange, IpvsTable, Report};
use lvs_proto::spec::ServiceKey;
use serde::Serialize;

use super::{Ctx, NodeResult};
use crate::fleet::NodeError;

/// What a plan does to one destination that carries traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// The destination (or its whole service) goes: its connections lose their server.
    Removed,
    /// Weight to 0: existing connections stay, no new ones come.
    Drained,
    /// Another weight: the share of new connections changes.
    Reweighted {
        /// The weight in the kernel now.
        from: u32,
        /// The weight the plan sets.
        to: u32,
    },
}

/// One destination a plan touches, with what it holds in the kernel now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// The virtual service.
    #[serde(serialize_with = "lvs_proto::reply::as_text")]
    pub service: ServiceKey,
    /// RIP:port.
    pub destination: SocketAddr,
    /// The real server's node name in the definition, when it is one of ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What the plan does to it.
    pub effect: Effect,
    /// Established connections now (`ActiveConn`).
    pub active: u32,
    /// Connections in any other state now (`InActConn`: closing, TIME_WAIT, UDP flows).
    pub inactive: u32,
    /// Persistence templates pinning clients to it (`ipvsadm -Lnc` `NONE` entries).
    pub persistent: u32,
}

/// A director's impacts, or why its table could not be read (the plan stands either way).
pub type NodeImpact = (String, Result<Vec<Impact>, NodeError>);

/// The destinations `report` removes, drains or reweights, read against `table` (the
/// kernel's now). A destination the kernel does not hold is new to it and has nothing to
/// lose; an edit that keeps the weight (forwarding, thresholds) moves no traffic.
pub fn impacts(report: &Report, table: &IpvsTable) -> Vec<Impact> {
    let held = |service: &ServiceKey, dest: &SocketAddr| {
        table
            .services
            .iter()
            .filter(|s| &s.key == service)
            .flat_map(|s| &s.destinations)
            .find(|d| &d.address == dest)
    };
    let mut out = Vec::new();
    for a in &report.actions {
        let Change::Ipvs(op) = &a.change else { continue };
        let touched: Vec<(ServiceKey, SocketAddr, Option<u32>)> = match op {
            IpvsChange::DelDestination { service, destination } => vec![(*service, *destination, None)],
            IpvsChange::EditDestination { service, destination, weight } => {
                vec![(*service, *destination, Some(*weight))]
            }
            IpvsChange::DelService { service } => table
                .services
                .iter()
                .filter(|s| &s.key == service)
                .flat_map(|s| s.destinations.iter().map(|d| (*service, d.address, None)))
                .collect(),
            _ => continue,
        };
        for (service, destination, weight) in touched {
            let Some(d) = held(&service, &destination) else { continue };
            let effect = match weight {
                None => Effect::Removed,
                Some(w) if w == d.weight => continue,
                Some(0) => Effect::Drained,
                Some(to) => Effect::Reweighted { from: d.weight, to },
            };
            out.push(Impact {
                service,
                destination,
                node: None,
                effect,
                active: d.active_conns,
                inactive: d.inactive_conns,
                persistent: d.persist_conns,
            });
        }
    }
    out
}

/// Ask every director whose plan touches a destination for its table now, and name the
/// real servers by their nodes. Directors whose plan touches none are not asked.
pub async fn gather(ctx: &Ctx, plans: &[NodeResult<Report>]) -> Vec<NodeImpact> {
    let touching: Vec<String> = plans
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|r| (n, r)))
        .filter(|(_, r)| r.actions.iter().any(|a| touches_a_destination(&a.change)))
        .map(|(n, _)| n.clone())
        .collect();
    let tables = ctx.fleet.each(&touching, |n| async move { ctx.fleet.ipvs_table(&n, false).await }).await;
    tables
        .into_iter()
        .map(|(node, table)| {
            let report = plans.iter().find(|(n, _)| *n == node).and_then(|(_, r)| r.as_ref().ok());
            let found = table.map(|t| {
                let mut found = report.map(|r| impacts(r, &t)).unwrap_or_default();
                for i in &mut found {
                    i.node = node_of(ctx, &i.service, &i.destination);
                }
                found
            });
            (node, found)
        })
        .collect()
}

fn touches_a_destination(c: &Change) -> bool {
    matches!(
        c,
        Change::Ipvs(
            IpvsChange::DelDestination { .. }
                | IpvsChange::EditDestination { .. }
                | IpvsChange::DelService { .. }
        )
    )
}

/// The node the definition places at `dest` in `service` (its real servers and sorry server).
fn node_of(ctx: &Ctx, service: &ServiceKey, dest: &SocketAddr) -> Option<String> {
    ctx.cluster
        .services
        .iter()
        .filter(|s| &s.key == service)
        .flat_map(|s| s.serving())
        .find(|r| &r.address == dest)
        .map(|r| r.node.clone())
}

impl std::fmt::Display for Impact {
    /// `rs1 198.18.0.11:80 of tcp 198.18.0.100:80 drained: holds 12 active and 3 inactive
    /// connections, 0 persistence templates`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n} ")?;
        }
        write!(f, "{} of {} ", self.destination, self.service)?;
        match self.effect {
            Effect::Removed => f.write_str("removed")?,
            Effect::Drained => f.write_str("drained")?,
            Effect::Reweighted { from, to } => write!(f, "weight {from} -> {to}")?,
        }
        write!(
            f,
            ": holds {} active and {} inactive connections, {} persistence templates",
            self.active, self.inactive, self.persistent
        )
    }
}

#[cfg(test)]
mod tests;
