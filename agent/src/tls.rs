//! The agent's side of mutual TLS: its identity, the cluster CA as the only trust anchor
//! for clients, and the rule that only the controller may call (see
//! [`lvs_proto::identity`]). rustls refuses plaintext, unknown CAs and expired
//! certificates during the handshake; [`authorize`] refuses a valid certificate that is
//! not the controller's.
use std::path::Path;
use std::sync::Arc;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::TlsPaths;

/// A certificate file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let b = std::fs::read(path).map_err(|e| TlsError {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if !b.starts_with(b"-----BEGIN") {
        return Err(TlsError { what, path: path.display().to_string(), reason: "not a PEM file".into() });
    }
    Ok(b)
}

fn tls_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError { what, path: path.display().to_string(), reason: e.to_string() }
}

/// The server TLS configuration: our certificate, client certificates required and
/// checked against the cluster CA (only), TLS 1.2+ on ring, HTTP/2 by ALPN.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = read_pem("CA certificate", &paths.ca)?;
    let cert = read_pem("agent certificate", &paths.cert)?;
    let key = read_pem("agent key", &paths.key)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
        roots.add(c).map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err("agent certificate", &paths.cert, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| tls_err("agent key", &paths.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| tls_err("CA certificate", &paths.ca, e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("agent certificate", &paths.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("agent certificate", &paths.cert, e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// URI subject-alternative names of a DER certificate.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::URI(u) = n {
                out.push((*u).to_string());
            }
        }
    }
    Ok(out)
}

/// Accept a call only from a peer whose (already CA-verified) leaf certificate carries the
/// controller identity. The reason is returned for the `PERMISSION_DENIED` status.
pub fn authorize(peer_leaf: Option<&[u8]>) -> Result<(), String> {
    let der =
        peer_leaf.ok_or("no client certificate: this agent accepts only the controller over mutual TLS")?;
    let uris = uri_sans(der)?;
    if uris.iter().any(|u| u == lvs_proto::identity::CONTROLLER_URI) {
        Ok(())
    } else {
        Err(format!(
            "client certificate is not the controller's (it names {}); only `lvsctl` may command an agent",
            if uris.is_empty() { "no URI".to_string() } else { uris.join(", ") }
        ))
    }
}
