//! One scrape of an agent's `/metrics`, as Prometheus makes it: HTTPS with the caller's
//! own certificate (the agent checks it as it checks every call), the agent's certificate
//! checked against the cluster CA and the node's name. `lvsctl metrics` uses it, and so
//! can a test that wants the exposition a Prometheus server would get.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pki::Pki;

/// The largest exposition read (a director with tens of thousands of destinations stays
/// far below); a peer sending more is cut off.
pub const MAX_BODY: usize = 64 << 20;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// A PKI file is missing or unusable.
    #[error("PKI file {path}: {reason}")]
    Pki {
        /// The file.
        path: String,
        /// What could not be read or parsed in it.
        reason: String,
    },
    /// No connection, no TLS, or no complete answer within the deadline.
    #[error("{node} at {addr}: {reason}")]
    Connect {
        /// The node.
        node: String,
        /// Where it was asked.
        addr: SocketAddr,
        /// The transport, TLS or HTTP error of the scrape.
        reason: String,
    },
    /// The agent answered, but not with the exposition.
    #[error("{node} at {addr} answered {status}: {body}")]
    Refused {
        /// The node.
        node: String,
        /// Where it was asked.
        addr: SocketAddr,
        /// The HTTP status line's code.
        status: u16,
        /// The agent's reason.
        body: String,
    },
}

fn pki_err(path: &std::path::Path, e: impl std::fmt::Display) -> ScrapeError {
    ScrapeError::Pki { path: path.display().to_string(), reason: e.to_string() }
}

/// The TLS client of the caller whose PKI directory is `pki`.
fn client_config(pki: &Pki) -> Result<rustls::ClientConfig, ScrapeError> {
    let ca = pki.ca().cert;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).map_err(|e| pki_err(&ca, e))? {
        roots.add(c.map_err(|e| pki_err(&ca, e))?).map_err(|e| pki_err(&ca, e))?;
    }
    let me = pki.controller();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&me.cert)
        .map_err(|e| pki_err(&me.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pki_err(&me.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&me.key).map_err(|e| pki_err(&me.key, e))?;
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| pki_err(&me.cert, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| pki_err(&me.cert, e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// GET `/metrics` from `node`'s agent at `addr` within `deadline`; the exposition.
pub async fn scrape(
    pki: &Pki,
    node: &str,
    addr: SocketAddr,
    deadline: Duration,
) -> Result<String, ScrapeError> {
    let cfg = Arc::new(client_config(pki)?);
    let fail = |reason: String| ScrapeError::Connect { node: node.into(), addr, reason };
    let name = ServerName::try_from(node.to_string()).map_err(|e| fail(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| fail(e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\nUser-Agent: lvsctl\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await.map_err(|e| fail(e.to_string()))?;
        let mut raw = Vec::new();
        (&mut tls)
            .take(MAX_BODY as u64 + 64 * 1024)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, ScrapeError>(raw)
    };
    let raw = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| fail(format!("no complete answer within {}", humantime::format_duration(deadline))))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| fail("no HTTP header in the answer".into()))?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(ScrapeError::Refused { node: node.into(), addr, status, body: body.trim().to_string() });
    }
    // hyper answers a known length; a chunked answer would need decoding, which is refused
    // here rather than passed on garbled.
    if head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:")) {
        return Err(fail("chunked answers are not read".into()));
    }
    Ok(body.to_string())
}
