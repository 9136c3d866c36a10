//! What a plan or an apply did, action by action, in the reply's own type
//! ([`lvs_proto::reply::Report`]): the agent keeps no second report to convert.
use crate::reconcile::action::{Action, Plan};
use lvs_proto::NodeSpec;
use lvs_proto::reply::{ActionResult, Outcome, Report};

/// The report of `plan` carried out with `outcomes` (one per action, in order), with what
/// still differs after it. Converged means every action applied and nothing left over.
pub(crate) fn report(
    spec: &NodeSpec,
    plan: &Plan,
    outcomes: Vec<Outcome>,
    drift_after: Vec<Action>,
) -> Report {
    let actions: Vec<ActionResult> = plan
        .actions
        .iter()
        .zip(outcomes)
        .map(|(a, outcome)| ActionResult { change: a.to_change(), outcome })
        .collect();
    let converged = actions.iter().all(|a| a.outcome == Outcome::Applied) && drift_after.is_empty();
    Report {
        node: spec.node.clone(),
        generation: spec.generation,
        actions,
        foreign: plan.foreign.clone(),
        drift_after: drift_after.iter().map(Action::to_change).collect(),
        converged,
        revocation_number: 0,
    }
}
