//! Reserving, applying and releasing a generation across the fleet, and the time gate.
//!
//! The first node (by name) is asked alone, then the rest at once: two admins racing
//! meet at the same node first, and the loser stops there with a conflict before anything
//! changed — the cluster is never left half one generation and half the other.
use std::time::Duration;

use futures::StreamExt;
use lvs_proto::reply::Report;
use lvs_proto::spec::Role;

use super::{Ctx, NodeResult};

/// How long a plan's reservation holds without an apply.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// A fresh lease id (64 random bits, hex).
pub fn new_lease() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Ask every node with a spec for its diff, reserving the generation under `lease` (an
/// empty lease reserves nothing: a read); `adopt` as the apply will. Results in definition
/// order.
pub async fn plan_all(ctx: &Ctx, lease: &str, adopt: bool) -> Vec<NodeResult<Report>> {
    let mut names = ctx.spec_nodes();
    names.sort();
    let call = |node: String| async move {
        let spec = ctx.spec(&node).expect("a node with a spec");
        ctx.fleet.plan(&node, spec, lease, LEASE_TTL, adopt).await
    };
    let first = 1.min(names.len());
    let mut out = ctx.fleet.each(&names[..first], call).await;
    if out.iter().all(|(_, r)| r.is_ok()) {
        out.extend(ctx.fleet.each(&names[first..], call).await);
    }
    out.sort_by_key(|(n, _)| ctx.specs.iter().position(|s| &s.node == n));
    out
}

/// Give up a reservation made by [`plan_all`] (best effort: it expires anyway).
pub async fn release(ctx: &Ctx, lease: &str) {
    let _ =
        ctx.fleet.each(&ctx.spec_nodes(), |node| async move { ctx.fleet.release(&node, lease).await }).await;
}

/// Apply every node's spec at once under `lease`; `each` sees every node's outcome as it
/// arrives (so a command can print it then). Results in definition order.
pub async fn apply_all(
    ctx: &Ctx,
    lease: &str,
    adopt: bool,
    mut each: impl FnMut(&NodeResult<Report>),
) -> Vec<NodeResult<Report>> {
    let names = ctx.spec_nodes();
    let mut pending: futures::stream::FuturesUnordered<_> = names
        .iter()
        .map(|n| async move {
            let spec = ctx.spec(n).expect("a node with a spec");
            (n.clone(), ctx.fleet.apply(n, spec, lease, adopt).await)
        })
        .collect();
    let mut results = Vec::new();
    while let Some(r) = pending.next().await {
        each(&r);
        results.push(r);
    }
    results.sort_by_key(|(n, _)| names.iter().position(|x| x == n));
    results
}

/// A node's clock as the time gate sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClockView {
    /// The node's name in the definition.
    pub node: String,
    /// Offset in ms, or why there is none.
    pub offset_ms: Result<i64, String>,
}

/// Measure every director's and real server's clock against the definition's NTP server now.
pub async fn clocks(ctx: &Ctx) -> Vec<ClockView> {
    let mut nodes = ctx.nodes_with(Role::Director);
    nodes.extend(ctx.nodes_with(Role::RealServer));
    nodes.retain(|n| ctx.spec(n).is_some());
    let ntp = ctx.cluster.time.ntp_server;
    let res = ctx.fleet.each(&nodes, |n| async move { ctx.fleet.clock(&n, ntp).await }).await;
    res.into_iter()
        .map(|(node, r)| ClockView {
            node,
            offset_ms: r
                .map_err(|e| e.to_string())
                .and_then(|c| c.offset_ms.ok_or_else(|| c.error.unwrap_or_else(|| "not measured".into()))),
        })
        .collect()
}

/// The time gate's complaints: every clock off by `max_offset` or more, or unknown.
pub async fn clock_problems(ctx: &Ctx) -> Vec<String> {
    let max = ctx.cluster.time.max_offset.as_millis() as i64;
    let ntp = ctx.cluster.time.ntp_server;
    clocks(ctx)
        .await
        .into_iter()
        .filter_map(|c| match c.offset_ms {
            Ok(o) if o.abs() < max => None,
            Ok(o) => Some(format!("{} is {o:+} ms off {ntp} (limit {max} ms)", c.node)),
            Err(e) => Some(format!("{}: clock unknown ({e})", c.node)),
        })
        .collect()
}
