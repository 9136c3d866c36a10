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
