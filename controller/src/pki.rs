//! The cluster's certificates (`lvsctl pki`): one CA per cluster (10 years), a
//! certificate per agent naming its node and one per admin or viewer (90 days, so that
//! rotation is routine), see [`lvs_proto::identity`]. Agent certificates are signed from
//! the CSR an agent makes at enrolment or rotation, with the names of the definition, so
//! their keys never come here; `pki issue` (the offline fallback) still makes both.
//! Every certificate issued is recorded in `issued.json` (serial, subject, expiry,
//! revoked), which `pki list` shows and `pki revoke` marks. Private keys are written 0600
//! and nothing is overwritten without `force`.
use std::path::{Path, PathBuf};

use lvs_proto::identity::{Caller, Role};
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
        /// The operating system's error, kept as the source of this one.
        source: std::io::Error,
    },
    /// Certificate generation.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A name that cannot go into a certificate.
    #[error("node name `{0}` cannot be a DNS name in a certificate")]
    BadName(String),
    /// A CSR that cannot be signed.
    #[error("certificate signing request from {node}: {reason}")]
    BadCsr {
        /// The node it came from.
        node: String,
        /// What is wrong with the request: unparsable, a bad signature or a name it may not claim.
        reason: String,
    },
    /// A bare name that several holders share.
    #[error("`{what}` names {subjects}: say which (e.g. admin:NAME, or a serial from `lvsctl pki list`)")]
    Ambiguous {
        /// As given.
        what: String,
        /// The holders it matches.
        subjects: String,
    },
    /// The ledger of issued certificates.
    #[error("{path}: {reason}")]
    Ledger {
        /// `issued.json`.
        path: PathBuf,
        /// What could not be read, parsed or written.
        reason: String,
    },
    /// `pki revoke` named nothing issued.
    #[error(
        "no certificate issued to `{0}` (or with that serial) in the ledger; `lvsctl pki list` shows them"
    )]
    NothingToRevoke(String),
}

impl PkiError {
    /// Whether the admin asked for something impossible (a name that matches nothing or
    /// several holders, a bad name), as opposed to a file or certificate that failed here:
    /// the first is a usage error, the second a local failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, PkiError::BadName(_) | PkiError::Ambiguous { .. } | PkiError::NothingToRevoke(_))
    }
}

/// One certificate issued, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    /// Serial ([`lvs_proto::identity::serial_hex`]).
    pub serial: String,
    /// `agent:rs1`, `admin:alice`, `viewer:grafana`.
    pub subject: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after_unix: u64,
    /// Refused by every agent once the list reaches it.
    #[serde(default)]
    pub revoked: bool,
}

impl Issued {
    /// The name part of the subject (`alice` of `admin:alice`).
    pub fn name(&self) -> &str {
        self.subject.split_once(':').map_or(self.subject.as_str(), |(_, n)| n)
    }
}

/// A certificate signed for a CSR.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signed certificate, PEM-encoded, to send back to the node.
    pub pem: String,
    /// What the ledger now says of it.
    pub issued: Issued,
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

/// Leaf certificates (agents, admins, viewers) are valid this long: `status` warns
/// [`EXPIRY_WARNING_DAYS`] ahead and `lvsctl pki rotate` renews them.
pub const VALIDITY_DAYS: i64 = 90;
/// `status` warns this many days before a certificate expires.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// The CA is valid this long.
const CA_DAYS: i64 = 3650;

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
        validity(&mut params, CA_DAYS);
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

    /// Issue (or with `force` re-issue) the controller's certificate: the admin
    /// `controller`, the identity of whoever holds this PKI directory with its CA key.
    pub fn issue_controller(&self, force: bool) -> Result<Pair, PkiError> {
        let admin = Caller { name: "controller".into(), role: Role::Admin };
        self.issue(self.controller(), caller_params(&admin)?, force, VALIDITY_DAYS, &admin.to_string())
    }

    /// A certificate for a person or program calling agents, written as a PKI directory
    /// of its own in `out` (`ca.pem`, `controller.pem`, `controller.key`: what
    /// `lvsctl --pki OUT` reads), without the CA key.
    pub fn issue_caller(&self, caller: &Caller, out: &Path, force: bool) -> Result<Pair, PkiError> {
        if crate::validate::dns_label_problem(&caller.name).is_some() {
            return Err(PkiError::BadName(caller.name.clone()));
        }
        let theirs = Pki::new(out);
        let pair = theirs.controller();
        let ca = theirs.ca().cert;
        if ca.exists() && !force {
            return Err(PkiError::Exists(ca));
        }
        let pair = self.issue(pair, caller_params(caller)?, force, VALIDITY_DAYS, &caller.to_string())?;
        write(&ca, read(&self.ca().cert)?.as_bytes(), 0o644)?;
        Ok(pair)
    }

    /// Sign an agent's CSR for `node`: the CSR's signature is checked and its key used,
    /// but the names are the definition's (`node`), never what the CSR asks for.
    pub fn sign_agent_csr(&self, node: &str, csr_pem: &str) -> Result<Signed, PkiError> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr { node: node.into(), reason: e.to_string() })?;
        self.sign_agent_key(node, &csr.public_key)
    }

    /// The public key a CSR is for (DER SubjectPublicKeyInfo), its signature checked.
    pub fn csr_key(node: &str, csr_pem: &str) -> Result<Vec<u8>, PkiError> {
        use rcgen::PublicKeyData;
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr { node: node.into(), reason: e.to_string() })?;
        Ok(csr.public_key.subject_public_key_info())
    }

    fn sign_agent_key(&self, node: &str, key: &impl rcgen::PublicKeyData) -> Result<Signed, PkiError> {
        let mut params = agent_params(node)?;
        let issuer = self.issuer()?;
        validity(&mut params, VALIDITY_DAYS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(key, &issuer)?;
        let issued = self.record(cert.der(), &format!("agent:{node}"))?;
        Ok(Signed { pem: cert.pem(), issued })
    }

    /// The ledger: every certificate issued from this PKI directory.
    pub fn issued(&self) -> Result<Vec<Issued>, PkiError> {
        let path = self.ledger();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| PkiError::Ledger { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(PkiError::Io { path, source }),
        }
    }

    /// Whether this directory keeps a ledger (the CA holder's does; an admin's own does not).
    pub fn has_ledger(&self) -> bool {
        self.ledger().exists()
    }

    fn ledger(&self) -> PathBuf {
        self.dir.join("issued.json")
    }

    fn save_ledger(&self, all: &[Issued]) -> Result<(), PkiError> {
        let json = serde_json::to_vec_pretty(all).expect("the ledger serialises");
        write(&self.ledger(), &json, 0o600)
    }

    /// Run `f` holding the ledger's lock (an exclusive `flock` on `issued.lock`): `pki
    /// revoke` beside an enrolment or a rotation (each a read-modify-write of the ledger)
    /// cannot lose the other's change.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, PkiError>) -> Result<T, PkiError> {
        use std::os::fd::AsRawFd;
        let path = self.dir.join("issued.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| PkiError::Io { path: path.clone(), source })?;
        // SAFETY: flock on a descriptor this function owns; released when `file` closes.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(PkiError::Io { path, source: std::io::Error::last_os_error() });
        }
        f()
    }

    fn record(&self, der: &[u8], subject: &str) -> Result<Issued, PkiError> {
        let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Ledger {
            path: self.ledger(),
            reason: format!("new certificate unparsable: {e}"),
        })?;
        let issued = Issued {
            serial: lvs_proto::identity::serial_hex(c.raw_serial()),
            subject: subject.to_string(),
            not_after_unix: c.validity().not_after.timestamp().max(0) as u64,
            revoked: false,
        };
        self.locked(|| {
            let mut all = self.issued()?;
            all.push(issued.clone());
            self.save_ledger(&all)
        })?;
        Ok(issued)
    }

    /// Mark revoked every certificate issued to `what` (a name such as `alice` or
    /// `admin:alice`, or a serial). Returns those newly marked; the caller pushes
    /// [`Pki::revocation_list`] to the agents.
    pub fn revoke(&self, what: &str) -> Result<Vec<Issued>, PkiError> {
        let want = what.to_ascii_lowercase().replace(':', "");
        self.locked(|| {
            let mut all = self.issued()?;
            let matches = |i: &Issued| i.subject == what || i.name() == what || i.serial == want;
            // A bare name must mean one holder: `controller` is the CA holder's admin
            // certificate, and could also be a node's name.
            let mut subjects: Vec<String> =
                all.iter().filter(|i| matches(i)).map(|i| i.subject.clone()).collect();
            subjects.sort();
            subjects.dedup();
            if subjects.len() > 1 {
                return Err(PkiError::Ambiguous { what: what.into(), subjects: subjects.join(", ") });
            }
            let mut hit = Vec::new();
            for i in &mut all {
                if matches(i) && !i.revoked {
                    i.revoked = true;
                    hit.push(i.clone());
                }
            }
            if subjects.is_empty() {
                return Err(PkiError::NothingToRevoke(what.into()));
            }
            self.save_ledger(&all)?;
            if !hit.is_empty() {
                self.write_crl(&all)?;
            }
            Ok(hit)
        })
    }

    /// The cluster's revocation list: an X.509 CRL signed by the CA, whose CRL number grows
    /// with every revocation (made, number 1, if this PKI has none yet). Agents take only a
    /// list the CA signed and at least as new as theirs, so no caller can roll one back.
    pub fn revocation_list(&self) -> Result<Vec<u8>, PkiError> {
        self.locked(|| match std::fs::read(self.crl_path()) {
            Ok(der) => Ok(der),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.write_crl(&self.issued()?),
            Err(source) => Err(PkiError::Io { path: self.crl_path(), source }),
        })
    }

    fn crl_path(&self) -> PathBuf {
        self.dir.join("revoked.crl")
    }

    /// Sign and store a CRL of `all`'s revoked certificates, numbered one past the stored
    /// one. Call with the ledger locked.
    fn write_crl(&self, all: &[Issued]) -> Result<Vec<u8>, PkiError> {
        let previous = match std::fs::read(self.crl_path()) {
            Ok(der) => crl_number(&der).ok_or_else(|| PkiError::Ledger {
                path: self.crl_path(),
                reason: "not a CRL with a CRL number".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(PkiError::Io { path: self.crl_path(), source }),
        };
        let now = time::OffsetDateTime::now_utc();
        let revoked_certs = all
            .iter()
            .filter(|i| i.revoked)
            .filter_map(|i| {
                let bytes = (0..i.serial.len() / 2)
                    .map(|k| u8::from_str_radix(i.serial.get(2 * k..2 * k + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                Some(rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&bytes),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            // Agents do not expire a list (an old one still revokes what it names); only a
            // newer one replaces it.
            next_update: now + time::Duration::days(CA_DAYS),
            crl_number: rcgen::SerialNumber::from(previous + 1),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let der = params.signed_by(&self.issuer()?)?.der().to_vec();
        write(&self.crl_path(), &der, 0o644)?;
        Ok(der)
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
        self.issue(pair, agent_params(node)?, force, days, &format!("agent:{node}"))
    }

    /// A controller certificate with a chosen validity, at `pair` (tests of expiry).
    pub fn issue_controller_at(&self, pair: Pair, days: i64) -> Result<Pair, PkiError> {
        let admin = Caller { name: "controller".into(), role: Role::Admin };
        self.issue(pair, caller_params(&admin)?, true, days, &admin.to_string())
    }

    fn issue(
        &self,
        pair: Pair,
        mut params: CertificateParams,
        force: bool,
        days: i64,
        subject: &str,
    ) -> Result<Pair, PkiError> {
        for p in [&pair.cert, &pair.key] {
            if p.exists() && !force {
                return Err(PkiError::Exists(p.clone()));
            }
        }
        let issuer = self.issuer()?;
        validity(&mut params, days);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write(&pair.cert, cert.pem().as_bytes(), 0o644)?;
        write(&pair.key, key.serialize_pem().as_bytes(), 0o600)?;
        self.record(cert.der(), subject)?;
        Ok(pair)
    }
}

/// 16 random bytes, the top bit clear (a positive DER integer of at most 16 bytes).
/// (rcgen's default is a hash of the key, which a rotation reusing it would repeat.)
fn random_serial() -> rcgen::SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&b)
}

/// An agent's certificate: its node as DNS name and agent URI, server use only.
fn agent_params(node: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, node);
    let dns = node.to_string().try_into().map_err(|_| PkiError::BadName(node.into()))?;
    params.subject_alt_names = vec![
        SanType::DnsName(dns),
        SanType::URI(
            lvs_proto::identity::agent_uri(node).try_into().map_err(|_| PkiError::BadName(node.into()))?,
        ),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// An admin's or viewer's certificate: their URI, client authentication only.
fn caller_params(caller: &Caller) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, caller.to_string());
    params.subject_alt_names =
        vec![SanType::URI(caller.uri().try_into().map_err(|_| PkiError::BadName(caller.name.clone()))?)];
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

/// The CRL number of a DER CRL.
pub fn crl_number(der: &[u8]) -> Option<u64> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    let n = crl.crl_number()?;
    u64::try_from(n).ok()
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

    #[test]
    fn every_revocation_makes_a_newer_signed_list_and_a_bare_name_must_be_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.init("lab", false).unwrap();
        let first = pki.revocation_list().unwrap();
        assert_eq!(crl_number(&first), Some(1));
        assert_eq!(pki.revocation_list().unwrap(), first, "asking again makes no new list");
        let alice = Caller { name: "alice".into(), role: Role::Admin };
        pki.issue_caller(&alice, &dir.path().join("alice"), false).unwrap();
        pki.revoke("alice").unwrap();
        let second = pki.revocation_list().unwrap();
        assert_eq!(crl_number(&second), Some(2));
        // `controller` is the CA holder's admin and here a node too: refused, not both revoked.
        pki.issue_agent("controller", false).unwrap();
        let e = pki.revoke("controller").unwrap_err();
        assert!(matches!(e, PkiError::Ambiguous { .. }), "{e}");
        assert!(pki.issued().unwrap().iter().all(|i| i.name() != "controller" || !i.revoked));
        pki.revoke("agent:controller").expect("named exactly");
    }

    #[test]
    fn a_revocation_beside_issuing_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.init("lab", false).unwrap();
        for n in 0..8 {
            let c = Caller { name: format!("r{n}"), role: Role::Viewer };
            pki.issue_caller(&c, &dir.path().join(format!("r{n}")), false).unwrap();
        }
        let issuer = {
            let pki = Pki::new(dir.path().join("pki"));
            let out = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for n in 0..16 {
                    let c = Caller { name: format!("i{n}"), role: Role::Viewer };
                    pki.issue_caller(&c, &out.join(format!("i{n}")), false).unwrap();
                }
            })
        };
        for n in 0..8 {
            pki.revoke(&format!("viewer:r{n}")).unwrap();
        }
        issuer.join().unwrap();
        let all = pki.issued().unwrap();
        assert_eq!(all.iter().filter(|i| i.revoked).count(), 8, "a revocation was lost");
        assert_eq!(all.iter().filter(|i| i.name().starts_with('i')).count(), 16, "an issue was lost");
    }
}
