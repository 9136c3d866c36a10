//! HTTPS probes' TLS: the connector a check's settings make (the system's roots, a CA file of the check's own, or no verification where the definition says so).
use lvs_proto::spec::{TlsProbe, TlsVerify};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// The largest CA file a check may name (a bundle of a few hundred CAs).
pub(crate) const MAX_CA_FILE: u64 = 1 << 20;

/// The TLS connector of an HTTPS check and the name it presents: the SNI, or the address
/// (no SNI is sent for an address; the certificate must then name it).
pub(crate) fn connector(
    t: &TlsProbe,
    target: SocketAddr,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match &t.verify {
        TlsVerify::System => builder.with_root_certificates(system_roots()?).with_no_client_auth(),
        TlsVerify::CaFile(f) => builder.with_root_certificates(ca_file(f)?).with_no_client_auth(),
        TlsVerify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    let name = match &t.sni {
        Some(n) => ServerName::try_from(n.clone()).map_err(|e| format!("SNI `{n}`: {e}"))?,
        None => ServerName::IpAddress(target.ip().into()),
    };
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// The director's trust store, read once per process.
pub(crate) fn system_roots() -> Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("the system trust store holds no CA certificate{why}"));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The CA certificates of a PEM file.
pub fn ca_file(path: &str) -> Result<Arc<rustls::RootCertStore>, String> {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    // A regular file of bounded size: `/dev/zero` or a FIFO named by a spec must not hang
    // or fill the agent.
    let f = std::fs::File::open(path).map_err(|e| format!("CA file {path}: {e}"))?;
    let m = f.metadata().map_err(|e| format!("CA file {path}: {e}"))?;
    if !m.is_file() {
        return Err(format!("CA file {path} is not a regular file"));
    }
    let mut pem = Vec::new();
    f.take(MAX_CA_FILE + 1).read_to_end(&mut pem).map_err(|e| format!("CA file {path}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("CA file {path} is larger than {MAX_CA_FILE} bytes"));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA file {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("CA file {path} holds no usable certificate"));
    }
    Ok(Arc::new(roots))
}

/// Accepts any certificate (the definition said `verify = false`); the handshake's
/// signatures are still checked, so the peer holds the key of what it presented.
#[derive(Debug)]
pub(crate) struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ca_file_that_is_no_regular_file_or_too_big_is_refused_at_once() {
        let e = super::ca_file("/dev/zero").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; (super::MAX_CA_FILE + 1) as usize]).unwrap();
        let e = super::ca_file(big.to_str().unwrap()).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}
