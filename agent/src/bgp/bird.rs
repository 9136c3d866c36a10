//! BIRD as the BGP engine ([`BgpEngine`]): `bird -f`, configured from the spec and the
//! prefixes announced now ([`render`]), checked with `bird -p` before it replaces a running
//! configuration, reloaded over its control socket (`configure`: only what changed is
//! touched, so a withdrawal keeps every session up), run as the agent's child and restarted
//! when it dies. Files live in `<state_dir>/bird/`.
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use lvs_proto::reply::{BgpSession, EventKind};
use lvs_proto::spec::BgpSpec;
use tokio::sync::watch;

use super::bird_conf::{peer_of, render};
use super::control::{self, ControlError};
use super::{BgpEngine, BgpError};
use crate::ha::supervisor::{EngineHealth, Supervisor, nonzero, signal};
use crate::telemetry::events::Events;

/// A control socket path must fit `sockaddr_un` (108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The engine: BIRD, supervised.
pub struct Bird {
    dir: PathBuf,
    program: PathBuf,
    events: Events,
    pid: Arc<AtomicU32>,
    error: Arc<LastError>,
    run: tokio::sync::Mutex<Option<Running>>,
}

struct Running {
    spec: BgpSpec,
    config: String,
    stop: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

/// The engine's last failure, shown by `status` until it runs again.
#[derive(Default)]
struct LastError(Mutex<Option<String>>);

impl EngineHealth for LastError {
    fn running(&self) {
        *self.0.lock().expect("bgp error") = None;
    }
    fn failed(&self, why: String) {
        *self.0.lock().expect("bgp error") = Some(why);
    }
}

impl Bird {
    /// An engine keeping its files in `dir`, running `program` (bird), publishing its
    /// deaths on `events`.
    pub fn new(dir: &Path, program: &Path, events: Events) -> Self {
        Self {
            dir: dir.to_path_buf(),
            program: program.to_path_buf(),
            events,
            pid: Arc::default(),
            error: Arc::default(),
            run: tokio::sync::Mutex::new(None),
        }
    }

    /// The bird the agent runs: `LVS_BIRD`, else `/usr/sbin/bird`.
    pub fn default_program() -> PathBuf {
        std::env::var_os("LVS_BIRD").map_or_else(|| PathBuf::from("/usr/sbin/bird"), PathBuf::from)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> BgpError {
        let path = path.to_path_buf();
        move |source| BgpError::Io { path, source }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    /// Check a configuration with BIRD itself (`bird -p`) before it is used.
    async fn config_test(&self, path: &Path) -> Result<(), BgpError> {
        let o = tokio::process::Command::new(&self.program)
            .arg("-p")
            .arg("-c")
            .arg(path)
            .output()
            .await
            .map_err(|source| BgpError::Spawn { program: self.program.display().to_string(), source })?;
        if o.status.success() {
            Ok(())
        } else {
            Err(BgpError::Config(String::from_utf8_lossy(&o.stderr).trim().to_string()))
        }
    }

    async fn stop_running(&self, r: Running) {
        let _ = r.stop.send(true);
        if let Some(pid) = nonzero(self.pid.load(std::sync::atomic::Ordering::SeqCst)) {
            signal(pid, libc::SIGTERM);
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), r.supervisor).await;
        self.error.running();
    }

    /// A BIRD an earlier agent left running (its pid file survives a crash of the agent):
    /// it holds the control socket and port 179, so it goes before ours starts.
    fn end_stale(&self) {
        let pidfile = self.dir.join("bird.pid");
        let Ok(text) = std::fs::read_to_string(&pidfile) else { return };
        let Ok(pid) = text.trim().parse::<u32>() else { return };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "bird" {
            tracing::warn!(pid, "ending a BIRD an earlier agent left running");
            signal(pid, libc::SIGTERM);
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let _ = std::fs::remove_file(&pidfile);
    }

    fn start_running(&self, spec: &BgpSpec, config: String) -> Running {
        self.end_stale();
        let (stop, stopped) = watch::channel(false);
        let sup = Supervisor {
            engine: "bird",
            program: self.program.clone(),
            args: vec![
                "-f".into(),
                "-c".into(),
                self.config_path().into_os_string(),
                "-s".into(),
                self.socket().into_os_string(),
                "-P".into(),
                self.dir.join("bird.pid").into_os_string(),
            ],
            pid: Arc::clone(&self.pid),
            health: Arc::clone(&self.error) as Arc<dyn EngineHealth>,
            events: self.events.clone(),
            kind: EventKind::Bgp,
            dies_with_agent: true,
        };
        let supervisor = tokio::spawn(sup.run(stopped, std::time::Duration::ZERO));
        Running { spec: spec.clone(), config, stop, supervisor }
    }
}

#[tonic::async_trait]
impl BgpEngine for Bird {
    async fn ensure(&self, spec: Option<&BgpSpec>, announced: &[IpNet]) -> Result<(), BgpError> {
        let mut run = self.run.lock().await;
        let Some(spec) = spec else {
            if let Some(r) = run.take() {
                self.stop_running(r).await;
                let _ = std::fs::remove_file(self.config_path());
            }
            return Ok(());
        };
        let config = render(spec, announced);
        if run.as_ref().is_some_and(|r| r.config == config && !r.supervisor.is_finished()) {
            return Ok(());
        }
        if self.socket().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(BgpError::Config(format!(
                "the control socket path {} is over {MAX_SOCKET_PATH} bytes: use a shorter state_dir",
                self.socket().display()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let next = self.dir.join("bird.conf.next");
        lvs_proto::files::atomic_write(&next, config.as_bytes(), 0o600).map_err(self.io(&next))?;
        self.config_test(&next).await?;
        let path = self.config_path();
        std::fs::rename(&next, &path).map_err(self.io(&path))?;
        match run.as_mut() {
            // Running: BIRD rereads the file and restarts only what changed.
            Some(r) if !r.supervisor.is_finished() => {
                r.spec = spec.clone();
                match control::command(&self.socket(), "configure").await {
                    Ok(_) => r.config = config,
                    // Not listening yet (just started, perhaps from the older file): the
                    // next call, a quarter second later, tries again.
                    Err(ControlError::Io { .. }) => {}
                    Err(e) => return Err(BgpError::Control(e)),
                }
            }
            _ => {
                if let Some(r) = run.take() {
                    self.stop_running(r).await;
                }
                *run = Some(self.start_running(spec, config));
            }
        }
        Ok(())
    }

    async fn sessions(&self) -> Result<Option<Vec<BgpSession>>, BgpError> {
        let spec = match self.run.lock().await.as_ref() {
            Some(r) => r.spec.clone(),
            None => return Ok(None),
        };
        let lines = control::command(&self.socket(), "show protocols all").await?;
        let mut out: Vec<BgpSession> = Vec::new();
        for p in control::protocols(&lines) {
            let Some(peer) = peer_of(&spec, &p.name) else { continue };
            let up = p.bgp_state == "Established";
            let state = if up || p.last_error.is_empty() {
                p.bgp_state.clone()
            } else {
                format!("{} ({})", p.bgp_state, p.last_error)
            };
            out.push(BgpSession {
                peer: peer.name.clone(),
                address: peer.address.to_string(),
                state,
                up,
                since_unix_ms: p.since_s.saturating_mul(1000),
                routes_received: p.imported,
                routes_sent: p.exported,
            });
        }
        Ok(Some(out))
    }

    fn error(&self) -> Option<String> {
        self.error.0.lock().expect("bgp error").clone()
    }
}
