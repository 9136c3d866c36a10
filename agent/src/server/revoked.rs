//! The certificate serials this agent refuses although the CA signed them (an admin who
//! left, a viewer key that leaked), as the cluster CA says in its revocation list.
//!
//! The list is an X.509 CRL signed by the cluster CA, whose CRL number grows with every
//! revocation (`lvsctl pki revoke` makes it; `SetRevoked`, and every apply, push it).
//! What makes it authoritative rather than whatever an admin last sent:
//! - only a list the CA signed is taken (its signature checked against the CA this node
//!   trusts), so a stolen admin key cannot forge one;
//! - only a list at least as new as the one held is taken (a lower CRL number is refused,
//!   and an equal one must name the same serials), so neither an empty list nor an old copy
//!   of the PKI directory rolls a revocation back;
//! - it is kept in `<state_dir>/revoked.crl`, and a file that cannot be read as a list the
//!   agent took refuses start (`Revoked::open`), rather than reading as "nothing revoked".
//!
//! A node enrolled before lists were signed has `revoked.json` (serials only): it is read
//! as list number 0, which any signed list replaces.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use x509_parser::prelude::FromDer;

/// Most serials an agent keeps (a cluster revoking more has a CA to replace).
pub const MAX_REVOKED: usize = 10_000;

/// Largest revocation list taken (10,000 entries are about 400 KiB).
pub const MAX_LIST_BYTES: usize = 1 << 20;

/// The file a signed list is kept in.
pub const LIST_FILE: &str = "revoked.crl";

/// The file of a node enrolled before lists were signed.
const LEGACY_FILE: &str = "revoked.json";

/// Why a revocation list was not taken (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum RevokedError {
    /// Not a CRL, or not one this agent can use.
    #[error("revocation list: {0}")]
    Bad(String),
    /// Not signed by this node's cluster CA.
    #[error("revocation list: not signed by this node's cluster CA ({0}); nothing changed")]
    NotSigned(String),
    /// Older than the one held.
    #[error(
        "revocation list number {got} is older than the one this node holds ({held}); nothing changed (a newer list comes from `lvsctl pki revoke`)"
    )]
    Older {
        /// Its CRL number.
        got: u64,
        /// The held list's.
        held: u64,
    },
    /// As new as the one held, but naming other serials.
    #[error("revocation list number {0} names other serials than the list of that number this node holds")]
    Forked(u64),
    /// Over [`MAX_REVOKED`].
    #[error("{0} serials: an agent keeps at most {MAX_REVOKED}")]
    TooMany(usize),
    /// The file.
    #[error("{path}: {reason}")]
    File {
        /// `revoked.crl` or `revoked.json`.
        path: PathBuf,
        /// What could not be read, parsed or verified against the CA.
        reason: String,
    },
}

/// A list as held: its CRL number and serials.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct List {
    number: u64,
    serials: BTreeSet<String>,
}

/// The list, in memory and on disk.
#[derive(Debug)]
pub struct Revoked {
    dir: PathBuf,
    list: RwLock<List>,
    /// Counts replacements: the door closes the connections of newly revoked serials.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Revoked {
    /// The list kept in `dir`, or why it cannot be read (the agent then refuses to start:
    /// a damaged list must not read as "nothing revoked"). No file: nothing revoked yet.
    pub fn open(dir: &Path) -> Result<Self, RevokedError> {
        let list = match std::fs::read(dir.join(LIST_FILE)) {
            Ok(der) => parse(&der).map_err(|e| RevokedError::File {
                path: dir.join(LIST_FILE),
                reason: format!(
                    "{e}; it was taken signed, so the file was damaged since: copy the CA holder's revoked.crl here (or remove this file and let the next `lvsctl apply` push the list)"
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => legacy(dir)?,
            Err(e) => return Err(RevokedError::File { path: dir.join(LIST_FILE), reason: e.to_string() }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            list: RwLock::new(list),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// [`Revoked::open`], for callers that checked already (the daemon opens the list
    /// before anything else and refuses to start when it cannot): an unreadable list is
    /// logged and holds nothing.
    pub fn load(dir: &Path) -> Self {
        Self::open(dir).unwrap_or_else(|e| {
            tracing::error!(error = %e, "revocation list unreadable");
            Self {
                dir: dir.to_path_buf(),
                list: RwLock::default(),
                changed: tokio::sync::watch::Sender::new(0),
            }
        })
    }

    /// Turns changed whenever the list is replaced.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether `serial` (as [`lvs_proto::identity::serial_hex`] writes it) is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        self.list.read().expect("revoked").serials.contains(serial)
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.list.read().expect("revoked").serials.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The CRL number of the list held (0: none signed yet).
    pub fn number(&self) -> u64 {
        self.list.read().expect("revoked").number
    }

    /// Take the CRL `der` if the CA of `ca_pem` signed it and it is at least as new as the
    /// list held (see [the module](self)); store it; the number of serials it names.
    pub fn replace(&self, der: &[u8], ca_pem: &[u8]) -> Result<usize, RevokedError> {
        if der.len() > MAX_LIST_BYTES {
            return Err(RevokedError::Bad(format!("{} bytes (at most {MAX_LIST_BYTES})", der.len())));
        }
        verify(der, ca_pem)?;
        let new = parse(der)?;
        let mut held = self.list.write().expect("revoked");
        if new.number < held.number {
            return Err(RevokedError::Older { got: new.number, held: held.number });
        }
        if new.number == held.number && new.serials != held.serials {
            return Err(RevokedError::Forked(new.number));
        }
        if *held == new {
            return Ok(new.serials.len());
        }
        let path = self.dir.join(LIST_FILE);
        lvs_proto::files::atomic_write(&path, der, 0o600)
            .map_err(|e| RevokedError::File { path, reason: e.to_string() })?;
        let n = new.serials.len();
        *held = new;
        drop(held);
        self.changed.send_modify(|v| *v += 1);
        Ok(n)
    }
}

/// The number and serials of a CRL (its signature not checked here).
fn parse(der: &[u8]) -> Result<List, RevokedError> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| RevokedError::Bad(format!("not a DER X.509 CRL: {e}")))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| RevokedError::Bad("no CRL number (or one past 2^64)".into()))?;
    let serials: BTreeSet<String> =
        crl.iter_revoked_certificates().map(|r| lvs_proto::identity::serial_hex(r.raw_serial())).collect();
    if serials.len() > MAX_REVOKED {
        return Err(RevokedError::TooMany(serials.len()));
    }
    Ok(List { number, serials })
}

/// Whether the CA certificate in `ca_pem` issued and signed the CRL `der`.
fn verify(der: &[u8], ca_pem: &[u8]) -> Result<(), RevokedError> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| RevokedError::Bad(format!("not a DER X.509 CRL: {e}")))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem)
        .map_err(|e| RevokedError::NotSigned(format!("the CA file is not PEM: {e}")))?;
    let (_, ca) = x509_parser::prelude::X509Certificate::from_der(&pem.contents)
        .map_err(|e| RevokedError::NotSigned(format!("the CA certificate: {e}")))?;
    if crl.issuer() != ca.subject() {
        return Err(RevokedError::NotSigned(format!("issued by `{}`", crl.issuer())));
    }
    crl.verify_signature(ca.public_key()).map_err(|e| RevokedError::NotSigned(format!("signature: {e}")))
}

/// The list of a node enrolled before lists were signed: number 0.
fn legacy(dir: &Path) -> Result<List, RevokedError> {
    let path = dir.join(LEGACY_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice::<BTreeSet<String>>(&b)
            .map(|serials| List { number: 0, serials })
            .map_err(|e| RevokedError::File { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(List::default()),
        Err(e) => Err(RevokedError::File { path, reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        let pem = cert.pem();
        Ca { issuer: Issuer::new(p, key), pem }
    }

    fn crl(ca: &Ca, number: u64, serials: &[u8]) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&[*s]),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca.issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    #[test]
    fn only_a_newer_list_the_ca_signed_is_taken_and_it_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (ca("ours"), ca("theirs"));
        let r = Revoked::open(dir.path()).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.replace(&crl(&ours, 2, &[0x0a, 0x1b]), ours.pem.as_bytes()).unwrap(), 2);
        assert!(r.contains("0a") && r.contains("1b"));
        // Rolled back: an older list, or an empty one with an old number.
        let e = r.replace(&crl(&ours, 1, &[]), ours.pem.as_bytes()).unwrap_err();
        assert!(matches!(e, RevokedError::Older { got: 1, held: 2 }), "{e}");
        // Forged: another CA's list, however new.
        let e = r.replace(&crl(&theirs, 9, &[]), ours.pem.as_bytes()).unwrap_err();
        assert!(matches!(e, RevokedError::NotSigned(_)), "{e}");
        // The same number naming other serials.
        assert!(matches!(r.replace(&crl(&ours, 2, &[]), ours.pem.as_bytes()), Err(RevokedError::Forked(2))));
        // The same list again: fine, nothing changes.
        assert_eq!(r.replace(&crl(&ours, 2, &[0x0a, 0x1b]), ours.pem.as_bytes()).unwrap(), 2);
        assert!(r.contains("0a") && r.number() == 2, "refused lists changed nothing");
        let again = Revoked::open(dir.path()).unwrap();
        assert!(again.contains("1b") && again.len() == 2 && again.number() == 2);
        // A damaged file refuses start instead of reading as "nothing revoked".
        std::fs::write(dir.path().join(LIST_FILE), b"garbage").unwrap();
        assert!(Revoked::open(dir.path()).is_err());
        assert!(r.replace(b"garbage", ours.pem.as_bytes()).is_err());
    }

    #[test]
    fn a_legacy_list_is_number_zero_and_a_damaged_one_refuses_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), br#"["0a"]"#).unwrap();
        let r = Revoked::open(dir.path()).unwrap();
        assert!(r.contains("0a") && r.number() == 0);
        std::fs::write(dir.path().join(LEGACY_FILE), b"{").unwrap();
        assert!(Revoked::open(dir.path()).is_err());
    }
}
