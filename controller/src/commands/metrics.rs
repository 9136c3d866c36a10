//! `lvsctl metrics NODE`: one scrape of a node's `/metrics`, made as Prometheus makes it
//! (HTTPS, the caller's certificate), printed as the agent served it. For checking what a
//! Prometheus server would see, and for an admin without one.
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use super::{CmdError, Ctx};
use crate::pki::Pki;

/// Scrape `node` at `address` (default: its agent's host, port [`lvs_proto::METRICS_PORT`]).
pub async fn metrics(
    ctx: &Ctx,
    pki: &Pki,
    node: &str,
    address: Option<SocketAddr>,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let n = ctx
        .cluster
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| CmdError::Usage(format!("no node `{node}` in {}", ctx.file.display())))?;
    let addr = match address {
        Some(a) => a,
        None => {
            let agent: SocketAddr = n.agent.parse().map_err(|e| {
                CmdError::Usage(format!("{node}: agent `{}` is not ip:port ({e}); give --address", n.agent))
            })?;
            SocketAddr::new(agent.ip(), lvs_proto::METRICS_PORT)
        }
    };
    let text = crate::scrape::scrape(pki, node, addr, ctx.fleet.deadline).await?;
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
