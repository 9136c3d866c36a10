//! The agent's own configuration file (`/etc/lvs-agent/agent.toml`): who it is, where it
//! listens, its certificates, its state directory, its metrics endpoint and its script
//! policy. The cluster definition never reaches the agent; only its node's spec does.
//!
//! The type lives here, not in the agent, because three programs share it: the agent reads
//! it, and the lab and installers write it. Keeping it in the contract crate means the
//! admin's `lvsctl` (which runs the lab) does not link the daemon.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The agent's configuration (serialisable too: installers and the lab write it with the
/// same type the agent reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node name; must match the spec's node and the agent certificate's name.
    pub node: String,
    /// Address and port to listen on (mutual TLS only).
    pub listen: SocketAddr,
    /// Where the accepted spec and ownership records live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How often the agent looks for drift from its accepted spec and, when it finds some,
    /// reports it and re-applies (`"0s"`: never).
    #[serde(
        default = "default_heal_interval",
        deserialize_with = "duration",
        serialize_with = "duration_text"
    )]
    pub heal_interval: std::time::Duration,
    /// Where the agent's CA, certificate and key are read from.
    pub tls: TlsPaths,
    /// Prometheus metrics: served only when this section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// Where check scripts and notify hooks come from and whom they run as.
    #[serde(default, skip_serializing_if = "ScriptsConfig::is_default")]
    pub scripts: ScriptsConfig,
}

/// The script directory unless `[scripts] dir` says otherwise: only the node's root can
/// fill it (the package creates it root's, 0755).
pub const DEFAULT_SCRIPTS_DIR: &str = "/etc/lvs-agent/scripts";

/// The unprivileged user scripts run as unless `[scripts] user` says otherwise (the
/// package creates it; an agent without it falls back to `nobody`).
pub const DEFAULT_SCRIPT_USER: &str = "lvs-agent-script";

/// `[scripts]`: the node's choice of what a spec's exec checks and notify hooks may run
/// (the agent's script policy enforces it). A spec names a script; the program is the file of that name in
/// `dir`, which must be root's and writable by root alone, and it runs as `user`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsConfig {
    /// The script directory.
    #[serde(default = "default_scripts_dir")]
    pub dir: PathBuf,
    /// The unprivileged user scripts run as (never root); unset: `lvs-agent-script`, which
    /// the package creates, else `nobody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        ScriptsConfig { dir: default_scripts_dir(), user: None }
    }
}

impl ScriptsConfig {
    fn is_default(&self) -> bool {
        *self == ScriptsConfig::default()
    }
}

fn default_scripts_dir() -> PathBuf {
    PathBuf::from(DEFAULT_SCRIPTS_DIR)
}

/// Where and to whom the agent serves `/metrics` (Prometheus text format).
///
/// Off unless configured: the exposition names every VIP, real server and weight, which is
/// the cluster's layout, and not every network should be shown it. It has an address of its
/// own rather than the management port's because that port speaks gRPC over HTTP/2 with
/// mutual TLS and Prometheus scrapes plain HTTP/1.1 requests.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port, e.g. the management address with port 9643. Not `0.0.0.0` on a
    /// director, for the reason `listen` gives.
    pub listen: SocketAddr,
    /// Who may scrape.
    #[serde(default)]
    pub auth: MetricsAuth,
}

/// Who may scrape `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsAuth {
    /// HTTPS with a client certificate of the cluster CA naming an admin or a viewer
    /// (`lvsctl pki issue-admin prometheus --role viewer` makes Prometheus one), checked
    /// against revocations like every call to the agent.
    #[default]
    MutualTls,
    /// Plain HTTP to anyone who can reach the address (a scrape network of its own, or a
    /// firewall, must then be the control).
    Open,
}

fn default_heal_interval() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

fn duration_text<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
}

/// PEM files of the agent's identity and the cluster CA.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The cluster CA certificate (trust anchor for the controller's certificate).
    pub ca: PathBuf,
    /// This agent's certificate.
    pub cert: PathBuf,
    /// This agent's private key.
    pub key: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lvs-agent")
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions).
    #[error("agent config {path}: {source}")]
    Read {
        /// The configuration file named on the command line.
        path: PathBuf,
        /// The I/O error reading it.
        source: std::io::Error,
    },
    /// Not TOML, or keys the agent does not know (unknown keys are refused, not ignored,
    /// so a typo never silently falls back to a default).
    #[error("agent config {path}: {source}")]
    Parse {
        /// The configuration file named on the command line.
        path: PathBuf,
        /// The parser's error, with the line and the key.
        source: toml::de::Error,
    },
}

impl Config {
    /// Read and parse `path`. Relative certificate and state paths are taken relative to
    /// the file's directory, so a config and its certificates can move together.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut c: Config = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.tls.ca, &mut c.tls.cert, &mut c.tls.key, &mut c.state_dir, &mut c.scripts.dir] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, include_str!("../../deploy/agent.example.toml")).unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.node, "rs1");
        assert_eq!(c.heal_interval, std::time::Duration::from_secs(30));
        assert_eq!(c.tls.ca, PathBuf::from("/etc/lvs-agent/ca.pem"));
        assert_eq!(c.metrics, None, "metrics are off unless asked for");
        assert_eq!(c.scripts, ScriptsConfig::default());
        // The commented [scripts] section, uncommented, says what the defaults are.
        let scripts = include_str!("../../deploy/agent.example.toml")
            .replace("#[scripts]", "[scripts]")
            .replace("#dir", "dir")
            .replace("#user", "user");
        std::fs::write(&p, scripts).unwrap();
        let s = Config::load(&p).unwrap().scripts;
        assert_eq!(s.dir, PathBuf::from(DEFAULT_SCRIPTS_DIR));
        assert_eq!(s.user.as_deref(), Some(DEFAULT_SCRIPT_USER));
        // The commented [metrics] section, uncommented, is what it says.
        let on = include_str!("../../deploy/agent.example.toml")
            .replace("\n#[metrics]", "\n[metrics]")
            .replace("\n#listen = \"192.168.40.12:9643\"\n#auth", "\nlisten = \"192.168.40.12:9643\"\nauth");
        std::fs::write(&p, on).unwrap();
        let m = Config::load(&p).unwrap().metrics.expect("a [metrics] section");
        assert_eq!((m.listen.port(), m.auth), (9643, MetricsAuth::MutualTls));
        std::fs::write(
            &p,
            "node = \"x\"\nlisten = \"0.0.0.0:7443\"\nport = 1\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n",
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "node = \"x\"\nlisten = \"127.0.0.1:7443\"\nstate_dir = \"st\"\n[tls]\nca=\"ca.pem\"\ncert=\"x.pem\"\nkey=\"x.key\"\n")
            .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.tls.ca, dir.path().join("ca.pem"));
        assert_eq!(c.state_dir, dir.path().join("st"));
    }
}
