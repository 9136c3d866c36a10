//! What came of each change, and the one report every change-making call answers.
use std::fmt;

use serde::Serialize;

use super::changes::Change;

// ------------------------------------------------------------------ outcomes

/// Why a change failed, by kind: decided once, by the agent, from the kernel's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Something already stands there (EEXIST).
    Exists,
    /// What it names is gone (ENOENT, ESRCH, ENODEV).
    NotFound,
    /// Not allowed (EPERM, EACCES).
    Permission,
    /// Try again (EBUSY, EAGAIN, EINTR).
    Busy,
    /// The kernel did not answer within the deadline.
    TimedOut,
    /// The kernel refused the value (EINVAL, ERANGE).
    Invalid,
    /// Not supported here (EOPNOTSUPP, EAFNOSUPPORT, no IPVS).
    Unsupported,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The kind of a kernel errno.
    pub fn of_errno(errno: i32) -> Self {
        // Linux errno values (asm-generic/errno-base.h, errno.h).
        match errno {
            17 => FailureKind::Exists,                // EEXIST
            2 | 3 | 19 => FailureKind::NotFound,      // ENOENT, ESRCH, ENODEV
            1 | 13 => FailureKind::Permission,        // EPERM, EACCES
            16 | 11 | 4 => FailureKind::Busy,         // EBUSY, EAGAIN, EINTR
            110 | 62 => FailureKind::TimedOut,        // ETIMEDOUT, ETIME
            22 | 34 => FailureKind::Invalid,          // EINVAL, ERANGE
            95 | 97 | 93 => FailureKind::Unsupported, // EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT
            _ => FailureKind::Other,
        }
    }
}

/// A failed change: its kind, the agent's sentence and the kernel's errno (0 when the
/// failure was not the kernel's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Whose fault: decides whether a retry can help.
    pub kind: FailureKind,
    /// The sentence.
    pub message: String,
    /// The errno, or 0.
    pub errno: i32,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "failure", rename_all = "snake_case")]
pub enum Outcome {
    /// The kernel took it.
    Applied,
    /// Tried and failed.
    Failed(Failure),
    /// Not tried: an earlier change it depends on failed.
    NotAttempted,
}

/// One change and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    /// The change.
    pub change: Change,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A node's answer to plan, apply or clear: every change with its outcome (a plan's are
/// all "not attempted"), what it keeps but does not own, and what still differs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// Node (not in JSON: every view that prints a report names its node already).
    #[serde(skip_serializing)]
    pub node: String,
    /// Generation of the spec.
    pub generation: u64,
    /// Changes, in apply order.
    pub actions: Vec<ActionResult>,
    /// Objects present that the spec does not mention and the agent did not create.
    pub foreign: Vec<String>,
    /// What still differs after the apply.
    pub drift_after: Vec<Change>,
    /// Every change applied and nothing left to differ.
    pub converged: bool,
    /// The CRL number of the revocation list the answering agent holds (0: none; set in
    /// answers to Plan, where the controller decides whether to send its list).
    #[serde(skip_serializing, default)]
    pub revocation_number: u64,
}

impl Report {
    /// How many changes were applied.
    pub fn applied(&self) -> usize {
        self.actions.iter().filter(|a| a.outcome == Outcome::Applied).count()
    }
}
