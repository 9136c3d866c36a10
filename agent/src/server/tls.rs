//! The agent's side of mutual TLS: its identity ([`crate::server::credentials`]), presented from
//! a [`crate::server::credentials::LiveCert`] so a rotation needs no restart, and the cluster CA
//! as the only trust anchor for clients. rustls refuses plaintext, unknown CAs and
//! expired certificates during the handshake; the door ([`crate::server::listener`]) then keeps a
//! revoked certificate out of every caller's slots, and [`crate::server::authz`] refuses, with the
//! reason, a certificate that names no caller, is revoked, or lacks the method's role.
use std::path::Path;
use std::sync::Arc;

use crate::server::credentials::{CredentialError, Credentials};
use lvs_proto::agent_config::TlsPaths;

/// A certificate file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

fn tls_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError { what, path: path.display().to_string(), reason: e.to_string() }
}

/// What the door serves with: the TLS configuration and the identity behind it.
#[derive(Clone)]
pub struct ServerTls {
    /// rustls' configuration (client certificates required).
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate in force and its rotation.
    pub credentials: Arc<Credentials>,
}

/// The server TLS configuration of `node`: its checked certificate (see
/// [`Credentials::load`]), client certificates required and checked against the cluster
/// CA (only), TLS 1.2+ on ring, HTTP/2 by ALPN.
pub fn server_config(node: &str, paths: &TlsPaths) -> Result<ServerTls, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let credentials = Credentials::load(node, paths).map_err(|e| match e {
        CredentialError::Io { path, source } => tls_err("certificate file", &path, source),
        CredentialError::Key { path, reason } => tls_err("agent key", &path, reason),
        other => tls_err("agent certificate", &paths.cert, other),
    })?;
    let ca = std::fs::read(&paths.ca).map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
        roots.add(c).map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("agent certificate", &paths.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(credentials.live());
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls { config: Arc::new(cfg), credentials: Arc::new(credentials) })
}
