//! The cluster's certificates (`lvsctl pki`): one CA per cluster, a certificate per agent
//! naming its node, and the controller's own certificate carrying the controller identity
//! (see [`lvs_proto::identity`]). Private keys are written 0600 and nothing is overwritten
//! without `force`.
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Failures of the PKI commands.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file exists and `--force` was not given.
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    /// No CA yet.
    #[error("no cluster CA in {0}; run `lvsctl pki init` first")]
    NoCa(PathBuf),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A name that cannot go into a certificate.
    #[error("node name `{0}` cannot be a DNS name in a certificate")]
    BadName(String),
}

/// Paths of one identity in the PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, 0600).
    pub key: PathBuf,
}

/// The PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

/// Certificates are valid this long; rotate with `pki issue --force`.
const VALIDITY_DAYS: i64 = 825;

impl Pki {
    /// The PKI in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate and key.
    pub fn ca(&self) -> Pair {
        self.pair("ca")
    }

    /// The controller's certificate and key.
    pub fn controller(&self) -> Pair {
        self.pair("controller")
    }

    /// The agent certificate and key of `node`.
    pub fn agent(&self, node: &str) -> Pair {
        self.pair(&format!("agent-{node}"))
    }

    fn pair(&self, stem: &str) -> Pair {
        Pair { cert: self.dir.join(format!("{stem}.pem")), key: self.dir.join(format!("{stem}.key")) }
    }

    /// Create the cluster CA and the controller certificate.
    pub fn init(&self, cluster: &str, force: bool) -> Result<Vec<PathBuf>, PkiError> {
        let ca = self.ca();
        let ctl = self.controller();
        for p in [&ca.cert, &ca.key, &ctl.cert, &ctl.key] {
            if p.exists() && !force {
                return Err(PkiError::Exists(p.clone()));
            }
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| PkiError::Io { path: self.dir.clone(), source })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, format!("lvs-dr cluster CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        write(&ca.cert, cert.pem().as_bytes(), 0o644)?;
        write(&ca.key, key.serialize_pem().as_bytes(), 0o600)?;
        self.issue_controller(true)?;
        Ok(vec![ca.cert, ca.key, ctl.cert, ctl.key])
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca = self.ca();
        if !ca.cert.exists() {
            return Err(PkiError::NoCa(self.dir.clone()));
        }
        let pem = read(&ca.cert)?;
        let key = KeyPair::from_pem(&read(&ca.key)?)?;
        Ok(Issuer::from_ca_cert_pem(&pem, key)?)
    }

    /// Issue (or with `force` re-issue) the controller's certificate.
    pub fn issue_controller(&self, force: bool) -> Result<Pair, PkiError> {
        self.issue(self.controller(), controller_params()?, force, VALIDITY_DAYS)
    }

    /// Issue (or with `force` re-issue) the agent certificate of `node`.
    pub fn issue_agent(&self, node: &str, force: bool) -> Result<Pair, PkiError> {
        self.issue_agent_valid(node, force, VALIDITY_DAYS)
    }

    /// [`Pki::issue_agent`] with a chosen validity (negative: already expired; for tests
    /// of expiry refusal).
    pub fn issue_agent_valid(&self, node: &str, force: bool, days: i64) -> Result<Pair, PkiError> {
        // The name becomes a file name here: never let it leave the PKI directory, even
        // when a caller skipped the definition's validation.
        if crate::validate::dns_label_problem(node).is_some() {
            return Err(PkiError::BadName(node.into()));
        }
        let pair = self.agent(node);
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, node);
        let dns = node.to_string().try_into().map_err(|_| PkiError::BadName(node.into()))?;
        params.subject_alt_names = vec![
            SanType::DnsName(dns),
            SanType::URI(
                lvs_proto::identity::agent_uri(node)
                    .try_into()
                    .map_err(|_| PkiError::BadName(node.into()))?,
            ),
        ];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(pair, params, force, days)
    }

    /// A controller certificate with a chosen validity, at `pair` (tests of expiry).
    pub fn issue_controller_at(&self, pair: Pair, days: i64) -> Result<Pair, PkiError> {
        self.issue(pair, controller_params()?, true, days)
    }

    fn issue(
        &self,
        pair: Pair,
        mut params: CertificateParams,
        force: bool,
        days: i64,
    ) -> Result<Pair, PkiError> {
        for p in [&pair.cert, &pair.key] {
            if p.exists() && !force {
                return Err(PkiError::Exists(p.clone()));
            }
        }
        let issuer = self.issuer()?;
        validity(&mut params, days);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write(&pair.cert, cert.pem().as_bytes(), 0o644)?;
        write(&pair.key, key.serialize_pem().as_bytes(), 0o600)?;
        Ok(pair)
    }
}

/// The controller's certificate: the controller URI, client authentication only.
fn controller_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "lvsctl");
    params.subject_alt_names = vec![SanType::URI(lvs_proto::identity::CONTROLLER_URI.try_into()?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    if days >= 0 {
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(days);
    } else {
        params.not_before = now + time::Duration::days(days * 2);
        params.not_after = now + time::Duration::days(days);
    }
}

fn read(p: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(p).map_err(|source| PkiError::Io { path: p.to_path_buf(), source })
}

/// Write a file with `mode` from its creation on (a key is never briefly world-readable).
fn write(p: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    lvs_proto::files::atomic_write(p, data, mode)
        .map_err(|source| PkiError::Io { path: p.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_cannot_write_outside_the_pki_directory() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.init("lab", false).unwrap();
        let e = pki.issue_agent("../../escaped", false).unwrap_err();
        assert!(matches!(e, PkiError::BadName(_)), "{e}");
        assert!(!dir.path().join("escaped.pem").exists() && !dir.path().join("agent-escaped.pem").exists());
        pki.issue_agent("rs1", false).expect("a DNS label is fine");
    }
}
