//! Whether this node is enrolled, and what is wrong when it is neither new nor whole.
use lvs_proto::agent_config::TlsPaths;
use std::path::Path;

/// Whether the agent has everything mutual TLS needs (else it enrols).
pub fn is_enrolled(paths: &TlsPaths) -> bool {
    paths.ca.exists() && paths.cert.exists() && paths.key.exists()
}

/// The file enrolment leaves in the state directory: this node was enrolled once.
pub const ENROLLED_MARK: &str = "enrolled";

/// Where an agent stands with its credentials when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Key, certificate and CA present: serve mutual TLS.
    Enrolled,
    /// Never enrolled: make a key and wait for a pairing code.
    New,
    /// Enrolled once, but a credential file is gone: why, in words. Such an agent must not
    /// fall back to enrolment (a new code, anyone's CA, the stored spec never re-applied, a
    /// director's VIPs gone): it refuses to start and keeps what it has.
    Broken(String),
}

/// Where the agent whose files are `paths` and state `state_dir` stands. It was enrolled
/// once when enrolment's mark is there, when it holds an accepted spec (only an enrolled
/// agent accepts one), or when its CA or certificate file is there.
pub fn standing(paths: &TlsPaths, state_dir: &Path) -> Standing {
    if is_enrolled(paths) {
        return Standing::Enrolled;
    }
    let mark = state_dir.join(ENROLLED_MARK);
    let spec = state_dir.join(crate::reconcile::state::STATE_FILE);
    let evidence: Vec<String> = [
        (mark.exists(), format!("{} exists", mark.display())),
        (spec.exists(), format!("{} holds an accepted spec", spec.display())),
        (paths.ca.exists(), format!("{} exists", paths.ca.display())),
        (paths.cert.exists(), format!("{} exists", paths.cert.display())),
    ]
    .into_iter()
    .filter_map(|(seen, what)| seen.then_some(what))
    .collect();
    if evidence.is_empty() {
        return Standing::New;
    }
    let missing: Vec<String> = [&paths.key, &paths.cert, &paths.ca]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    Standing::Broken(format!(
        "this node was enrolled ({}) but {} missing: restore {} from a backup, or make it a new node \
         (remove {} and {}, then enrol it again with a new pairing code)",
        evidence.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        missing.join(" and "),
        mark.display(),
        spec.display()
    ))
}
