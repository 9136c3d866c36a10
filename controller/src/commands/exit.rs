//! lvsctl's exit statuses: one meaning each, so a script can tell a bad definition from an
//! unreachable node from a refused time gate. [`Exit::ALL`] is the one list; `--help`, the
//! man page and the README print it ([`table`]).
use std::process::ExitCode;

/// Why lvsctl ended as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `status` and `verify`: all healthy.
    Ok,
    /// The definition is invalid (every error is listed; nothing was changed).
    Invalid,
    /// Bad usage: an unknown option, node or value; an option the command does not take.
    Usage,
    /// A node failed, was unreachable, or refused (nothing more was changed after it).
    NodeFailed,
    /// Every node answered, but something is unhealthy (`status`, `verify`, `lab`).
    Unhealthy,
    /// `apply` was refused by the time gate: a clock is off the NTP source.
    TimeGate,
    /// A change needs confirmation: declined at the prompt, or no terminal and no `--yes`.
    NotConfirmed,
    /// `plan --detailed-exitcode`: changes are pending (the cluster drifted or the
    /// definition moved on).
    ChangesPending,
    /// A local failure: a file, the certificates, the lab's namespaces.
    Local,
}

impl Exit {
    /// Every status, in code order.
    pub const ALL: [Exit; 9] = [
        Exit::Ok,
        Exit::Invalid,
        Exit::Usage,
        Exit::NodeFailed,
        Exit::Unhealthy,
        Exit::TimeGate,
        Exit::NotConfirmed,
        Exit::ChangesPending,
        Exit::Local,
    ];

    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Invalid => 1,
            Exit::Usage => 2,
            Exit::NodeFailed => 3,
            Exit::Unhealthy => 4,
            Exit::TimeGate => 5,
            Exit::NotConfirmed => 6,
            Exit::ChangesPending => 7,
            Exit::Local => 8,
        }
    }

    /// What it means, in one line.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success; for status and verify: everything healthy",
            Exit::Invalid => "the definition is invalid; nothing was changed",
            Exit::Usage => "bad usage: unknown option, node or value",
            Exit::NodeFailed => "a node failed, was unreachable or refused",
            Exit::Unhealthy => "every node answered, but something is unhealthy",
            Exit::TimeGate => "apply refused by the time gate (a clock is off); nothing was changed",
            Exit::NotConfirmed => {
                "not confirmed (declined, or no terminal and no --yes); nothing was changed"
            }
            Exit::ChangesPending => "plan --detailed-exitcode: changes are pending",
            Exit::Local => "a local failure: a file, the certificates, the lab",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// `0` when `ok`, else `e`.
pub fn unless(ok: bool, e: Exit) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { e.into() }
}

/// The statuses as `--help`, the man page and the README list them.
pub fn table() -> String {
    Exit::ALL.iter().map(|e| format!("  {}  {}\n", e.code(), e.meaning())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_its_own_code_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (0..Exit::ALL.len() as u8).collect::<Vec<_>>());
    }
}
