//! The pairing secret and its code: made, kept in `pairing.json` (0600), shown only to root, proved in constant time, consumed once.
use super::error::EnrolError;
use super::error::EnrolTransportError;
use lvs_proto::pairing::{PairingCode, SECRET_LEN, pin_of};
use rcgen::{KeyPair, PublicKeyData};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a new pairing code is valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Wrong secrets one source address may send before it must wait: then 1 s, doubling to
/// [`MAX_WAIT`], before each next attempt. The code itself is never burned (that let anyone
/// on the network block enrolment with five guesses); 80 random bits are not guessed at
/// one try a minute.
pub const FREE_TRIES: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    secret: String,
    expires_unix: u64,
    failures: u32,
}

pub(super) fn now_unix() -> u64 {
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

pub(super) fn code(key: &KeyPair, secret: &[u8; SECRET_LEN]) -> String {
    PairingCode { pin: pin_of(&key.subject_public_key_info()), secret: *secret }.text()
}

/// The key pin's part of a code as shown (`ABCD-EFGH-IJKL-MNOP`: its first four groups):
/// public, unlike the rest.
pub fn pin_text(code: &str) -> String {
    code.split('-').take(lvs_proto::pairing::PIN_LEN * 8 / 5 / 4).collect::<Vec<_>>().join("-")
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<[u8; SECRET_LEN]> {
    let mut out = [0; SECRET_LEN];
    if s.len() != SECRET_LEN * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
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
