//! Names: every name is a DNS label (an interface: a kernel name), and unique.
use std::collections::HashSet;

use super::Validator;
use crate::diagnostics::KeyPath;

use lvs_proto::names::{dns_label_problem, ifname_problem};

impl Validator {
    /// Names become file names (`pki issue` writes `agent-<node>.pem`), DNS names in
    /// certificates and labels in every report: a DNS label is the one shape safe for all.
    /// Interfaces follow the kernel's rules instead ([`ifname_problem`]).
    pub(super) fn unique_names<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
        base: &KeyPath,
        what: &str,
    ) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            let problem = if what == "interface" { ifname_problem(name) } else { dns_label_problem(name) };
            if let Some(problem) = problem {
                let fix = if what == "interface" {
                    "use the kernel's interface name, e.g. eth0, ens3 or eth0.100"
                } else {
                    "use lowercase letters, digits and `-` (at most 63), e.g. rs1 or web-80"
                };
                self.err("bad-name", base.index(i).key("name"), format!("{what} name {problem}"), fix);
            } else if !seen.insert(name) {
                self.err(
                    "duplicate-name",
                    base.index(i).key("name"),
                    format!("{what} name `{name}` is used twice"),
                    format!("give every {what} a unique name"),
                );
            }
        }
    }
}
