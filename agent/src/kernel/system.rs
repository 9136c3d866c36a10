//! The narrow boundary between the agent and the kernel: one method per operation.
//! [`crate::kernel::netlink::NetSystem`] is the real one; tests of planning use [`crate::kernel::fake`].
use std::future::Future;
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_ipvs::{Op, Service};
use lvs_proto::reply::{Failure, FailureKind};

/// An address as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// Interface name.
    pub interface: String,
    /// Address and prefix.
    pub address: IpNet,
    /// Label, when it differs from the interface name.
    pub label: Option<String>,
}

/// A route of the main table as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output device.
    pub device: Option<String>,
}

/// One IPVS service with its destinations, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsService {
    /// The service.
    pub service: Service,
    /// Its counters and rates.
    pub stats: lvs_ipvs::Stats,
    /// Its destinations, with live connection counts.
    pub destinations: Vec<lvs_ipvs::DestinationEntry>,
}

/// A failure of one kernel operation, with what was attempted and the typed cause (so
/// code can still ask "was it EEXIST?" after the error has crossed a layer).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
pub struct SystemError {
    /// The operation, e.g. `add address 198.18.0.100/32 on lo`.
    pub op: String,
    /// Why it failed.
    #[source]
    pub cause: SysCause,
}

/// Why a kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SysCause {
    /// rtnetlink refused or failed (the kernel's errno is inside).
    #[error(transparent)]
    Netlink(#[from] rtnetlink::Error),
    /// IPVS generic netlink refused or failed.
    #[error(transparent)]
    Ipvs(#[from] lvs_ipvs::Error),
    /// procfs or another file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A blocking read's task ended abnormally.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// The kernel did not answer within the deadline (the socket has been replaced).
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// Something the agent itself found (no such interface, no answer in time, …).
    #[error("{0}")]
    Other(String),
}

impl From<String> for SysCause {
    fn from(s: String) -> Self {
        SysCause::Other(s)
    }
}

impl From<&str> for SysCause {
    fn from(s: &str) -> Self {
        SysCause::Other(s.to_string())
    }
}

impl SystemError {
    /// A new error.
    pub fn new(op: impl Into<String>, cause: impl Into<SysCause>) -> Self {
        Self { op: op.into(), cause: cause.into() }
    }

    /// The kernel's errno, when the cause carries one.
    pub fn errno(&self) -> Option<i32> {
        match &self.cause {
            SysCause::Netlink(rtnetlink::Error::NetlinkError(m)) => m.code.map(|c| -c.get()),
            SysCause::Ipvs(e) => e.errno(),
            SysCause::Io(e) => e.raw_os_error(),
            SysCause::TimedOut(_) => Some(110), // ETIMEDOUT
            _ => None,
        }
    }

    /// The failure as the agent reports it: kind decided here, once, from the errno.
    pub fn failure(&self) -> Failure {
        let errno = self.errno();
        let kind = errno.map_or(FailureKind::Other, FailureKind::of_errno);
        Failure { kind, message: self.to_string(), errno: errno.unwrap_or(0) }
    }
}

/// Result of a kernel operation.
pub type SysResult<T> = Result<T, SystemError>;

/// Everything the agent does to or reads from the kernel.
pub trait System: Send + Sync {
    /// Names of the network interfaces.
    fn links(&self) -> impl Future<Output = SysResult<Vec<String>>> + Send;
    /// Every address of every interface.
    fn addresses(&self) -> impl Future<Output = SysResult<Vec<Address>>> + Send;
    /// Add an address (with its label).
    fn add_address(&self, a: &Address) -> impl Future<Output = SysResult<()>> + Send;
    /// Remove an address.
    fn del_address(&self, a: &Address) -> impl Future<Output = SysResult<()>> + Send;
    /// Unicast routes of the main table.
    fn routes(&self) -> impl Future<Output = SysResult<Vec<Route>>> + Send;
    /// Add a route; `replace` swaps an existing route to the same destination.
    fn add_route(&self, r: &Route, replace: bool) -> impl Future<Output = SysResult<()>> + Send;
    /// Remove a route.
    fn del_route(&self, r: &Route) -> impl Future<Output = SysResult<()>> + Send;
    /// Read a sysctl; `None` when the key does not exist.
    fn sysctl(&self, key: &str) -> impl Future<Output = SysResult<Option<String>>> + Send;
    /// Write a sysctl.
    fn set_sysctl(&self, key: &str, value: &str) -> impl Future<Output = SysResult<()>> + Send;
    /// The IPVS table; `None` when the kernel has no IPVS.
    fn ipvs(&self) -> impl Future<Output = SysResult<Option<Vec<IpvsService>>>> + Send;
    /// IPVS version, connection table size and timeouts; `None` without IPVS.
    fn ipvs_info(
        &self,
    ) -> impl Future<Output = SysResult<Option<(lvs_ipvs::Info, lvs_ipvs::Timeouts)>>> + Send;
    /// The first `limit` entries of the IPVS connection table (empty without IPVS), and
    /// whether it holds more; read off the runtime's threads, never whole.
    fn ipvs_connections(
        &self,
        limit: usize,
    ) -> impl Future<Output = SysResult<(Vec<lvs_ipvs::conn::Connection>, bool)>> + Send;
    /// Connections per destination of `dests` (same order), counted without keeping the
    /// table; which entries are live, `live` says.
    fn ipvs_count_connections(
        &self,
        dests: &[std::net::SocketAddr],
        live: lvs_ipvs::conn::Liveness,
    ) -> impl Future<Output = SysResult<Vec<lvs_ipvs::conn::DestCount>>> + Send;
    /// The running IPVS connection-sync daemons (empty without IPVS).
    fn ipvs_daemons(&self) -> impl Future<Output = SysResult<Vec<lvs_ipvs::Daemon>>> + Send;
    /// The nftables ruleset as `nft -j list ruleset` prints it; `None` when this host has no
    /// `nft` to ask (the firewall check then says what it can from /proc).
    fn nft_ruleset(&self) -> impl Future<Output = SysResult<Option<String>>> + Send;
    /// The director's marking table (`inet lvs_dr`) as found; `None`: it is not there.
    fn mark_table(&self) -> impl Future<Output = SysResult<Option<crate::marks::MarkTable>>> + Send;
    /// Make the marking table hold exactly `rules`, in one transaction.
    fn load_marks(&self, rules: &[lvs_proto::spec::MarkRule]) -> impl Future<Output = SysResult<()>> + Send;
    /// Remove the marking table (nothing when it is not there).
    fn remove_marks(&self) -> impl Future<Output = SysResult<()>> + Send;
    /// Apply IPVS changes in one batch; one result per change.
    fn ipvs_apply(&self, ops: &[Op]) -> impl Future<Output = SysResult<Vec<SysResult<()>>>> + Send;
}
