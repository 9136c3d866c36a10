//! The checks made before the first change of an apply: a spec the node cannot carry out (an interface missing, say) changes nothing.
use super::error::ReconcileError;
use crate::kernel::observe::Observed;
use lvs_proto::NodeSpec;

/// Everything the spec names must exist before the first change.
pub(crate) fn preflight(
    spec: &NodeSpec,
    observed: &Observed,
    scripts: &crate::health::scripts::Scripts,
) -> Result<(), ReconcileError> {
    let mut missing = Vec::new();
    let link = |name: &str| observed.links.iter().any(|l| l == name);
    for a in &spec.addresses {
        if !link(&a.interface) {
            missing.push(format!("interface {} (for address {}) does not exist", a.interface, a.address));
        }
    }
    for r in &spec.routes {
        if let Some(d) = r.device.as_deref().filter(|d| !link(d)) {
            missing.push(format!("interface {d} (for route {}) does not exist", r.destination));
        }
    }
    for s in &spec.sysctls {
        if observed.sysctls.get(&s.key).is_none_or(Option::is_none) {
            missing.push(format!("sysctl {} does not exist", s.key));
        }
    }
    if !spec.virtual_services.is_empty() && observed.ipvs.is_none() {
        missing.push("this kernel has no IPVS (load ip_vs) but the spec has virtual services".into());
    }
    missing.extend(crate::health::probe_exec::missing_files(spec, scripts));
    if missing.is_empty() { Ok(()) } else { Err(ReconcileError::Preflight(missing)) }
}
