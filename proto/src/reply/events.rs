//! The agent's event feed as callers see it.
use std::fmt;

use serde::Serialize;

use super::changes::Change;
use super::report::Failure;

// ------------------------------------------------------------------ events

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The agent re-applied its stored spec at start-up.
    Start,
    /// An admin's apply.
    Apply,
    /// An admin's live weight.
    Weight,
    /// A destination's health check changed state.
    Health,
    /// The node no longer matches its spec.
    Drift,
    /// The agent re-applied its spec after drift.
    Heal,
    /// An admin's `ipvs clear`.
    Clear,
    /// The node was taken out of the cluster (`lvsctl node remove`).
    Decommission,
    /// The agent's certificate or revocation list changed (enrolment, rotation, revoke).
    Certificate,
    /// This director's VRRP state changed.
    Vrrp,
    /// A BGP session came up or went down; a VIP was announced or withdrawn.
    Bgp,
    /// The router's ARP watch found a VIP leak, or found it gone.
    Arp,
    /// A failover drill's requests through the VIP ended.
    Drill,
}

impl EventKind {
    /// The word `lvsctl events` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Apply => "apply",
            EventKind::Weight => "weight",
            EventKind::Health => "health",
            EventKind::Drift => "drift",
            EventKind::Heal => "heal",
            EventKind::Clear => "ipvs",
            EventKind::Decommission => "decommission",
            EventKind::Certificate => "certificate",
            EventKind::Vrrp => "vrrp",
            EventKind::Bgp => "bgp",
            EventKind::Arp => "arp",
            EventKind::Drill => "drill",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most changes an event carries (drift of a whole table is summarised, not shipped).
pub const EVENT_MAX_CHANGES: usize = 64;

/// One thing that happened on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The node the event happened on.
    pub node: String,
    /// About what.
    pub kind: EventKind,
    /// What, in words.
    pub message: String,
    /// The spec generation it concerns (0: none).
    pub generation: u64,
    /// Drift: what differs; heal, apply, clear: what was done (at most
    /// [`EVENT_MAX_CHANGES`]).
    pub changes: Vec<Change>,
    /// The apply or heal failed as a whole.
    pub failure: Option<Failure>,
    /// Who asked (`admin:alice`); empty when the agent acted on its own (start, drift,
    /// heal, health).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub by: String,
}
