//! The agent's side of mutual TLS: its identity ([`crate::credentials`]), presented from
//! a [`crate::credentials::LiveCert`] so a rotation needs no restart, and the cluster CA
//! as the only trust anchor for clients. rustls refuses plaintext, unknown CAs and
//! expired certificates during the handshake, and (once the agent is up) revoked ones;
//! [`crate::authz`] then refuses a valid certificate that names no caller, is revoked, or
//! lacks the method's role.
use std::path::Path;
use std::sync::Arc;

use crate::config::TlsPaths;
use crate::credentials::{CredentialError, Credentials};
use crate::revoked::Revoked;

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
    /// The revocation list the handshake checks client certificates against, once the
    /// agent that keeps it is up ([`ServerTls::check_revocations`]).
    revocations: Arc<std::sync::OnceLock<Arc<Revoked>>>,
}

impl ServerTls {
    /// From now on, refuse in the handshake (alert `certificate_revoked`) every client
    /// certificate whose serial `revoked` holds: a revoked caller never gets a connection,
    /// let alone a slot. The first list given stays.
    pub fn check_revocations(&self, revoked: Arc<Revoked>) {
        let _ = self.revocations.set(revoked);
    }
}

/// The cluster CA's verifier, plus the agent's revocation list.
#[derive(Debug)]
struct Revoking {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    revocations: Arc<std::sync::OnceLock<Arc<Revoked>>>,
}

impl rustls::server::danger::ClientCertVerifier for Revoking {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let ok = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(revoked) = self.revocations.get() {
            use x509_parser::prelude::FromDer;
            let (_, cert) = x509_parser::prelude::X509Certificate::from_der(end_entity.as_ref())
                .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
            let serial = lvs_proto::identity::serial_hex(cert.raw_serial());
            if revoked.contains(&serial) {
                tracing::warn!(%serial, "handshake refused: the client certificate is revoked");
                return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
            }
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
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
    let revocations = Arc::new(std::sync::OnceLock::new());
    let verifier = Arc::new(Revoking { inner: verifier, revocations: Arc::clone(&revocations) });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("agent certificate", &paths.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(credentials.live());
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls { config: Arc::new(cfg), credentials: Arc::new(credentials), revocations })
}
