//! The small calls' answers to and from the wire.

use super::changes::each;
use crate::pb;
use crate::reply::{DestinationConnections, ProbeTally, WeightReply};
use crate::wire::fields::{WireError, parse};

// ------------------------------------------------------------------ small replies

impl TryFrom<&pb::LiveConnectionsResponse> for Vec<DestinationConnections> {
    type Error = WireError;

    fn try_from(r: &pb::LiveConnectionsResponse) -> Result<Self, WireError> {
        each("counts", &r.counts, |f, c| {
            Ok(DestinationConnections {
                destination: parse(&format!("{f}.destination"), &c.destination)?,
                live: c.live,
                total: c.total,
            })
        })
    }
}

impl From<&DestinationConnections> for pb::DestinationConnections {
    fn from(c: &DestinationConnections) -> Self {
        pb::DestinationConnections { destination: c.destination.to_string(), live: c.live, total: c.total }
    }
}

impl From<&pb::SetWeightResponse> for WeightReply {
    fn from(r: &pb::SetWeightResponse) -> Self {
        WeightReply { weight: r.weight, active_conns: r.active_conns, inactive_conns: r.inactive_conns }
    }
}

impl From<&WeightReply> for pb::SetWeightResponse {
    fn from(r: &WeightReply) -> Self {
        pb::SetWeightResponse {
            weight: r.weight,
            active_conns: r.active_conns,
            inactive_conns: r.inactive_conns,
        }
    }
}

impl From<&pb::ProbeResponse> for ProbeTally {
    fn from(r: &pb::ProbeResponse) -> Self {
        ProbeTally {
            sent: r.sent,
            answered: r.answered,
            failed: r.failed,
            bodies: r.bodies.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            errors: r.errors.clone(),
            elapsed_ms: r.elapsed_ms,
            sequence: r.sequence.clone(),
            slowest_ms: r.slowest_ms,
            longest_gap_ms: r.longest_gap_ms,
        }
    }
}

impl From<&ProbeTally> for pb::ProbeResponse {
    fn from(r: &ProbeTally) -> Self {
        pb::ProbeResponse {
            sent: r.sent,
            answered: r.answered,
            failed: r.failed,
            bodies: r.bodies.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            errors: r.errors.clone(),
            elapsed_ms: r.elapsed_ms,
            sequence: r.sequence.clone(),
            slowest_ms: r.slowest_ms,
            longest_gap_ms: r.longest_gap_ms,
        }
    }
}
