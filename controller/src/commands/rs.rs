//! `lvsctl rs drain|enable|weight`: live changes of one real server's weight on every
//! director that sends it traffic. The agent keeps them as a runtime layer over its spec,
//! so a later `apply` does not undo a drain; `enable` removes the layer.
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_proto::pb;
use lvs_proto::spec::{Role, ServiceKey};

use super::{CmdError, Ctx, EXIT_NODE_FAILED, exit, json};

/// One (director, service, destination) a real server is behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Director node.
    pub director: String,
    /// Service.
    pub service: ServiceKey,
    /// RIP:port.
    pub dest: std::net::SocketAddr,
    /// Weight in the definition.
    pub weight: u32,
}

/// Where `rs` is a destination, per the definition.
pub fn placements(ctx: &Ctx, rs: &str) -> Result<Vec<Placement>, CmdError> {
    let node = ctx
        .cluster
        .nodes
        .iter()
        .find(|n| n.name == rs)
        .ok_or_else(|| CmdError::Usage(format!("no node `{rs}` in {}", ctx.file.display())))?;
    if node.role != Role::RealServer {
        return Err(CmdError::Usage(format!("{rs} is a {}, not a real server", node.role)));
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
        return Err(CmdError::Usage(format!("{rs} is in no virtual service of {}", ctx.file.display())));
    }
    Ok(out)
}

/// Set (or with `None` clear) the live weight of every placement; one result each.
pub async fn set_weight(
    ctx: &Ctx,
    places: &[Placement],
    weight: Option<u32>,
) -> Vec<(Placement, Result<pb::SetWeightReply, crate::fleet::NodeError>)> {
    let calls = places.iter().map(|p| async move {
        let req = pb::SetWeightRequest {
            service: Some((&p.service).into()),
            destination: p.dest.to_string(),
            weight,
        };
        (p.clone(), ctx.fleet.call(&p.director, |mut c| async move { c.set_weight(req).await }).await)
    });
    futures::future::join_all(calls).await
}

/// A connection whose IPVS timer was reset this recently still carries traffic.
const LIVE_WITHIN_S: u32 = 15;

/// Live connections of each placement now, counted by each director's agent.
///
/// IPVS's own "active" count cannot be trusted in DR: the director never sees the real
/// server's replies, so a connection that died by a reset stays ESTABLISHED until its
/// 900 s timer runs out. Every packet from the client resets that timer to the TCP
/// timeout, so an ESTABLISHED entry idle for more than [`LIVE_WITHIN_S`] is dead. The
/// agent reads its connection table itself and answers with one count per destination,
/// whatever the table's size.
pub async fn active(ctx: &Ctx, places: &[Placement]) -> Result<u32, String> {
    let mut by_director: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for p in places {
        by_director.entry(p.director.as_str()).or_default().push(p.dest.to_string());
    }
    let mut total = 0;
    for (director, destinations) in by_director {
        let req = pb::LiveConnectionsRequest { destinations, live_within_s: LIVE_WITHIN_S };
        let r = ctx
            .fleet
            .call(director, |mut c| async move { c.live_connections(req).await })
            .await
            .map_err(|e| format!("{director}: {e}"))?;
        total += r.counts.iter().map(|c| c.live).sum::<u32>();
    }
    Ok(total)
}

/// Wait until no placement has active connections, or `timeout`.
pub async fn wait_drained(ctx: &Ctx, places: &[Placement], timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let n = active(ctx, places).await?;
        if n == 0 {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(format!("{n} active connection(s) left after {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What to do to the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Weight 0, optionally waiting for connections to end.
    Drain(Option<Duration>),
    /// Back to the definition's weight.
    Enable,
    /// A chosen weight.
    Weight(u32),
}

/// Run `rs drain|enable|weight`.
pub async fn run(ctx: &Ctx, rs: &str, change: Change, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    if let Change::Weight(w) = change
        && w > 65535
    {
        return Err(CmdError::Usage(format!("weight {w} is outside 0..=65535")));
    }
    let places = placements(ctx, rs)?;
    let weight = match change {
        Change::Drain(_) => Some(0),
        Change::Enable => None,
        Change::Weight(w) => Some(w),
    };
    let res = set_weight(ctx, &places, weight).await;
    let mut ok = res.iter().all(|(_, r)| r.is_ok());
    let mut rows = Vec::new();
    for (p, r) in &res {
        let key = p.service.to_string();
        match r {
            Ok(x) => {
                if !ctx.json {
                    writeln!(
                        out,
                        "{}: {key} -> {}: weight {} (active {}, inactive {})",
                        p.director, p.dest, x.weight, x.active_conns, x.inactive_conns
                    )?;
                }
                rows.push(serde_json::json!({"director": p.director, "service": key, "destination": p.dest.to_string(),
                    "weight": x.weight, "active_conns": x.active_conns, "inactive_conns": x.inactive_conns}));
            }
            Err(e) => {
                if !ctx.json {
                    writeln!(out, "{}: {key} -> {}: FAILED {e}", p.director, p.dest)?;
                }
                rows.push(serde_json::json!({"director": p.director, "service": key, "destination": p.dest.to_string(), "error": e}));
            }
        }
    }
    let mut drained = serde_json::Value::Null;
    if let (Change::Drain(Some(timeout)), true) = (change, ok) {
        match wait_drained(ctx, &places, timeout).await {
            Ok(took) => {
                if !ctx.json {
                    writeln!(out, "{rs}: drained (0 active connections) after {:.1} s", took.as_secs_f64())?;
                }
                drained = serde_json::json!(true);
            }
            Err(e) => {
                ok = false;
                if !ctx.json {
                    writeln!(out, "{rs}: not drained: {e}")?;
                }
                drained = serde_json::json!(e);
            }
        }
    }
    if ctx.json {
        json(out, &serde_json::json!({"real_server": rs, "changes": rows, "drained": drained}))?;
    }
    Ok(exit(ok, EXIT_NODE_FAILED))
}
