//! Enrolment: how an agent gets its certificate without its key ever leaving the node.
//!
//! An agent whose certificate files are missing makes its key (`tls.key`, 0600), keeps a
//! one-time secret in `<state_dir>/pairing.json` (0600, valid [`DEFAULT_TTL`]) and serves
//! only the `Enrolment` service, over TLS with a temporary self-signed certificate for
//! that key. Its pairing code (`lvs-agent pairing-code`, root only; the journal gets only the pin) is the key's pin and
//! the secret ([`lvs_proto::pairing`]). `lvsctl node enroll NODE --code …` accepts only a
//! server holding the pinned key, proves the secret, takes the CSR, signs it with the
//! names from the definition and installs the certificate and CA; the agent checks them
//! ([`crate::server::credentials::check_signed`]), consumes the code and switches to mutual TLS.
//!
//! Refused: a wrong secret (after [`MAX_FAILURES`] the code is burned), an expired code,
//! a used code (the agent no longer serves enrolment), and a server without the pinned
//! key (refused by the controller before it sends the secret).
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lvs_proto::pairing::{PairingCode, SECRET_LEN, pin_of};
use lvs_proto::pb;
use rcgen::{KeyPair, PublicKeyData};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tonic::{Request, Response, Status};

use crate::server::credentials::{CredentialError, check_signed, csr_pem};
use crate::server::revoked::Revoked;
use lvs_proto::agent_config::TlsPaths;

/// How long a new pairing code is valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Wrong secrets one source address may send before it must wait: then 1 s, doubling to
/// [`MAX_WAIT`], before each next attempt. The code itself is never burned (that let anyone
/// on the network block enrolment with five guesses); 80 random bits are not guessed at
/// one try a minute.
pub const FREE_TRIES: u32 = 3;
/// The longest a source address waits between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Source addresses remembered (beyond, the one idle longest is forgotten).
const MAX_SOURCES: usize = 1024;
/// Largest enrolment message (a CSR, a certificate and a CA, a revocation list).
const MAX_MESSAGE: usize = 1 << 20;

/// Enrolment failures.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// No code to check against.
    #[error(
        "no pairing code on this node (used, or never made): run `lvs-agent pairing-code --new` on the node"
    )]
    NoCode,
    /// Past its expiry.
    #[error("the pairing code expired {0} s ago: run `lvs-agent pairing-code --new` on the node")]
    Expired(u64),
    /// The secret does not match.
    #[error("wrong pairing code ({0} wrong attempt(s) so far)")]
    Wrong(u32),
    /// Too many wrong secrets from this address lately.
    #[error("too many wrong pairing codes from {0}: try again in {1} ms")]
    Wait(std::net::IpAddr, u128),
    /// The pairing file.
    #[error("{path}: {reason}")]
    File {
        /// `pairing.json`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key or the certificate.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl From<EnrolError> for Status {
    fn from(e: EnrolError) -> Self {
        match &e {
            EnrolError::NoCode | EnrolError::Expired(_) | EnrolError::Wrong(_) => {
                Status::permission_denied(e.to_string())
            }
            EnrolError::Wait(..) => Status::resource_exhausted(e.to_string()),
            EnrolError::Credential(CredentialError::Refused(_)) => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

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

/// Whether the agent has everything mutual TLS needs (else it enrols).
pub fn is_enrolled(paths: &TlsPaths) -> bool {
    paths.ca.exists() && paths.cert.exists() && paths.key.exists()
}

/// The file enrolment leaves in the state directory: this node was enrolled once.
pub const ENROLLED_MARK: &str = "enrolled";

/// Where an agent stands with its credentials when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Key, certificate and CA present: serve mutual TLS.
    Enrolled,
    /// Never enrolled: make a key and wait for a pairing code.
    New,
    /// Enrolled once, but a credential file is gone: why, in words. Such an agent must not
    /// fall back to enrolment (a new code, anyone's CA, the stored spec never re-applied, a
    /// director's VIPs gone): it refuses to start and keeps what it has.
    Broken(String),
}

/// Where the agent whose files are `paths` and state `state_dir` stands. It was enrolled
/// once when enrolment's mark is there, when it holds an accepted spec (only an enrolled
/// agent accepts one), or when its CA or certificate file is there.
pub fn standing(paths: &TlsPaths, state_dir: &Path) -> Standing {
    if is_enrolled(paths) {
        return Standing::Enrolled;
    }
    let mark = state_dir.join(ENROLLED_MARK);
    let spec = state_dir.join(crate::reconcile::state::STATE_FILE);
    let evidence: Vec<String> = [
        (mark.exists(), format!("{} exists", mark.display())),
        (spec.exists(), format!("{} holds an accepted spec", spec.display())),
        (paths.ca.exists(), format!("{} exists", paths.ca.display())),
        (paths.cert.exists(), format!("{} exists", paths.cert.display())),
    ]
    .into_iter()
    .filter_map(|(seen, what)| seen.then_some(what))
    .collect();
    if evidence.is_empty() {
        return Standing::New;
    }
    let missing: Vec<String> = [&paths.key, &paths.cert, &paths.ca]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    Standing::Broken(format!(
        "this node was enrolled ({}) but {} missing: restore {} from a backup, or make it a new node \
         (remove {} and {}, then enrol it again with a new pairing code)",
        evidence.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        missing.join(" and "),
        mark.display(),
        spec.display()
    ))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    secret: String,
    expires_unix: u64,
    failures: u32,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The pairing secret of this node, in `<state_dir>/pairing.json`. Read on every attempt,
/// so `lvs-agent pairing-code --new` takes effect on a running agent.
#[derive(Debug, Clone)]
pub struct Pairing {
    path: PathBuf,
}

/// A code as shown to the admin.
#[derive(Debug, Clone)]
pub struct Shown {
    /// `ABCD-EFGH-…`.
    pub code: String,
    /// Expiry, seconds since the epoch.
    pub expires_unix: u64,
}

impl Pairing {
    /// The pairing file of the agent whose state lives in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self { path: state_dir.join("pairing.json") }
    }

    /// The state directory the pairing file lives in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn err(&self, e: impl std::fmt::Display) -> EnrolError {
        EnrolError::File { path: self.path.clone(), reason: e.to_string() }
    }

    fn load(&self) -> Result<Option<Stored>, EnrolError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| self.err(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn save(&self, s: &Stored) -> Result<(), EnrolError> {
        let json = serde_json::to_vec(s).expect("pairing state serialises");
        lvs_proto::files::atomic_write(&self.path, &json, 0o600).map_err(|e| self.err(e))
    }

    /// Run `f` holding the pairing lock (`pairing.lock` beside the file, flock(2)). The
    /// service and `lvs-agent pairing-code` are two processes that read, change and write
    /// the same file; without the lock one's code could be overwritten by the other's the
    /// moment after it was shown, or a wrong guess's count lost.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, EnrolError>) -> Result<T, EnrolError> {
        let lock_path = self.path.with_file_name("pairing.lock");
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.err(e))?;
        lock.lock().map_err(|e| self.err(e))?;
        // The lock goes with `lock` when it is dropped, after `f`.
        f()
    }

    fn issue_unlocked(&self, key: &KeyPair, ttl: Duration) -> Result<Shown, EnrolError> {
        let secret: [u8; SECRET_LEN] = rand::random();
        let s = Stored {
            secret: hex(&secret),
            expires_unix: now_unix().saturating_add(ttl.as_secs()),
            failures: 0,
        };
        self.save(&s)?;
        Ok(Shown { code: code(key, &secret), expires_unix: s.expires_unix })
    }

    fn shown_unlocked(&self, key: &KeyPair) -> Result<Option<Shown>, EnrolError> {
        let Some(s) = self.load()? else { return Ok(None) };
        if s.expires_unix <= now_unix() {
            return Ok(None);
        }
        let secret = unhex(&s.secret).ok_or_else(|| self.err("secret is not hex"))?;
        Ok(Some(Shown { code: code(key, &secret), expires_unix: s.expires_unix }))
    }

    /// A new secret valid for `ttl`, replacing any other.
    pub fn issue(&self, key: &KeyPair, ttl: Duration) -> Result<Shown, EnrolError> {
        self.locked(|| self.issue_unlocked(key, ttl))
    }

    /// The code in force, if there is one and it has not expired.
    pub fn shown(&self, key: &KeyPair) -> Result<Option<Shown>, EnrolError> {
        self.locked(|| self.shown_unlocked(key))
    }

    /// The code in force, or (none in force) a new one valid for `ttl`, as one step: two
    /// processes asking at once get the same code.
    pub fn shown_or_issue(&self, key: &KeyPair, ttl: Duration) -> Result<Shown, EnrolError> {
        self.locked(|| match self.shown_unlocked(key)? {
            Some(s) => Ok(s),
            None => self.issue_unlocked(key, ttl),
        })
    }

    /// Check a secret a caller sent; a wrong one is counted (the caller's address is slowed
    /// down by [`Backoff`], the code never burned).
    pub fn check(&self, given: &[u8]) -> Result<(), EnrolError> {
        self.locked(|| {
            let mut s = self.load()?.ok_or(EnrolError::NoCode)?;
            let now = now_unix();
            if s.expires_unix <= now {
                return Err(EnrolError::Expired(now - s.expires_unix));
            }
            let secret = unhex(&s.secret).ok_or_else(|| self.err("secret is not hex"))?;
            let code = PairingCode { pin: [0; lvs_proto::pairing::PIN_LEN], secret };
            if code.secret_matches(given) {
                return Ok(());
            }
            s.failures = s.failures.saturating_add(1);
            self.save(&s)?;
            Err(EnrolError::Wrong(s.failures))
        })
    }

    /// Forget the code (it was used).
    pub fn consume(&self) -> Result<(), EnrolError> {
        self.locked(|| self.consume_unlocked())
    }

    fn consume_unlocked(&self) -> Result<(), EnrolError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

fn code(key: &KeyPair, secret: &[u8; SECRET_LEN]) -> String {
    PairingCode { pin: pin_of(&key.subject_public_key_info()), secret: *secret }.text()
}

/// The key pin's part of a code as shown (`ABCD-EFGH-IJKL-MNOP`: its first four groups):
/// public, unlike the rest.
pub fn pin_text(code: &str) -> String {
    code.split('-').take(lvs_proto::pairing::PIN_LEN * 8 / 5 / 4).collect::<Vec<_>>().join("-")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; SECRET_LEN]> {
    let mut out = [0; SECRET_LEN];
    if s.len() != SECRET_LEN * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
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
trait HasSecret {
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

/// The pairing code of the node whose key is at `key` and state in `state_dir` (the key
/// made if there is none): the one in force, or with `new` (or none in force) a new one
/// valid for `ttl`. What `lvs-agent pairing-code` prints.
pub fn code_for(
    key: &Path,
    state_dir: &Path,
    new: bool,
    ttl: Duration,
) -> Result<Shown, EnrolTransportError> {
    let (key, _) = crate::server::credentials::load_or_make_key(key)?;
    let pairing = Pairing::new(state_dir);
    Ok(if new { pairing.issue(&key, ttl)? } else { pairing.shown_or_issue(&key, ttl)? })
}

/// Why enrolment could not be served.
#[derive(Debug, thiserror::Error)]
pub enum EnrolTransportError {
    /// The key or the pairing file.
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    /// Making the key or the temporary certificate.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// TLS set-up.
    #[error("enrolment TLS: {0}")]
    Tls(String),
    /// The gRPC server.
    #[error("serving enrolment: {0}")]
    Serve(#[from] tonic::transport::Error),
}
