//! `lvsctl rs drain|enable|weight`: live changes of one real server's weight on every
//! director that sends it traffic. The agent keeps them as a runtime layer over its spec,
//! so a later `apply` does not undo a drain; `enable` removes the layer.
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use lvs_proto::reply::{WeightReply, as_text};
use lvs_proto::spec::ServiceKey;
use serde::Serialize;

use super::{CmdError, Ctx, Exit, exit, json};
use crate::fleet::NodeError;
use crate::ops::weights::{placements, set_weight, wait_drained};

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

/// One director's answer to the change.
#[derive(Debug, Serialize)]
pub struct WeightRow {
    /// The director's name in the definition.
    pub director: String,
    /// The virtual service the destination belongs to.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// RIP:port.
    pub destination: SocketAddr,
    /// The weight in force and the connections.
    #[serde(flatten)]
    pub reply: Option<WeightReply>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<NodeError>,
}

/// What `rs` did.
#[derive(Debug, Serialize)]
pub struct RsView {
    /// The real server.
    pub real_server: String,
    /// One row per placement.
    pub changes: Vec<WeightRow>,
    /// `null` (not asked), `true`, or why not.
    pub drained: serde_json::Value,
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
    let rows: Vec<WeightRow> = set_weight(ctx, &places, weight)
        .await
        .into_iter()
        .map(|(p, r)| WeightRow {
            director: p.director,
            service: p.service,
            destination: p.dest,
            error: r.as_ref().err().cloned(),
            reply: r.ok(),
        })
        .collect();
    let mut ok = rows.iter().all(|r| r.error.is_none());
    if !ctx.json {
        for r in &rows {
            match (&r.reply, &r.error) {
                (Some(x), _) => writeln!(
                    out,
                    "{}: {} -> {}: weight {} (active {}, inactive {})",
                    r.director, r.service, r.destination, x.weight, x.active_conns, x.inactive_conns
                )?,
                (None, e) => writeln!(
                    out,
                    "{}: {} -> {}: FAILED {}",
                    r.director,
                    r.service,
                    r.destination,
                    e.as_ref().map(ToString::to_string).unwrap_or_default()
                )?,
            }
        }
    }
    let mut drained = serde_json::Value::Null;
    if let (Change::Drain(Some(timeout)), true) = (change, ok) {
        match wait_drained(ctx, &places, timeout).await {
            Ok(took) => {
                if !ctx.json {
                    writeln!(out, "{rs}: drained (0 live connections) after {:.1} s", took.as_secs_f64())?;
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
        json(out, &RsView { real_server: rs.to_string(), changes: rows, drained })?;
    }
    Ok(exit(ok, Exit::NodeFailed))
}
