//! Fleet operations: what the commands are made of. Each asks or changes many agents at
//! once through [`crate::fleet::Fleet`] (whose replies are already domain types) and
//! returns values; none prints. Commands compose them and render what they return.
//!
//! | module | operations |
//! | --- | --- |
//! | [`specs`] | reserve (plan), release, apply a generation; the time gate's clocks |
//! | [`weights`] | where a real server is placed, live weights, the drain wait |
//! | [`impact`] | what a plan removes, drains or reweights and what it holds now |
//! | [`tables`] | every director's IPVS table; withdraw the managed services |
//! | [`trust`] | rotate agents' certificates; push the revocation list |
//! | [`vrrp`] | who is master of each VRRP instance; a planned failover |
//! | [`drill`] | a failover drill: there and back under requests through the VIP |
use std::path::PathBuf;

use lvs_proto::NodeSpec;
use lvs_proto::spec::Role;

use crate::fleet::{Fleet, NodeError};
use crate::model::Cluster;

pub mod drill;
pub mod impact;
pub mod specs;
pub mod tables;
pub mod trust;
pub mod vrrp;
pub mod weights;

/// One node's answer.
pub type NodeResult<T> = (String, Result<T, NodeError>);

/// What every fleet operation works with.
pub struct Ctx {
    /// The definition file.
    pub file: PathBuf,
    /// The validated cluster.
    pub cluster: Cluster,
    /// The desired state of every node, in definition order.
    pub specs: Vec<NodeSpec>,
    /// The agents.
    pub fleet: Fleet,
    /// JSON output instead of text (for the commands that render).
    pub json: bool,
}

impl Ctx {
    /// Names of the nodes with `role`.
    pub fn nodes_with(&self, role: Role) -> Vec<String> {
        self.cluster.nodes.iter().filter(|n| n.role == role).map(|n| n.name.clone()).collect()
    }

    /// The spec of `node`.
    pub fn spec(&self, node: &str) -> Option<&NodeSpec> {
        self.specs.iter().find(|s| s.node == node)
    }

    /// Names of the nodes that have a spec, in definition order.
    pub fn spec_nodes(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.node.clone()).collect()
    }
}
