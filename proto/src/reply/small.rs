//! The answers of the small calls: live connections, a weight change, a VIP probe.
use std::net::SocketAddr;

use serde::Serialize;

// ------------------------------------------------------------------ small replies

/// Connections to one destination, counted by the director's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DestinationConnections {
    /// RIP:port.
    pub destination: SocketAddr,
    /// Live: ESTABLISHED and reset recently.
    pub live: u32,
    /// All entries.
    pub total: u32,
}

/// A destination's weight after a live change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightReply {
    /// Weight in force.
    pub weight: u32,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
}

/// The tally of N HTTP requests sent from a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProbeTally {
    /// Requests sent.
    pub sent: u32,
    /// Requests that got an HTTP answer below 500.
    pub answered: u32,
    /// Requests refused, reset, timed out or answered 5xx.
    pub failed: u32,
    /// First line of the body → count.
    pub bodies: std::collections::BTreeMap<String, u32>,
    /// Distinct errors, first few.
    pub errors: Vec<String>,
    /// How long it took.
    pub elapsed_ms: u64,
    /// Body first lines in order of completion (count ≤ 64).
    pub sequence: Vec<String>,
    /// The slowest answered request, ms.
    pub slowest_ms: u64,
    /// The longest time with no answer (from the start, between answers, to the end), ms:
    /// the outage a client saw.
    pub longest_gap_ms: u64,
}
