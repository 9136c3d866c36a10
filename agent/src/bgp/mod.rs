//! Active-active directors behind the router's ECMP: the agent drives a routing daemon, it
//! does not speak BGP itself. The daemon sits behind [`BgpEngine`] (as keepalived sits
//! behind [`crate::ha::VrrpEngine`]); [`bird::Bird`] is the one in use: BIRD 2, configured
//! from the spec's [`lvs_proto::spec::BgpSpec`], supervised as the agent's child, read over
//! its control socket.
//!
//! The parts:
//! - [`gate`]: which VIPs a director announces now (pure): only what works.
//! - [`bird_conf`]: the daemon's configuration from the spec and those VIPs.
//! - [`control`]: BIRD's control socket (reload, sessions).
//! - the agent's announcer loop (`node::announce`): every 250 ms it reads the kernel's
//!   IPVS table and the services' quorum, decides, and hands the result to the engine, which
//!   reloads BIRD only when the set changed; it reports announce, withdraw and session
//!   changes as events.
//!
//! Why BIRD (`docs/architecture.md`, "Active-active directors"): one small daemon with
//! BGP, BFD and the kernel's multipath routes in one configuration file, reloaded in place
//! with only the changed protocols touched; it runs as the agent's child with the agent's
//! capabilities (and port 179's).
pub mod bird;
pub mod bird_conf;
pub mod control;
pub mod gate;

use ipnet::IpNet;
use lvs_proto::reply::BgpSession;
use lvs_proto::spec::BgpSpec;

/// What the announcer last decided and saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) announcements: Vec<lvs_proto::reply::BgpAnnouncement>,
    /// Each session's `up`, by peer and address.
    pub(crate) sessions: std::collections::BTreeMap<(String, String), bool>,
    /// The engine error last logged, so a failing reload is logged once, not 4 times a second.
    pub(crate) error: Option<String>,
}

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    /// Its configuration or runtime files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The daemon's program.
    #[error("starting {program}: {source} (install bird2 on the router and on ECMP directors)")]
    Spawn {
        /// Its path.
        program: String,
        /// Why it would not start (`NotFound`: BIRD is not installed).
        source: std::io::Error,
    },
    /// The daemon refused its configuration.
    #[error("BIRD refused its configuration: {0}")]
    Config(String),
    /// The control socket.
    #[error(transparent)]
    Control(#[from] control::ControlError),
}

/// A BGP engine, as the agent uses it.
#[tonic::async_trait]
pub trait BgpEngine: Send + Sync + 'static {
    /// Run the daemon for `spec` exporting `announced` (reload it when it runs with
    /// anything else), or stop it (withdrawing everything) with `None`. Idempotent.
    async fn ensure(&self, spec: Option<&BgpSpec>, announced: &[IpNet]) -> Result<(), BgpError>;
    /// The sessions as the daemon reports them now; `None` when it is not running.
    async fn sessions(&self) -> Result<Option<Vec<BgpSession>>, BgpError>;
    /// Why the daemon is not running, while it is restarted.
    fn error(&self) -> Option<String>;
}

/// The engine of a node in no `[bgp]` (and of unit tests): nothing to run.
#[derive(Debug, Default)]
pub struct NoBgp;

#[tonic::async_trait]
impl BgpEngine for NoBgp {
    async fn ensure(&self, _: Option<&BgpSpec>, _: &[IpNet]) -> Result<(), BgpError> {
        Ok(())
    }
    async fn sessions(&self) -> Result<Option<Vec<BgpSession>>, BgpError> {
        Ok(None)
    }
    fn error(&self) -> Option<String> {
        None
    }
}
