//! The certificate serials this agent refuses although the CA signed them (an admin who
//! left, a viewer key that leaked). `lvsctl pki revoke` pushes the whole list to every
//! agent (`SetRevoked`, and again with every apply); it is kept in
//! `<state_dir>/revoked.json` so a restart does not forget it. The list is replaced, never
//! merged, and capped, so a caller cannot grow it without bound.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Most serials an agent keeps (a cluster revoking more has a CA to replace).
pub const MAX_REVOKED: usize = 10_000;

/// Why a revocation list was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RevokedError {
    /// Not hex, or too long for a serial.
    #[error("serials[{index}]: `{serial}` is not a certificate serial (hex, at most 40 digits)")]
    BadSerial {
        /// Its place in the list.
        index: usize,
        /// As sent.
        serial: String,
    },
    /// Over [`MAX_REVOKED`].
    #[error("{0} serials: an agent keeps at most {MAX_REVOKED}")]
    TooMany(usize),
    /// The file.
    #[error("{path}: {source}")]
    Io {
        /// `revoked.json`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The list, in memory and on disk.
#[derive(Debug)]
pub struct Revoked {
    path: PathBuf,
    set: RwLock<BTreeSet<String>>,
    /// Counts replacements: the door closes the connections of newly revoked serials.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Revoked {
    /// The list kept in `dir` (empty when there is no file yet; a damaged file is logged
    /// and read as empty rather than stopping the agent from serving the admin who will
    /// push the list again).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join("revoked.json");
        let set = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<BTreeSet<String>>(&b).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "revocation list unreadable; pushing it again fixes this");
                BTreeSet::new()
            }),
            Err(_) => BTreeSet::new(),
        };
        Self { path, set: RwLock::new(set), changed: tokio::sync::watch::Sender::new(0) }
    }

    /// Turns changed whenever the list is replaced.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether `serial` (as [`lvs_proto::identity::serial_hex`] writes it) is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        self.set.read().expect("revoked").contains(serial)
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.set.read().expect("revoked").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replace the list (validated whole first: a bad entry changes nothing) and store it.
    pub fn replace(&self, serials: &[String]) -> Result<usize, RevokedError> {
        if serials.len() > MAX_REVOKED {
            return Err(RevokedError::TooMany(serials.len()));
        }
        let mut set = BTreeSet::new();
        for (index, s) in serials.iter().enumerate() {
            let s = s.trim().to_ascii_lowercase().replace(':', "");
            if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RevokedError::BadSerial { index, serial: serials[index].clone() });
            }
            set.insert(s);
        }
        let json = serde_json::to_vec(&set).expect("a set of strings serialises");
        lvs_proto::files::atomic_write(&self.path, &json, 0o600)
            .map_err(|source| RevokedError::Io { path: self.path.clone(), source })?;
        let n = set.len();
        *self.set.write().expect("revoked") = set;
        self.changed.send_modify(|v| *v += 1);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_survives_a_restart_and_a_bad_entry_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Revoked::load(dir.path());
        assert!(r.is_empty());
        assert_eq!(r.replace(&["0A:1B".into(), "ff".into()]).unwrap(), 2);
        assert!(r.contains("0a1b"));
        let e = r.replace(&["ab".into(), "zz".into()]).unwrap_err().to_string();
        assert!(e.contains("serials[1]"), "{e}");
        assert!(r.contains("0a1b"), "a refused list changed nothing");
        let again = Revoked::load(dir.path());
        assert!(again.contains("ff") && again.len() == 2);
        assert!(matches!(r.replace(&vec!["a".into(); MAX_REVOKED + 1]), Err(RevokedError::TooMany(_))));
    }
}
