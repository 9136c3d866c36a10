//! `lvsctl node remove NODE`: take a node out of the cluster before it leaves the
//! definition. Its agent undoes exactly what it owns and forgets its spec, so nothing of
//! the cluster stays on the host and nothing is healed back.
use std::io::Write;
use std::process::ExitCode;

use super::{CmdError, Confirmed, Ctx, Exit, confirm, exit, json, say};

/// Run it.
pub async fn remove(
    ctx: &Ctx,
    node: &str,
    yes: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    if ctx.spec(node).is_none() {
        return Err(CmdError::Usage(format!(
            "no node `{node}` in {}: remove it before dropping it from the definition (lvsctl needs its agent address)",
            ctx.file.display()
        )));
    }
    if !yes {
        let q = format!(
            "take {node} out of the cluster? its agent removes the IPVS services, addresses and routes it \
             created and puts back the sysctls it changed"
        );
        match confirm(&q) {
            Confirmed::Yes => {}
            Confirmed::Declined => {
                say(ctx, out, err, "node remove: declined, nothing was changed")?;
                return Ok(Exit::NotConfirmed.into());
            }
            Confirmed::NoTerminal => {
                say(
                    ctx,
                    out,
                    err,
                    "node remove: needs confirmation and stdin is not a terminal: pass --yes",
                )?;
                return Ok(Exit::NotConfirmed.into());
            }
        }
    }
    let r = ctx.fleet.decommission(node).await;
    let done = vec![(node.to_string(), r)];
    if ctx.json {
        json(out, &super::apply::reports_view(&done))?;
    } else {
        super::apply::print_report(out, node, &done[0].1, "decommissioned", true)?;
    }
    let ok = done[0].1.as_ref().is_ok_and(|r| r.converged);
    if ok {
        say(
            ctx,
            out,
            err,
            &format!(
                "{node}: out of the cluster; now drop it from {} (nodes and services), bump the generation and apply",
                ctx.file.display()
            ),
        )?;
    }
    Ok(exit(ok, Exit::NodeFailed))
}
