//! Director HA: the agent drives a VRRP engine, it does not speak VRRP itself. The
//! engine sits behind [`VrrpEngine`] (one method per operation, as the kernel sits
//! behind [`crate::kernel::system::System`]); [`crate::ha::keepalived::Keepalived`] is the one in use:
//! keepalived in VRRP-only mode, configured from the [`VrrpSpec`], supervised, its state
//! changes read from its notify FIFO. What the engine does not do is the agent's: the
//! IPVS table and the connection-sync daemons are planned and applied like everything
//! else (see `diff::sync_daemons`).
use std::sync::{Arc, Mutex};

use lvs_proto::reply::{VrrpState, VrrpStatus};
use lvs_proto::spec::VrrpSpec;

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    /// Its configuration or runtime files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error, kept as the source of this one.
        source: std::io::Error,
    },
    /// The engine's program.
    #[error("starting {program}: {source} (install keepalived on directors that share VIPs)")]
    Spawn {
        /// Its path.
        program: String,
        /// Why it would not start (`NotFound`: keepalived is not installed).
        source: std::io::Error,
    },
    /// The engine refused its configuration.
    #[error("the VRRP engine refused its configuration: {0}")]
    Config(String),
    /// A planned failover on a director that is not master.
    #[error("this director is {0}, not master: nothing to hand over")]
    NotMaster(String),
    /// A planned failover that no other director took.
    #[error("no other director took over within {0} ms; this one is master again")]
    NotTaken(u128),
}

/// A VRRP engine, as the agent uses it.
#[tonic::async_trait]
pub trait VrrpEngine: Send + Sync + 'static {
    /// Run the engine for `spec` (reconfigure it when it runs with another), or stop it
    /// (and so release the VIPs) with `None`. Idempotent.
    async fn ensure(&self, spec: Option<&VrrpSpec>) -> Result<(), VrrpError>;
    /// The instance's state as last reported by the engine; `None` when not running.
    fn status(&self) -> Option<VrrpStatus>;
    /// Planned failover: give up mastership now (the others take over at once, without
    /// waiting for the master-down timer), then rejoin as a backup; what the new master
    /// does not know yet still reaches this director for a while ([`crate::ha::straddle`]).
    async fn hand_over(&self) -> Result<(), VrrpError>;
}

/// The engine of a node that is in no VRRP instance (routers, real servers, single
/// directors): nothing to run, nothing to report.
#[derive(Debug, Default)]
pub struct NoVrrp;

#[tonic::async_trait]
impl VrrpEngine for NoVrrp {
    async fn ensure(&self, _: Option<&VrrpSpec>) -> Result<(), VrrpError> {
        Ok(())
    }
    fn status(&self) -> Option<VrrpStatus> {
        None
    }
    async fn hand_over(&self) -> Result<(), VrrpError> {
        Err(VrrpError::NotMaster("in no VRRP instance".into()))
    }
}

/// One line of keepalived's notify FIFO, e.g. `INSTANCE "web" MASTER 150`: the instance
/// and its new state (other lines, e.g. `GROUP …`, are `None`).
pub fn parse_notify(line: &str) -> Option<(String, VrrpState, u8)> {
    let mut w = line.split_whitespace();
    if w.next()? != "INSTANCE" {
        return None;
    }
    let name = w.next()?.trim_matches('"').to_string();
    let state = match w.next()? {
        "MASTER" => VrrpState::Master,
        "BACKUP" => VrrpState::Backup,
        "FAULT" => VrrpState::Fault,
        "STOP" => VrrpState::Stopped,
        _ => return None,
    };
    let priority = w.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((name, state, priority))
}

/// The status an engine keeps and reports; transitions are counted and timed here.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    inner: Arc<Mutex<Option<VrrpStatus>>>,
}

fn now_ms() -> u64 {
    crate::telemetry::events::unix_ms()
}

impl Tracker {
    /// A fresh instance starting (state `Init`).
    pub fn start(&self, spec: &VrrpSpec) {
        let mut g = self.inner.lock().expect("vrrp status");
        let transitions = g.as_ref().map_or(0, |s| s.transitions);
        *g = Some(VrrpStatus {
            instance: spec.instance.clone(),
            state: VrrpState::Init,
            priority: spec.priority,
            since_unix_ms: now_ms(),
            transitions,
            error: None,
        });
    }

    /// A state reported by the engine; true when it changed.
    pub fn set(&self, state: VrrpState) -> bool {
        let mut g = self.inner.lock().expect("vrrp status");
        let Some(s) = g.as_mut() else { return false };
        if s.state == state {
            return false;
        }
        s.state = state;
        s.since_unix_ms = now_ms();
        s.transitions += 1;
        true
    }

    /// The engine failed (it is restarted; the reason stays visible until it runs).
    pub fn failed(&self, why: String) {
        if let Some(s) = self.inner.lock().expect("vrrp status").as_mut() {
            s.error = Some(why);
            s.state = VrrpState::Fault;
        }
    }

    /// The engine runs again.
    pub fn clear_error(&self) {
        if let Some(s) = self.inner.lock().expect("vrrp status").as_mut() {
            s.error = None;
        }
    }

    /// Stopped: nothing to report.
    pub fn stop(&self) {
        *self.inner.lock().expect("vrrp status") = None;
    }

    /// What `status` shows.
    pub fn get(&self) -> Option<VrrpStatus> {
        self.inner.lock().expect("vrrp status").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_lines_are_read_and_others_ignored() {
        assert_eq!(parse_notify("INSTANCE \"web\" MASTER 150"), Some(("web".into(), VrrpState::Master, 150)));
        assert_eq!(parse_notify("INSTANCE \"web\" BACKUP 100"), Some(("web".into(), VrrpState::Backup, 100)));
        assert_eq!(parse_notify("INSTANCE \"web\" FAULT 0").map(|x| x.1), Some(VrrpState::Fault));
        assert_eq!(parse_notify("GROUP \"g\" MASTER"), None);
        assert_eq!(parse_notify("INSTANCE \"web\" DANCING 1"), None);
        assert_eq!(parse_notify(""), None);
    }
}
