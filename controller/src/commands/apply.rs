//! `lvsctl plan` and `lvsctl apply`.
//!
//! Plan asks every agent to diff its spec and reserves the generation under a random
//! lease: the first node (by name) is asked alone, then the others at once. Two admins
//! racing thus meet at the same node first, and the loser stops there with a conflict
//! before changing anything — the cluster is never left half one and half the other.
//! Apply then checks the clocks (the article's "most important step"), shows the plan,
//! asks, and applies to every node at once with a deadline per node.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use lvs_proto::pb;
use lvs_proto::spec::Role;

use super::{CmdError, Ctx, EXIT_NODE_FAILED, confirm, exit, json};
use crate::fleet::NodeError;

/// A fresh lease id (64 random bits, hex).
pub fn new_lease() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How long a plan's reservation holds without an apply.
const LEASE_TTL: Duration = Duration::from_secs(60);

/// Options of `apply`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Do not ask.
    pub yes: bool,
    /// Apply even when clocks are off.
    pub ignore_clock: bool,
}

type NodeResult<T> = (String, Result<T, NodeError>);

/// Ask every agent for its diff, reserving the generation under `lease`.
pub async fn plan_all(ctx: &Ctx, lease: &str) -> Vec<NodeResult<pb::Report>> {
    let mut names: Vec<String> = ctx.specs.iter().map(|s| s.node.clone()).collect();
    names.sort();
    let call = |node: String, mut c: crate::fleet::Client| {
        let spec = ctx.spec(&node).map(pb::NodeSpec::from);
        let lease = lease.to_string();
        async move {
            let req = pb::SpecRequest { spec, lease, lease_ttl_ms: LEASE_TTL.as_millis() as u64 };
            c.plan(req).await
        }
    };
    let mut out = ctx.fleet.each(&names[..1.min(names.len())], call).await;
    if out.iter().all(|(_, r)| r.is_ok()) {
        out.extend(ctx.fleet.each(&names[1.min(names.len())..], call).await);
    }
    // Definition order for display.
    out.sort_by_key(|(n, _)| ctx.specs.iter().position(|s| &s.node == n));
    out
}

/// Give up a reservation made by [`plan_all`] (best effort: it expires anyway).
pub async fn release(ctx: &Ctx, lease: &str) {
    let names: Vec<String> = ctx.specs.iter().map(|s| s.node.clone()).collect();
    let _ = ctx
        .fleet
        .each(&names, |node, mut c| {
            let spec = ctx.spec(&node).map(pb::NodeSpec::from);
            let lease = lease.to_string();
            async move { c.plan(pb::SpecRequest { spec, lease, lease_ttl_ms: 0 }).await }
        })
        .await;
}

/// A node's clock as the time gate sees it.
#[derive(Debug, Clone)]
pub struct ClockView {
    /// Node.
    pub node: String,
    /// Offset in ms, or why there is none.
    pub offset_ms: Result<i64, String>,
}

/// Measure every director's and real server's clock against the definition's NTP server now.
pub async fn clocks(ctx: &Ctx) -> Vec<ClockView> {
    let mut nodes = ctx.nodes_with(Role::Director);
    nodes.extend(ctx.nodes_with(Role::RealServer));
    nodes.retain(|n| ctx.spec(n).is_some());
    let ntp = ctx.cluster.time.ntp_server.to_string();
    let res = ctx
        .fleet
        .each(&nodes, |_, mut c| {
            let ntp = ntp.clone();
            async move { c.status(pb::StatusRequest { ntp_server: ntp }).await }
        })
        .await;
    res.into_iter()
        .map(|(node, r)| ClockView {
            node,
            offset_ms: r.map_err(String::from).and_then(|s| {
                s.clock_offset_ms.ok_or_else(|| {
                    if s.clock_error.is_empty() { "not measured".to_string() } else { s.clock_error.clone() }
                })
            }),
        })
        .collect()
}

fn print_plan(out: &mut dyn Write, plans: &[NodeResult<pb::Report>]) -> std::io::Result<usize> {
    let mut changes = 0;
    for (node, r) in plans {
        match r {
            Ok(rep) if rep.actions.is_empty() => writeln!(out, "{node}: up to date")?,
            Ok(rep) => {
                writeln!(out, "{node}: {} change(s)", rep.actions.len())?;
                for a in &rep.actions {
                    writeln!(out, "  + {}", a.action)?;
                }
                changes += rep.actions.len();
            }
            Err(e) => writeln!(out, "{node}: FAILED {e}")?,
        }
        if let Ok(rep) = r {
            for f in &rep.foreign {
                writeln!(out, "  ! foreign: {f}")?;
            }
        }
    }
    Ok(changes)
}

/// A node's report as JSON.
pub fn report_json(node: &str, r: &Result<pb::Report, NodeError>) -> serde_json::Value {
    match r {
        Ok(rep) => serde_json::json!({
            "node": node,
            "ok": true,
            "generation": rep.generation,
            "converged": rep.converged,
            "actions": rep.actions.iter().map(|a| serde_json::json!({
                "action": a.action,
                "outcome": match pb::Outcome::try_from(a.outcome) {
                    Ok(pb::Outcome::Applied) => "applied",
                    Ok(pb::Outcome::Failed) => "failed",
                    _ => "not_attempted",
                },
                "error": a.error,
            })).collect::<Vec<_>>(),
            "foreign": rep.foreign,
            "drift_after": rep.drift_after,
        }),
        Err(e) => serde_json::json!({ "node": node, "ok": false, "error": e }),
    }
}

/// `lvsctl plan`: every node's diff; changes nothing.
pub async fn plan(ctx: &Ctx, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let plans = plan_all(ctx, "").await;
    let ok = plans.iter().all(|(_, r)| r.is_ok());
    if ctx.json {
        json(out, &serde_json::Value::Array(plans.iter().map(|(n, r)| report_json(n, r)).collect()))?;
    } else {
        let changes = print_plan(out, &plans)?;
        writeln!(
            out,
            "plan: {changes} change(s) on {} node(s) for generation {}",
            plans.len(),
            ctx.cluster.generation
        )?;
    }
    Ok(exit(ok, EXIT_NODE_FAILED))
}

/// `lvsctl apply`.
pub async fn apply(ctx: &Ctx, opts: ApplyOptions, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let lease = new_lease();
    let plans = plan_all(ctx, &lease).await;
    if !ctx.json {
        print_plan(out, &plans)?;
    }
    let failed: Vec<&NodeResult<pb::Report>> = plans.iter().filter(|(_, r)| r.is_err()).collect();
    if !failed.is_empty() {
        if ctx.json {
            json(out, &serde_json::Value::Array(plans.iter().map(|(n, r)| report_json(n, r)).collect()))?;
        }
        let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        release(ctx, &lease).await;
        writeln!(out, "apply: nothing was changed: {} could not plan", names.join(", "))?;
        return Ok(ExitCode::from(EXIT_NODE_FAILED));
    }
    // The time gate.
    let max = ctx.cluster.time.max_offset.as_millis() as i64;
    let bad: Vec<String> = clocks(ctx)
        .await
        .into_iter()
        .filter_map(|c| match c.offset_ms {
            Ok(o) if o.abs() < max => None,
            Ok(o) => {
                Some(format!("{} is {o:+} ms off {} (limit {max} ms)", c.node, ctx.cluster.time.ntp_server))
            }
            Err(e) => Some(format!("{}: clock unknown ({e})", c.node)),
        })
        .collect();
    if !bad.is_empty() {
        if !opts.ignore_clock {
            writeln!(out, "apply: refused by the time gate, nothing was changed:")?;
            for b in &bad {
                writeln!(out, "  {b}")?;
            }
            writeln!(out, "fix the clocks (sync to {}) or pass --ignore-clock", ctx.cluster.time.ntp_server)?;
            release(ctx, &lease).await;
            return Ok(ExitCode::from(EXIT_NODE_FAILED));
        }
        for b in &bad {
            writeln!(out, "warning: {b} (--ignore-clock)")?;
        }
    }
    let changes: usize = plans.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.actions.len()).sum();
    if changes > 0 && !opts.yes && !confirm(&format!("apply {changes} change(s) to {} node(s)?", plans.len()))
    {
        release(ctx, &lease).await;
        writeln!(out, "apply: cancelled, nothing was changed")?;
        return Ok(ExitCode::from(1));
    }
    let results = apply_all(ctx, &lease, out).await?;
    let ok = results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.converged));
    if ctx.json {
        json(out, &serde_json::Value::Array(results.iter().map(|(n, r)| report_json(n, r)).collect()))?;
    } else {
        let bad: Vec<&str> = results
            .iter()
            .filter(|(_, r)| !r.as_ref().is_ok_and(|r| r.converged))
            .map(|(n, _)| n.as_str())
            .collect();
        if bad.is_empty() {
            writeln!(
                out,
                "apply: generation {} converged on all {} node(s)",
                ctx.cluster.generation,
                results.len()
            )?;
        } else {
            writeln!(out, "apply: NOT converged on {}", bad.join(", "))?;
        }
    }
    Ok(exit(ok, EXIT_NODE_FAILED))
}

/// One node's outcome: `node: applied/total applied, <done>`, then every action that was
/// not applied (with `all`: every action and the foreign objects kept), and what still differs.
pub fn print_report(
    out: &mut dyn Write,
    node: &str,
    r: &Result<pb::Report, NodeError>,
    done: &str,
    all: bool,
) -> std::io::Result<()> {
    let rep = match r {
        Ok(rep) => rep,
        Err(e) => return writeln!(out, "{node}: FAILED {e}"),
    };
    let applied = rep.actions.iter().filter(|a| a.outcome == pb::Outcome::Applied as i32).count();
    let tail = if rep.converged { format!(", {done}") } else { String::new() };
    writeln!(out, "{node}: {applied}/{} applied{tail}", rep.actions.len())?;
    for a in &rep.actions {
        let what = match pb::Outcome::try_from(a.outcome) {
            Ok(pb::Outcome::Applied) if all => "done",
            Ok(pb::Outcome::Applied) => continue,
            Ok(pb::Outcome::Failed) => "FAILED",
            _ => "not attempted",
        };
        writeln!(out, "  {what}: {} {}", a.action, a.error)?;
    }
    for d in &rep.drift_after {
        writeln!(out, "  still differs: {d}")?;
    }
    // (apply's plan has listed the foreign objects already)
    for f in rep.foreign.iter().filter(|_| all) {
        writeln!(out, "  ! kept: {f}")?;
    }
    Ok(())
}

/// Apply every node's spec at once, printing each node's outcome as it arrives.
pub async fn apply_all(
    ctx: &Ctx,
    lease: &str,
    out: &mut dyn Write,
) -> Result<Vec<NodeResult<pb::Report>>, CmdError> {
    let names: Vec<String> = ctx.specs.iter().map(|s| s.node.clone()).collect();
    let mut pending = futures::stream::FuturesUnordered::new();
    for n in &names {
        let spec = ctx.spec(n).map(pb::NodeSpec::from);
        let req = pb::SpecRequest { spec, lease: lease.to_string(), lease_ttl_ms: 0 };
        pending.push(async move {
            (n.clone(), ctx.fleet.call(n, |mut c| async move { c.apply(req).await }).await)
        });
    }
    let mut results = Vec::new();
    while let Some((n, r)) = pending.next().await {
        if !ctx.json {
            print_report(out, &n, &r, "converged", false)?;
        }
        results.push((n, r));
    }
    results.sort_by_key(|(n, _)| names.iter().position(|x| x == n));
    Ok(results)
}
