//! One change to the node (an address, a route, a sysctl, an IPVS operation) and the ordered plan of them a diff makes; each prints itself in the words reports use.
use crate::kernel::system::{Address, Route};
use crate::kernel::translate;
use lvs_ipvs::Op;
use lvs_proto::reply::Change;
use std::fmt;

/// One change to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Add an address.
    AddAddress(Address),
    /// Remove an address.
    DelAddress(Address),
    /// Add (or, with `replace`, swap) a route.
    AddRoute {
        /// The route.
        route: Route,
        /// Replace an existing route to the same destination.
        replace: bool,
    },
    /// Remove a route.
    DelRoute(Route),
    /// Write a sysctl.
    SetSysctl {
        /// Dotted key, as in `sysctl -w`.
        key: String,
        /// Value found.
        from: String,
        /// Value wanted.
        to: String,
    },
    /// Change the IPVS table.
    Ipvs(Op),
    /// Load the marking table whole with these rules.
    LoadMarks {
        /// The rules, sorted.
        rules: Vec<lvs_proto::spec::MarkRule>,
        /// What stood in its place, in words.
        found: String,
    },
    /// Remove the marking table.
    RemoveMarks {
        /// What it held, in words.
        found: String,
    },
}

impl Action {
    /// The action as a reply names it.
    pub fn to_change(&self) -> Change {
        match self {
            Action::AddAddress(x) => Change::AddAddress(translate::address_ref(x)),
            Action::DelAddress(x) => Change::DelAddress(translate::address_ref(x)),
            Action::AddRoute { route, replace } => {
                Change::AddRoute { route: translate::route_ref(route), replace: *replace }
            }
            Action::DelRoute(r) => Change::DelRoute(translate::route_ref(r)),
            Action::SetSysctl { key, from, to } => {
                Change::SetSysctl { key: key.clone(), from: from.clone(), to: to.clone() }
            }
            Action::Ipvs(op) => Change::Ipvs(translate::ipvs_change(op)),
            Action::LoadMarks { rules, found } => {
                Change::SetMarks { rules: rules.len() as u32, found: found.clone() }
            }
            Action::RemoveMarks { found } => Change::DelMarks { found: found.clone() },
        }
    }
}

impl fmt::Display for Action {
    /// In the words every report uses (one vocabulary: [`lvs_proto::reply::Change`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_change().fmt(f)
    }
}

pub(crate) fn label(a: &Address) -> String {
    a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default()
}

/// `0.0.0.0/0 via 198.18.0.1 dev eth0`.
pub fn route_text(r: &Route) -> String {
    translate::route_ref(r).to_string()
}

/// The result of a diff.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes, in apply order.
    pub actions: Vec<Action>,
    /// Things present that the spec does not mention and the agent did not create.
    pub foreign: Vec<String>,
    /// Things the agent did not create that stand where the spec wants something else
    /// (the same IP with another prefix or label, another route to the same
    /// destination). They are never deleted to make room: the apply is refused instead.
    pub conflicts: Vec<String>,
}
