//! `lvsctl plan` and `lvsctl apply`: compose [`crate::ops::specs`] and render.
//!
//! Apply reserves the generation (plan with a lease), checks the clocks (the article's
//! "most important step"), shows the plan, asks, and applies to every node at once with a
//! deadline per node. A refusal at any point releases the lease: nothing was changed.
use std::io::Write;
use std::process::ExitCode;

use lvs_proto::reply::{Outcome, Report};
use serde::Serialize;

use super::{CmdError, Confirmed, Ctx, Exit, confirm, exit, json, say};
use crate::fleet::NodeError;
use crate::ops::impact::{self, Impact, NodeImpact};
use crate::ops::{NodeResult, specs};

/// Options of `plan`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Exit with [`Exit::ChangesPending`] when any node has changes (for CI drift checks).
    pub detailed_exitcode: bool,
    /// Show the plan as `apply --adopt` would make it.
    pub adopt: bool,
}

/// Options of `apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Do not ask.
    pub yes: bool,
    /// Apply even when clocks are off.
    pub ignore_clock: bool,
    /// Take over IPVS services the definition names that another tool created.
    pub adopt: bool,
    /// The revocation list (a CRL the CA signed) to push with the apply (`None`: this PKI
    /// directory keeps no ledger, e.g. an admin's own, so it has no list to push).
    pub revoked: Option<Vec<u8>>,
}

/// One node's report as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct NodeReport<'a> {
    /// The node's name in the definition.
    pub node: &'a str,
    /// It answered.
    pub ok: bool,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a NodeError>,
    /// Its report.
    #[serde(flatten)]
    pub report: Option<&'a Report>,
    /// What the plan's IPVS changes remove, drain or reweight, with what each destination
    /// holds now (plans of directors only; absent when nothing moves traffic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<&'a [Impact]>,
    /// Why the impact is unknown (the director's table could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact_error: Option<&'a NodeError>,
}

/// The JSON view of every node's report.
pub fn reports_view(results: &[NodeResult<Report>]) -> Vec<NodeReport<'_>> {
    plans_view(results, &[])
}

/// [`reports_view`] with each director's impact beside its plan.
fn plans_view<'a>(results: &'a [NodeResult<Report>], impacts: &'a [NodeImpact]) -> Vec<NodeReport<'a>> {
    results
        .iter()
        .map(|(node, r)| {
            let found = impacts.iter().find(|(n, _)| n == node).map(|(_, i)| i);
            NodeReport {
                node,
                ok: r.is_ok(),
                error: r.as_ref().err(),
                report: r.as_ref().ok(),
                impact: found.and_then(|i| i.as_ref().ok()).filter(|i| !i.is_empty()).map(Vec::as_slice),
                impact_error: found.and_then(|i| i.as_ref().err()),
            }
        })
        .collect()
}

/// Every node's changes, foreign objects and (directors) the impact of its IPVS changes.
fn print_plan(
    out: &mut dyn Write,
    plans: &[NodeResult<Report>],
    impacts: &[NodeImpact],
) -> std::io::Result<usize> {
    let mut changes = 0;
    for (node, r) in plans {
        match r {
            Ok(rep) if rep.actions.is_empty() => writeln!(out, "{node}: up to date")?,
            Ok(rep) => {
                writeln!(out, "{node}: {} change(s)", rep.actions.len())?;
                for a in &rep.actions {
                    writeln!(out, "  + {}", a.change)?;
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
        match impacts.iter().find(|(n, _)| n == node).map(|(_, i)| i) {
            Some(Ok(found)) => {
                for i in found {
                    writeln!(out, "  ~ {i}")?;
                }
            }
            Some(Err(e)) => writeln!(out, "  ~ impact unknown: the IPVS table could not be read: {e}")?,
            None => {}
        }
    }
    Ok(changes)
}

/// `lvsctl plan`: every node's diff; changes nothing.
pub async fn plan(ctx: &Ctx, opts: PlanOptions, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let plans = specs::plan_all(ctx, "", opts.adopt).await;
    let impacts = impact::gather(ctx, &plans).await;
    let ok = plans.iter().all(|(_, r)| r.is_ok());
    let changes: usize = plans.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.actions.len()).sum();
    if ctx.json {
        json(out, &plans_view(&plans, &impacts))?;
    } else {
        print_plan(out, &plans, &impacts)?;
        writeln!(
            out,
            "plan: {changes} change(s) on {} node(s) for generation {}",
            plans.len(),
            ctx.cluster.generation
        )?;
    }
    Ok(if !ok {
        Exit::NodeFailed.into()
    } else if opts.detailed_exitcode && changes > 0 {
        Exit::ChangesPending.into()
    } else {
        ExitCode::SUCCESS
    })
}

/// The clocks of the fleet against the definition's NTP server: `Some(exit)` when a skew
/// refuses the apply (said on `out`/`err`), `None` to go on (with a warning per skewed
/// node when `ignore_clock`).
async fn time_gate(
    ctx: &Ctx,
    ignore_clock: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Option<ExitCode>, CmdError> {
    let bad = specs::clock_problems(ctx).await;
    if bad.is_empty() {
        return Ok(None);
    }
    if ignore_clock {
        for b in &bad {
            say(ctx, out, err, &format!("warning: {b} (--ignore-clock)"))?;
        }
        return Ok(None);
    }
    say(ctx, out, err, "apply: refused by the time gate, nothing was changed:")?;
    for b in &bad {
        say(ctx, out, err, &format!("  {b}"))?;
    }
    let fix = format!("fix the clocks (sync to {}) or pass --ignore-clock", ctx.cluster.time.ntp_server);
    say(ctx, out, err, &fix)?;
    Ok(Some(Exit::TimeGate.into()))
}

/// `lvsctl apply`.
pub async fn apply(
    ctx: &Ctx,
    opts: ApplyOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let lease = specs::new_lease();
    let plans = specs::plan_all(ctx, &lease, opts.adopt).await;
    if !ctx.json {
        // The admin sees what the change costs before the question is asked.
        print_plan(out, &plans, &impact::gather(ctx, &plans).await)?;
    }
    let failed: Vec<&str> = plans.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n.as_str()).collect();
    if !failed.is_empty() {
        if ctx.json {
            json(out, &reports_view(&plans))?;
        }
        specs::release(ctx, &lease).await;
        say(ctx, out, err, &format!("apply: nothing was changed: {} could not plan", failed.join(", ")))?;
        return Ok(Exit::NodeFailed.into());
    }
    if let Some(refused) = time_gate(ctx, opts.ignore_clock, out, err).await? {
        specs::release(ctx, &lease).await;
        return Ok(refused);
    }
    let changes: usize = plans.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.actions.len()).sum();
    if changes > 0 && !opts.yes {
        let why = match confirm(&format!("apply {changes} change(s) to {} node(s)?", plans.len())) {
            Confirmed::Yes => None,
            Confirmed::Declined => Some("apply: declined, nothing was changed".to_string()),
            Confirmed::NoTerminal => Some(format!(
                "apply: {changes} change(s) need confirmation and stdin is not a terminal: \
                 pass --yes (see them with `lvsctl plan`); nothing was changed"
            )),
        };
        if let Some(why) = why {
            specs::release(ctx, &lease).await;
            say(ctx, out, err, &why)?;
            return Ok(Exit::NotConfirmed.into());
        }
    }
    if let Some(list) = &opts.revoked {
        push_revoked(ctx, &plans, list, out, err).await?;
    }
    let results = apply_printing(ctx, &lease, opts.adopt, out).await?;
    let ok = results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.converged));
    if ctx.json {
        json(out, &reports_view(&results))?;
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
    Ok(exit(ok, Exit::NodeFailed))
}

/// A node that missed `pki revoke` (down at the time) catches up with the next apply: the
/// list goes to every node whose plan answered with an older CRL number than the list's,
/// and only to those (a node that holds it already is not sent it again). A node that
/// does not take it is named.
async fn push_revoked(
    ctx: &Ctx,
    plans: &[NodeResult<Report>],
    list: &[u8],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CmdError> {
    let nodes = behind(plans, crate::pki::crl_number(list));
    for (n, r) in ctx.fleet.each(&nodes, |n| async move { ctx.fleet.set_revoked(&n, list).await }).await {
        if let Err(e) = r {
            say(ctx, out, err, &format!("warning: {n}: revocation list not updated: {e}"))?;
        }
    }
    Ok(())
}

/// The nodes whose plan answered with an older revocation list than `ours` (its CRL
/// number). A list without a number, or a node whose plan failed, is sent all the same:
/// the agent decides (it refuses what is not newer than what it holds).
fn behind(plans: &[NodeResult<Report>], ours: Option<u64>) -> Vec<String> {
    plans
        .iter()
        .filter(|(_, r)| match (r, ours) {
            (Ok(r), Some(ours)) => r.revocation_number < ours,
            _ => true,
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// [`specs::apply_all`], printing each node's outcome as it arrives (text output).
pub async fn apply_printing(
    ctx: &Ctx,
    lease: &str,
    adopt: bool,
    out: &mut dyn Write,
) -> Result<Vec<NodeResult<Report>>, CmdError> {
    let mut written = Ok(());
    let results = specs::apply_all(ctx, lease, adopt, |(n, r)| {
        if !ctx.json && written.is_ok() {
            written = print_report(out, n, r, "converged", false);
        }
    })
    .await;
    written?;
    Ok(results)
}

/// One node's outcome: `node: applied/total applied, <done>`, then every action that was
/// not applied (with `all`: every action and the foreign objects kept), and what still differs.
pub fn print_report(
    out: &mut dyn Write,
    node: &str,
    r: &Result<Report, NodeError>,
    done: &str,
    all: bool,
) -> std::io::Result<()> {
    let rep = match r {
        Ok(rep) => rep,
        Err(e) => return writeln!(out, "{node}: FAILED {e}"),
    };
    let tail = if rep.converged { format!(", {done}") } else { String::new() };
    writeln!(out, "{node}: {}/{} applied{tail}", rep.applied(), rep.actions.len())?;
    for a in &rep.actions {
        let (what, why) = match &a.outcome {
            Outcome::Applied if all => ("done", String::new()),
            Outcome::Applied => continue,
            Outcome::Failed(f) => ("FAILED", f.to_string()),
            Outcome::NotAttempted => ("not attempted", String::new()),
        };
        writeln!(out, "  {what}: {} {why}", a.change)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_table_says_the_impact_is_unknown_and_the_plan_stands() {
        let plans: Vec<NodeResult<Report>> = vec![("director".into(), Ok(Report::default()))];
        let impacts: Vec<NodeImpact> =
            vec![("director".into(), Err(NodeError::Unreachable("connection refused".into())))];
        let mut out = Vec::new();
        print_plan(&mut out, &plans, &impacts).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("director: up to date"), "{text}");
        assert!(
            text.contains("  ~ impact unknown: the IPVS table could not be read: ")
                && text.contains("connection refused"),
            "{text}"
        );
        let view = serde_json::to_value(plans_view(&plans, &impacts)).unwrap();
        assert_eq!(view[0]["ok"], true, "{view}");
        assert!(view[0]["impact_error"].to_string().contains("connection refused"), "{view}");
        assert!(view[0].get("impact").is_none(), "{view}");
    }

    #[test]
    fn the_revocation_list_goes_only_to_nodes_that_hold_an_older_one() {
        let plan = |n: u64| Ok(Report { revocation_number: n, ..Default::default() });
        let plans: Vec<NodeResult<Report>> = vec![
            ("rs1".into(), plan(3)),
            ("rs2".into(), plan(2)),
            ("rs3".into(), plan(0)),
            ("rs4".into(), Err(NodeError::Unreachable("down".into()))),
        ];
        assert_eq!(behind(&plans, Some(3)), ["rs2", "rs3", "rs4"]);
        assert_eq!(behind(&plans, Some(4)), ["rs1", "rs2", "rs3", "rs4"]);
        assert_eq!(behind(&plans, None), ["rs1", "rs2", "rs3", "rs4"], "a list without a number goes to all");
    }
}
