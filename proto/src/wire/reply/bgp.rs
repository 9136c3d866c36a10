//! [`BgpStatus`] to and from the wire.
use crate::pb;
use crate::reply::{BgpAnnouncement, BgpSession, BgpStatus};
use crate::wire::fields::{WireError, err};

/// Most sessions or announcements a reply may carry (a lying agent cannot grow our memory).
const MAX_ITEMS: usize = 1024;

impl From<&BgpStatus> for pb::BgpStatus {
    fn from(b: &BgpStatus) -> Self {
        pb::BgpStatus {
            sessions: b
                .sessions
                .iter()
                .map(|s| pb::BgpSession {
                    peer: s.peer.clone(),
                    address: s.address.clone(),
                    state: s.state.clone(),
                    up: s.up,
                    since_unix_ms: s.since_unix_ms,
                    routes_received: s.routes_received,
                    routes_sent: s.routes_sent,
                })
                .collect(),
            announcements: b
                .announcements
                .iter()
                .map(|a| pb::BgpAnnouncement {
                    prefix: a.prefix.clone(),
                    announced: a.announced,
                    reason: a.reason.clone(),
                })
                .collect(),
            error: b.error.clone().unwrap_or_default(),
            drained: b.drained,
        }
    }
}

impl TryFrom<&pb::BgpStatus> for BgpStatus {
    type Error = WireError;

    fn try_from(b: &pb::BgpStatus) -> Result<Self, WireError> {
        if b.sessions.len() > MAX_ITEMS {
            return err("bgp.sessions", format!("{} sessions: at most {MAX_ITEMS}", b.sessions.len()));
        }
        if b.announcements.len() > MAX_ITEMS {
            return err(
                "bgp.announcements",
                format!("{} prefixes: at most {MAX_ITEMS}", b.announcements.len()),
            );
        }
        Ok(BgpStatus {
            sessions: b
                .sessions
                .iter()
                .map(|s| BgpSession {
                    peer: s.peer.clone(),
                    address: s.address.clone(),
                    state: s.state.clone(),
                    up: s.up,
                    since_unix_ms: s.since_unix_ms,
                    routes_received: s.routes_received,
                    routes_sent: s.routes_sent,
                })
                .collect(),
            announcements: b
                .announcements
                .iter()
                .map(|a| BgpAnnouncement {
                    prefix: a.prefix.clone(),
                    announced: a.announced,
                    reason: a.reason.clone(),
                })
                .collect(),
            error: Some(b.error.clone()).filter(|e| !e.is_empty()),
            drained: b.drained,
        })
    }
}
