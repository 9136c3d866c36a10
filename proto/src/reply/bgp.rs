//! A node's BGP as its agent reports it: sessions, and on a director what it announces.
use serde::Serialize;

/// A node's BGP now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct BgpStatus {
    /// Its sessions, as the routing daemon reports them.
    pub sessions: Vec<BgpSession>,
    /// Directors: each VIP prefix, announced or withdrawn and why.
    pub announcements: Vec<BgpAnnouncement>,
    /// Why the routing daemon is not running, or what it last said went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Drained by an admin: announces nothing until enabled.
    pub drained: bool,
}

impl BgpStatus {
    /// Prefixes announced now.
    pub fn announced(&self) -> impl Iterator<Item = &BgpAnnouncement> {
        self.announcements.iter().filter(|a| a.announced)
    }
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpSession {
    /// The peer's node name.
    pub peer: String,
    /// The peer's address.
    pub address: String,
    /// The daemon's word for its state (`Established`, `Active`, …).
    pub state: String,
    /// The session is established (BGP state Established): routes flow both ways.
    pub up: bool,
    /// Since when, ms since the epoch (0: not known).
    pub since_unix_ms: u64,
    /// Routes accepted from the peer.
    pub routes_received: u32,
    /// Routes sent to it.
    pub routes_sent: u32,
}

/// One VIP prefix of a director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpAnnouncement {
    /// `198.18.0.100/32`.
    pub prefix: String,
    /// Announced now.
    pub announced: bool,
    /// Why withdrawn (empty when announced).
    pub reason: String,
}
