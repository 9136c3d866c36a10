//! The `Enrolment` service an unenrolled agent serves: wrong guesses slow their source, the caps keep a flood out, and the first good Install ends it.
use super::error::EnrolError;
use super::error::EnrolTransportError;
use super::pairing::DEFAULT_TTL;
use super::pairing::FREE_TRIES;
use super::pairing::Pairing;
use super::pairing::pin_text;
use super::standing::ENROLLED_MARK;
use super::standing::is_enrolled;
use crate::server::credentials::{CredentialError, check_signed, csr_pem};
use crate::server::revoked::Revoked;
use lvs_proto::agent_config::TlsPaths;
use lvs_proto::pb;
use rcgen::KeyPair;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use tonic::{Request, Response, Status};

/// The longest a source address waits between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Source addresses remembered (beyond, the one idle longest is forgotten).
pub(super) const MAX_SOURCES: usize = 1024;

/// Largest enrolment message (a CSR, a certificate and a CA, a revocation list).
pub(super) const MAX_MESSAGE: usize = 1 << 20;

/// Wrong pairing secrets per source address, and when each may try again.
#[derive(Default)]
pub struct Backoff {
    sources: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl Backoff {
    /// Whether `ip` may try now; if not, how long it must still wait.
    pub fn admit(&self, ip: std::net::IpAddr) -> Result<(), EnrolError> {
        let s = self.sources.lock().expect("enrolment backoff");
        match s.get(&ip) {
            Some(&(_, next)) if next > std::time::Instant::now() => {
                Err(EnrolError::Wait(ip, (next - std::time::Instant::now()).as_millis()))
            }
            _ => Ok(()),
        }
    }

    /// `ip` sent a wrong secret: past [`FREE_TRIES`], its next attempt waits 1 s, doubling
    /// to [`MAX_WAIT`].
    pub fn failed(&self, ip: std::net::IpAddr) {
        let mut s = self.sources.lock().expect("enrolment backoff");
        let now = std::time::Instant::now();
        if s.len() >= MAX_SOURCES && !s.contains_key(&ip) {
            // Bounded: the source that may try soonest is forgotten first.
            if let Some(oldest) = s.iter().min_by_key(|(_, (_, next))| *next).map(|(k, _)| *k) {
                s.remove(&oldest);
            }
        }
        let e = s.entry(ip).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        if e.0 >= FREE_TRIES {
            let wait = Duration::from_secs(1u64 << (e.0 - FREE_TRIES).min(6)).min(MAX_WAIT);
            e.1 = now + wait;
            tracing::warn!(source = %ip, failures = e.0, wait_ms = wait.as_millis() as u64, "wrong pairing codes: this address waits");
        }
    }
}

/// The `Enrolment` service of an unenrolled agent.
pub struct Service {
    node: String,
    key: Arc<KeyPair>,
    paths: TlsPaths,
    pairing: Pairing,
    revoked: Arc<Revoked>,
    /// One attempt at a time: the failure count is read, then written.
    attempt: Mutex<()>,
    done: watch::Sender<bool>,
    backoff: Backoff,
}

impl Service {
    /// The service for `node`, whose key is `key` and whose files go to `paths`; `done`
    /// turns true once a certificate is installed.
    pub fn new(
        node: &str,
        key: Arc<KeyPair>,
        paths: TlsPaths,
        pairing: Pairing,
        revoked: Arc<Revoked>,
        done: watch::Sender<bool>,
    ) -> Self {
        Self {
            node: node.into(),
            key,
            paths,
            pairing,
            revoked,
            attempt: Mutex::new(()),
            done,
            backoff: Backoff::default(),
        }
    }

    /// The secret of `req` checked, its source address slowed down after wrong ones.
    fn checked<T: HasSecret>(&self, req: &Request<T>) -> Result<(), EnrolError> {
        let ip = req.remote_addr().map(|a| a.ip()).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        self.backoff.admit(ip)?;
        let r = self.pairing.check(req.get_ref().secret());
        if matches!(r, Err(EnrolError::Wrong(_))) {
            self.backoff.failed(ip);
        }
        r
    }

    /// Install what the signer sent: checked first, then the CA and the certificate
    /// written (the key is there already), the revocation list taken, the code consumed.
    fn install(
        &self,
        r: &pb::EnrolmentInstallRequest,
    ) -> Result<lvs_proto::reply::CertificateInfo, EnrolError> {
        let (_, info) =
            check_signed(&self.node, r.ca_pem.as_bytes(), r.certificate_pem.as_bytes(), &self.key)?;
        let write = |p: &Path, b: &[u8]| {
            lvs_proto::files::atomic_write(p, b, 0o644)
                .map_err(|source| CredentialError::Io { path: p.to_path_buf(), source })
        };
        if !r.revocation_list.is_empty() {
            self.revoked
                .replace(&r.revocation_list, r.ca_pem.as_bytes())
                .map_err(|e| CredentialError::Refused(e.to_string()))?;
        }
        write(&self.paths.ca, r.ca_pem.as_bytes())?;
        write(&self.paths.cert, r.certificate_pem.as_bytes())?;
        // From now on a missing credential file is an error, not a reason to enrol again.
        write(&self.pairing.dir().join(ENROLLED_MARK), b"enrolled\n")?;
        self.pairing.consume()?;
        Ok(info)
    }
}

/// An enrolment request, which carries the pairing secret.
pub(super) trait HasSecret {
    fn secret(&self) -> &[u8];
}

impl HasSecret for pb::EnrolmentCsrRequest {
    fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl HasSecret for pb::EnrolmentInstallRequest {
    fn secret(&self) -> &[u8] {
        &self.secret
    }
}

#[tonic::async_trait]
impl pb::enrolment_server::Enrolment for Service {
    async fn csr(
        &self,
        req: Request<pb::EnrolmentCsrRequest>,
    ) -> Result<Response<pb::EnrolmentCsrResponse>, Status> {
        let _one = self.attempt.lock().await;
        self.checked(&req)?;
        let csr_pem = csr_pem(&self.node, &self.key).map_err(EnrolError::from)?;
        Ok(Response::new(pb::EnrolmentCsrResponse { node: self.node.clone(), csr_pem }))
    }

    async fn install(
        &self,
        req: Request<pb::EnrolmentInstallRequest>,
    ) -> Result<Response<pb::EnrolmentInstallResponse>, Status> {
        let _one = self.attempt.lock().await;
        self.checked(&req)?;
        let info = self.install(req.get_ref())?;
        tracing::info!(serial = %info.serial, not_after = info.not_after_unix, "enrolled; switching to mutual TLS");
        let _ = self.done.send(true);
        Ok(Response::new(pb::EnrolmentInstallResponse {
            serial: info.serial,
            not_after_unix: info.not_after_unix,
        }))
    }
}

/// Serve enrolment on `listener` until a certificate is installed (true) or `shutdown`
/// resolves first (false). Its key pin is logged, never the secret; a still valid code
/// survives a restart, so a code the admin already copied keeps working.
pub async fn serve_until_enrolled(
    node: &str,
    paths: &TlsPaths,
    state_dir: &Path,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, EnrolTransportError> {
    let (key, made) = crate::server::credentials::load_or_make_key(&paths.key)?;
    if made {
        tracing::info!(path = %paths.key.display(), "made this node's key (it never leaves the node)");
    }
    let pairing = Pairing::new(state_dir);
    let shown = pairing.shown_or_issue(&key, DEFAULT_TTL)?;
    // The pin only, never the secret: whoever reads the journal (the adm group, a log
    // shipper) could otherwise enrol the node to a CA of their own before the admin does.
    // The pin is the code's first half, so the admin can tell the code shown is this key's.
    let pin = pin_text(&shown.code);
    tracing::warn!(
        node,
        pin = %pin,
        expires_unix = shown.expires_unix,
        "not enrolled: a pairing code is waiting; as root on this node, `lvs-agent pairing-code` shows it (it starts with {pin}), then on the admin box `lvsctl node enroll {node} --code …`"
    );
    let mut tls =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| EnrolTransportError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(crate::server::credentials::FixedCert(
                crate::server::credentials::enrolment_cert(node, &key)?,
            )));
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let (done, mut enrolled) = watch::channel(false);
    let revoked = Arc::new(Revoked::load(state_dir));
    let service = Service::new(node, Arc::new(key), paths.clone(), pairing, revoked, done);
    let stop = async {
        tokio::select! {
            _ = enrolled.wait_for(|d| *d) => {}
            () = shutdown => {}
        }
    };
    // Anyone on the network reaches this door: every cap explicit. A few connections per
    // source address, of a few streams each (one enrolment is two calls), small messages (a length prefix
    // claiming more is refused before anything is reserved), small headers.
    let limits = crate::server::listener::Limits {
        max_pending: 32,
        max_connections: 32,
        // Per source address: one address cannot hold the door shut.
        per_caller: 4,
        admin_reserve: 0,
        handshake_timeout: Duration::from_secs(5),
    };
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .max_concurrent_streams(Some(4))
        .concurrency_limit_per_connection(2)
        .http2_max_header_list_size(16 << 10)
        .max_connection_age(Duration::from_secs(60))
        .max_connection_age_grace(Duration::from_secs(10))
        .add_service(
            pb::enrolment_server::EnrolmentServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            crate::server::listener::incoming(
                listener,
                Arc::new(tls),
                limits,
                crate::server::listener::Gate::Anyone,
            ),
            stop,
        )
        .await?;
    Ok(is_enrolled(paths))
}
