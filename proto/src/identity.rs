//! Who is who on the wire. Every certificate is issued by the cluster CA (`lvsctl pki`) and
//! carries a URI subject-alternative name saying who holds it and what it may do:
//!
//! | holder | URI SAN | DNS SAN | may |
//! | --- | --- | --- | --- |
//! | an admin (`lvsctl`) | `urn:lvs-dr:admin:NAME` | — | every call |
//! | a viewer (monitoring, a colleague) | `urn:lvs-dr:viewer:NAME` | — | read-only calls |
//! | the agent of node `rs1` | `urn:lvs-dr:agent:rs1` | `rs1` | nothing (server only) |
//!
//! Certificates of before identities had one shared controller URI
//! (`urn:lvs-dr:controller`); it is still read, as the admin named `controller`.
//! The role is in the CA-signed certificate, so an agent needs no user database; a
//! revoked serial ([`crate::pb::SetRevokedRequest`]) is refused even while it is valid.
//! The controller dials an agent with the node name as TLS server name, so it only talks
//! to the agent it meant to.

/// URI SAN of the shared controller certificate of before per-admin identities.
pub const CONTROLLER_URI: &str = "urn:lvs-dr:controller";

/// URI SAN of the agent certificate of `node`.
pub fn agent_uri(node: &str) -> String {
    format!("urn:lvs-dr:agent:{node}")
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read-only calls: status, IPVS tables, events, facts.
    Viewer,
    /// Every call.
    Admin,
}

impl Role {
    /// `admin` or `viewer`, as the URI and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(format!("role `{s}`: expected admin or viewer")),
        }
    }
}

/// A person or program that calls agents: a name and a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// Who (the certificate's name).
    pub name: String,
    /// What they may do.
    pub role: Role,
}

impl Caller {
    /// The URI SAN that names this caller in a certificate.
    pub fn uri(&self) -> String {
        format!("urn:lvs-dr:{}:{}", self.role.as_str(), self.name)
    }

    /// The caller a URI SAN names, if it names one (an agent's URI does not).
    pub fn from_uri(uri: &str) -> Option<Caller> {
        if uri == CONTROLLER_URI {
            return Some(Caller { name: "controller".into(), role: Role::Admin });
        }
        let rest = uri.strip_prefix("urn:lvs-dr:")?;
        let (role, name) = rest.split_once(':')?;
        let role = role.parse().ok()?;
        (!name.is_empty()).then(|| Caller { name: name.to_string(), role })
    }
}

/// `admin:alice`: how events and logs show who asked.
impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.role.as_str(), self.name)
    }
}

/// A certificate serial as `lvsctl pki list`, the agents' revocation lists and
/// `status` write it: lower-case hex of its big-endian bytes, leading zero bytes dropped.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_drop_leading_zero_bytes_only() {
        assert_eq!(serial_hex(&[0, 0x0a, 0x00, 0xff]), "0a00ff");
        assert_eq!(serial_hex(&[0]), "00");
    }

    #[test]
    fn uris_round_trip_and_agents_are_not_callers() {
        for c in [
            Caller { name: "alice".into(), role: Role::Admin },
            Caller { name: "grafana".into(), role: Role::Viewer },
        ] {
            assert_eq!(Caller::from_uri(&c.uri()), Some(c));
        }
        assert_eq!(Caller::from_uri(CONTROLLER_URI).unwrap().role, Role::Admin);
        assert_eq!(Caller::from_uri(&agent_uri("rs1")), None);
        assert_eq!(Caller::from_uri("urn:lvs-dr:root:x"), None);
        assert_eq!(Caller::from_uri("urn:lvs-dr:admin:"), None);
        assert_eq!(Caller::from_uri("urn:other:admin:x"), None);
    }
}
