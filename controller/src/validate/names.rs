//! Names: every name is a DNS label (an interface: a kernel name), and unique.
use std::collections::HashSet;

use super::Validator;
use crate::diagnostics::KeyPath;

/// Longest name of a cluster, LAN, node or service: one DNS label.
pub const MAX_NAME: usize = 63;

/// Why `name` is not a DNS label (lowercase letters, digits and `-`, not at either end,
/// 1..=63 bytes); `None` when it is one. Shown quoted with control characters escaped and
/// long names cut, so the message itself stays readable.
pub fn dns_label_problem(name: &str) -> Option<String> {
    let shown = || {
        let cut: String = name.chars().take(40).collect::<String>().escape_debug().to_string();
        if name.chars().count() > 40 { format!("`{cut}…`") } else { format!("`{cut}`") }
    };
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!("{} is {} bytes long (at most {MAX_NAME})", shown(), name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!(
            "{} contains {:?}: only lowercase letters, digits and `-` are allowed",
            shown(),
            c
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("{} starts or ends with `-`", shown()));
    }
    None
}

/// Why `name` cannot be a Linux interface name (1..=15 bytes, no `/`, `:`, whitespace or
/// control characters, not `.` or `..`); `None` when it can.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    let shown: String = name.chars().take(20).collect::<String>().escape_debug().to_string();
    if name.len() > 15 {
        return Some(format!("`{shown}` is longer than the kernel's 15 bytes"));
    }
    if name == "." || name == ".." || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':') {
        return Some(format!("`{shown}` is not a valid interface name (no `/`, `:` or spaces)"));
    }
    None
}

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
