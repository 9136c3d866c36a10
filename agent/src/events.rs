//! The agent's event feed: applies, weight changes, health transitions, drift. Kept in a
//! bounded broadcast channel; a slow subscriber loses old events, never blocks the agent.
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `apply`, `weight`, `health`, `drift`, `start`.
    pub kind: &'static str,
    /// What, in words.
    pub message: String,
}

/// The feed.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(256).0 }
    }
}

impl Events {
    /// Publish an event (and log it).
    pub fn emit(&self, kind: &'static str, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(event = kind, "{message}");
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // No subscriber is not an error.
        let _ = self.tx.send(Event { unix_ms, kind, message });
    }

    /// A new subscription, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
