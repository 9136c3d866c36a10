//! What a plan or an apply did, action by action: the report the agent keeps, answers and puts in its events.
use crate::reconcile::action::{Action, Plan};
use crate::reconcile::apply::Outcome;
use lvs_proto::NodeSpec;

/// One action and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionReport {
    /// The action (its words are its `Display`; code decides on the value).
    pub change: Action,
    /// Its outcome.
    pub outcome: Outcome,
}

/// Result of `plan` or `apply`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Node name.
    pub node: String,
    /// Generation of the spec.
    pub generation: u64,
    /// Actions (for a plan: all `NotAttempted`).
    pub actions: Vec<ActionReport>,
    /// Foreign objects left alone.
    pub foreign: Vec<String>,
    /// What still differs after applying (empty when converged).
    pub drift_after: Vec<Action>,
}

impl Report {
    /// Whether every action was applied and nothing differs any more.
    pub fn converged(&self) -> bool {
        self.actions.iter().all(|a| a.outcome == Outcome::Applied) && self.drift_after.is_empty()
    }

    /// How many actions were applied.
    pub fn applied(&self) -> usize {
        self.actions.iter().filter(|a| a.outcome == Outcome::Applied).count()
    }

    /// The report as the agent answers it (`lvs_proto::reply`, encoded by `wire`).
    pub fn to_reply(&self) -> lvs_proto::reply::Report {
        use lvs_proto::reply;
        reply::Report {
            node: self.node.clone(),
            generation: self.generation,
            actions: self
                .actions
                .iter()
                .map(|a| reply::ActionResult { change: a.change.to_change(), outcome: a.outcome.to_reply() })
                .collect(),
            foreign: self.foreign.clone(),
            drift_after: self.drift_after.iter().map(Action::to_change).collect(),
            converged: self.converged(),
            revocation_number: 0,
        }
    }
}

pub(crate) fn report(
    spec: &NodeSpec,
    plan: &Plan,
    outcomes: Vec<Outcome>,
    drift_after: Vec<Action>,
) -> Report {
    Report {
        node: spec.node.clone(),
        generation: spec.generation,
        actions: plan
            .actions
            .iter()
            .zip(outcomes)
            .map(|(a, outcome)| ActionReport { change: a.clone(), outcome })
            .collect(),
        foreign: plan.foreign.clone(),
        drift_after,
    }
}
