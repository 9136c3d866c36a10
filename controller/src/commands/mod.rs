//! The fleet commands of `lvsctl`. Each takes a [`Ctx`] (the loaded definition, its plan,
//! the fleet client) and writes to the given writer; the CLI only parses and dispatches.
use std::io::Write;
use std::process::ExitCode;

pub use crate::ops::Ctx;

pub mod apply;
pub mod director;
pub mod drill;
pub mod events;
pub mod exit;
pub mod ipvs;
pub mod metrics;
pub mod node;
pub mod rollout;
pub mod rs;
pub mod status;
pub mod trust;
pub mod verify;

pub use exit::Exit;

/// A command's failure as a whole (node-level failures are reported in its output).
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Bad usage or an impossible request, with the fix.
    #[error("{0}")]
    Usage(String),
    /// A change that needs confirmation did not get it.
    #[error("{0}")]
    NotConfirmed(String),
    /// Writing the output.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// Preparing the fleet.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// A real server named that is not one.
    #[error(transparent)]
    Placement(#[from] crate::ops::weights::PlacementError),
    /// A metrics scrape failed.
    #[error(transparent)]
    Scrape(#[from] crate::scrape::ScrapeError),
    /// The admin box's certificates: a ledger or key that cannot be read is a local
    /// failure, not bad usage ([`crate::pki::PkiError::is_usage`] tells them apart).
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
}

/// Print a view as JSON.
pub fn json(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<(), CmdError> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

/// `0` when `ok`, else `e`.
pub fn exit(ok: bool, e: Exit) -> ExitCode {
    exit::unless(ok, e)
}

/// The answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The admin typed `y`, `Y` or `yes`.
    Yes,
    /// Declined at the prompt.
    Declined,
    /// No terminal to ask on (and no `--yes`).
    NoTerminal,
}

/// Ask a yes/no question on the terminal; anything but `y`/`yes` is no. Without a terminal
/// on stdin nothing is asked: a script must say `--yes`.
pub fn confirm(question: &str) -> Confirmed {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Confirmed::NoTerminal;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes") {
        Confirmed::Yes
    } else {
        Confirmed::Declined
    }
}

/// A sentence for the admin: on `out` with text output, on `err` with `-o json` (`out` then
/// holds one JSON document and nothing else). Both are the writers the command was given,
/// never the process's own streams.
pub fn say(ctx: &Ctx, out: &mut dyn Write, err: &mut dyn Write, line: &str) -> std::io::Result<()> {
    if ctx.json { writeln!(err, "{line}") } else { writeln!(out, "{line}") }
}
