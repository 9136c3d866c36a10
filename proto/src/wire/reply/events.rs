//! Events to and from the wire.

use super::changes::changes;
use super::report::failure;
use crate::pb;
use crate::reply::{Event, EventKind};
use crate::wire::fields::{WireError, err};

// ------------------------------------------------------------------ events

impl From<EventKind> for pb::EventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Start => pb::EventKind::Start,
            EventKind::Apply => pb::EventKind::Apply,
            EventKind::Weight => pb::EventKind::Weight,
            EventKind::Health => pb::EventKind::Health,
            EventKind::Drift => pb::EventKind::Drift,
            EventKind::Heal => pb::EventKind::Heal,
            EventKind::Clear => pb::EventKind::Clear,
            EventKind::Decommission => pb::EventKind::Decommission,
            EventKind::Certificate => pb::EventKind::Certificate,
            EventKind::Vrrp => pb::EventKind::Vrrp,
            EventKind::Bgp => pb::EventKind::Bgp,
            EventKind::Arp => pb::EventKind::Arp,
            EventKind::Drill => pb::EventKind::Drill,
        }
    }
}

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> Self {
        pb::Event {
            unix_ms: e.unix_ms,
            node: e.node.clone(),
            kind: pb::EventKind::from(e.kind) as i32,
            message: e.message.clone(),
            generation: e.generation,
            changes: e.changes.iter().map(Into::into).collect(),
            failure: e.failure.as_ref().map(Into::into),
            by: e.by.clone(),
        }
    }
}

impl TryFrom<&pb::Event> for Event {
    type Error = WireError;

    fn try_from(e: &pb::Event) -> Result<Self, WireError> {
        let kind = match pb::EventKind::try_from(e.kind) {
            Ok(pb::EventKind::Start) => EventKind::Start,
            Ok(pb::EventKind::Apply) => EventKind::Apply,
            Ok(pb::EventKind::Weight) => EventKind::Weight,
            Ok(pb::EventKind::Health) => EventKind::Health,
            Ok(pb::EventKind::Drift) => EventKind::Drift,
            Ok(pb::EventKind::Heal) => EventKind::Heal,
            Ok(pb::EventKind::Clear) => EventKind::Clear,
            Ok(pb::EventKind::Decommission) => EventKind::Decommission,
            Ok(pb::EventKind::Certificate) => EventKind::Certificate,
            Ok(pb::EventKind::Vrrp) => EventKind::Vrrp,
            Ok(pb::EventKind::Bgp) => EventKind::Bgp,
            Ok(pb::EventKind::Arp) => EventKind::Arp,
            Ok(pb::EventKind::Drill) => EventKind::Drill,
            _ => return err("kind", format!("unknown event kind {}", e.kind)),
        };
        Ok(Event {
            unix_ms: e.unix_ms,
            node: e.node.clone(),
            kind,
            message: e.message.clone(),
            generation: e.generation,
            changes: changes("changes", &e.changes)?,
            failure: e.failure.as_ref().map(failure),
            by: e.by.clone(),
        })
    }
}
