//! Certificates across the fleet: rotate agents' certificates over the mutual TLS they
//! already have, and push the revocation list. (Enrolment, before there is mutual TLS, is
//! [`crate::enrol`].)
use lvs_proto::reply::CertificateInfo;

use crate::fleet::{Fleet, NodeError};
use crate::ops::NodeResult;
use crate::pki::Pki;

/// Rotate `node`'s certificate: the agent makes a fresh key and a CSR, the CA signs it
/// with the definition's names, the agent checks and installs it and presents it on new
/// connections (open ones, and the traffic it steers, are untouched).
pub async fn rotate(fleet: &Fleet, pki: &Pki, node: &str) -> Result<CertificateInfo, NodeError> {
    let (said, csr) = fleet.renew(node).await?;
    if said != node {
        return Err(NodeError::Refused(format!("the agent says it is `{said}`; not signing for `{node}`")));
    }
    let signed = pki.sign_agent_csr(node, &csr).map_err(|e| NodeError::Failed(e.to_string()))?;
    fleet.install_certificate(node, &signed.pem).await
}

/// Rotate the certificates of `nodes`, one at a time (a failure stops nothing else).
pub async fn rotate_all(fleet: &Fleet, pki: &Pki, nodes: &[String]) -> Vec<NodeResult<CertificateInfo>> {
    let mut out = Vec::new();
    for n in nodes {
        out.push((n.clone(), rotate(fleet, pki, n).await));
    }
    out
}

/// Push the PKI's revocation list to every node of `nodes` at once.
pub async fn push_revoked(
    fleet: &Fleet,
    pki: &Pki,
    nodes: &[String],
) -> Result<Vec<NodeResult<u32>>, crate::pki::PkiError> {
    // The list is read before any node is asked: a ledger that cannot be read is the
    // admin box's failure, reported as such, not as every node's.
    let list = pki.revocation_list()?;
    Ok(fleet
        .each(nodes, |n| {
            let list = list.clone();
            async move { fleet.set_revoked(&n, &list).await }
        })
        .await)
}
