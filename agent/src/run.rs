//! The daemon: read the config, re-apply the persisted spec, serve gRPC over mutual TLS,
//! tell systemd we are ready and keep its watchdog fed, stop cleanly on SIGTERM.
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tracing::{info, warn};

use crate::config::Config;
use crate::netlink::NetSystem;
use crate::node::Agent;
use crate::state::Store;

/// lvs-agent: makes this node of an LVS-DR cluster match the spec lvsctl sends it.
#[derive(Debug, Parser)]
#[command(name = "lvs-agent", version, about)]
pub struct Args {
    /// Agent configuration file.
    #[arg(short, long, env = "LVS_AGENT_CONFIG", default_value = "/etc/lvs-agent/agent.toml")]
    pub config: PathBuf,
    /// Check the configuration and the certificates, then exit.
    #[arg(long)]
    pub check: bool,
    /// Print the man page (roff) and exit (the packages build `lvs-agent.8` with it).
    #[arg(long, hide = true)]
    pub man: bool,
}

/// The man page, `lvs-agent(8)`.
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::Man::new(Args::command()).section("8").render(out)
}

/// Logs go to journald when systemd started us with the journal, else to stderr.
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fields as themselves (`EVENT=apply`, `GENERATION=3`, `NODE=rs1`), not `F_EVENT`, so an
    // admin filters with `journalctl -u lvs-agent EVENT=drift`.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_field_prefix(None));
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(j) => registry.with(j).init(),
        None => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).init(),
    }
}

/// Why the daemon could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The certificates.
    #[error("loading certificates: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The state file (`--check`).
    #[error("checking the state file: {0}")]
    State(#[from] crate::state::StoreError),
    /// The rtnetlink socket.
    #[error("opening rtnetlink: {0}")]
    Netlink(#[source] std::io::Error),
    /// The agent address.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server.
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), RunError> {
    let config = Config::load(&args.config)?;
    let tls = crate::tls::server_config(&config.tls)?;
    if args.check {
        let state = Store::new(&config.state_dir).inspect()?;
        println!(
            "{}: node {}, listen {}, certificates readable; state: {state}",
            args.config.display(),
            config.node,
            config.listen
        );
        return Ok(());
    }
    let sys = Arc::new(NetSystem::new().map_err(RunError::Netlink)?);
    let agent = Agent::new(&config.node, sys, Store::new(&config.state_dir));
    match agent.start().await {
        Ok(Some(r)) => info!(
            generation = r.generation,
            actions = r.actions.len(),
            converged = r.converged(),
            "stored spec re-applied"
        ),
        Ok(None) => info!("no stored spec yet; waiting for lvsctl apply"),
        // Keep serving: the controller must be able to see and fix what went wrong.
        Err(e) => warn!(error = %e, "re-applying the stored spec failed"),
    }
    agent.spawn_healer(config.heal_interval);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen { addr: config.listen, source })?;
    if config.listen.ip().is_unspecified() {
        warn!(
            listen = %config.listen,
            "listening on every address, the VIPs included: set listen to this node's agent address"
        );
    }
    info!(node = %config.node, listen = %config.listen, "serving (mutual TLS)");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    spawn_watchdog(Arc::clone(&agent));
    crate::door::serve(agent, listener, tls, crate::door::Limits::default(), shutdown()).await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!("stopped");
    Ok(())
}

/// Feed systemd's watchdog only while the reconciler answers: every kernel call has a
/// deadline, so a reconcile lock held for half the watchdog period means the agent is
/// wedged, and systemd should restart it (it re-applies its stored spec at start).
fn spawn_watchdog<S: crate::system::System + 'static>(agent: Arc<Agent<S>>) {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let period = timeout / 2;
    tokio::spawn(async move {
        loop {
            let started = tokio::time::Instant::now();
            if agent.responsive(period).await {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                warn!(waited = ?period, "reconciler unresponsive; not feeding the watchdog");
            }
            tokio::time::sleep_until(started + period).await;
        }
    });
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
}
