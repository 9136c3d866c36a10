//! `lvsctl director drain|enable NODE`: take an ECMP director out of the router's paths
//! (it withdraws its VIPs; its connections finish through it, and the command waits for
//! them) or put it back.
//!
//! `lvsctl director failover [--to NODE] [--instance NAME]`: a planned switchover of a
//! VRRP instance. The master hands over (its engine's priority-0 advert makes the next
//! director take over at once), rejoins as a backup, and the command waits until the new
//! master reports MASTER. Connections carry on: both directors hold the IPVS table and
//! the sync daemons have copied the master's connections to the backups.
use std::io::Write;
use std::process::ExitCode;

use super::{CmdError, Ctx, Exit, exit, json};
use crate::ops::vrrp::{self, FailoverError};

/// Run it.
pub async fn failover(
    ctx: &Ctx,
    instance: Option<&str>,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let g = instance_of(ctx, instance, to)?;
    match vrrp::failover(ctx, g, to).await {
        Ok(f) => {
            if ctx.json {
                json(out, &f)?;
            } else {
                writeln!(out, "{}: {} handed over to {} in {} ms", f.instance, f.from, f.to, f.took_ms)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(FailoverError::Refused(why)) => Err(CmdError::Usage(format!("director failover: {why}"))),
        Err(e @ FailoverError::Node { .. }) => {
            writeln!(out, "director failover: {e}")?;
            Ok(exit(false, Exit::NodeFailed))
        }
    }
}

/// What `drain` and `enable` print as JSON.
#[derive(Debug, serde::Serialize)]
struct DrainView {
    node: String,
    drained: bool,
    announced: Vec<String>,
    connections_left: u64,
    waited_ms: u64,
}

/// Live connections in the director's IPVS table now: TCP ESTABLISHED with a client packet in the
/// last 15 s, UDP flows as recent.
async fn connections(ctx: &Ctx, node: &str) -> Result<u64, String> {
    let t = ctx.fleet.ipvs_table(node, false).await.map_err(|e| format!("{node}: {e}"))?;
    let dests: Vec<std::net::SocketAddr> =
        t.services.iter().flat_map(|s| &s.destinations).map(|d| d.address).collect();
    if dests.is_empty() {
        return Ok(0);
    }
    // Live entries, as a real server's drain counts them: in DR the director never sees
    // a connection's end, so a finished one sits in the table as FIN_WAIT (or an idle
    // ESTABLISHED) for minutes; waiting for the table to empty would wait those out.
    let counts = ctx
        .fleet
        .live_connections(node, &dests, crate::ops::weights::LIVE_WITHIN_S)
        .await
        .map_err(|e| format!("{node}: {e}"))?;
    Ok(counts.iter().map(|c| u64::from(c.live)).sum())
}

/// `drain` (`drained`) or `enable` an ECMP director; a drain then waits up to `wait` for
/// its live connections to end.
pub async fn set_drained(
    ctx: &Ctx,
    node: &str,
    drained: bool,
    wait: std::time::Duration,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    if !ctx.cluster.ecmp_director(node) {
        return Err(CmdError::Usage(format!("{node} is no director of [bgp] in {}", ctx.file.display())));
    }
    let word = if drained { "drain" } else { "enable" };
    let b = match ctx.fleet.set_drained(node, drained).await {
        Ok(b) => b,
        Err(e) => {
            writeln!(out, "director {word}: {node}: {e}")?;
            return Ok(exit(false, Exit::NodeFailed));
        }
    };
    let announced: Vec<String> = b.announced().map(|a| a.prefix.clone()).collect();
    let t0 = std::time::Instant::now();
    let mut left = 0;
    if drained {
        // The router stops sending new flows within BGP's update; what is established
        // finishes here (the real servers answer the clients directly).
        loop {
            left = match connections(ctx, node).await {
                Ok(n) => n,
                Err(e) => {
                    writeln!(out, "director drain: {e}")?;
                    return Ok(exit(false, Exit::NodeFailed));
                }
            };
            if left == 0 || t0.elapsed() >= wait {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let view = DrainView {
        node: node.to_string(),
        drained,
        announced,
        connections_left: left,
        waited_ms: t0.elapsed().as_millis() as u64,
    };
    if ctx.json {
        json(out, &view)?;
    } else if drained {
        writeln!(
            out,
            "{node}: drained (every VIP withdrawn); {left} live connection(s) left after {} ms",
            view.waited_ms
        )?;
    } else {
        writeln!(out, "{node}: enabled; announcing [{}]", view.announced.join(", "))?;
    }
    Ok(exit(left == 0, Exit::NodeFailed))
}

/// The VRRP instance named `instance`, or the one `to` is in, or the only one.
pub(super) fn instance_of<'c>(
    ctx: &'c Ctx,
    instance: Option<&str>,
    to: Option<&str>,
) -> Result<&'c crate::model::VrrpGroup, CmdError> {
    let groups = &ctx.cluster.vrrp;
    let g = match (instance, to) {
        (Some(i), _) => groups
            .iter()
            .find(|g| g.name == i)
            .ok_or_else(|| CmdError::Usage(format!("no VRRP instance `{i}` in {}", ctx.file.display())))?,
        (None, Some(n)) => ctx.cluster.vrrp_of(n).ok_or_else(|| {
            CmdError::Usage(format!("{n} is in no VRRP instance of {}", ctx.file.display()))
        })?,
        (None, None) => match &groups[..] {
            [one] => one,
            [] => return Err(CmdError::Usage(format!("{} has no [[vrrp]] instance", ctx.file.display()))),
            _ => return Err(CmdError::Usage("several VRRP instances: name one with --instance".into())),
        },
    };
    if let Some(n) = to
        && !g.members.iter().any(|(m, _)| m == n)
    {
        return Err(CmdError::Usage(format!("{n} is not a director of VRRP instance {}", g.name)));
    }
    Ok(g)
}
