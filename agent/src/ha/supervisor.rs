//! keepalived as a supervised child: started in the foreground with the agent's config, restarted with back-off when it dies, stopped with SIGTERM (its priority-0 advert) and waited for; its output copied into the agent's log.
use crate::ha::vrrp::{Tracker, VrrpError};
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

/// Runs keepalived, restarts it when it dies (1 s, doubling to 30 s), until stopped.
pub(crate) struct Supervisor {
    pub(crate) program: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) pid: Arc<AtomicU32>,
    pub(crate) tracker: Tracker,
    pub(crate) events: Events,
}

impl Supervisor {
    /// Run the engine until stopped, the first start after `delay` (the spec's start-up
    /// delay on a first start; none when it rejoins after a hand-over or a crash).
    pub(crate) async fn run(self, mut stopped: watch::Receiver<bool>, delay: Duration) {
        if !delay.is_zero() {
            info!(delay_ms = delay.as_millis() as u64, "VRRP engine waits before its first election");
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
                    self.tracker.clear_error();
                    let status = tokio::select! {
                        s = child.wait() => s,
                        () = until_stopped(&mut stopped) => {
                            // The engine is being stopped: keepalived got SIGTERM; reap it.
                            let _ = tokio::time::timeout(Duration::from_secs(8), child.wait()).await;
                            let _ = child.kill().await;
                            self.pid.store(0, Ordering::SeqCst);
                            return;
                        }
                    };
                    self.pid.store(0, Ordering::SeqCst);
                    let why = format!(
                        "keepalived exited ({})",
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    );
                    warn!(%why, "VRRP engine died; restarting it");
                    self.tracker.failed(why.clone());
                    self.events.emit(EventKind::Vrrp, format!("{why}; restarting it"));
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot start keepalived");
                    self.tracker.failed(e.to_string());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                () = until_stopped(&mut stopped) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn spawn(&self) -> Result<tokio::process::Child, VrrpError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg("--vrrp")
            .arg("--dont-fork")
            // A stopping master keeps its VIPs until the engine restarts as a backup (which
            // drops them): during a hand-over it goes on forwarding what still reaches it
            // until the router has the new master's gratuitous ARP. A final stop releases
            // them itself.
            .arg("--dont-release-vrrp")
            .arg("--log-console")
            .arg("--no-syslog")
            .arg("--use-file")
            .arg(&self.config)
            .arg("--pid")
            .arg(self.dir.join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(self.dir.join("vrrp.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|source| VrrpError::Spawn { program: self.program.display().to_string(), source })?;
        // keepalived's own log lines, into ours (journal: `journalctl -u lvs-agent ENGINE=keepalived`).
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_log(BufReader::new(out).lines()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_log(BufReader::new(err).lines()));
        }
        Ok(child)
    }
}

pub(crate) async fn forward_log<R: tokio::io::AsyncBufRead + Unpin>(mut lines: tokio::io::Lines<R>) {
    while let Ok(Some(l)) = lines.next_line().await {
        info!(engine = "keepalived", "{l}");
    }
}
