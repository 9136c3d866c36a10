//! The notify hook of a service: a script of the node's script directory
//! ([`crate::health::scripts`]) the definition names, run as the script user (never through
//! a shell) on every health transition with what happened in its environment.
//!
//! One task runs the hooks one after another from a bounded queue: a slow or hanging hook
//! (killed after [`HOOK_TIMEOUT`]) delays the next one but never the checker, and a burst
//! of transitions (a switch taking 200 servers down) cannot start 200 processes at once.
//! Hooks that do not fit in the queue are dropped, logged and counted as events.
use std::time::Duration;

use tokio::sync::mpsc;

/// How long one hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Hooks waiting to run.
const QUEUE: usize = 256;

/// One run of a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The executable and its arguments, as the definition wrote them.
    pub command: Vec<String>,
    /// `LVS_*` variables describing the transition.
    pub env: Vec<(&'static str, String)>,
}

/// The hook runner of one agent.
pub struct Notifier {
    tx: mpsc::Sender<Note>,
}

impl Notifier {
    /// Start the runner.
    pub fn spawn(scripts: std::sync::Arc<crate::health::scripts::Scripts>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Note>(QUEUE);
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                if let Err(e) =
                    crate::health::probe_exec::run(&scripts, &n.command, &n.env, HOOK_TIMEOUT).await
                {
                    tracing::warn!(command = %n.command.join(" "), error = %e, "notify hook failed");
                }
            }
        });
        Notifier { tx }
    }

    /// Queue a hook run; `false` when the queue is full and it was dropped.
    pub fn send(&self, note: Note) -> bool {
        match self.tx.try_send(note) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "notify hook dropped: {QUEUE} already waiting");
                false
            }
        }
    }
}
