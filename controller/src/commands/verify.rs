//! `lvsctl verify`: the router's agent sends N requests to every VIP; the directors'
//! per-destination counters before and after give the distribution, compared with what
//! the scheduler promises (rr: equal; wrr: by weight); and the DR property is checked:
//! the director saw the requests (in-packets) and carried no replies (out-packets 0).
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_proto::pb;
use lvs_proto::spec::{Role, ServiceKey};

use super::{CmdError, Ctx, EXIT_UNHEALTHY, exit, json};
use crate::render::key_text;

/// Deadline of one request of the router's probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of one service and its destinations.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    inpkts: u64,
    outpkts: u64,
    conns: BTreeMap<String, (u64, u32)>, // dest -> (conns, weight)
}

async fn counters(ctx: &Ctx, key: &str) -> Result<Counters, String> {
    let mut c = Counters::default();
    for (d, t) in super::ipvs::tables(ctx, false).await {
        let t = t.map_err(|e| format!("{d}: {e}"))?;
        for s in t.services.iter().filter(|s| s.key.as_ref().map(key_text).as_deref() == Some(key)) {
            let st = s.stats.unwrap_or_default();
            c.inpkts += st.inpkts;
            c.outpkts += st.outpkts;
            for x in &s.destinations {
                let e = c.conns.entry(x.address.clone()).or_default();
                e.0 += x.stats.map(|s| s.conns).unwrap_or(0);
                e.1 = x.weight;
            }
        }
    }
    Ok(c)
}

/// Expected share of `n` requests per destination for `scheduler`, or `None` when the
/// scheduler promises no fixed distribution.
pub fn expected(scheduler: &str, n: u64, weights: &BTreeMap<String, u32>) -> Option<BTreeMap<String, f64>> {
    let live: Vec<(&String, u32)> = weights.iter().filter(|(_, w)| **w > 0).map(|(a, w)| (a, *w)).collect();
    if live.is_empty() {
        return None;
    }
    let total: u32 = live.iter().map(|(_, w)| w).sum();
    let share = |w: u32| match scheduler {
        "rr" => n as f64 / live.len() as f64,
        "wrr" => n as f64 * f64::from(w) / f64::from(total),
        _ => f64::NAN,
    };
    if !matches!(scheduler, "rr" | "wrr") {
        return None;
    }
    Some(weights.iter().map(|(a, w)| (a.clone(), if *w == 0 { 0.0 } else { share(*w) })).collect())
}

/// Run it.
pub async fn verify(ctx: &Ctx, requests: u32, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let router =
        ctx.nodes_with(Role::Router).into_iter().next().ok_or_else(|| {
            CmdError::Usage("verify needs a router node: its agent sends the requests".into())
        })?;
    let mut ok = true;
    let mut report = Vec::new();
    let directors = ctx.nodes_with(Role::Director);
    let services: Vec<_> = directors
        .iter()
        .filter_map(|d| ctx.spec(d))
        .flat_map(|s| s.virtual_services.iter())
        .filter(|v| matches!(v.key, ServiceKey::Addr { protocol: lvs_proto::spec::Protocol::Tcp, .. }))
        .collect();
    if services.is_empty() {
        return Err(CmdError::Usage("verify: no TCP virtual service to probe".into()));
    }
    for v in services {
        let ServiceKey::Addr { address, .. } = v.key else { continue };
        let key = v.key.to_string();
        let path = match v.health_check.as_ref().map(|h| &h.probe) {
            Some(lvs_proto::spec::ProbeKind::Http { path, .. }) => path.clone(),
            _ => "/".into(),
        };
        let before = counters(ctx, &key).await.map_err(CmdError::Usage)?;
        let req = pb::ProbeRequest {
            target: address.to_string(),
            path,
            host: None,
            count: requests,
            concurrency: 1,
            timeout_ms: PROBE_TIMEOUT.as_millis() as u64,
        };
        // Sequential requests, each within PROBE_TIMEOUT: the call's own deadline.
        let deadline = ctx.fleet.deadline + PROBE_TIMEOUT * requests;
        let probe = ctx
            .fleet
            .call_within(&router, deadline, |mut c| async move { c.probe(req).await })
            .await
            .map_err(|e| CmdError::Usage(format!("verify: {router}: {e}")))?;
        // IPVS folds per-CPU counters into what it reports on a ~2 s timer: wait for them.
        let start = Instant::now();
        let mut after = counters(ctx, &key).await.map_err(CmdError::Usage)?;
        let delta = |a: &Counters| -> u64 {
            a.conns.iter().map(|(k, (c, _))| c - before.conns.get(k).map_or(0, |x| x.0).min(*c)).sum()
        };
        while delta(&after) < u64::from(probe.answered) && start.elapsed() < Duration::from_secs(6) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = counters(ctx, &key).await.map_err(CmdError::Usage)?;
        }
        let per: BTreeMap<String, u64> = after
            .conns
            .iter()
            .map(|(k, (c, _))| (k.clone(), c.saturating_sub(before.conns.get(k).map_or(0, |x| x.0))))
            .collect();
        let weights: BTreeMap<String, u32> = after.conns.iter().map(|(k, (_, w))| (k.clone(), *w)).collect();
        let total: u64 = per.values().sum();
        let exp = expected(&v.scheduler, total, &weights);
        let dist_ok = exp.as_ref().is_none_or(|e| {
            e.iter().all(|(k, x)| (per.get(k).copied().unwrap_or(0) as f64 - x).abs() <= 1.0)
        });
        let inpkts = after.inpkts.saturating_sub(before.inpkts);
        let outpkts = after.outpkts.saturating_sub(before.outpkts);
        let dr_ok = inpkts > 0 && outpkts == 0;
        let all_answered = probe.answered == probe.sent && probe.sent > 0;
        ok &= dist_ok && dr_ok && all_answered;
        if !ctx.json {
            writeln!(
                out,
                "{key} {} — {} request(s) from {router}: {} answered, {} failed",
                v.scheduler, probe.sent, probe.answered, probe.failed
            )?;
            for e in &probe.errors {
                writeln!(out, "  error: {e}")?;
            }
            if !probe.sequence.is_empty() {
                writeln!(out, "  answers in order: {}", probe.sequence.join(" "))?;
            }
            for (k, n) in &per {
                let e = exp
                    .as_ref()
                    .and_then(|e| e.get(k))
                    .map(|x| format!(" (expected {x:.1})"))
                    .unwrap_or_default();
                writeln!(out, "  -> {k:<22} weight {:<5} got {n}{e}", weights.get(k).copied().unwrap_or(0))?;
            }
            writeln!(
                out,
                "  distribution: {}",
                if exp.is_none() {
                    "not checked for this scheduler"
                } else if dist_ok {
                    "as the scheduler promises"
                } else {
                    "NOT as the scheduler promises"
                }
            )?;
            writeln!(
                out,
                "  direct routing: director in-packets +{inpkts}, out-packets +{outpkts}: {}",
                if dr_ok {
                    "requests passed the director, replies bypassed it"
                } else {
                    "FAILED (replies seen by the director, or no traffic)"
                }
            )?;
        }
        report.push(serde_json::json!({
            "service": key, "scheduler": v.scheduler, "sent": probe.sent, "answered": probe.answered,
            "failed": probe.failed, "errors": probe.errors, "sequence": probe.sequence, "bodies": probe.bodies,
            "per_destination": per, "expected": exp, "distribution_ok": dist_ok,
            "director_inpkts": inpkts, "director_outpkts": outpkts, "direct_routing_ok": dr_ok,
        }));
    }
    if ctx.json {
        json(out, &serde_json::json!({"ok": ok, "services": report}))?;
    } else {
        writeln!(out, "verify: {}", if ok { "PASS" } else { "FAIL" })?;
    }
    Ok(exit(ok, EXIT_UNHEALTHY))
}
