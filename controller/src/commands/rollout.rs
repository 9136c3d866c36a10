//! `lvsctl rollout`: apply the definition's real-server changes one real server at a time,
//! never taking more than one out of service:
//!
//! 1. drain it on every director (weight 0) and wait for its active connections to end;
//! 2. apply its new spec;
//! 3. wait until the director's health check sees it answering (a fresh probe);
//! 4. give it its new weight; record it as done; next.
//!
//! Then the directors and the rest get the new generation and the live weights the rollout
//! set are cleared (the spec now says the same). An admin's drain or weight is never
//! lifted; a quarantined server is reported and skipped (it carries no traffic and gets
//! its spec with the rest). Progress is kept in a file beside the definition, so a rollout
//! cut off at any point resumes where it stopped. The first failure stops it: a server
//! whose drain failed goes back in service as it was; one whose apply or health check
//! failed stays drained. The rollout's lease is renewed every 20 s while it runs.
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_proto::reply::{NodeStatus, Outcome, Report};
use lvs_proto::spec::{Role, ServiceKey};
use serde::{Deserialize, Serialize};

use super::{CmdError, Ctx, Exit};
use crate::ops::weights::{Placement, placements, set_weight, wait_drained};
use crate::ops::{NodeResult, specs, tables};

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
    /// The definition's cluster name: progress of another cluster is not resumed.
    pub cluster: String,
    /// Generation being rolled out.
    pub generation: u64,
    /// Real servers finished.
    pub done: Vec<String>,
    /// The rollout's lease: a resumed rollout is the same operation, so the agents'
    /// reservation made by the interrupted run is its own.
    #[serde(default)]
    pub lease: String,
    /// Real servers this rollout has drained (finished, in progress when it was cut off,
    /// or left drained after a failed apply), with the admin weights they had before
    /// (placement index, weight). Their live weights since are the rollout's own, not an
    /// admin's: a resumed rollout rolls an unfinished one, clears what it set on the
    /// finished ones at the end, and leaves only what the admin had.
    #[serde(default)]
    pub drained: std::collections::BTreeMap<String, Vec<(usize, u32)>>,
}

/// What the directors say about a real server before its turn.
#[derive(Debug, Clone, Default)]
struct LiveState {
    /// (placement index, admin weight) for placements an admin has overridden.
    overrides: Vec<(usize, u32)>,
    /// Directors whose health check has it quarantined.
    quarantined_on: Vec<String>,
}

/// Why a step failed, and whether the server may go back into service.
struct StepError {
    msg: String,
    /// The failure came before the apply: the server is as it was, only drained.
    before_apply: bool,
}

/// How often the rollout renews its lease on every node while it runs (the lease lasts
/// 60 s; a rollout can take far longer: each server drains and is health-checked).
const LEASE_RENEW: Duration = Duration::from_secs(20);

/// Where the progress of `ctx`'s rollout is kept: the user's state directory, not beside
/// the definition (which usually lives in a git work tree).
pub fn progress_path(ctx: &Ctx) -> PathBuf {
    let beside = ctx.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    crate::paths::state_dir(beside).join(format!("rollout-{}.json", ctx.cluster.name))
}

fn save(path: &std::path::Path, p: &Progress) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    lvs_proto::files::atomic_write(path, &serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?, 0o600)
}

/// Run it, renewing the rollout's lease on every node for as long as it runs.
pub async fn rollout(ctx: &Ctx, opts: RolloutOptions, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    if ctx.json {
        return Err(CmdError::Usage(format!(
            "rollout reports step by step and has no -o json; its progress is JSON in {}",
            progress_path(ctx).display()
        )));
    }
    let lease = std::sync::Mutex::new(String::new());
    let renew = async {
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            let id = lease.lock().expect("lease").clone();
            if !id.is_empty() {
                let renewed = specs::plan_all(ctx, &id, false).await;
                for (n, r) in renewed.iter().filter(|(_, r)| r.is_err()) {
                    tracing::warn!(node = %n, error = ?r.as_ref().err(), "rollout lease not renewed");
                }
            }
        }
    };
    tokio::select! {
        r = run(ctx, opts, out, &lease) => r,
        () = renew => unreachable!("the renewal loop never ends"),
    }
}

/// What the directors say of every placement now: admin overrides and quarantine.
async fn live_states(ctx: &Ctx) -> Result<Vec<(String, NodeStatus)>, CmdError> {
    let directors = ctx.nodes_with(Role::Director);
    let mut out = Vec::new();
    for (d, r) in ctx.fleet.each(&directors, |n| async move { ctx.fleet.status(&n, None).await }).await {
        let s = r.map_err(|e| CmdError::Usage(format!("rollout: cannot read {d}'s status: {e}")))?;
        out.push((d, s));
    }
    Ok(out)
}

fn live_state(statuses: &[(String, NodeStatus)], places: &[Placement]) -> LiveState {
    let mut st = LiveState::default();
    for (i, p) in places.iter().enumerate() {
        let Some((_, s)) = statuses.iter().find(|(d, _)| *d == p.director) else { continue };
        if let Some(w) = s.override_of(&p.service, p.dest) {
            st.overrides.push((i, w));
        }
        if s.health_of(&p.service, p.dest).is_some_and(|h| h.quarantined)
            && !st.quarantined_on.contains(&p.director)
        {
            st.quarantined_on.push(p.director.clone());
        }
    }
    st
}

/// The progress file's rollout when it is this cluster's; whether it is this generation's.
fn load_progress(ctx: &Ctx, path: &std::path::Path) -> (Progress, bool) {
    let stored = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
        .filter(|p| p.cluster == ctx.cluster.name);
    let resuming = stored.as_ref().is_some_and(|p| p.generation == ctx.cluster.generation);
    let mut progress = match stored {
        Some(p) if resuming => p,
        // A rollout of an older generation that stopped (say, at a failed apply, then the
        // definition was fixed and bumped): its unfinished drains are still its own.
        other => Progress {
            cluster: ctx.cluster.name.clone(),
            generation: ctx.cluster.generation,
            done: vec![],
            lease: specs::new_lease(),
            drained: other
                .map(|p| p.drained.into_iter().filter(|(rs, _)| !p.done.contains(rs)).collect())
                .unwrap_or_default(),
        },
    };
    if progress.lease.is_empty() {
        progress.lease = specs::new_lease();
    }
    (progress, resuming)
}

/// Every director's live weights now: (service, destination, weight).
async fn live_weights(ctx: &Ctx) -> Result<Vec<(ServiceKey, SocketAddr, u32)>, CmdError> {
    let mut live = Vec::new();
    for (d, t) in tables::tables(ctx, false).await {
        let t = t.map_err(|e| CmdError::Usage(format!("rollout: cannot read {d}'s IPVS table: {e}")))?;
        for s in &t.services {
            live.extend(s.destinations.iter().map(|x| (s.key, x.address, x.weight)));
        }
    }
    Ok(live)
}

/// What the rollout does with one real server.
enum Turn {
    /// Nothing to roll.
    Unchanged,
    /// Rolled by an earlier run of this rollout.
    AlreadyDone,
    /// Quarantined on these directors: skipped.
    Quarantined(Vec<String>),
    /// Drain these placements (the ones the directors have now), change, check, restore.
    Roll(Vec<Placement>),
}

/// One real server's situation before its turn.
struct Server {
    places: Vec<Placement>,
    state: LiveState,
    /// Placements whose live weight the rollout clears at the end (no admin weight).
    ours: Vec<Placement>,
    turn: Turn,
}

fn server(
    rs: &str,
    places: Vec<Placement>,
    mut state: LiveState,
    progress: &Progress,
    spec_changes: bool,
    live: &[(ServiceKey, SocketAddr, u32)],
    all: bool,
) -> Server {
    if let Some(before) = progress.drained.get(rs) {
        // That weight 0 is this rollout's own (cut off or failed mid-step), not an
        // admin's drain: what the admin had is what was recorded before draining.
        state.overrides.clone_from(before);
    }
    let admin = |i: usize| state.overrides.iter().find(|(j, _)| *j == i).map(|(_, w)| *w);
    // The rollout clears (at the end) only live weights it set itself: an admin's drain or
    // weight stays in force.
    let ours: Vec<Placement> =
        places.iter().enumerate().filter(|(i, _)| admin(*i).is_none()).map(|(_, p)| p.clone()).collect();
    let live_of =
        |p: &Placement| live.iter().find(|(k, a, _)| *k == p.service && *a == p.dest).map(|(_, _, w)| *w);
    // A live weight that differs because an admin set it is not a change to roll.
    let weight_changes = places
        .iter()
        .enumerate()
        .any(|(i, p)| admin(i).is_none() && live_of(p).is_some_and(|w| w != p.weight));
    let turn = if progress.done.iter().any(|d| d == rs) {
        Turn::AlreadyDone
    } else if !(all || spec_changes || weight_changes) {
        Turn::Unchanged
    } else if !state.quarantined_on.is_empty() {
        Turn::Quarantined(state.quarantined_on.clone())
    } else {
        // Only what the directors have now can be drained; a new destination arrives with
        // the directors' apply at the end.
        Turn::Roll(places.iter().filter(|p| live_of(p).is_some()).cloned().collect())
    };
    Server { places, state, ours, turn }
}

/// The run's shared pieces.
struct Run<'a> {
    ctx: &'a Ctx,
    opts: RolloutOptions,
    path: PathBuf,
    progress: Progress,
}

impl Run<'_> {
    fn save(&self) -> Result<(), CmdError> {
        Ok(save(&self.path, &self.progress)?)
    }

    fn done_list(&self) -> String {
        if self.progress.done.is_empty() { "none".to_string() } else { self.progress.done.join(", ") }
    }

    /// Roll one server; `Ok(false)`: it failed and the rollout stops (already said).
    async fn roll(
        &mut self,
        rs: &str,
        s: &Server,
        present: &[Placement],
        out: &mut dyn Write,
    ) -> Result<bool, CmdError> {
        // Recorded before the drain: a rollout killed from here on knows the drain is its own.
        self.progress.drained.insert(rs.to_string(), s.state.overrides.clone());
        self.save()?;
        // What the drain is about to wait out, as the drain wait counts it (live, not
        // IPVS's ActiveConn, which DR leaves stale); a count that cannot be read is left out.
        let holds = match crate::ops::weights::active(self.ctx, present).await {
            Ok(n) => {
                // The persistence templates too: the clients a sticky service still sends here.
                let templates = crate::ops::weights::templates(self.ctx, present)
                    .await
                    .map(|t| format!(", {t} persistence template(s)"))
                    .unwrap_or_default();
                format!("; holds {n} live connection(s){templates}")
            }
            Err(_) => String::new(),
        };
        writeln!(out, "{rs}: draining{holds}")?;
        let lease = self.progress.lease.clone();
        let Err(e) = step(self.ctx, rs, present, &lease, self.opts, out).await else {
            restore_with_spec(self.ctx, &s.places, &s.state.overrides).await;
            self.progress.done.push(rs.to_string());
            self.save()?;
            let kept = if s.state.overrides.is_empty() {
                String::new()
            } else {
                " (the admin's live weight kept)".into()
            };
            writeln!(out, "{rs}: done, weight restored{kept}")?;
            return Ok(true);
        };
        writeln!(out, "{rs}: FAILED {}", e.msg)?;
        let done = self.done_list();
        if e.before_apply {
            // Nothing changed on the server: back in service as it was.
            let back = restore(self.ctx, &s.places, &s.state.overrides).await;
            if back {
                self.progress.drained.remove(rs);
                self.save()?;
            }
            let how = if back {
                "is back in service at its old weight"
            } else {
                "could NOT be put back in service"
            };
            writeln!(
                out,
                "rollout: stopped at {rs}; {rs} {how}; {done} done; run `lvsctl rollout` again to resume"
            )?;
        } else {
            // Its apply or health check failed: never send traffic to it (it stays in
            // `drained`, so a resumed rollout rolls it again).
            writeln!(
                out,
                "rollout: stopped at {rs}; {rs} STAYS DRAINED (weight 0) until it is fixed; {done} done; \
                 run `lvsctl rollout` again to resume"
            )?;
        }
        Ok(false)
    }
}

async fn run(
    ctx: &Ctx,
    opts: RolloutOptions,
    out: &mut dyn Write,
    lease_cell: &std::sync::Mutex<String>,
) -> Result<ExitCode, CmdError> {
    let path = progress_path(ctx);
    let (progress, resuming) = load_progress(ctx, &path);
    let mut run = Run { ctx, opts, path, progress };
    if resuming {
        writeln!(out, "rollout: resuming generation {}: done {}", run.progress.generation, run.done_list())?;
    }
    run.save()?;
    let lease = run.progress.lease.clone();
    *lease_cell.lock().expect("lease") = lease.clone();
    let plans = specs::plan_all(ctx, &lease, false).await;
    if let Some((n, Err(e))) = plans.iter().find(|(_, r)| r.is_err()) {
        specs::release(ctx, &lease).await;
        let _ = std::fs::remove_file(&run.path);
        writeln!(out, "rollout: nothing was changed: {n}: {e}")?;
        return Ok(Exit::NodeFailed.into());
    }
    let live = live_weights(ctx).await?;
    let statuses = live_states(ctx).await?;
    let mut servers = ctx.nodes_with(Role::RealServer);
    servers.sort();
    // (server, placements whose live weight the rollout clears at the end)
    let mut rolled: Vec<(String, Vec<Placement>)> = Vec::new();
    let mut skipped = Vec::new();
    for rs in &servers {
        let places = placements(ctx, rs).unwrap_or_default();
        let state = live_state(&statuses, &places);
        let spec_changes =
            plans.iter().any(|(n, r)| n == rs && r.as_ref().is_ok_and(|r| !r.actions.is_empty()));
        let s = server(rs, places, state, &run.progress, spec_changes, &live, opts.all);
        match &s.turn {
            Turn::Unchanged => continue,
            Turn::AlreadyDone => {}
            Turn::Quarantined(on) => {
                writeln!(
                    out,
                    "{rs}: SKIPPED: quarantined by the health check on {}; it carries no traffic and gets its spec with the rest",
                    on.join(", ")
                )?;
                skipped.push(rs.clone());
                continue;
            }
            Turn::Roll(present) => {
                if !run.roll(rs, &s, present, out).await? {
                    return Ok(Exit::NodeFailed.into());
                }
            }
        }
        rolled.push((rs.clone(), s.ours));
    }
    finish(&run, &lease, &rolled, &skipped, out).await
}

/// Everyone else (directors, router, unchanged servers) gets the generation; the live
/// weights the rollout set go away (the spec now carries them).
async fn finish(
    run: &Run<'_>,
    lease: &str,
    rolled: &[(String, Vec<Placement>)],
    skipped: &[String],
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let ctx = run.ctx;
    writeln!(out, "rollout: applying generation {} to the rest", ctx.cluster.generation)?;
    let res: Vec<NodeResult<Report>> = super::apply::apply_printing(ctx, lease, false, out).await?;
    if let Some((n, r)) = res.iter().find(|(_, r)| !r.as_ref().is_ok_and(|r| r.converged)) {
        let why = r.as_ref().err().map_or_else(|| "not converged".to_string(), ToString::to_string);
        writeln!(out, "rollout: {n}: {why}; run `lvsctl rollout` again to resume")?;
        return Ok(Exit::NodeFailed.into());
    }
    for (rs, places) in rolled {
        for (p, r) in set_weight(ctx, places, None).await {
            if let Err(e) = r {
                writeln!(out, "{rs}: clearing live weight on {}: {e}", p.director)?;
                return Ok(Exit::NodeFailed.into());
            }
        }
    }
    let _ = std::fs::remove_file(&run.path);
    writeln!(
        out,
        "rollout: generation {} done; {} real server(s) rolled one at a time",
        ctx.cluster.generation,
        rolled.len()
    )?;
    if !skipped.is_empty() {
        writeln!(
            out,
            "rollout: {} quarantined, not rolled (see `lvsctl status`): {}",
            skipped.len(),
            skipped.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Put `places` back as they were before the drain: the admin's weight where there was
/// one, the spec's (no override) elsewhere. Whether every director took it.
async fn restore(ctx: &Ctx, places: &[Placement], overrides: &[(usize, u32)]) -> bool {
    let mut ok = true;
    for (i, p) in places.iter().enumerate() {
        let w = overrides.iter().find(|(j, _)| *j == i).map(|(_, w)| *w);
        ok &= set_weight(ctx, std::slice::from_ref(p), w).await.iter().all(|(_, r)| r.is_ok());
    }
    ok
}

/// After a successful step: the new spec weight, or the admin's where there was one.
async fn restore_with_spec(ctx: &Ctx, places: &[Placement], overrides: &[(usize, u32)]) {
    for (i, p) in places.iter().enumerate() {
        let w = overrides.iter().find(|(j, _)| *j == i).map_or(p.weight, |(_, w)| *w);
        let _ = set_weight(ctx, std::slice::from_ref(p), Some(w)).await;
    }
}

async fn step(
    ctx: &Ctx,
    rs: &str,
    present: &[Placement],
    lease: &str,
    opts: RolloutOptions,
    out: &mut dyn Write,
) -> Result<(), StepError> {
    let before = |msg: String| StepError { msg, before_apply: true };
    let after = |msg: String| StepError { msg, before_apply: false };
    for (p, r) in set_weight(ctx, present, Some(0)).await {
        r.map_err(|e| before(format!("drain on {}: {e}", p.director)))?;
    }
    let took = wait_drained(ctx, present, opts.drain_timeout).await.map_err(before)?;
    let _ = writeln!(out, "{rs}: drained in {:.1} s; applying", took.as_secs_f64());
    let spec = ctx.spec(rs).ok_or_else(|| after(format!("{rs} has no spec")))?;
    let rep = ctx.fleet.apply(rs, spec, lease, false).await.map_err(|e| after(format!("apply: {e}")))?;
    if !rep.converged {
        let failed: Vec<String> = rep
            .actions
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::Failed(f) => Some(format!("{}: {f}", a.change)),
                _ => None,
            })
            .collect();
        let still: Vec<String> = rep.drift_after.iter().map(ToString::to_string).collect();
        return Err(after(format!(
            "apply did not converge: {}{}",
            failed.join("; "),
            if still.is_empty() { String::new() } else { format!("; still differs: {}", still.join("; ")) }
        )));
    }
    let _ = writeln!(out, "{rs}: applied {} change(s); waiting for its health check", rep.actions.len());
    wait_healthy(ctx, rs, present, opts.health_timeout).await.map_err(after)?;
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
            let s = ctx.fleet.status(&p.director, None).await?;
            let ok = match s.health_of(&p.service, p.dest) {
                Some(h) => {
                    let base = *first_probes[i].get_or_insert(h.probes);
                    h.probes > base && h.up && !h.quarantined
                }
                None => ctx.fleet.status(rs, None).await?.checks.iter().all(|c| c.ok),
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
