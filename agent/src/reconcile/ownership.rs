//! What the agent owns: recorded before it creates something (a crash then still knows it) and given up only when the kernel shows it gone, so that the agent never removes what it did not make.
use crate::kernel::translate;
use crate::reconcile::action::Action;
use crate::reconcile::state::State;
use lvs_proto::NodeSpec;

/// Record ownership of what an action will create.
pub(crate) fn claim(st: &mut State, spec: &NodeSpec, a: &Action) {
    match a {
        Action::AddAddress(x) => {
            st.owned.addresses.insert(x.clone());
        }
        Action::AddRoute { route, .. } => {
            st.owned.routes.insert(route.clone());
        }
        Action::SetSysctl { key, from, .. } => {
            st.owned.sysctls.entry(key.clone()).or_insert_with(|| from.clone());
        }
        Action::Ipvs(lvs_ipvs::Op::AddService(s) | lvs_ipvs::Op::EditService(s)) => {
            if let Some(v) = spec.virtual_services.iter().find(|v| translate::service_key(&v.key) == s.key) {
                st.owned.services.insert(v.key);
            }
        }
        Action::Ipvs(lvs_ipvs::Op::StartDaemon(d)) => {
            st.owned.sync_daemons.insert(crate::reconcile::ipvs_diff::daemon_word(d.state).into());
        }
        Action::LoadMarks { .. } => st.owned.mark_table = true,
        _ => {}
    }
}

/// A daemon restarted (stopped, then started, in one plan) is still ours: the stop's
/// release must not outlive the start that follows it.
pub(crate) fn reclaim(st: &mut State, spec: &NodeSpec, a: &Action) {
    if matches!(a, Action::Ipvs(lvs_ipvs::Op::StartDaemon(_))) {
        claim(st, spec, a);
    }
}

/// Forget ownership of what an applied action removed.
pub(crate) fn release(st: &mut State, a: &Action) {
    match a {
        Action::DelAddress(x) => {
            st.owned.addresses.remove(x);
        }
        Action::DelRoute(r) => {
            st.owned.routes.remove(r);
        }
        // The replaced route (ours, or the diff would have refused) no longer exists.
        Action::AddRoute { route, replace: true } => {
            st.owned.routes.retain(|r| r.destination != route.destination || r == route);
        }
        Action::Ipvs(lvs_ipvs::Op::DelService(k)) => {
            st.owned.services.retain(|s| translate::service_key(s) != *k)
        }
        Action::Ipvs(lvs_ipvs::Op::StopDaemon(s)) => {
            st.owned.sync_daemons.remove(crate::reconcile::ipvs_diff::daemon_word(*s));
        }
        Action::RemoveMarks { .. } => st.owned.mark_table = false,
        _ => {}
    }
}
