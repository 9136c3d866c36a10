//! `lvsctl drill failover [--instance NAME] [--duration 8s] [--every 25ms]`: a planned
//! hand-over of a VRRP instance and back, under open-loop requests through the VIP from the
//! router's agent; it reports what a client saw and exits 4 (unhealthy) when a request
//! failed. Meant for a schedule too (the package's `lvs-drill@.timer`): the router keeps
//! the last drill's result as metrics and reports it as an event.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::{CmdError, Ctx, Exit, exit, json};
use crate::ops::drill::{self, DrillError};
use crate::ops::vrrp::FailoverError;

/// Run it.
pub async fn failover(
    ctx: &Ctx,
    instance: Option<&str>,
    duration: Duration,
    every: Duration,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    if duration < Duration::from_secs(2) || duration > Duration::from_secs(600) {
        return Err(CmdError::Usage("drill: --duration must be 2s..=10m (both hand-overs fit in it)".into()));
    }
    if every < Duration::from_millis(5) || every > Duration::from_secs(10) {
        return Err(CmdError::Usage("drill: --every must be 5ms..=10s".into()));
    }
    let g = super::director::instance_of(ctx, instance, None)?;
    let r = match drill::failover(ctx, g, duration, every).await {
        Ok(r) => r,
        Err(DrillError::Refused(why) | DrillError::Failover(FailoverError::Refused(why))) => {
            return Err(CmdError::Usage(format!("drill: {why}")));
        }
        Err(e) => {
            writeln!(out, "drill: {e}")?;
            return Ok(exit(false, Exit::NodeFailed));
        }
    };
    if ctx.json {
        json(out, &r)?;
    } else {
        writeln!(
            out,
            "drill {}: {} handed over to {} in {} ms, and back to {} in {} ms",
            r.instance, r.there.from, r.there.to, r.there.took_ms, r.back.to, r.back.took_ms
        )?;
        writeln!(
            out,
            "  requests from {} to {}, one every {} ms for {} s: {} sent, {} failed, slowest {} ms, longest without an answer {} ms",
            r.from,
            r.target,
            every.as_millis(),
            duration.as_secs_f64(),
            r.requests,
            r.failed,
            r.slowest_ms,
            r.longest_gap_ms
        )?;
        for e in &r.errors {
            writeln!(out, "  failed: {e}")?;
        }
        writeln!(out, "drill {}", if r.passed() { "passed" } else { "FAILED: clients saw errors" })?;
    }
    Ok(exit(r.passed(), Exit::Unhealthy))
}
