//! Each command's `exec`: load what it needs once, run, return its exit code. The fleet
//! commands share one set-up ([`fleet`]): definition, plan, fleet client and a runtime.
//! [`run`] is the one place failures become exit codes; `main` only calls it, and commands
//! write to the given writers so tests can read them.
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use lvs_controller::commands::{self, CmdError, Ctx, Exit};
use lvs_controller::load::{self, Loaded};
use lvs_controller::pki::Pki;
use lvs_controller::scrape::ScrapeError;
use lvs_controller::{planner, render};
use lvs_proto::spec::{Protocol, ServiceKey};

use lvs_controller::load::LoadError;

use crate::cli::{
    ApplyArgs, Cli, Command, DirectorCommand, DrillCommand, EventsArgs, ImportCommand, ImportKeepalivedArgs,
    IpvsCommand, ListArgs, NodeCommand, Output, PeeringArgs, PeeringDialect, PkiCommand, PlanArgs,
    RolloutArgs, RsCommand, VerifyArgs, pki_dir,
};

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
            if cli.output == Output::Json {
                let _ = serde_json::to_writer_pretty(&mut *out, &ValidateView::of(&cli.file, None, &report));
                let _ = writeln!(out);
            } else {
                let _ = writeln!(err, "{report}");
            }
            Exit::Invalid.into()
        }
        Err(e) => {
            let _ = writeln!(err, "lvsctl: {e}");
            e.exit().into()
        }
    }
}

impl CommandError {
    /// The exit status of this failure.
    pub fn exit(&self) -> Exit {
        match self {
            CommandError::Load(LoadError::Invalid(_)) => Exit::Invalid,
            CommandError::Cmd(CmdError::Usage(_) | CmdError::Placement(_)) => Exit::Usage,
            CommandError::Cmd(CmdError::Pki(e)) if e.is_usage() => Exit::Usage,
            CommandError::Cmd(CmdError::NotConfirmed(_)) => Exit::NotConfirmed,
            CommandError::Cmd(CmdError::Scrape(
                ScrapeError::Connect { .. } | ScrapeError::Refused { .. },
            )) => Exit::NodeFailed,
            CommandError::Load(_)
            | CommandError::Io(_)
            | CommandError::Json(_)
            | CommandError::Cmd(_)
            | CommandError::Pki(_)
            | CommandError::Lab(_) => Exit::Local,
        }
    }
}

/// `validate -o json`: the verdict and every finding.
#[derive(Debug, serde::Serialize)]
pub struct ValidateView<'a> {
    /// The definition.
    pub file: String,
    /// No errors.
    pub valid: bool,
    /// Cluster name, generation and sizes, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSummary>,
    /// Errors and warnings.
    pub diagnostics: &'a [lvs_controller::diagnostics::Diagnostic],
}

/// What `validate` says of a valid cluster.
#[derive(Debug, serde::Serialize)]
pub struct ClusterSummary {
    /// The definition's cluster name.
    pub name: String,
    /// The definition's generation, which agents refuse to go back from.
    pub generation: u64,
    /// How many nodes the definition has.
    pub nodes: usize,
    /// How many virtual services the definition has.
    pub services: usize,
}

impl<'a> ValidateView<'a> {
    fn of(
        file: &std::path::Path,
        cluster: Option<&lvs_controller::model::Cluster>,
        report: &'a lvs_controller::diagnostics::Report,
    ) -> Self {
        ValidateView {
            file: file.display().to_string(),
            valid: report.error_count() == 0,
            cluster: cluster.map(|c| ClusterSummary {
                name: c.name.clone(),
                generation: c.generation,
                nodes: c.nodes.len(),
                services: c.services.len(),
            }),
            diagnostics: &report.diagnostics,
        }
    }
}

/// Commands whose output is not data (a shell script, roff, TOML, a live transcript)
/// refuse `-o json` instead of ignoring it.
fn no_json(cli: &Cli, what: &str) -> Result<(), CommandError> {
    if cli.output == Output::Json {
        return Err(CmdError::Usage(format!("{what} does not take -o json")).into());
    }
    Ok(())
}

/// Failures of a command as a whole (a node's failure is in the command's output).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The definition.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Writing the output.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// Writing JSON.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The command.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The certificates.
    #[error(transparent)]
    Pki(#[from] lvs_controller::pki::PkiError),
    /// The lab.
    #[error(transparent)]
    Lab(#[from] lvs_lab::LabError),
}

/// Run the command of `cli`.
// Long on purpose: one arm per command, each handing its arguments to its command.
pub fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
    match &cli.command {
        Command::Validate => validate(cli, out, err),
        Command::Peering(a) => a.exec(cli, out, err),
        Command::Import(ImportCommand::Keepalived(a)) => a.exec(cli, out, err),
        Command::Plan(a) => a.exec(cli, out, err),
        Command::Apply(a) => a.exec(cli, out, err),
        Command::Status(a) => fleet(cli, err, |c, _err| async move {
            match a.watch {
                None => commands::status::status(&c, &a.nodes, out).await,
                Some(every) => {
                    use std::io::IsTerminal;
                    let w = commands::status::Watch {
                        every,
                        count: a.count,
                        clear: std::io::stdout().is_terminal(),
                    };
                    commands::status::watch(&c, &a.nodes, w, out).await
                }
            }
        }),
        Command::Ipvs(a) => a.exec(cli, out, err),
        Command::Rs(a) => a.exec(cli, out, err),
        Command::Rollout(a) => a.exec(cli, out, err),
        Command::Verify(a) => a.exec(cli, out, err),
        Command::Events(a) => a.exec(cli, out, err),
        Command::Metrics(a) => {
            no_json(cli, "metrics (Prometheus text)")?;
            fleet(cli, err, |c, _err| async move {
                let pki = Pki::new(pki_dir(cli, &c.cluster.name));
                commands::metrics::metrics(&c, &pki, &a.node, a.address, out).await
            })
        }
        Command::Pki(PkiCommand::Rotate { nodes }) => fleet(cli, err, |mut c, _err| async move {
            only(&mut c, nodes)?;
            let pki = Pki::new(pki_dir(cli, &c.cluster.name));
            commands::trust::rotate(&c, &pki, out).await
        }),
        Command::Pki(PkiCommand::Revoke { what }) => fleet(cli, err, |c, err| async move {
            let pki = Pki::new(pki_dir(cli, &c.cluster.name));
            commands::trust::revoke(&c, &pki, what, out, err).await
        }),
        Command::Pki(a) => a.exec(cli, out),
        Command::Director(DirectorCommand::Failover { to, instance }) => {
            fleet(cli, err, |c, _err| async move {
                commands::director::failover(&c, instance.as_deref(), to.as_deref(), out).await
            })
        }
        Command::Drill(DrillCommand::Failover { instance, duration, every }) => {
            fleet(cli, err, |c, _err| async move {
                commands::drill::failover(&c, instance.as_deref(), *duration, *every, out).await
            })
        }
        Command::Director(DirectorCommand::Drain { node, wait }) => fleet(cli, err, |c, _err| async move {
            commands::director::set_drained(&c, node, true, *wait, out).await
        }),
        Command::Director(DirectorCommand::Enable { node }) => fleet(cli, err, |c, _err| async move {
            commands::director::set_drained(&c, node, false, std::time::Duration::ZERO, out).await
        }),
        Command::Node(NodeCommand::Enroll { node, code }) => fleet(cli, err, |c, _err| async move {
            let pki = Pki::new(pki_dir(cli, &c.cluster.name));
            commands::trust::enroll(&c, &pki, node, &pairing_code(code)?, out).await
        }),
        Command::Node(NodeCommand::Remove { node, yes }) => {
            fleet(cli, err, |c, err| async move { commands::node::remove(&c, node, *yes, out, err).await })
        }
        Command::Lab(a) => {
            no_json(cli, "lab")?;
            Ok(lvs_lab::run(&cli.file, a, out)?)
        }
        Command::Completions { shell } => {
            no_json(cli, "completions (a shell script)")?;
            // (generate panics on a write error; a buffer cannot fail, the pipe can)
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "lvsctl", &mut buf);
            out.write_all(&buf)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            no_json(cli, "man (roff)")?;
            match dir {
                None => crate::man::main_page(out)?,
                Some(d) => {
                    for f in crate::man::write_all(d)? {
                        writeln!(out, "wrote {}", f.display())?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The definition, its warnings printed to `err`.
fn loaded(cli: &Cli, err: &mut dyn Write) -> Result<Loaded, CommandError> {
    let loaded = load::load_file(&cli.file)?;
    if !loaded.report.diagnostics.is_empty() {
        writeln!(err, "{}", loaded.report)?;
    }
    Ok(loaded)
}

/// Set up a fleet command (definition, plan, fleet client) and run `f` on a runtime.
/// `f` gets `err` back for what it says beside its output (see [`commands::say`]).
fn fleet<'o, F, Fut>(cli: &Cli, err: &'o mut dyn Write, f: F) -> Result<ExitCode, CommandError>
where
    F: FnOnce(Ctx, &'o mut dyn Write) -> Fut,
    Fut: Future<Output = Result<ExitCode, CmdError>> + 'o,
{
    let loaded = loaded(cli, &mut *err)?;
    let specs = planner::plan(&loaded.cluster);
    let fleet = lvs_controller::fleet::Fleet::new(
        &loaded.cluster,
        &Pki::new(pki_dir(cli, &loaded.cluster.name)),
        cli.deadline,
    )
    .map_err(CmdError::from)?;
    let ctx = Ctx {
        file: cli.file.clone(),
        cluster: loaded.cluster,
        specs,
        fleet,
        json: cli.output == Output::Json,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    Ok(rt.block_on(f(ctx, err))?)
}

fn validate(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
    if cli.output == Output::Json {
        let loaded = load::load_file(&cli.file)?;
        serde_json::to_writer_pretty(
            &mut *out,
            &ValidateView::of(&cli.file, Some(&loaded.cluster), &loaded.report),
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let loaded = loaded(cli, err)?;
    let c = &loaded.cluster;
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

impl PeeringArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        use lvs_controller::peering;
        let loaded = loaded(cli, err)?;
        let sides = peering::sides(&loaded.cluster, self.router.as_deref())
            .map_err(|e| CmdError::Usage(format!("{}: {e}", cli.file.display())))?;
        let dialect = match self.dialect {
            PeeringDialect::Frr => peering::Dialect::Frr,
            PeeringDialect::Bird => peering::Dialect::Bird,
        };
        write!(out, "{}", peering::render(&loaded.cluster, &sides, dialect))?;
        Ok(ExitCode::SUCCESS)
    }
}

impl PlanArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        if !self.offline {
            let opts =
                commands::apply::PlanOptions { detailed_exitcode: self.detailed_exitcode, adopt: self.adopt };
            return fleet(cli, err, |mut c, _err| async move {
                only(&mut c, &self.nodes)?;
                commands::apply::plan(&c, opts, out).await
            });
        }
        let loaded = loaded(cli, err)?;
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
}

/// Keep only `nodes`' specs (all when empty); an unknown name is a usage error.
fn only(c: &mut Ctx, nodes: &[String]) -> Result<(), CmdError> {
    if let Some(n) = nodes.iter().find(|n| c.spec(n).is_none()) {
        return Err(CmdError::Usage(format!("no node `{n}` in {}", c.file.display())));
    }
    if !nodes.is_empty() {
        c.specs.retain(|s| nodes.contains(&s.node));
    }
    Ok(())
}

impl ApplyArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        let opts = commands::apply::ApplyOptions {
            yes: self.yes,
            ignore_clock: self.ignore_clock,
            adopt: self.adopt,
            revoked: None,
        };
        fleet(cli, err, |mut c, err| async move {
            only(&mut c, &self.nodes)?;
            let pki = Pki::new(pki_dir(cli, &c.cluster.name));
            let opts = commands::apply::ApplyOptions {
                revoked: pki.has_ledger().then(|| pki.revocation_list()).transpose()?,
                ..opts
            };
            commands::apply::apply(&c, opts, out, err).await
        })
    }
}

impl ListArgs {
    fn view(&self) -> commands::ipvs::View {
        use commands::ipvs::View;
        let v = &self.view;
        if v.stats {
            View::Stats
        } else if v.rate {
            View::Rate
        } else if v.timeout {
            View::Timeout
        } else if v.connections {
            View::Connections
        } else {
            View::Table
        }
    }

    /// Which services and directors, as `ipvsadm -L -t|-u|-f` and `--node` say.
    fn filter(&self) -> commands::ipvs::Filter {
        let service = match (self.tcp, self.udp, self.fwmark) {
            (Some(a), _, _) => Some(ServiceKey::Addr { protocol: Protocol::Tcp, address: a }),
            (_, Some(a), _) => Some(ServiceKey::Addr { protocol: Protocol::Udp, address: a }),
            (_, _, Some(mark)) => Some(ServiceKey::Fwmark { mark, ipv6: false }),
            _ => None,
        };
        commands::ipvs::Filter { service, directors: self.nodes.clone() }
    }
}

impl IpvsCommand {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        use commands::ipvs::{self, View};
        match self {
            IpvsCommand::List(a) => {
                let filter = a.filter();
                fleet(cli, err, |c, _err| async move { ipvs::list(&c, a.view(), false, &filter, out).await })
            }
            IpvsCommand::Save => fleet(cli, err, |c, _err| async move {
                ipvs::list(&c, View::Table, true, &ipvs::Filter::default(), out).await
            }),
            IpvsCommand::Clear { yes } => {
                fleet(cli, err, |c, err| async move { ipvs::clear(&c, *yes, out, err).await })
            }
            IpvsCommand::Restore { input } => {
                no_json(cli, "ipvs restore (it writes TOML for a definition)")?;
                let text = if input.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    std::fs::read_to_string(input)
                        .map_err(|e| CmdError::Usage(format!("cannot read {}: {e}", input.display())))?
                };
                // Name real servers after the definition's nodes when there is a definition.
                let c = if cli.file.exists() { Some(load::load_file(&cli.file)?.cluster) } else { None };
                let toml = ipvs::restore(c.as_ref(), &text).map_err(CmdError::Usage)?;
                write!(out, "{toml}")?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl RsCommand {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        use commands::rs::Change;
        let (name, change) = match self {
            RsCommand::Drain { rs, wait } => (rs, Change::Drain(*wait)),
            RsCommand::Enable { rs } => (rs, Change::Enable),
            RsCommand::Weight { rs, weight } => (rs, Change::Weight(*weight)),
        };
        fleet(cli, err, |c, _err| async move { commands::rs::run(&c, name, change, out).await })
    }
}

impl RolloutArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        let opts = commands::rollout::RolloutOptions {
            drain_timeout: self.drain_timeout,
            health_timeout: self.health_timeout,
            all: self.all,
        };
        fleet(cli, err, |c, _err| async move { commands::rollout::rollout(&c, opts, out).await })
    }
}

impl VerifyArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        fleet(cli, err, |c, _err| async move { commands::verify::verify(&c, self.requests, out).await })
    }
}

impl EventsArgs {
    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        fleet(cli, err, |c, err| async move {
            commands::events::events(&c, &self.nodes, self.count, out, err).await
        })
    }
}

/// The pairing code as given, or read from standard input for `-` (so it stays out of the
/// process list and the shell's history).
fn pairing_code(code: &str) -> Result<String, CmdError> {
    if code != "-" {
        return Ok(code.to_string());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CmdError::Usage(format!("--code -: {e}")))?;
    Ok(line.trim().to_string())
}

/// Before `pki init` writes a CA key: never into a git work tree unless told, and never
/// over an existing CA without saying what that cuts off and hearing yes.
fn init_checks(
    dir: &std::path::Path,
    pki: &Pki,
    force: bool,
    yes: bool,
    allow_git: bool,
) -> Result<(), CommandError> {
    if let Some(tree) = lvs_controller::paths::git_work_tree(dir).filter(|_| !allow_git) {
        return Err(CmdError::Usage(format!(
            "refusing to write the cluster CA key into {}, inside the git work tree {}: a key committed once \
             is compromised for good; use the default (--pki unset: ~/.config/lvsctl/CLUSTER/pki) or another \
             --pki, or pass --allow-git-tree",
            dir.display(),
            tree.display()
        ))
        .into());
    }
    if force && pki.ca().cert.exists() && !yes {
        let issued = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
                    .count()
                    / 2
            })
            .unwrap_or(0);
        let q = format!(
            "replace the CA in {}? every agent trusts the old one: its {issued} node certificate(s) must be \
             issued again and copied to the nodes, or lvsctl can no longer reach them",
            dir.display()
        );
        match commands::confirm(&q) {
            commands::Confirmed::Yes => {}
            commands::Confirmed::Declined => {
                return Err(
                    CmdError::NotConfirmed("pki init --force: declined, nothing was changed".into()).into()
                );
            }
            commands::Confirmed::NoTerminal => {
                return Err(
                    CmdError::NotConfirmed(format!("{q}; stdin is not a terminal: pass --yes")).into()
                );
            }
        }
    }
    Ok(())
}

/// `lvsctl pki list`.
fn list(pki: &Pki, as_json: bool, out: &mut dyn Write) -> Result<ExitCode, CommandError> {
    let issued = pki.issued()?;
    if as_json {
        serde_json::to_writer_pretty(&mut *out, &issued)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut rows = Vec::new();
    for i in &issued {
        let left = (i.not_after_unix as i64 - now as i64).div_euclid(86_400);
        let state = if i.revoked {
            "revoked".to_string()
        } else if left < 0 {
            "expired".to_string()
        } else {
            format!("valid, {left} days left")
        };
        let expires = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(i.not_after_unix),
        );
        rows.push(vec![i.serial.clone(), i.subject.clone(), expires.to_string(), state]);
    }
    write!(out, "{}", lvs_controller::table::render(&["SERIAL", "SUBJECT", "EXPIRES", "STATE"], &rows, &[]))?;
    Ok(ExitCode::SUCCESS)
}

impl PkiCommand {
    fn exec(&self, cli: &Cli, out: &mut dyn Write) -> Result<ExitCode, CommandError> {
        let loaded = load::load_file(&cli.file)?;
        let dir = pki_dir(cli, &loaded.cluster.name);
        let pki = Pki::new(&dir);
        let mut written = Vec::new();
        match self {
            PkiCommand::Init { force, yes, allow_git_tree } => {
                init_checks(&dir, &pki, *force, *yes, *allow_git_tree)?;
                written.extend(pki.init(&loaded.cluster.name, *force)?);
            }
            PkiCommand::IssueAdmin { name, role, out: dest, force, allow_git_tree } => {
                let caller = lvs_proto::identity::Caller {
                    name: name.clone(),
                    role: role.parse().map_err(CmdError::Usage)?,
                };
                let dest = dest.clone().unwrap_or_else(|| dir.join("callers").join(name));
                if let Some(tree) = lvs_controller::paths::git_work_tree(&dest).filter(|_| !*allow_git_tree) {
                    return Err(CmdError::Usage(format!(
                        "refusing to write {caller}'s key into {}, inside the git work tree {}: a key committed \
                         once is compromised for good; choose another --out, or pass --allow-git-tree",
                        dest.display(),
                        tree.display()
                    ))
                    .into());
                }
                let pair = pki.issue_caller(&caller, &dest, *force)?;
                written.extend([dest.join("ca.pem"), pair.cert, pair.key]);
            }
            PkiCommand::List => return list(&pki, cli.output == Output::Json, out),
            PkiCommand::Rotate { .. } | PkiCommand::Revoke { .. } => {
                unreachable!("fleet commands, dispatched in execute")
            }
            PkiCommand::Issue { nodes, force } => {
                let all: Vec<String> = loaded.cluster.nodes.iter().map(|n| n.name.clone()).collect();
                let nodes = if nodes.is_empty() { all.clone() } else { nodes.clone() };
                if let Some(n) = nodes.iter().find(|n| !all.contains(n)) {
                    return Err(CmdError::Usage(format!("no node `{n}` in {}", cli.file.display())).into());
                }
                for n in &nodes {
                    let pair = pki.issue_agent(n, *force)?;
                    written.extend([pair.cert, pair.key]);
                }
            }
        }
        if cli.output == Output::Json {
            let files: Vec<String> = written.iter().map(|f| f.display().to_string()).collect();
            serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "written": files }))?;
            writeln!(out)?;
        } else {
            for f in &written {
                writeln!(out, "wrote {}", f.display())?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ImportKeepalivedArgs {
    /// The import's options from `--director` and `--router`: a director named again with
    /// an address of the other family is that director's other address on a dual-stack
    /// LAN, not another file's director.
    fn options(&self) -> Result<lvs_controller::import::Options, CommandError> {
        use lvs_controller::import;
        let mut directors = Vec::new();
        for d in &self.directors {
            let parsed =
                d.split_once('=').and_then(|(n, a)| Some((n.to_string(), a.parse::<ipnet::IpNet>().ok()?)));
            let Some(pair) = parsed else {
                return Err(CmdError::Usage(format!(
                    "--director {d}: expected NAME=ADDRESS/PREFIX, e.g. lvs1=198.18.0.2/24"
                ))
                .into());
            };
            directors.push(pair);
        }
        let first_family = directors.first().map(|(_, a): &(String, ipnet::IpNet)| a.addr().is_ipv6());
        let (main, other): (Vec<_>, Vec<_>) =
            directors.into_iter().partition(|(_, a)| Some(a.addr().is_ipv6()) == first_family);
        let directors = main;
        let router = self.router[0];
        let other_router = self.router.iter().copied().find(|r| r.is_ipv6() != router.is_ipv6());
        if self.router.len() > 2 || (self.router.len() == 2 && other_router.is_none()) {
            return Err(CmdError::Usage(
                "--router: one address, or one per family on a dual-stack LAN".to_string(),
            )
            .into());
        }
        if let Some((n, _)) = other.iter().find(|(n, _)| !directors.iter().any(|(d, _)| d == n)) {
            return Err(CmdError::Usage(format!(
                "--director {n}=…: an address of the other family for a director that has no --director of the first"
            ))
            .into());
        }
        let other_family = (other_router.is_some() || !other.is_empty())
            .then_some(import::OtherFamily { router: other_router, directors: other });
        Ok(import::Options {
            name: self.name.clone(),
            router,
            other_family,
            directors,
            interface: self.interface.clone(),
            rs_interface: self.rs_interface.clone(),
            agent_port: lvs_proto::AGENT_PORT,
            firewall: self
                .firewall
                .as_ref()
                .map(|f| {
                    let text = std::fs::read_to_string(f)
                        .map_err(|e| CmdError::Usage(format!("--firewall {}: {e}", f.display())))?;
                    Ok::<_, CommandError>(import::Input { name: f.display().to_string(), text })
                })
                .transpose()?,
        })
    }

    fn exec(&self, cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitCode, CommandError> {
        use lvs_controller::import;
        no_json(cli, "import (it writes a TOML definition)")?;
        let inputs = self
            .files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| CmdError::Usage(format!("{}: {e}", f.display())))?;
                Ok(import::Input { name: f.display().to_string(), text })
            })
            .collect::<Result<Vec<_>, CommandError>>()?;
        let opts = self.options()?;
        let imported = import::keepalived(&inputs, &opts).map_err(|e| CmdError::Usage(e.to_string()))?;
        let name = self.out.as_ref().map_or("(import)".to_string(), |p| p.display().to_string());
        let checked = load::load_str(&name, &imported.toml);
        match &self.out {
            Some(p) => match lvs_proto::files::create_exclusive(p, imported.toml.as_bytes(), 0o644) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(CmdError::Usage(format!("{} exists: not replaced", p.display())).into());
                }
                Err(e) => return Err(CmdError::Usage(format!("{}: {e}", p.display())).into()),
            },
            None => out.write_all(imported.toml.as_bytes())?,
        }
        writeln!(
            err,
            "imported {} service(s) from {} file(s); {} keepalived option(s) not carried over are comments in the output",
            imported.services,
            inputs.len(),
            imported.unmapped
        )?;
        match checked {
            Ok(l) if l.report.diagnostics.is_empty() => {
                writeln!(err, "the definition is valid")?;
                Ok(ExitCode::SUCCESS)
            }
            Ok(l) => {
                writeln!(err, "{}", l.report)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(LoadError::Invalid(report)) => {
                writeln!(err, "{report}\nthe definition needs the changes above before it validates")?;
                Ok(Exit::Invalid.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}
