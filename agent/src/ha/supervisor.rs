//! An engine the agent runs as a supervised child (keepalived for VRRP, BIRD for BGP):
//! started in the foreground with the agent's configuration, restarted with back-off when
//! it dies, stopped with SIGTERM (keepalived's priority-0 advert, BIRD's session
//! shutdowns) and waited for; its output copied into the agent's log.
use crate::ha::vrrp::Tracker;
use crate::telemetry::events::Events;
use lvs_proto::reply::EventKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tracing::{info, warn};

/// Resolves once the engine is told to stop (the guard `wait_for` returns is dropped
/// here, so the future stays `Send`).
pub(crate) async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(drop);
}

pub(crate) fn nonzero(pid: u32) -> Option<u32> {
    (pid != 0).then_some(pid)
}

pub(crate) fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid this engine started and a valid signal number.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Where a supervised engine's life is reported: `status` shows the error until it runs.
pub(crate) trait EngineHealth: Send + Sync + 'static {
    /// It was started.
    fn running(&self);
    /// It could not start, or it died (it is restarted).
    fn failed(&self, why: String);
}

impl EngineHealth for Tracker {
    fn running(&self) {
        self.clear_error();
    }
    fn failed(&self, why: String) {
        Tracker::failed(self, why);
    }
}

/// Runs an engine, restarts it when it dies (1 s, doubling to 30 s), until stopped.
pub(crate) struct Supervisor {
    /// `keepalived`, `bird`: names it in the log and in events.
    pub(crate) engine: &'static str,
    pub(crate) program: PathBuf,
    /// Its arguments: in the foreground, logging to stderr, with the agent's files.
    pub(crate) args: Vec<std::ffi::OsString>,
    pub(crate) pid: Arc<AtomicU32>,
    pub(crate) health: Arc<dyn EngineHealth>,
    pub(crate) events: Events,
    /// The event kind its deaths are reported as.
    pub(crate) kind: EventKind,
    /// SIGTERM it when the agent dies. Not keepalived: a master whose agent restarts keeps
    /// its VIPs (its engine runs on); BIRD: nothing would check what it announces.
    pub(crate) dies_with_agent: bool,
}

impl Supervisor {
    /// Run the engine until stopped, the first start after `delay` (the spec's start-up
    /// delay on a first start; none when it rejoins after a hand-over or a crash).
    pub(crate) async fn run(self, mut stopped: watch::Receiver<bool>, delay: Duration) {
        if !delay.is_zero() {
            info!(
                engine = self.engine,
                delay_ms = delay.as_millis() as u64,
                "engine waits before its first start"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = until_stopped(&mut stopped) => return,
            }
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stopped.borrow_and_update() {
                return;
            }
            let started = tokio::time::Instant::now();
            match self.spawn() {
                Ok(mut child) => {
                    self.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
                    self.health.running();
                    let status = tokio::select! {
                        s = child.wait() => s,
                        () = until_stopped(&mut stopped) => {
                            // The engine is being stopped: it got SIGTERM; reap it.
                            let _ = tokio::time::timeout(Duration::from_secs(8), child.wait()).await;
                            let _ = child.kill().await;
                            self.pid.store(0, Ordering::SeqCst);
                            return;
                        }
                    };
                    self.pid.store(0, Ordering::SeqCst);
                    let why = format!(
                        "{} exited ({})",
                        self.engine,
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    );
                    warn!(engine = self.engine, %why, "engine died; restarting it");
                    self.health.failed(why.clone());
                    self.events.emit(self.kind, format!("{why}; restarting it"));
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    let why = format!("starting {}: {e}", self.program.display());
                    warn!(engine = self.engine, %why, "cannot start the engine");
                    self.health.failed(why);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                () = until_stopped(&mut stopped) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if self.dies_with_agent {
            // SAFETY: prctl(2) in the child between fork and exec is async-signal-safe.
            // (The signal follows the forking thread: a tokio worker, which lives as long
            // as the runtime; systemd also ends the unit's whole cgroup.)
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn()?;
        // The engine's own log lines, into ours (journal: `journalctl -u lvs-agent ENGINE=keepalived`).
        let engine = self.engine;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_log(engine, BufReader::new(out).lines()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_log(engine, BufReader::new(err).lines()));
        }
        Ok(child)
    }
}

pub(crate) async fn forward_log<R: tokio::io::AsyncBufRead + Unpin>(
    engine: &'static str,
    mut lines: tokio::io::Lines<R>,
) {
    while let Ok(Some(l)) = lines.next_line().await {
        info!(engine, "{l}");
    }
}
