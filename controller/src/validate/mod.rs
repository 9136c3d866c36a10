//! Every rule a definition must satisfy, checked once, all findings collected.
//!
//! Rules come from the seed article's list of DR properties (same segment, no port
//! mapping, gateway not the DIP, ...) and from what the kernel accepts (weights are
//! 16-bit, fwmark 0 means "no mark", schedulers by name). Each rule has a stable name
//! (`Diagnostic::rule`) so tests and users can refer to it.

use crate::definition::Definition;
use crate::diagnostics::{Diagnostic, KeyPath};
use crate::model::Cluster;

mod bgp;
mod checks;
mod dr;
mod ipvs;
mod marks;
mod names;
pub use lvs_proto::names::{MAX_NAME, dns_label_problem, ifname_problem};
mod nodes;
mod scalars;
mod services;
mod vrrp;

pub use lvs_proto::spec::SCHEDULERS;

/// The kernel keeps a persistence timeout as `seconds × HZ` in 32 bits; with HZ up to
/// 1000 this is the largest value that cannot overflow.
pub const MAX_PERSISTENCE_S: u64 = u32::MAX as u64 / 1000;

/// Validate a definition. Returns the cluster and its warnings, or every finding.
pub fn validate(def: &Definition) -> Result<(Cluster, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut v = Validator::default();
    let cluster = v.cluster(def);
    // A dual-stack service is checked once per family: a finding about what both share
    // (its scheduler, its check) is reported once.
    let mut seen = Vec::new();
    v.diags.retain(|d| {
        let new = !seen.contains(d);
        if new {
            seen.push(d.clone());
        }
        new
    });
    if v.diags.iter().any(|d| d.severity == crate::diagnostics::Severity::Error) {
        return Err(v.diags);
    }
    match cluster {
        Some(c) => Ok((c, v.diags)),
        None => Err(v.diags),
    }
}

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
    /// The node names of each `[[vrrp]]` instance, as written (services need them before
    /// the instances are checked: a VIP shared within one is not a conflict).
    vrrp_members: Vec<std::collections::BTreeSet<String>>,
    /// The directors of `[bgp]`, as written: their VIPs sit on `lo` and they share them.
    ecmp_members: std::collections::BTreeSet<String>,
}

impl Validator {
    fn err(&mut self, rule: &'static str, path: KeyPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.diags.push(Diagnostic::error(rule, path, msg, fix));
    }

    fn warn(&mut self, rule: &'static str, path: KeyPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.diags.push(Diagnostic::warning(rule, path, msg, fix));
    }

    fn cluster(&mut self, def: &Definition) -> Option<Cluster> {
        let root = KeyPath::root();
        let generation = match u64::try_from(def.cluster.generation) {
            Ok(g) if g >= 1 => g,
            _ => {
                self.err(
                    "generation-range",
                    root.key("cluster").key("generation"),
                    format!("generation {} is not a positive integer", def.cluster.generation),
                    "use 1 for a new cluster and increase it with every change",
                );
                1
            }
        };
        if let Some(problem) = dns_label_problem(&def.cluster.name) {
            self.err(
                "bad-name",
                root.key("cluster").key("name"),
                format!("cluster name {problem}"),
                "use lowercase letters, digits and `-` (at most 63), e.g. web-prod",
            );
        }
        self.ecmp_members = def.bgp.iter().flat_map(|b| b.directors.iter().cloned()).collect();
        let time = self.time(def);
        let lans = self.lans(def);
        let nodes = self.nodes(def, &lans);
        self.endpoints(def);
        self.vrrp_members =
            def.vrrp.iter().map(|g| g.directors.iter().map(|d| d.node.clone()).collect()).collect();
        let services = self.services(def, &nodes);
        let ipvs_timeouts = self.ipvs_timeouts(def);
        let vrrp = self.vrrp(def, &nodes, &lans);
        let bgp = def.bgp.as_ref().and_then(|b| self.bgp(b, &nodes, &lans, &services));
        Some(Cluster {
            name: def.cluster.name.clone(),
            generation,
            time: time?,
            lans,
            nodes,
            services,
            ipvs_timeouts,
            vrrp,
            bgp,
        })
    }
}
