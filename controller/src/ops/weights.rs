//! A real server's place behind the directors, its live weights, and the drain wait.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lvs_proto::reply::WeightReply;
use lvs_proto::spec::{Role, ServiceKey};

use super::Ctx;
use crate::fleet::NodeError;

/// One (director, service, destination) a real server is behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Director node.
    pub director: String,
    /// The virtual service on that director holding the destination.
    pub service: ServiceKey,
    /// RIP:port.
    pub dest: SocketAddr,
    /// Weight in the definition.
    pub weight: u32,
}

/// Why a node has no placements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No such node.
    #[error("no node `{node}` in {file}")]
    NoNode {
        /// The name asked for.
        node: String,
        /// The definition.
        file: String,
    },
    /// The node is not a real server.
    #[error("{node} is a {role}, not a real server")]
    NotARealServer {
        /// The node.
        node: String,
        /// What it is.
        role: Role,
    },
    /// The real server is in no service.
    #[error("{node} is in no virtual service of {file}")]
    InNoService {
        /// The node.
        node: String,
        /// The definition.
        file: String,
    },
}

/// Where `rs` is a destination, per the definition.
pub fn placements(ctx: &Ctx, rs: &str) -> Result<Vec<Placement>, PlacementError> {
    let file = || ctx.file.display().to_string();
    let node = ctx
        .cluster
        .nodes
        .iter()
        .find(|n| n.name == rs)
        .ok_or_else(|| PlacementError::NoNode { node: rs.into(), file: file() })?;
    if node.role != Role::RealServer {
        return Err(PlacementError::NotARealServer { node: rs.into(), role: node.role });
    }
    let mut out = Vec::new();
    for d in ctx.nodes_with(Role::Director) {
        for v in ctx.spec(&d).map(|s| s.virtual_services.as_slice()).unwrap_or_default() {
            for dest in v.destinations.iter().filter(|x| x.node == rs) {
                out.push(Placement {
                    director: d.clone(),
                    service: v.key,
                    dest: dest.address,
                    weight: dest.weight,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(PlacementError::InNoService { node: rs.into(), file: file() });
    }
    Ok(out)
}

/// Set (or with `None` clear) the live weight of every placement; one result each.
pub async fn set_weight(
    ctx: &Ctx,
    places: &[Placement],
    weight: Option<u32>,
) -> Vec<(Placement, Result<WeightReply, NodeError>)> {
    let calls = places.iter().map(|p| async move {
        (p.clone(), ctx.fleet.set_weight(&p.director, &p.service, p.dest, weight).await)
    });
    futures::future::join_all(calls).await
}

/// A connection whose IPVS timer was reset this recently still carries traffic.
pub(crate) const LIVE_WITHIN_S: u32 = 15;

/// Live connections of each placement now, counted by each director's agent: TCP
/// connections established and UDP flows, each with a client packet within
/// [`LIVE_WITHIN_S`] (a UDP flow has no "active" state: a drain that waited for one would
/// end at once, while its clients still send).
///
/// IPVS's own "active" count cannot be trusted in DR: the director never sees the real
/// server's replies, so a connection that died by a reset stays ESTABLISHED until its
/// 900 s timer runs out. Every packet from the client resets that timer to the TCP
/// timeout, so an ESTABLISHED entry idle for more than [`LIVE_WITHIN_S`] is dead. The
/// agent reads its connection table itself and answers with one count per destination,
/// whatever the table's size.
pub async fn active(ctx: &Ctx, places: &[Placement]) -> Result<u32, String> {
    let mut by_director: std::collections::BTreeMap<&str, Vec<SocketAddr>> = Default::default();
    for p in places {
        by_director.entry(p.director.as_str()).or_default().push(p.dest);
    }
    let mut total = 0;
    for (director, destinations) in by_director {
        let counts = ctx
            .fleet
            .live_connections(director, &destinations, LIVE_WITHIN_S)
            .await
            .map_err(|e| format!("{director}: {e}"))?;
        total += counts.iter().map(|c| c.live).sum::<u32>();
    }
    Ok(total)
}

/// The persistence templates the directors hold for `places` (IPVS's `persist_conns`: the
/// clients a persistent service will still send to that server). Each director's table is
/// read once.
pub async fn templates(ctx: &Ctx, places: &[Placement]) -> Result<u32, String> {
    let mut by_director: std::collections::BTreeMap<&str, Vec<&Placement>> = Default::default();
    for p in places {
        by_director.entry(p.director.as_str()).or_default().push(p);
    }
    let mut total = 0;
    for (director, mine) in by_director {
        let t = ctx.fleet.ipvs_table(director, false).await.map_err(|e| format!("{director}: {e}"))?;
        total += held_templates(&t, &mine);
    }
    Ok(total)
}

/// Of `table`, the templates held for `places` (each a service and a destination).
pub(crate) fn held_templates(table: &lvs_proto::reply::IpvsTable, places: &[&Placement]) -> u32 {
    table
        .services
        .iter()
        .flat_map(|s| s.destinations.iter().map(move |d| (s.key, d)))
        .filter(|(k, d)| places.iter().any(|p| p.service == *k && p.dest == d.address))
        .map(|(_, d)| d.persist_conns)
        .sum()
}

/// Wait until no placement has live connections, or `timeout`.
pub async fn wait_drained(ctx: &Ctx, places: &[Placement], timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let n = active(ctx, places).await?;
        if n == 0 {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(format!("{n} live connection(s) left after {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
