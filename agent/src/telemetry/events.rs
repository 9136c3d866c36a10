//! The agent's event feed: applies, weight changes, health transitions, drift. Kept in a
//! bounded broadcast channel; a slow subscriber loses old events, never blocks the agent.
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_proto::reply::{Change, EVENT_MAX_CHANGES, Event, EventKind, Failure};
use tokio::sync::broadcast;

/// Now, in ms since the epoch (0 before it: a clock that far off says so in status).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

use crate::telemetry::metrics::Metrics;
use std::sync::Arc;

/// The feed. It also holds the agent's [`Metrics`]: every event is counted there, and the
/// parts that publish events are the parts that have something to measure.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(256).0, metrics: Arc::default() }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("subscribers", &self.tx.receiver_count()).finish_non_exhaustive()
    }
}

/// What an event says beyond its kind and sentence.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The spec generation it concerns (0: none).
    pub generation: u64,
    /// What differs or was done (the feed keeps the first [`EVENT_MAX_CHANGES`]).
    pub changes: Vec<Change>,
    /// The operation failed as a whole.
    pub failure: Option<Failure>,
}

impl Events {
    /// Publish an event with nothing but its sentence (and log it).
    pub fn emit(&self, kind: EventKind, message: impl Into<String>) {
        self.emit_with(kind, message, Detail::default());
    }

    /// Publish an event with its generation, changes and failure (and log it).
    pub fn emit_with(&self, kind: EventKind, message: impl Into<String>, mut detail: Detail) {
        let message = message.into();
        self.metrics.event(kind);
        let by = crate::server::caller::current();
        tracing::info!(
            event = kind.as_str(),
            generation = detail.generation,
            by = by.as_ref().map(tracing::field::display),
            "{message}"
        );
        let unix_ms = unix_ms();
        detail.changes.truncate(EVENT_MAX_CHANGES);
        // The node is the subscriber's to fill in: the feed does not know its own name.
        let e = Event {
            unix_ms,
            node: String::new(),
            kind,
            message,
            generation: detail.generation,
            changes: detail.changes,
            failure: detail.failure,
            by: by.map(|c| c.to_string()).unwrap_or_default(),
        };
        // No subscriber is not an error.
        let _ = self.tx.send(e);
    }

    /// The agent's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A new subscription, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
