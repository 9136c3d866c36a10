//! The daemon: read the config, re-apply the persisted spec, serve gRPC over mutual TLS,
//! tell systemd we are ready and keep its watchdog fed, stop cleanly on SIGTERM.
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tracing::{info, warn};

use crate::kernel::netlink::NetSystem;
use crate::node::Agent;
use crate::reconcile::state::Store;
use lvs_proto::agent_config::Config;

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
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands beside the daemon.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show this node's pairing code for `lvsctl node enroll` (the running agent logs it
    /// too). The node's key is made here if there is none yet; it never leaves the node.
    PairingCode {
        /// Make a new code (the old one stops working at once, even in a running agent).
        #[arg(long)]
        new: bool,
        /// How long a new code is valid.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
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
    Config(#[from] lvs_proto::agent_config::ConfigError),
    /// The certificates.
    #[error("loading certificates: {0}")]
    Tls(#[from] crate::server::tls::TlsError),
    /// Pairing this node with its cluster (the enrolment door) failed.
    #[error("enrolment: {0}")]
    Enrol(#[from] crate::server::enrol::EnrolTransportError),
    /// A pairing code's life out of range.
    #[error("--ttl {0}: a pairing code lives between 1 s and 7 days")]
    Ttl(String),
    /// Asked for a pairing code once enrolled.
    #[error("{0} is enrolled already (certificate {1}); nothing to pair")]
    Enrolled(String, String),
    /// Enrolled once, a credential file gone: it neither enrols again nor serves.
    #[error("{0}: {1}")]
    Broken(String, String),
    /// The revocation list cannot be read.
    #[error("refusing to start: {0}")]
    Revoked(#[from] crate::server::revoked::RevokedError),
    /// The state file (`--check`).
    #[error("checking the state file: {0}")]
    State(#[from] crate::reconcile::state::StoreError),
    /// The rtnetlink socket.
    #[error("opening rtnetlink: {0}")]
    Netlink(#[source] std::io::Error),
    /// The agent address.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// `AddrInUse` when another process holds the port.
        source: std::io::Error,
    },
    /// The gRPC server.
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The longest a pairing code may live: short lives bound who can use one they saw.
const MAX_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// `lvs-agent pairing-code`: print the code in force (or a new one).
pub fn pairing_code(config: &Config, new: bool, ttl: std::time::Duration) -> Result<(), RunError> {
    match crate::server::enrol::standing(&config.tls, &config.state_dir) {
        crate::server::enrol::Standing::Enrolled => {
            return Err(RunError::Enrolled(config.node.clone(), config.tls.cert.display().to_string()));
        }
        crate::server::enrol::Standing::Broken(why) => {
            return Err(RunError::Broken(config.node.clone(), why));
        }
        crate::server::enrol::Standing::New => {}
    }
    if ttl > MAX_CODE_TTL || ttl.is_zero() {
        return Err(RunError::Ttl(humantime::format_duration(ttl).to_string()));
    }
    let shown = crate::server::enrol::code_for(&config.tls.key, &config.state_dir, new, ttl)?;
    let left = shown.expires_unix.saturating_sub(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    );
    println!("{}", shown.code);
    eprintln!(
        "valid {} more; on the admin box: lvsctl node enroll {} --code {}",
        humantime::format_duration(std::time::Duration::from_secs(left)),
        config.node,
        shown.code
    );
    Ok(())
}

/// Run the agent until SIGTERM or SIGINT (or a subcommand, or `--check`).
pub async fn run(args: Args) -> Result<(), RunError> {
    let config = Config::load(&args.config)?;
    if let Some(Command::PairingCode { new, ttl }) = args.command {
        return pairing_code(&config, new, ttl);
    }
    if args.check {
        let tls = crate::server::tls::server_config(&config.node, &config.tls)?;
        let state = Store::new(&config.state_dir).inspect()?;
        let cert = tls.credentials.info();
        println!(
            "{}: node {}, listen {}, certificate serial {} valid until {} (key matches, names this node, CA signed it); state: {state}",
            args.config.display(),
            config.node,
            config.listen,
            cert.serial,
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(cert.not_after_unix)
            ),
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen { addr: config.listen, source })?;
    let sys = || NetSystem::new().map(Arc::new).map_err(RunError::Netlink);
    serve(&config, listener, sys, shutdown()).await
}

/// Whether the node has its credentials, enrolling first if it never had them (false:
/// stopped before enrolment). An enrolled node missing a file is an error: nothing served,
/// nothing changed (the kernel keeps what the last spec made, and systemd's restarts keep
/// saying why in the journal).
async fn credentials_ready(
    config: &Config,
    listener: &tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, RunError> {
    match crate::server::enrol::standing(&config.tls, &config.state_dir) {
        // A damaged revocation list must not read as "nothing revoked".
        crate::server::enrol::Standing::Enrolled => {
            crate::server::revoked::Revoked::open(&config.state_dir).map(|_| true).map_err(Into::into)
        }
        crate::server::enrol::Standing::New => enrol(config, listener, shutdown).await,
        crate::server::enrol::Standing::Broken(why) => Err(RunError::Broken(config.node.clone(), why)),
    }
}

/// The daemon on a bound `listener`: enrol first if this node has no certificate yet,
/// then serve mutual TLS over the system `sys` makes, until `shutdown`. `run` calls it
/// with the kernel; the tests with a fake, so both go through the same steps.
pub async fn serve<S: crate::kernel::system::System + 'static>(
    config: &Config,
    listener: tokio::net::TcpListener,
    sys: impl FnOnce() -> Result<Arc<S>, RunError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    use futures::FutureExt;
    let shutdown = shutdown.boxed().shared();
    if !credentials_ready(config, &listener, shutdown.clone()).await? {
        info!("stopped before enrolment");
        return Ok(());
    }
    let tls = crate::server::tls::server_config(&config.node, &config.tls)?;
    // Bound before anything is applied: a taken metrics port stops the agent with nothing
    // changed, rather than after it re-applied its spec (and again at every restart).
    let metrics_listener = match &config.metrics {
        Some(m) => Some(
            tokio::net::TcpListener::bind(m.listen)
                .await
                .map_err(|source| RunError::Listen { addr: m.listen, source })?,
        ),
        None => None,
    };
    let agent = agent_of(config, sys()?);
    agent_started(&agent).await;
    agent.spawn_healer(config.heal_interval);
    if config.listen.ip().is_unspecified() {
        warn!(
            listen = %config.listen,
            "listening on every address, the VIPs included: set listen to this node's agent address"
        );
    }
    if let (Some(m), Some(l)) = (&config.metrics, metrics_listener) {
        let (agent, m, tls, stop) = (Arc::clone(&agent), m.clone(), tls.clone(), shutdown.clone());
        let tasks = agent.tasks().clone();
        tasks.spawn("metrics server", async move {
            crate::telemetry::scrape::serve(agent, l, &m, &tls, stop).await;
        });
    }
    info!(node = %config.node, listen = %config.listen, "serving (mutual TLS)");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    spawn_watchdog(Arc::clone(&agent));
    let served = crate::server::listener::serve(
        Arc::clone(&agent),
        listener,
        tls,
        crate::server::listener::Limits::default(),
        shutdown,
    )
    .await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    agent.stop(STOP_GRACE).await;
    served?;
    info!("stopped");
    Ok(())
}

/// The node's agent over `sys`, with its script policy, keepalived as its VRRP engine and
/// BIRD as its BGP engine.
fn agent_of<S: crate::kernel::system::System + 'static>(config: &Config, sys: Arc<S>) -> Arc<Agent<S>> {
    let engine_dir = config.state_dir.join("keepalived");
    let hands = Arc::new(KernelHands(Arc::clone(&sys)));
    let scripts =
        Arc::new(crate::health::scripts::Scripts::new(&config.scripts.dir, config.scripts.user.as_deref()));
    if let Err(e) = scripts.user() {
        warn!(error = %e, "exec checks and notify hooks cannot run on this node");
    }
    Agent::with_parts(&config.node, sys, Store::new(&config.state_dir), scripts, |events| {
        crate::node::Engines {
            vrrp: Arc::new(crate::ha::keepalived::Keepalived::new(
                &engine_dir,
                &crate::ha::keepalived::Keepalived::default_program(),
                events.clone(),
                hands,
                Arc::new(crate::ha::straddle::NftProgram::default_program()),
            )),
            bgp: Arc::new(crate::bgp::bird::Bird::new(
                &config.state_dir.join("bird"),
                &crate::bgp::bird::Bird::default_program(),
                events.clone(),
            )),
            arp: Arc::new(crate::arp::ask::PacketArp),
        }
    })
}

/// The VRRP engine's hands on the VIPs: the node's kernel interface.
struct KernelHands<S>(Arc<S>);

#[tonic::async_trait]
impl<S: crate::kernel::system::System + 'static> crate::ha::VipHands for KernelHands<S> {
    async fn release(&self, vips: &[lvs_proto::spec::AddressSpec]) {
        for v in vips {
            if let Err(e) = self.0.del_address(&crate::kernel::translate::address(v)).await {
                warn!(address = %v.address, error = %e, "could not release a VIP");
            }
        }
    }

    async fn hide(&self, vips: &[lvs_proto::spec::AddressSpec], hidden: bool) {
        for v in vips {
            let host = ipnet::IpNet::from(v.address.addr());
            let a = crate::kernel::system::Address { interface: "lo".into(), address: host, label: None };
            let done = if hidden { self.0.add_address(&a).await } else { self.0.del_address(&a).await };
            match done {
                Ok(()) => {}
                // Still hidden from an earlier hand-over: the goal is met.
                Err(e) if hidden && e.errno() == Some(libc::EEXIST) => {}
                Err(e) => warn!(address = %host, hidden, error = %e, "could not move a VIP on lo"),
            }
        }
    }
}

/// Start the agent (re-apply its stored spec) and log how that went. A failed re-apply is
/// logged and the agent serves all the same: the controller must be able to see and fix
/// what went wrong.
async fn agent_started<S: crate::kernel::system::System + 'static>(agent: &Arc<Agent<S>>) {
    match agent.start().await {
        Ok(Some(r)) => info!(
            generation = r.generation,
            actions = r.actions.len(),
            converged = r.converged,
            "stored spec re-applied"
        ),
        Ok(None) => info!("no stored spec yet; waiting for lvsctl apply"),
        Err(e) => warn!(error = %e, "re-applying the stored spec failed"),
    }
}

/// Serve enrolment until this node has its certificate (true) or a signal stops the
/// agent (false). Enrolment serves on a duplicate of the socket, so the port is never let
/// go between enrolment and mutual TLS.
async fn enrol(
    config: &Config,
    listener: &tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, RunError> {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    // Nothing can wedge while enrolling (no reconciler yet): feed the watchdog plainly.
    let feeder = sd_notify::watchdog_enabled().map(|t| {
        tokio::spawn(async move {
            loop {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                tokio::time::sleep(t / 2).await;
            }
        })
    });
    let enrol_on =
        socket2_dup(listener).map_err(|source| RunError::Listen { addr: config.listen, source })?;
    let enrolled = crate::server::enrol::serve_until_enrolled(
        &config.node,
        &config.tls,
        &config.state_dir,
        enrol_on,
        shutdown,
    )
    .await;
    if let Some(f) = feeder {
        f.abort();
    }
    Ok(enrolled?)
}

/// A second listener on the same socket (`dup(2)`): closing one leaves the other open.
fn socket2_dup(l: &tokio::net::TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    use std::os::fd::AsFd;
    let fd = l.as_fd().try_clone_to_owned()?;
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std)
}

/// Feed systemd's watchdog only while the reconciler answers: every kernel call has a
/// deadline, so a reconcile lock held for half the watchdog period means the agent is
/// wedged, and systemd should restart it (it re-applies its stored spec at start).
fn spawn_watchdog<S: crate::kernel::system::System + 'static>(agent: Arc<Agent<S>>) {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let period = timeout / 2;
    let tasks = agent.tasks().clone();
    tasks.spawn("watchdog", async move {
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

/// How long a stopping agent waits for its tasks and an apply in progress.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
}
