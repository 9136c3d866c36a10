//! Carrying out actions in order, reporting each one's fate. A failure's kind (from the
//! kernel's errno) is decided here, once: every report, event and reply carries it on.
use crate::kernel::system::System;
use crate::reconcile::action::Action;
use lvs_proto::reply::Outcome;

/// Apply `actions` in order. Consecutive IPVS actions go to the kernel as one batch. The
/// first failure stops everything after it (later steps depend on earlier ones: a VIP
/// must not appear before the ARP sysctls took effect); within a failed IPVS batch the
/// kernel has tried every request, so their outcomes are reported as they are.
pub async fn apply<S: System>(sys: &S, actions: &[Action]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(actions.len());
    let mut i = 0;
    while i < actions.len() {
        if let Action::Ipvs(_) = &actions[i] {
            let end = actions[i..]
                .iter()
                .position(|a| !matches!(a, Action::Ipvs(_)))
                .map_or(actions.len(), |p| i + p);
            let ops: Vec<lvs_ipvs::Op> = actions[i..end]
                .iter()
                .filter_map(|a| if let Action::Ipvs(op) = a { Some(op.clone()) } else { None })
                .collect();
            match sys.ipvs_apply(&ops).await {
                Ok(results) => out.extend(results.into_iter().map(|r| match r {
                    Ok(()) => Outcome::Applied,
                    Err(e) => Outcome::Failed(e.failure()),
                })),
                Err(e) => {
                    // One batch error fails every change of the batch, with the same words.
                    let failure = e.failure();
                    out.extend(ops.iter().map(|_| Outcome::Failed(failure.clone())));
                }
            }
            i = end;
        } else {
            let r = match &actions[i] {
                Action::AddAddress(a) => sys.add_address(a).await,
                Action::DelAddress(a) => sys.del_address(a).await,
                Action::AddRoute { route, replace } => sys.add_route(route, *replace).await,
                Action::DelRoute(r) => sys.del_route(r).await,
                Action::SetSysctl { key, to, .. } => sys.set_sysctl(key, to).await,
                Action::LoadMarks { rules, .. } => sys.load_marks(rules).await,
                Action::RemoveMarks { .. } => sys.remove_marks().await,
                Action::Ipvs(_) => unreachable!("handled above"),
            };
            out.push(match r {
                Ok(()) => Outcome::Applied,
                Err(e) => Outcome::Failed(e.failure()),
            });
            i += 1;
        }
        if out.iter().any(|o| matches!(o, Outcome::Failed(_))) {
            break;
        }
    }
    out.resize(actions.len(), Outcome::NotAttempted);
    out
}
