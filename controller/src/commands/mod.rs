//! The fleet commands of `lvsctl`. Each takes a [`Ctx`] (the loaded definition, its plan,
//! the fleet client) and writes to the given writer; the CLI only parses and dispatches.
use std::io::Write;
use std::process::ExitCode;

pub use crate::ops::Ctx;

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
    /// A real server named that is not one.
    #[error(transparent)]
    Placement(#[from] crate::ops::weights::PlacementError),
}

/// Print a view as JSON.
pub fn json(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<(), CmdError> {
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
