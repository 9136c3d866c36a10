//! `lvsctl rollout`: apply the definition's real-server changes one real server at a time,
//! never taking more than one out of service:
//!
//! 1. drain it on every director (weight 0) and wait for its active connections to end;
//! 2. apply its new spec;
//! 3. wait until the director's health check sees it answering (a fresh probe);
//! 4. give it its new weight; record it as done; next.
//!
//! Then the directors and the rest get the new generation and the live weights are
//! cleared (the spec now says the same). Progress is kept in a file beside the definition,
//! so a rollout cut off at any point resumes where it stopped; the first failure stops it
//! with the failed server put back in service at its old weight.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_proto::pb;
use lvs_proto::spec::Role;
use serde::{Deserialize, Serialize};

use super::rs::{Placement, placements, set_weight, wait_drained};
use super::{CmdError, Ctx, EXIT_NODE_FAILED};
use crate::render::key_text;

/// Options of `rollout`.
#[derive(Debug, Clone, Copy)]
pub struct RolloutOptions {
    /// Longest wait for a drained server's connections to end.
    pub drain_timeout: Duration,
    /// Longest wait for a changed server's health check to pass.
    pub health_timeout: Duration,
    /// Roll every real server, changed or not.
    pub all: bool,
}

/// Progress of a rollout, persisted beside the definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Cluster.
    pub cluster: String,
    /// Generation being rolled out.
    pub generation: u64,
    /// Real servers finished.
    pub done: Vec<String>,
    /// The rollout's lease: a resumed rollout is the same operation, so the agents'
    /// reservation made by the interrupted run is its own.
    #[serde(default)]
    pub lease: String,
}

/// Where the progress of `ctx`'s rollout is kept.
pub fn progress_path(ctx: &Ctx) -> PathBuf {
    let dir = ctx.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    dir.join(format!(".lvsctl-rollout-{}.json", ctx.cluster.name))
}

fn save(path: &PathBuf, p: &Progress) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Run it.
pub async fn rollout(ctx: &Ctx, opts: RolloutOptions, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let path = progress_path(ctx);
    let mut progress = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
        .filter(|p| p.cluster == ctx.cluster.name && p.generation == ctx.cluster.generation)
        .unwrap_or_else(|| Progress {
            cluster: ctx.cluster.name.clone(),
            generation: ctx.cluster.generation,
            done: vec![],
            lease: super::apply::new_lease(),
        });
    if progress.lease.is_empty() {
        progress.lease = super::apply::new_lease();
    }
    if !progress.done.is_empty() || path.exists() {
        let done = if progress.done.is_empty() { "none".to_string() } else { progress.done.join(", ") };
        writeln!(out, "rollout: resuming generation {}: done {done}", progress.generation)?;
    }
    save(&path, &progress)?;
    let lease = progress.lease.clone();
    let plans = super::apply::plan_all(ctx, &lease).await;
    if let Some((n, Err(e))) = plans.iter().find(|(_, r)| r.is_err()) {
        super::apply::release(ctx, &lease).await;
        let _ = std::fs::remove_file(&path);
        writeln!(out, "rollout: nothing was changed: {n}: {e}")?;
        return Ok(ExitCode::from(EXIT_NODE_FAILED));
    }
    // Live weights now, to find servers whose weight the definition changes.
    let mut live: Vec<(String, String, u32)> = Vec::new();
    for (d, t) in super::ipvs::tables(ctx, false).await {
        let t = t.map_err(|e| CmdError::Usage(format!("rollout: cannot read {d}'s IPVS table: {e}")))?;
        for s in &t.services {
            let k = s.key.as_ref().map(key_text).unwrap_or_default();
            for x in &s.destinations {
                live.push((k.clone(), x.address.clone(), x.weight));
            }
        }
    }
    let mut servers = ctx.nodes_with(Role::RealServer);
    servers.sort();
    let mut rolled = Vec::new();
    for rs in &servers {
        let places = placements(ctx, rs).unwrap_or_default();
        let live_of = |p: &Placement| {
            let k = p.service.to_string();
            live.iter().find(|(lk, a, _)| *lk == k && *a == p.dest.to_string()).map(|(_, _, w)| *w)
        };
        let spec_changes =
            plans.iter().any(|(n, r)| n == rs && r.as_ref().is_ok_and(|r| !r.actions.is_empty()));
        let weight_changes = places.iter().any(|p| live_of(p).is_some_and(|w| w != p.weight));
        if progress.done.contains(rs) {
            rolled.push((rs.clone(), places));
            continue;
        }
        if !(opts.all || spec_changes || weight_changes) {
            continue;
        }
        // Only what the directors have now can be drained; a new destination arrives with
        // the directors' apply at the end.
        let present: Vec<Placement> = places.iter().filter(|p| live_of(p).is_some()).cloned().collect();
        writeln!(out, "{rs}: draining")?;
        if let Err(e) = step(ctx, rs, &present, &lease, opts, out).await {
            writeln!(out, "{rs}: FAILED {e}")?;
            let back = set_weight(ctx, &present, None).await;
            let restored = back.iter().all(|(_, r)| r.is_ok());
            writeln!(
                out,
                "rollout: stopped at {rs}; {rs} {}; {} done; run `lvsctl rollout` again to resume",
                if restored {
                    "is back in service at its old weight"
                } else {
                    "could NOT be put back in service"
                },
                if progress.done.is_empty() { "none".to_string() } else { progress.done.join(", ") }
            )?;
            return Ok(ExitCode::from(EXIT_NODE_FAILED));
        }
        for p in &places {
            let _ = set_weight(ctx, std::slice::from_ref(p), Some(p.weight)).await;
        }
        progress.done.push(rs.clone());
        save(&path, &progress)?;
        writeln!(out, "{rs}: done, weight restored")?;
        rolled.push((rs.clone(), places));
    }
    // Everyone else (directors, router, unchanged servers) gets the generation; the live
    // weights go away, the spec now carries them.
    writeln!(out, "rollout: applying generation {} to the rest", ctx.cluster.generation)?;
    let res = super::apply::apply_all(ctx, &lease, out).await?;
    if let Some((n, r)) = res.iter().find(|(_, r)| !r.as_ref().is_ok_and(|r| r.converged)) {
        let why = r.as_ref().err().cloned().unwrap_or_else(|| "not converged".into());
        writeln!(out, "rollout: {n}: {why}; run `lvsctl rollout` again to resume")?;
        return Ok(ExitCode::from(EXIT_NODE_FAILED));
    }
    for (rs, places) in &rolled {
        for (p, r) in set_weight(ctx, places, None).await {
            if let Err(e) = r {
                writeln!(out, "{rs}: clearing live weight on {}: {e}", p.director)?;
                return Ok(ExitCode::from(EXIT_NODE_FAILED));
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    writeln!(
        out,
        "rollout: generation {} done; {} real server(s) rolled one at a time",
        ctx.cluster.generation,
        rolled.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn step(
    ctx: &Ctx,
    rs: &str,
    present: &[Placement],
    lease: &str,
    opts: RolloutOptions,
    out: &mut dyn Write,
) -> Result<(), String> {
    for (p, r) in set_weight(ctx, present, Some(0)).await {
        r.map_err(|e| format!("drain on {}: {e}", p.director))?;
    }
    let took = wait_drained(ctx, present, opts.drain_timeout).await?;
    let _ = writeln!(out, "{rs}: drained in {:.1} s; applying", took.as_secs_f64());
    let req =
        pb::SpecRequest { spec: ctx.spec(rs).map(pb::NodeSpec::from), lease: lease.into(), lease_ttl_ms: 0 };
    let rep = ctx
        .fleet
        .call(rs, |mut c| async move { c.apply(req).await })
        .await
        .map_err(|e| format!("apply: {e}"))?;
    if !rep.converged {
        let failed: Vec<String> = rep
            .actions
            .iter()
            .filter(|a| !a.error.is_empty())
            .map(|a| format!("{}: {}", a.action, a.error))
            .collect();
        return Err(format!("apply did not converge: {}", failed.join("; ")));
    }
    let _ = writeln!(out, "{rs}: applied {} change(s); waiting for its health check", rep.actions.len());
    wait_healthy(ctx, rs, present, opts.health_timeout).await?;
    Ok(())
}

/// Wait until every director's health check has probed `rs` afresh and found it up; where
/// no health check is configured, the real server's own httpd check must pass.
async fn wait_healthy(ctx: &Ctx, rs: &str, present: &[Placement], timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut first_probes: Vec<Option<u64>> = vec![None; present.len()];
    loop {
        let mut all = true;
        for (i, p) in present.iter().enumerate() {
            let s = ctx
                .fleet
                .call(&p.director, |mut c| async move { c.status(pb::StatusRequest::default()).await })
                .await?;
            let k = p.service.to_string();
            let h = s.health.iter().find(|h| {
                h.destination == p.dest.to_string() && h.service.as_ref().map(key_text) == Some(k.clone())
            });
            let ok = match h {
                Some(h) => {
                    let base = *first_probes[i].get_or_insert(h.probes);
                    h.probes > base && h.up && !h.quarantined
                }
                None => {
                    let s = ctx
                        .fleet
                        .call(rs, |mut c| async move { c.status(pb::StatusRequest::default()).await })
                        .await?;
                    s.checks.iter().all(|c| c.ok)
                }
            };
            all &= ok;
        }
        if all {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!("health check did not pass within {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
