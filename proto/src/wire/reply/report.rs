//! Outcomes, reports and the clock's answer to and from the wire.

use super::changes::change;
use super::changes::changes;
use super::changes::each;
use crate::pb;
use crate::reply::{ActionResult, Clock, Failure, FailureKind, Outcome, Report};
use crate::wire::fields::{WireError, err, required};

// ------------------------------------------------------------------ outcomes and reports

impl From<FailureKind> for pb::FailureKind {
    fn from(k: FailureKind) -> Self {
        match k {
            FailureKind::Exists => pb::FailureKind::Exists,
            FailureKind::NotFound => pb::FailureKind::NotFound,
            FailureKind::Permission => pb::FailureKind::Permission,
            FailureKind::Busy => pb::FailureKind::Busy,
            FailureKind::TimedOut => pb::FailureKind::TimedOut,
            FailureKind::Invalid => pb::FailureKind::Invalid,
            FailureKind::Unsupported => pb::FailureKind::Unsupported,
            FailureKind::Other => pb::FailureKind::Other,
        }
    }
}

impl From<&Failure> for pb::Failure {
    fn from(x: &Failure) -> Self {
        pb::Failure { kind: pb::FailureKind::from(x.kind) as i32, message: x.message.clone(), errno: x.errno }
    }
}

// A newer agent's kind this controller does not know is still a failure: `Other`.
pub(super) fn failure(x: &pb::Failure) -> Failure {
    let kind = match pb::FailureKind::try_from(x.kind) {
        Ok(pb::FailureKind::Exists) => FailureKind::Exists,
        Ok(pb::FailureKind::NotFound) => FailureKind::NotFound,
        Ok(pb::FailureKind::Permission) => FailureKind::Permission,
        Ok(pb::FailureKind::Busy) => FailureKind::Busy,
        Ok(pb::FailureKind::TimedOut) => FailureKind::TimedOut,
        Ok(pb::FailureKind::Invalid) => FailureKind::Invalid,
        Ok(pb::FailureKind::Unsupported) => FailureKind::Unsupported,
        _ => FailureKind::Other,
    };
    Failure { kind, message: x.message.clone(), errno: x.errno }
}

impl From<&ActionResult> for pb::ActionResult {
    fn from(a: &ActionResult) -> Self {
        let (outcome, failure) = match &a.outcome {
            Outcome::Applied => (pb::Outcome::Applied, None),
            Outcome::Failed(x) => (pb::Outcome::Failed, Some(x.into())),
            Outcome::NotAttempted => (pb::Outcome::NotAttempted, None),
        };
        pb::ActionResult { change: Some((&a.change).into()), outcome: outcome as i32, failure }
    }
}

pub(super) fn action_result(f: &str, a: &pb::ActionResult) -> Result<ActionResult, WireError> {
    let change = change(&format!("{f}.change"), required(&format!("{f}.change"), &a.change)?)?;
    let outcome = match pb::Outcome::try_from(a.outcome) {
        Ok(pb::Outcome::Applied) => Outcome::Applied,
        Ok(pb::Outcome::NotAttempted) => Outcome::NotAttempted,
        Ok(pb::Outcome::Failed) => Outcome::Failed(failure(required(&format!("{f}.failure"), &a.failure)?)),
        _ => return err(format!("{f}.outcome"), format!("unknown outcome {}", a.outcome)),
    };
    Ok(ActionResult { change, outcome })
}

impl From<&Report> for pb::Report {
    fn from(r: &Report) -> Self {
        pb::Report {
            node: r.node.clone(),
            generation: r.generation,
            actions: r.actions.iter().map(Into::into).collect(),
            foreign: r.foreign.clone(),
            drift_after: r.drift_after.iter().map(Into::into).collect(),
            converged: r.converged,
            revocation_number: r.revocation_number,
        }
    }
}

impl TryFrom<&pb::Report> for Report {
    type Error = WireError;

    fn try_from(r: &pb::Report) -> Result<Self, WireError> {
        Ok(Report {
            node: r.node.clone(),
            generation: r.generation,
            actions: each("actions", &r.actions, action_result)?,
            foreign: r.foreign.clone(),
            drift_after: changes("drift_after", &r.drift_after)?,
            converged: r.converged,
            revocation_number: r.revocation_number,
        })
    }
}

impl From<&Clock> for pb::ClockResponse {
    fn from(c: &Clock) -> Self {
        pb::ClockResponse {
            offset_ms: c.offset_ms,
            rtt_ms: c.rtt_ms,
            error: c.error.clone().unwrap_or_default(),
        }
    }
}

impl From<&pb::ClockResponse> for Clock {
    fn from(c: &pb::ClockResponse) -> Self {
        Clock {
            offset_ms: c.offset_ms,
            rtt_ms: c.rtt_ms,
            error: Some(c.error.clone()).filter(|e| !e.is_empty()),
        }
    }
}
