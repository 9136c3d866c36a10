//! Command-line interface of `lvsctl`: argument parsing and dispatch. `main` only calls
//! [`run`]; commands write to the given writers so tests can read them.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::commands::{self, CmdError, Ctx};
use crate::load::{self, LoadError};
use crate::pki::Pki;
use crate::{planner, render};

/// Set up and run Linux Virtual Server direct-routing (LVS-DR) web clusters.
#[derive(Debug, Parser)]
#[command(name = "lvsctl", version, about, long_about = None)]
pub struct Cli {
    /// Cluster definition file.
    #[arg(short = 'f', long = "file", global = true, env = "LVSCTL_FILE", default_value = "cluster.toml")]
    pub file: PathBuf,
    /// PKI directory (default: `pki/` beside the definition file).
    #[arg(long, global = true, env = "LVSCTL_PKI")]
    pub pki: Option<PathBuf>,
    /// Deadline of each call to each agent.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
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
    /// Show what would change on every node (asks the agents; changes nothing).
    Plan {
        /// Compute the desired state from the definition alone, without asking the agents.
        #[arg(long)]
        offline: bool,
    },
    /// Make every node match the definition.
    Apply {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        /// Apply even when a director's or real server's clock is off the NTP source.
        #[arg(long)]
        ignore_clock: bool,
        /// Only these nodes (repeatable); the others are left as they are.
        #[arg(long = "node")]
        nodes: Vec<String>,
    },
    /// The whole fleet in one table; exits non-zero when anything is unhealthy.
    Status,
    /// The directors' IPVS tables, in ipvsadm's vocabulary.
    #[command(subcommand)]
    Ipvs(IpvsCommand),
    /// Live changes to one real server.
    #[command(subcommand)]
    Rs(RsCommand),
    /// Apply real-server changes one real server at a time: drain, change, check, restore.
    Rollout {
        /// Longest wait for a drained server's active connections to end.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        drain_timeout: Duration,
        /// Longest wait for a changed server's health check to pass.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        health_timeout: Duration,
        /// Roll every real server, changed or not.
        #[arg(long)]
        all: bool,
    },
    /// Send requests to every VIP from the router; check the distribution and that replies bypass the director.
    Verify {
        /// Requests per virtual service.
        #[arg(short = 'n', long, default_value_t = 20)]
        requests: u32,
    },
    /// Follow every agent's events: applies, weight changes, health transitions, drift and healing.
    Events {
        /// Only these nodes (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Stop after this many events.
        #[arg(short = 'n', long)]
        count: Option<usize>,
    },
    /// The cluster's certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The seed article's lab in network namespaces (root): up, apply, status, verify, down.
    Lab(crate::lab::LabArgs),
    /// Print shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// `lvsctl ipvs ...`
#[derive(Debug, Subcommand)]
pub enum IpvsCommand {
    /// `ipvsadm -L -n`.
    List(ListArgs),
    /// `ipvsadm -S -n`.
    Save,
    /// Withdraw the IPVS services lvs-dr manages on every director (foreign ones stay) until the next apply.
    Clear {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Convert `ipvsadm -S` text (a file, or `-` for stdin) into definition services.
    Restore {
        /// The saved rules.
        #[arg(default_value = "-")]
        input: PathBuf,
    },
}

/// What `ipvs list` shows.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ListArgs {
    /// Counters.
    #[arg(long)]
    stats: bool,
    /// Rates.
    #[arg(long)]
    rate: bool,
    /// Connection timeouts.
    #[arg(long)]
    timeout: bool,
    /// The connection table.
    #[arg(short = 'c', long)]
    connections: bool,
}

/// `lvsctl rs ...`
#[derive(Debug, Subcommand)]
pub enum RsCommand {
    /// Weight 0 on every director: no new connections; optionally wait for active ones to end.
    Drain {
        /// Real server node.
        rs: String,
        /// Wait for active connections to reach 0 (default 60s).
        #[arg(long, num_args = 0..=1, default_missing_value = "60s", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
    },
    /// Back to the definition's weight.
    Enable {
        /// Real server node.
        rs: String,
    },
    /// A live weight (until `enable`).
    Weight {
        /// Real server node.
        rs: String,
        /// Weight, 0..=65535.
        weight: u32,
    },
}

/// `lvsctl pki ...`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the cluster CA and the controller's certificate.
    Init {
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue agent certificates (the named nodes, or every node of the definition).
    Issue {
        /// Nodes.
        nodes: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Whether `e` (or any error under it) is a write to a reader that went away, as in
/// `lvsctl completions bash | head`.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        let pipe = Some(std::io::ErrorKind::BrokenPipe);
        if e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            || e.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == pipe
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Run a parsed command line.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    match execute(cli, out, err) {
        Ok(code) => code,
        // The reader closed the pipe: it has what it wanted. Exit quietly, as `cat` does.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
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
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// The PKI directory of a command line.
pub fn pki_dir(cli: &Cli) -> PathBuf {
    cli.pki.clone().unwrap_or_else(|| {
        cli.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("pki")
    })
}

fn ctx(cli: &Cli, err: &mut dyn Write) -> Result<Ctx, CommandError> {
    let loaded = load::load_file(&cli.file)?;
    write!(err, "{}", warnings(&loaded.report))?;
    let specs = planner::plan(&loaded.cluster);
    let fleet = crate::fleet::Fleet::new(&loaded.cluster, &Pki::new(pki_dir(cli)), cli.deadline)
        .map_err(CmdError::from)?;
    Ok(Ctx {
        file: cli.file.clone(),
        cluster: loaded.cluster,
        specs,
        fleet,
        json: cli.output == Output::Json,
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
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
        Command::Plan { offline: true } => {
            let loaded = load::load_file(&cli.file)?;
            write!(err, "{}", warnings(&loaded.report))?;
            let specs = planner::plan(&loaded.cluster);
            match cli.output {
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
        Command::Plan { offline: false } => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::apply::plan(&c, out))?)
        }
        Command::Apply { yes, ignore_clock, nodes } => {
            let mut c = ctx(cli, err)?;
            if !nodes.is_empty() {
                if let Some(n) = nodes.iter().find(|n| c.spec(n).is_none()) {
                    return Err(CmdError::Usage(format!("no node `{n}` in {}", cli.file.display())).into());
                }
                c.specs.retain(|s| nodes.contains(&s.node));
            }
            let opts = commands::apply::ApplyOptions { yes: *yes, ignore_clock: *ignore_clock };
            Ok(runtime()?.block_on(commands::apply::apply(&c, opts, out))?)
        }
        Command::Status => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::status::status(&c, out))?)
        }
        Command::Ipvs(IpvsCommand::List(a)) => {
            use commands::ipvs::View;
            let view = if a.stats {
                View::Stats
            } else if a.rate {
                View::Rate
            } else if a.timeout {
                View::Timeout
            } else if a.connections {
                View::Connections
            } else {
                View::Table
            };
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::ipvs::list(&c, view, false, out))?)
        }
        Command::Ipvs(IpvsCommand::Save) => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::ipvs::list(&c, commands::ipvs::View::Table, true, out))?)
        }
        Command::Ipvs(IpvsCommand::Clear { yes }) => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::ipvs::clear(&c, *yes, out))?)
        }
        Command::Ipvs(IpvsCommand::Restore { input }) => {
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(input)
                    .map_err(|e| CmdError::Usage(format!("cannot read {}: {e}", input.display())))?
            };
            // Name real servers after the definition's nodes when there is a definition.
            let c = if cli.file.exists() { Some(load::load_file(&cli.file)?.cluster) } else { None };
            let toml = commands::ipvs::restore(c.as_ref(), &text).map_err(CmdError::Usage)?;
            write!(out, "{toml}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rs(rs) => {
            use commands::rs::Change;
            let (name, change) = match rs {
                RsCommand::Drain { rs, wait } => (rs, Change::Drain(*wait)),
                RsCommand::Enable { rs } => (rs, Change::Enable),
                RsCommand::Weight { rs, weight } => (rs, Change::Weight(*weight)),
            };
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::rs::run(&c, name, change, out))?)
        }
        Command::Rollout { drain_timeout, health_timeout, all } => {
            let c = ctx(cli, err)?;
            let opts = commands::rollout::RolloutOptions {
                drain_timeout: *drain_timeout,
                health_timeout: *health_timeout,
                all: *all,
            };
            Ok(runtime()?.block_on(commands::rollout::rollout(&c, opts, out))?)
        }
        Command::Events { nodes, count } => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::events::events(&c, nodes, *count, out))?)
        }
        Command::Verify { requests } => {
            let c = ctx(cli, err)?;
            Ok(runtime()?.block_on(commands::verify::verify(&c, *requests, out))?)
        }
        Command::Pki(p) => {
            let loaded = load::load_file(&cli.file)?;
            let pki = Pki::new(pki_dir(cli));
            match p {
                PkiCommand::Init { force } => {
                    for f in pki.init(&loaded.cluster.name, *force)? {
                        writeln!(out, "wrote {}", f.display())?;
                    }
                }
                PkiCommand::Issue { nodes, force } => {
                    let all: Vec<String> = loaded.cluster.nodes.iter().map(|n| n.name.clone()).collect();
                    let nodes = if nodes.is_empty() { all.clone() } else { nodes.clone() };
                    for n in &nodes {
                        if !all.contains(n) {
                            return Err(
                                CmdError::Usage(format!("no node `{n}` in {}", cli.file.display())).into()
                            );
                        }
                    }
                    for n in &nodes {
                        let pair = pki.issue_agent(n, *force)?;
                        writeln!(out, "wrote {} {}", pair.cert.display(), pair.key.display())?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab(args) => Ok(crate::lab::run(&cli.file, args, out)?),
        Command::Completions { shell } => {
            // (generate panics on a write error; a buffer cannot fail, the pipe can)
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "lvsctl", &mut buf);
            out.write_all(&buf)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn warnings(report: &crate::diagnostics::Report) -> String {
    if report.diagnostics.is_empty() { String::new() } else { format!("{report}\n") }
}
