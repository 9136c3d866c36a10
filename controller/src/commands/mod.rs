//! The fleet commands of `lvsctl`. Each takes a [`Ctx`] (the loaded definition, its plan,
//! the fleet client) and writes to the given writer; the CLI only parses and dispatches.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lvs_proto::NodeSpec;
use lvs_proto::spec::Role;

use crate::fleet::Fleet;
use crate::model::Cluster;

pub mod apply;
pub mod events;
pub mod ipvs;
pub mod rollout;
pub mod rs;
pub mod status;
pub mod verify;

/// Exit code: a node failed, was unreachable or refused.
pub const EXIT_NODE_FAILED: u8 = 3;
/// Exit code: the fleet is reachable but something is unhealthy.
pub const EXIT_UNHEALTHY: u8 = 4;

/// What every fleet command works with.
pub struct Ctx {
    /// The definition file.
    pub file: PathBuf,
    /// The validated cluster.
    pub cluster: Cluster,
    /// The desired state of every node, in definition order.
    pub specs: Vec<NodeSpec>,
    /// The agents.
    pub fleet: Fleet,
    /// JSON output instead of text.
    pub json: bool,
}

impl Ctx {
    /// Names of the nodes with `role`.
    pub fn nodes_with(&self, role: Role) -> Vec<String> {
        self.cluster.nodes.iter().filter(|n| n.role == role).map(|n| n.name.clone()).collect()
    }

    /// The spec of `node`.
    pub fn spec(&self, node: &str) -> Option<&NodeSpec> {
        self.specs.iter().find(|s| s.node == node)
    }
}

/// A command's failure as a whole (node-level failures are reported in its output).
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Bad usage or an impossible request, with the fix.
    #[error("{0}")]
    Usage(String),
    /// Writing the output.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// Preparing the fleet.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

/// Print JSON.
pub fn json(out: &mut dyn Write, v: &serde_json::Value) -> Result<(), CmdError> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

/// `0` when `ok`, else `code`.
pub fn exit(ok: bool, code: u8) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(code) }
}

/// Ask a yes/no question on the terminal; anything but `y`/`yes` is no.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}
