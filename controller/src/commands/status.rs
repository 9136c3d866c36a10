//! `lvsctl status`: the whole fleet in one table, and every director's services with
//! their destinations. Exits non-zero when any node is unreachable, behind, drifting,
//! failing a check, or has a quarantined destination.
use std::io::Write;
use std::process::ExitCode;

use lvs_proto::pb;

use super::{CmdError, Ctx, EXIT_NODE_FAILED, EXIT_UNHEALTHY, json};
use crate::render::key_text;

/// What is wrong with one node's status, in words (empty: healthy).
pub fn problems(ctx: &Ctx, s: &pb::Status) -> Vec<String> {
    let mut p = Vec::new();
    if !s.has_spec {
        p.push("no spec applied".into());
    } else if s.generation != ctx.cluster.generation {
        p.push(format!("generation {} (definition: {})", s.generation, ctx.cluster.generation));
    }
    p.extend(s.drift.iter().map(|d| format!("drift: {d}")));
    p.extend(s.checks.iter().filter(|c| !c.ok).map(|c| format!("check failed: {}: {}", c.check, c.detail)));
    p.extend(
        s.health
            .iter()
            .filter(|h| h.quarantined)
            .map(|h| format!("quarantined: {} ({})", h.destination, h.last_error)),
    );
    p
}

fn clock(s: &pb::Status) -> String {
    match s.clock_offset_ms {
        Some(o) => format!("{o:+}ms"),
        None if s.clock_error.is_empty() => "-".into(),
        None => "error".into(),
    }
}

/// Run it.
pub async fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let names = ctx.fleet.names();
    let res =
        ctx.fleet.each(&names, |_, mut c| async move { c.status(pb::StatusRequest::default()).await }).await;
    let unreachable = res.iter().any(|(_, r)| r.is_err());
    let unhealthy = res.iter().any(|(_, r)| r.as_ref().is_ok_and(|s| !problems(ctx, s).is_empty()));
    if ctx.json {
        let nodes: Vec<serde_json::Value> = res.iter().map(|(n, r)| node_json(ctx, n, r)).collect();
        json(
            out,
            &serde_json::json!({ "cluster": ctx.cluster.name, "generation": ctx.cluster.generation,
            "healthy": !unreachable && !unhealthy, "nodes": nodes }),
        )?;
    } else {
        writeln!(
            out,
            "{:<12} {:<12} {:<11} {:>4} {:<18} {:<7} {:>8} {:>6} {:>7}",
            "NODE", "ROLE", "AGENT", "GEN", "KERNEL", "IPVS", "CLOCK", "DRIFT", "CHECKS"
        )?;
        for (n, r) in &res {
            let role =
                ctx.cluster.nodes.iter().find(|x| &x.name == n).map(|x| x.role.as_str()).unwrap_or("?");
            match r {
                Err(e) => writeln!(out, "{n:<12} {role:<12} {:<11} {e}", "UNREACHABLE")?,
                Ok(s) => {
                    let f = s.facts.clone().unwrap_or_default();
                    let ok = s.checks.iter().filter(|c| c.ok).count();
                    writeln!(
                        out,
                        "{n:<12} {role:<12} {:<11} {:>4} {:<18} {:<7} {:>8} {:>6} {:>7}",
                        format!("ok {}", f.agent_version),
                        s.generation,
                        truncate(&f.kernel, 18),
                        if f.ipvs { f.ipvs_version.as_str() } else { "-" },
                        clock(s),
                        s.drift.len(),
                        format!("{ok}/{}", s.checks.len()),
                    )?;
                }
            }
        }
        for (n, r) in &res {
            let Ok(s) = r else { continue };
            if let Some(t) = s.ipvs.as_ref().map(super::ipvs::sorted) {
                writeln!(out)?;
                writeln!(out, "{n}: IPVS {} ({} services)", t.version, t.services.len())?;
                for svc in &t.services {
                    let key = svc.key.as_ref().map(key_text).unwrap_or_default();
                    writeln!(
                        out,
                        "  {key} {}{}",
                        svc.scheduler,
                        if svc.managed { "" } else { "  (foreign)" }
                    )?;
                    for d in &svc.destinations {
                        let h = s.health.iter().find(|h| {
                            h.destination == d.address
                                && h.service.as_ref().map(key_text) == Some(key.clone())
                        });
                        let health = match h {
                            Some(h) if h.quarantined => "QUARANTINED",
                            Some(h) if !h.checked => "checking",
                            Some(h) if h.up => "up",
                            Some(_) => "failing",
                            None => "-",
                        };
                        writeln!(
                            out,
                            "    -> {:<22} {:<6} weight {:<5} active {:<5} inactive {:<5} health {health}",
                            d.address, d.forwarding, d.weight, d.active_conns, d.inactive_conns
                        )?;
                    }
                }
            }
        }
        let mut first = true;
        for (n, r) in &res {
            let Ok(s) = r else { continue };
            for p in problems(ctx, s) {
                if first {
                    writeln!(out)?;
                    first = false;
                }
                writeln!(out, "{n}: {p}")?;
            }
        }
        if !unreachable && !unhealthy {
            writeln!(out, "\nfleet healthy: {} node(s) at generation {}", res.len(), ctx.cluster.generation)?;
        }
    }
    Ok(if unreachable {
        ExitCode::from(EXIT_NODE_FAILED)
    } else if unhealthy {
        ExitCode::from(EXIT_UNHEALTHY)
    } else {
        ExitCode::SUCCESS
    })
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

fn node_json(ctx: &Ctx, n: &str, r: &Result<pb::Status, crate::fleet::NodeError>) -> serde_json::Value {
    match r {
        Err(e) => serde_json::json!({ "node": n, "reachable": false, "error": e }),
        Ok(s) => {
            let f = s.facts.clone().unwrap_or_default();
            serde_json::json!({
                "node": n,
                "reachable": true,
                "agent_version": f.agent_version,
                "kernel": f.kernel,
                "hostname": f.hostname,
                "ipvs": f.ipvs, "ipvs_version": f.ipvs_version, "schedulers": f.schedulers,
                "cpus": f.cpus, "memory_total_bytes": f.memory_total_bytes, "memory_used_bytes": f.memory_used_bytes,
                "agent_rss_bytes": f.agent_rss_bytes,
                "generation": s.generation, "has_spec": s.has_spec,
                "clock_offset_ms": s.clock_offset_ms, "clock_rtt_ms": s.clock_rtt_ms, "clock_error": s.clock_error,
                "drift": s.drift, "foreign": s.foreign,
                "checks": s.checks.iter().map(|c| serde_json::json!({"check": c.check, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
                "health": s.health.iter().map(|h| serde_json::json!({
                    "service": h.service.as_ref().map(key_text), "destination": h.destination, "up": h.up,
                    "quarantined": h.quarantined, "successes": h.successes, "failures": h.failures,
                    "transitions": h.transitions, "probes": h.probes, "last_error": h.last_error,
                })).collect::<Vec<_>>(),
                "ipvs_table": s.ipvs.as_ref().map(super::ipvs::table_json),
                "problems": problems(ctx, s),
            })
        }
    }
}
