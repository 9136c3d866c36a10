//! Who is who on the wire. Every certificate is issued by the cluster CA (`lvsctl pki`) and
//! carries a URI subject-alternative name saying what it is for:
//!
//! | holder | URI SAN | DNS SAN |
//! | --- | --- | --- |
//! | the controller (`lvsctl`) | `urn:lvs-dr:controller` | — |
//! | the agent of node `rs1` | `urn:lvs-dr:agent:rs1` | `rs1` |
//!
//! An agent accepts commands only from a peer with the controller URI, so an agent's
//! certificate (same CA) cannot drive another agent. The controller dials an agent with
//! the node name as TLS server name, so it only talks to the agent it meant to.

/// URI SAN of the controller's certificate.
pub const CONTROLLER_URI: &str = "urn:lvs-dr:controller";

/// URI SAN of the agent certificate of `node`.
pub fn agent_uri(node: &str) -> String {
    format!("urn:lvs-dr:agent:{node}")
}
