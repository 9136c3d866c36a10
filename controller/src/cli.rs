//! Command-line interface of `lvsctl`: argument parsing and the commands' bodies.
//! `main` only calls [`run`]; commands write to the given writers so tests can read them.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::load::{self, LoadError};
use crate::{planner, render};

/// Set up and run Linux Virtual Server direct-routing (LVS-DR) web clusters.
#[derive(Debug, Parser)]
#[command(name = "lvsctl", version, about, long_about = None)]
pub struct Cli {
    /// Cluster definition file.
    #[arg(short = 'f', long = "file", global = true, env = "LVSCTL_FILE", default_value = "cluster.toml")]
    pub file: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text.
    Human,
    /// JSON for programs.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the definition against the rules of DR; report every problem at once.
    Validate,
    /// Show what every node must look like.
    Plan {
        /// Compute the desired state from the definition alone, without asking the agents.
        #[arg(long)]
        offline: bool,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Human)]
        output: Output,
    },
}

/// Run a parsed command line.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    match execute(cli, out, err) {
        Ok(code) => code,
        Err(CommandError::Load(LoadError::Invalid(report))) => {
            let _ = writeln!(err, "{report}");
            ExitCode::from(1)
        }
        Err(e) => {
            let _ = writeln!(err, "lvsctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// Failures of a command as a whole.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Usage(String),
}

fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
    match &cli.command {
        Command::Validate => {
            let loaded = load::load_file(&cli.file)?;
            let c = &loaded.cluster;
            write!(err, "{}", warnings(&loaded.report))?;
            writeln!(
                out,
                "{}: valid: cluster {} generation {}, {} nodes, {} services, {} warning(s)",
                cli.file.display(),
                c.name,
                c.generation,
                c.nodes.len(),
                c.services.len(),
                loaded.report.diagnostics.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { offline, output } => {
            if !offline {
                return Err(CommandError::Usage(
                    "plan asks every agent to diff its spec; this build has no agent client yet. \
                     Use `lvsctl plan --offline` to see the desired state computed from the definition"
                        .into(),
                ));
            }
            let loaded = load::load_file(&cli.file)?;
            write!(err, "{}", warnings(&loaded.report))?;
            let specs = planner::plan(&loaded.cluster);
            match output {
                Output::Json => {
                    serde_json::to_writer_pretty(&mut *out, &specs)?;
                    writeln!(out)?;
                }
                Output::Human => {
                    let agents = |name: &str| {
                        loaded
                            .cluster
                            .nodes
                            .iter()
                            .find(|n| n.name == name)
                            .map(|n| n.agent.clone())
                            .unwrap_or_default()
                    };
                    write!(out, "{}", render::plan(&specs, &agents))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn warnings(report: &crate::diagnostics::Report) -> String {
    if report.diagnostics.is_empty() { String::new() } else { format!("{report}\n") }
}
