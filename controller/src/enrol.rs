//! The admin's side of enrolment (`lvsctl node enroll NODE --code …`) — the agent's side
//! and the protocol are in `lvs_agent::server::enrol`. The controller dials the node's agent
//! address from the definition and accepts only a TLS server holding the key the code
//! pins; inside that session it proves the code's secret, takes the agent's CSR, checks
//! that it is for the pinned key, signs it with the node's names from the definition
//! ([`Pki::sign_agent_csr`]) and installs certificate, CA and revocation list. The node's
//! private key never travels.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use lvs_proto::pairing::{PIN_LEN, PairingCode, pin_of};
use lvs_proto::pb;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::codegen::{BoxFuture, Service, http::Uri};
use tonic::transport::Endpoint;

use crate::pki::{Issued, Pki, PkiError};

/// Why an enrolment did not happen (nothing was installed on the node unless the error
/// says so).
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The code as typed.
    #[error(transparent)]
    Code(#[from] lvs_proto::pairing::CodeError),
    /// The node's address.
    #[error("node {node}: agent endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The node.
        node: String,
        /// Its address in the definition.
        endpoint: String,
        /// The transport or TLS error, or the agent's status message.
        reason: String,
    },
    /// No TLS session with the pinned key.
    #[error("node {node}: {reason}")]
    Connect {
        /// The node.
        node: String,
        /// The transport or TLS error of the attempt.
        reason: String,
    },
    /// The agent refused (wrong, expired or used code, a certificate it would not take).
    #[error("node {node}: the agent refused: {reason}")]
    Refused {
        /// The node.
        node: String,
        /// Its reason.
        reason: String,
    },
    /// The agent sent something that does not fit.
    #[error("node {node}: {reason}")]
    Mismatch {
        /// The node.
        node: String,
        /// What the agent presented against what the definition expects.
        reason: String,
    },
    /// Signing the node's request with the local CA failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// Accept exactly the server whose key the pairing code pins (and check its handshake
/// signatures, so holding the key is proved, not claimed).
#[derive(Debug)]
struct PinnedKey {
    pin: [u8; PIN_LEN],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (_, c) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|e| rustls::Error::General(format!("unparsable certificate: {e}")))?;
        if pin_of(c.public_key().raw) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's key is not the one the pairing code names: not this node's agent (or a man in the middle); nothing was sent"
                    .into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Dials one address with the pinned-key TLS configuration (tonic's own TLS cannot take a
/// custom verifier).
#[derive(Clone)]
struct Pinned {
    addr: SocketAddr,
    name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl Service<Uri> for Pinned {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(me.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(me.tls).connect(me.name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Enrol `node`, whose agent listens on `endpoint`, with the code its agent showed.
/// Returns what the ledger recorded of the certificate installed.
pub async fn enroll(
    pki: &Pki,
    node: &str,
    endpoint: &str,
    code: &str,
    deadline: Duration,
) -> Result<Issued, EnrolError> {
    let code = PairingCode::parse(code)?;
    let bad = |reason: String| EnrolError::Endpoint { node: node.into(), endpoint: endpoint.into(), reason };
    let addr: SocketAddr = endpoint.parse().map_err(|e: std::net::AddrParseError| bad(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey { pin: code.pin, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(node.to_string()).map_err(|e| bad(e.to_string()))?;
    let connector = Pinned { addr, name, tls: Arc::new(tls) };
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(deadline)
        .timeout(deadline)
        .connect_with_connector(connector)
        .await
        .map_err(|e| EnrolError::Connect { node: node.into(), reason: connect_reason(&e) })?;
    let mut client = pb::enrolment_client::EnrolmentClient::new(channel);
    let refused = |s: tonic::Status| match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => {
            EnrolError::Connect { node: node.into(), reason: status_reason(&s) }
        }
        _ => EnrolError::Refused { node: node.into(), reason: s.message().to_string() },
    };
    let secret = code.secret.to_vec();
    let csr =
        client.csr(pb::EnrolmentCsrRequest { secret: secret.clone() }).await.map_err(refused)?.into_inner();
    if csr.node != node {
        return Err(EnrolError::Mismatch {
            node: node.into(),
            reason: format!(
                "the agent there is configured as `{}`, not `{node}`; fix its agent.toml",
                csr.node
            ),
        });
    }
    if pin_of(&Pki::csr_key(node, &csr.csr_pem)?) != code.pin {
        return Err(EnrolError::Mismatch {
            node: node.into(),
            reason: "the CSR is for another key than the one the code pins; nothing was signed".into(),
        });
    }
    let signed = pki.sign_agent_csr(node, &csr.csr_pem)?;
    let ca_pem = std::fs::read_to_string(pki.ca().cert)
        .map_err(|source| PkiError::Io { path: pki.ca().cert, source })?;
    client
        .install(pb::EnrolmentInstallRequest {
            secret,
            certificate_pem: signed.pem,
            ca_pem,
            revocation_list: pki.revocation_list()?,
        })
        .await
        .map_err(refused)?;
    Ok(signed.issued)
}

/// The TLS reason under a transport error (a pin mismatch, an agent asking for a client
/// certificate because it is enrolled already): the innermost source, else `top`.
fn innermost(top: String, mut src: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut msg = top;
    while let Some(e) = src {
        msg = e.to_string();
        src = e.source();
    }
    explain(msg)
}

fn connect_reason(e: &tonic::transport::Error) -> String {
    innermost(e.to_string(), std::error::Error::source(e))
}

fn status_reason(s: &tonic::Status) -> String {
    innermost(s.message().to_string(), std::error::Error::source(s))
}

fn explain(msg: String) -> String {
    if msg.contains("CertificateRequired") || msg.contains("certificate required") {
        format!(
            "{msg}: the agent asks for a client certificate, so it is enrolled already (a code works once)"
        )
    } else {
        msg
    }
}
