//! The agent's own certificate. Its private key is made on this node and never sent
//! anywhere: enrolment and rotation send a certificate signing request for it, and the
//! certificate that comes back is checked before it is installed — it must be for this
//! key, chain to the cluster CA, name this node and be valid now. The certificate in force
//! lives in a [`LiveCert`], which every new TLS handshake reads, so a rotation takes
//! effect without a restart and without touching connections already open.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use lvs_proto::identity::{agent_uri, serial_hex};
use lvs_proto::reply::CertificateInfo;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PublicKeyData, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use lvs_proto::agent_config::TlsPaths;

/// Failures of the agent's certificate handling.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error, kept as the source of this one.
        source: std::io::Error,
    },
    /// A key file that is not a usable key.
    #[error("agent key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM parser or rustls said of the key.
        reason: String,
    },
    /// Making a key, a CSR or the temporary certificate.
    #[error("certificate machinery: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A certificate this node will not install or use.
    #[error("certificate refused: {0}")]
    Refused(String),
    /// `InstallCertificate` without a `Renew` before it.
    #[error("no renewal in progress: ask for a CSR (Renew) first")]
    NoRenewal,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError + '_ {
    move |source| CredentialError::Io { path: path.to_path_buf(), source }
}

/// The key at `path`, made there (0600) when there is none yet. The flag says it was made.
pub fn load_or_make_key(path: &Path) -> Result<(KeyPair, bool), CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => KeyPair::from_pem(&pem)
            .map(|k| (k, false))
            .map_err(|e| CredentialError::Key { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate()?;
            // Exclusive: the service starting and `lvs-agent pairing-code` run by hand can
            // race here, and must end with one key, not each with its own.
            if lvs_proto::files::create_exclusive(path, key.serialize_pem().as_bytes(), 0o600)
                .map_err(io(path))?
            {
                Ok((key, true))
            } else {
                load_or_make_key(path)
            }
        }
        Err(e) => Err(CredentialError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// The names an agent certificate carries; the signer uses its own records for them,
/// these are only what the agent asks for.
fn agent_params(node: &str) -> Result<CertificateParams, CredentialError> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, node);
    let bad = |_| CredentialError::Refused(format!("node name `{node}` cannot go into a certificate"));
    p.subject_alt_names = vec![
        SanType::DnsName(node.to_string().try_into().map_err(bad)?),
        SanType::URI(agent_uri(node).try_into().map_err(bad)?),
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(p)
}

/// A CSR (PEM) for `key`, asking for `node`'s names.
pub fn csr_pem(node: &str, key: &KeyPair) -> Result<String, CredentialError> {
    Ok(agent_params(node)?.serialize_request(key)?.pem()?)
}

/// A self-signed certificate for `key`, presented only while enrolling: the controller
/// trusts it by the pairing code's pin of `key`, not by anything it says.
pub fn enrolment_cert(node: &str, key: &KeyPair) -> Result<Arc<CertifiedKey>, CredentialError> {
    let mut p = agent_params(node)?;
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(2);
    let cert = p.self_signed(key)?;
    certified(vec![cert.der().clone()], key)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
) -> Result<Arc<CertifiedKey>, CredentialError> {
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| CredentialError::Refused(format!("key encoding: {e}")))?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| CredentialError::Refused(format!("key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Serial and expiry of a DER certificate.
pub fn info_of(der: &[u8]) -> Result<CertificateInfo, CredentialError> {
    let (_, c) =
        X509Certificate::from_der(der).map_err(|e| CredentialError::Refused(format!("unparsable: {e}")))?;
    Ok(CertificateInfo {
        serial: serial_hex(c.raw_serial()),
        not_after_unix: c.validity().not_after.timestamp().max(0) as u64,
    })
}

/// The checks a certificate passes before this node uses it: it is for `key`, chains to
/// `ca_pem`, names `node` (DNS and URI) for server use, and is valid now. Returns the
/// parsed chain and its serial and expiry.
pub fn check_signed(
    node: &str,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key: &KeyPair,
) -> Result<(Vec<CertificateDer<'static>>, CertificateInfo), CredentialError> {
    let refuse = |s: String| CredentialError::Refused(s);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| refuse(format!("certificate PEM: {e}")))?;
    let leaf = chain.first().ok_or_else(|| refuse("no certificate in the PEM".into()))?;
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| refuse(format!("unparsable: {e}")))?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(refuse("it is for another key than this node's".into()));
    }
    let uri = agent_uri(node);
    let names_uri = parsed.subject_alternative_name().ok().flatten().is_some_and(|san| {
        san.value.general_names.iter().any(|n| matches!(n, GeneralName::URI(u) if *u == uri))
    });
    if !names_uri {
        return Err(refuse(format!("it does not carry this node's identity {uri}")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.map_err(|e| refuse(format!("CA PEM: {e}")))?).map_err(|e| refuse(format!("CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(refuse("no CA certificate given".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    use rustls::client::danger::ServerCertVerifier;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| refuse(format!("CA: {e}")))?;
    let name = ServerName::try_from(node.to_string()).map_err(|e| refuse(format!("node name: {e}")))?;
    verifier
        .verify_server_cert(leaf, &chain[1..], &name, &[], UnixTime::now())
        .map_err(|e| refuse(format!("{e}")))?;
    let info = info_of(leaf)?;
    Ok((chain, info))
}

/// One certificate for every handshake (the enrolment certificate).
#[derive(Debug)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The certificate in force, swapped whole by a rotation.
#[derive(Debug)]
pub struct LiveCert {
    current: RwLock<(Arc<CertifiedKey>, CertificateInfo)>,
}

impl LiveCert {
    /// The certificate now presented.
    pub fn info(&self) -> CertificateInfo {
        self.current.read().expect("live cert").1.clone()
    }

    fn set(&self, key: Arc<CertifiedKey>, info: CertificateInfo) {
        *self.current.write().expect("live cert") = (key, info);
    }
}

impl rustls::server::ResolvesServerCert for LiveCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("live cert").0))
    }
}

/// Where a rotation writes `path`'s new content before it takes its place.
fn next(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".next");
    s.into()
}

/// Settle a rotation a crash cut short. The key's rename is the commit: with `KEY.next`
/// still there it never happened (the old pair is whole: the new files go); with only
/// `CERT.next` left the new key is in place and its certificate is moved in after it.
pub fn finish_rotation(paths: &TlsPaths) -> Result<(), CredentialError> {
    let (key_next, cert_next) = (next(&paths.key), next(&paths.cert));
    if key_next.exists() {
        for p in [&key_next, &cert_next] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(p)(e)),
                _ => {}
            }
        }
        tracing::warn!(
            "a certificate rotation was cut short before it took effect; the previous certificate stays"
        );
    } else if cert_next.exists() {
        std::fs::rename(&cert_next, &paths.cert).map_err(io(&paths.cert))?;
        tracing::warn!("a certificate rotation was cut short after the key; its certificate is now in place");
    }
    Ok(())
}

/// The agent's identity: its files, the certificate in force, and the key of a rotation
/// in progress (between `Renew` and `InstallCertificate`).
#[derive(Debug)]
pub struct Credentials {
    node: String,
    paths: TlsPaths,
    live: Arc<LiveCert>,
    renewal: Mutex<Option<KeyPair>>,
}

impl Credentials {
    /// Load `paths` for `node`, checked as [`check_signed`] checks a new certificate
    /// (so `lvs-agent --check` and start-up refuse a mismatched or expired pair).
    pub fn load(node: &str, paths: &TlsPaths) -> Result<Self, CredentialError> {
        finish_rotation(paths)?;
        let read = |p: &Path| std::fs::read(p).map_err(io(p));
        let ca = read(&paths.ca)?;
        let cert = read(&paths.cert)?;
        let key_pem = String::from_utf8(read(&paths.key)?)
            .map_err(|_| CredentialError::Key { path: paths.key.clone(), reason: "not PEM text".into() })?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| CredentialError::Key { path: paths.key.clone(), reason: e.to_string() })?;
        let (chain, info) = check_signed(node, &ca, &cert, &key)
            .map_err(|e| CredentialError::Refused(format!("{}: {e}", paths.cert.display())))?;
        let live = Arc::new(LiveCert { current: RwLock::new((certified(chain, &key)?, info)) });
        Ok(Self { node: node.to_string(), paths: paths.clone(), live, renewal: Mutex::new(None) })
    }

    /// The cluster CA this node trusts (PEM, read from its file now).
    pub fn ca_pem(&self) -> Result<Vec<u8>, CredentialError> {
        std::fs::read(&self.paths.ca).map_err(io(&self.paths.ca))
    }

    /// The resolver TLS handshakes read the certificate from.
    pub fn live(&self) -> Arc<LiveCert> {
        Arc::clone(&self.live)
    }

    /// The certificate presented now.
    pub fn info(&self) -> CertificateInfo {
        self.live.info()
    }

    /// Rotation, step 1: a fresh key (kept in memory until step 2) and its CSR.
    pub fn renew(&self) -> Result<String, CredentialError> {
        let key = KeyPair::generate()?;
        let csr = csr_pem(&self.node, &key)?;
        *self.renewal.lock().expect("renewal") = Some(key);
        Ok(csr)
    }

    /// Rotation, step 2: check `cert_pem` against the renewal key and the CA, store key and
    /// certificate (the key first: a crash between leaves the old certificate with a key
    /// that no longer matches, which `--check` names), then present it on new handshakes.
    pub fn install(&self, cert_pem: &[u8]) -> Result<CertificateInfo, CredentialError> {
        let mut renewal = self.renewal.lock().expect("renewal");
        let key = renewal.as_ref().ok_or(CredentialError::NoRenewal)?;
        let ca = std::fs::read(&self.paths.ca).map_err(io(&self.paths.ca))?;
        let (chain, info) = check_signed(&self.node, &ca, cert_pem, key)?;
        let certified = certified(chain, key)?;
        // Both files beside their places first, then the key's rename commits: a crash at
        // any point leaves a pair that loads (see [`finish_rotation`]), never a new key with
        // the old certificate.
        let (key_next, cert_next) = (next(&self.paths.key), next(&self.paths.cert));
        lvs_proto::files::atomic_write(&key_next, key.serialize_pem().as_bytes(), 0o600)
            .map_err(io(&key_next))?;
        lvs_proto::files::atomic_write(&cert_next, cert_pem, 0o644).map_err(io(&cert_next))?;
        std::fs::rename(&key_next, &self.paths.key).map_err(io(&self.paths.key))?;
        std::fs::rename(&cert_next, &self.paths.cert).map_err(io(&self.paths.cert))?;
        self.live.set(certified, info.clone());
        *renewal = None;
        tracing::info!(serial = %info.serial, not_after = info.not_after_unix, "certificate rotated");
        Ok(info)
    }
}
