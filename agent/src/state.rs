//! What the agent remembers across restarts: the last accepted spec, its generation and
//! fingerprint, what the agent created (it only ever removes that), and runtime weight
//! overrides. Written atomically: temp file, fsync, rename, fsync of the directory.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use lvs_proto::NodeSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::system::{Address, Route};

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
    pub weights: BTreeMap<String, u32>,
    /// Destinations the health checker took out of service.
    #[serde(default)]
    pub quarantined: BTreeSet<String>,
    /// `lvsctl ipvs clear`: the agent's IPVS services are withdrawn until the next apply.
    #[serde(default)]
    pub ipvs_cleared: bool,
}

/// Stable fingerprint of a spec: SHA-256 of its JSON.
pub fn fingerprint(spec: &NodeSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec always serializes");
    Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
}

/// Key of a weight override.
pub fn override_key(service: &lvs_proto::spec::ServiceKey, dest: std::net::SocketAddr) -> String {
    format!("{service}|{dest}")
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// The state file under the agent's state directory.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// A store at `<dir>/state.json`.
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("state.json") }
    }

    /// Load, or the empty state when there is no file yet.
    pub fn load(&self) -> Result<State, StoreError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|source| StoreError::Corrupt { path: self.path.clone(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StoreError::Io { path: self.path.clone(), source }),
        }
    }

    /// Write atomically: a crash leaves the old or the new file, never a torn one.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec_pretty(state).expect("state serializes")).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}
