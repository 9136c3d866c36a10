//! What the agent remembers across restarts: the last accepted spec, its generation and
//! fingerprint, what the agent created (it only ever removes that), and runtime weight
//! overrides. Written atomically: temp file, fsync, rename, fsync of the directory.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lvs_proto::NodeSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernel::system::{Address, Route};

/// What the agent created, so that it removes nothing else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Owned {
    /// Addresses it added.
    pub addresses: BTreeSet<Address>,
    /// Routes it added.
    pub routes: BTreeSet<Route>,
    /// IPVS services it created or adopted (the spec declared them).
    pub services: BTreeSet<lvs_proto::spec::ServiceKey>,
    /// Sysctls it changed, with the value found before.
    pub sysctls: BTreeMap<String, String>,
    /// IPVS sync daemons it started (`master`, `backup`).
    #[serde(default)]
    pub sync_daemons: BTreeSet<String>,
    /// Whether it made the marking table (`inet lvs_dr`).
    #[serde(default)]
    pub mark_table: bool,
}

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Generation of the last accepted spec (0: none yet).
    pub generation: u64,
    /// Fingerprint of the last accepted spec.
    pub fingerprint: String,
    /// The last accepted spec.
    pub spec: Option<NodeSpec>,
    /// What the agent created.
    pub owned: Owned,
    /// Live state layered over the spec: admin weights and health quarantine.
    #[serde(default)]
    pub runtime: Runtime,
}

/// What the admin and the health checker changed on top of the spec, by
/// [`override_key`]. Persisted so that a restart or a re-apply never undoes a drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// Weights set by `lvsctl rs drain|weight` (cleared by `enable`).
    #[serde(default)]
    pub weights: BTreeMap<DestKey, u32>,
    /// Destinations the health checker took out of service.
    #[serde(default)]
    pub quarantined: BTreeSet<DestKey>,
    /// `lvsctl ipvs clear`: the agent's IPVS services are withdrawn until the next apply.
    #[serde(default)]
    pub ipvs_cleared: bool,
    /// Services below their quorum as last decided (the hysteresis band's memory).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub degraded: BTreeSet<lvs_proto::spec::ServiceKey>,
    /// `lvsctl director drain`: an ECMP director announces nothing until enabled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
}

/// Stable fingerprint of a spec: SHA-256 of its JSON.
pub fn fingerprint(spec: &NodeSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec always serializes");
    Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
}

/// One destination of one virtual service: the key of the runtime layer (admin weights,
/// quarantine) and of the health checker. On disk (JSON map keys must be strings) it is
/// written `TCP 198.18.0.100:80|198.18.0.11:80`, the form older state files used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DestKey {
    /// The virtual service.
    pub service: lvs_proto::spec::ServiceKey,
    /// The destination.
    pub dest: std::net::SocketAddr,
}

impl DestKey {
    /// The key of `dest` in `service`.
    pub fn new(service: lvs_proto::spec::ServiceKey, dest: std::net::SocketAddr) -> Self {
        Self { service, dest }
    }
}

impl std::fmt::Display for DestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}", self.service, self.dest)
    }
}

impl From<DestKey> for String {
    fn from(k: DestKey) -> Self {
        k.to_string()
    }
}

impl TryFrom<String> for DestKey {
    type Error = String;

    /// Read back what [`DestKey`]'s `Display` wrote (only the state file does this).
    fn try_from(s: String) -> Result<Self, String> {
        use lvs_proto::spec::{Protocol, ServiceKey};
        let bad = || format!("`{s}` is not a `SERVICE|DESTINATION` key");
        let (svc, dest) = s.rsplit_once('|').ok_or_else(bad)?;
        let dest = dest.parse().map_err(|_| bad())?;
        let (kind, rest) = svc.split_once(' ').ok_or_else(bad)?;
        let service = match kind {
            "FWM" => {
                let (mark, ipv6) = match rest.strip_suffix(" IPv6") {
                    Some(m) => (m, true),
                    None => (rest, false),
                };
                ServiceKey::Fwmark { mark: mark.parse().map_err(|_| bad())?, ipv6 }
            }
            p => {
                let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                    .into_iter()
                    .find(|x| x.as_str() == p)
                    .ok_or_else(bad)?;
                ServiceKey::Addr { protocol, address: rest.parse().map_err(|_| bad())? }
            }
        };
        Ok(Self { service, dest })
    }
}

/// Key of a weight override (see [`DestKey`]).
pub fn override_key(service: &lvs_proto::spec::ServiceKey, dest: std::net::SocketAddr) -> DestKey {
    DestKey::new(*service, dest)
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error, kept as the source of this one.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the JSON stops making sense (line and column).
        source: serde_json::Error,
    },
    /// The file does not parse and there is no good previous copy to fall back to.
    #[error(
        "state file {path} is damaged ({cause}) and has no good previous copy; the agent refuses \
         changes rather than forget what it owns: inspect the file, then move it aside and run \
         `lvsctl apply` (objects it had created are then reported as foreign, never removed)"
    )]
    Unrecoverable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        cause: String,
    },
}

/// The accepted spec's file in the state directory.
pub const STATE_FILE: &str = "state.json";

/// The state file under the agent's state directory, with the previous good copy beside
/// it (`state.json.prev`). Every save keeps the file it replaces as the previous copy, so a
/// `state.json` damaged on disk (a bad sector, an admin's editor, a full disk in the
/// middle of someone else's write) costs at most the last save, never the ownership
/// records: [`Store::load`] falls back to the previous copy, keeps the damaged file for
/// inspection and says so ([`Store::recovery`]).
///
/// The state is held in memory once read: the file is read once per process (at the first
/// [`Store::load`], which the agent's start-up makes under the reconcile lock) and
/// afterwards only written through by [`Store::save`]. Readers (status, metrics, the clock
/// loop) get the copy in memory and never touch the disk, and the one lock below
/// serializes every file operation, recovery included.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    recovered: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// The state as last read or saved; `None` until the first successful load.
    held: std::sync::Arc<std::sync::Mutex<Option<State>>>,
    /// How many times the file has been read (tests hold the "once per process" promise).
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Store {
    /// A store at `<dir>/state.json`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(STATE_FILE),
            recovered: Default::default(),
            held: Default::default(),
            reads: Default::default(),
        }
    }

    /// How many times this store has read its file (the current one or the previous copy).
    pub fn disk_reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn prev_path(&self) -> PathBuf {
        self.path.with_extension("json.prev")
    }

    /// What the last recovery from a damaged state file did, if there was one since start.
    pub fn recovery(&self) -> Option<String> {
        self.recovered.lock().expect("recovery note").clone()
    }

    fn read(&self, path: &Path) -> Result<Option<State>, StoreError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { path: path.to_path_buf(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Load, or the empty state when there is no file yet. A damaged file is replaced by
    /// the previous good copy (the damaged one is kept as `state.json.corrupt`); when
    /// there is no good copy either, the error says what to do.
    pub fn load(&self) -> Result<State, StoreError> {
        let mut held = self.held.lock().expect("state held");
        if let Some(st) = held.as_ref() {
            return Ok(st.clone());
        }
        let st = self.load_from_disk()?;
        *held = Some(st.clone());
        Ok(st)
    }

    fn load_from_disk(&self) -> Result<State, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let corrupt = match self.read(&self.path) {
            Ok(s) => return Ok(s.unwrap_or_default()),
            Err(e @ StoreError::Io { .. }) => return Err(e),
            Err(e) => e,
        };
        let prev = self.prev_path();
        let Ok(Some(good)) = self.read(&prev) else {
            return Err(StoreError::Unrecoverable { path: self.path.clone(), cause: corrupt.to_string() });
        };
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        let kept = self.path.with_extension("json.corrupt");
        std::fs::rename(&self.path, &kept).map_err(io)?;
        self.write(&good)?;
        let note = format!(
            "{corrupt}; recovered generation {} and its ownership records from {} (the damaged file is {})",
            good.generation,
            prev.display(),
            kept.display()
        );
        tracing::error!(state = %self.path.display(), "{note}");
        *self.recovered.lock().expect("recovery note") = Some(note);
        Ok(good)
    }

    /// Forget the recovery note (an admin's apply has re-asserted the definition since).
    pub fn clear_recovery(&self) {
        *self.recovered.lock().expect("recovery note") = None;
    }

    /// What [`Store::load`] would find, without changing anything: for `lvs-agent --check`.
    pub fn inspect(&self) -> Result<String, StoreError> {
        match self.read(&self.path) {
            Ok(None) => Ok("no accepted spec yet".into()),
            Ok(Some(s)) => Ok(format!("generation {} accepted", s.generation)),
            Err(e @ StoreError::Io { .. }) => Err(e),
            Err(corrupt) => match self.read(&self.prev_path()) {
                Ok(Some(good)) => Ok(format!(
                    "{corrupt}; the agent will recover generation {} from {} at start",
                    good.generation,
                    self.prev_path().display()
                )),
                _ => Err(StoreError::Unrecoverable { path: self.path.clone(), cause: corrupt.to_string() }),
            },
        }
    }

    /// Write atomically: a crash leaves the old or the new file, never a torn one; the
    /// file replaced becomes the previous good copy.
    /// The copy in memory is replaced only once the file is written: a failed save leaves
    /// memory and disk agreeing on the old state.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let mut held = self.held.lock().expect("state held");
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        // A good file on disk becomes the previous copy. Known good when it was loaded or
        // saved by this store; otherwise (first save of a process) looked at.
        let good_on_disk = match held.as_ref() {
            Some(_) => self.path.exists(),
            None => matches!(self.read(&self.path), Ok(Some(_))),
        };
        if good_on_disk {
            // Link, then rename over the old copy: `.prev` is always a whole file.
            let tmp = self.path.with_extension("json.prev.tmp");
            let _ = std::fs::remove_file(&tmp);
            std::fs::hard_link(&self.path, &tmp).map_err(io)?;
            std::fs::rename(&tmp, self.prev_path()).map_err(io)?;
        }
        self.write(state)?;
        *held = Some(state.clone());
        Ok(())
    }

    fn write(&self, state: &State) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        lvs_proto::files::atomic_write(&self.path, &json, 0o600)
            .map_err(|source| StoreError::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_layer_written_by_an_older_agent_reads_back_typed() {
        let old = r#"{"weights":{"TCP 198.18.0.100:80|198.18.0.11:80":0},
                      "quarantined":["FWM 7 IPv6|[2001:db8::11]:0","UDP [2001:db8::100]:53|[2001:db8::12]:53"]}"#;
        let rt: Runtime = serde_json::from_str(old).unwrap();
        let k = DestKey::try_from("TCP 198.18.0.100:80|198.18.0.11:80".to_string()).unwrap();
        assert_eq!(rt.weights.get(&k), Some(&0));
        assert!(
            rt.quarantined
                .iter()
                .any(|q| q.service == lvs_proto::spec::ServiceKey::Fwmark { mark: 7, ipv6: true })
        );
        // Written back the same way.
        let again: Runtime = serde_json::from_str(&serde_json::to_string(&rt).unwrap()).unwrap();
        assert_eq!(again, rt);
        assert!(DestKey::try_from("nonsense".to_string()).is_err());
    }
}
