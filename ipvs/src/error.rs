//! Errors with the meaning the kernel gives them.
use std::time::Duration;

/// What went wrong talking to IPVS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generic-netlink family `IPVS` is not registered.
    #[error("this kernel has no IPVS (load ip_vs): the generic netlink family IPVS is not registered")]
    NoIpvs,
    /// The service or destination exists already.
    #[error("{op}: already exists")]
    Exists {
        /// The operation.
        op: String,
    },
    /// The service does not exist.
    #[error("{op}: no such service")]
    NoService {
        /// The operation.
        op: String,
    },
    /// The destination does not exist.
    #[error("{op}: no such destination")]
    NoDestination {
        /// The operation.
        op: String,
    },
    /// The scheduler (or persistence engine) module is not available.
    #[error("{op}: scheduler not available in this kernel (no ip_vs_<name> module)")]
    NoScheduler {
        /// The operation.
        op: String,
    },
    /// Not allowed (needs `CAP_NET_ADMIN` in the network namespace).
    #[error("{op}: permission denied (needs CAP_NET_ADMIN)")]
    Permission {
        /// The operation.
        op: String,
    },
    /// Another refusal, with the kernel's errno.
    #[error("{op}: kernel refused: {source}")]
    Kernel {
        /// The operation.
        op: String,
        /// The errno as an I/O error.
        source: std::io::Error,
    },
    /// No answer in time; the socket is replaced before the next request.
    #[error("{op}: no answer from the kernel within {timeout:?}")]
    Timeout {
        /// The operation.
        op: String,
        /// The limit.
        timeout: Duration,
    },
    /// The netlink socket failed.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// A reply could not be decoded.
    #[error("decoding a kernel reply: {0}")]
    Decode(String),
}

impl Error {
    /// Map a kernel errno for operation `op` (described by `what`).
    pub(crate) fn from_errno(errno: i32, cmd: u8, what: String) -> Self {
        use crate::consts::*;
        match errno {
            libc_errno::EEXIST => Error::Exists { op: what },
            libc_errno::ESRCH => Error::NoService { op: what },
            libc_errno::ENOENT if matches!(cmd, CMD_NEW_SERVICE | CMD_SET_SERVICE) => {
                Error::NoScheduler { op: what }
            }
            libc_errno::ENOENT if matches!(cmd, CMD_SET_DEST | CMD_DEL_DEST) => {
                Error::NoDestination { op: what }
            }
            libc_errno::EPERM | libc_errno::EACCES => Error::Permission { op: what },
            e => Error::Kernel { op: what, source: std::io::Error::from_raw_os_error(e) },
        }
    }
}

impl Error {
    /// The kernel's errno behind this error, when there is one (ETIMEDOUT for a kernel that
    /// did not answer, EOPNOTSUPP for a kernel without the IPVS family), so a caller can
    /// classify a failure without reading its words.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::NoIpvs => Some(95), // EOPNOTSUPP
            Error::Exists { .. } => Some(libc_errno::EEXIST),
            Error::NoService { .. } => Some(libc_errno::ESRCH),
            Error::NoDestination { .. } | Error::NoScheduler { .. } => Some(libc_errno::ENOENT),
            Error::Permission { .. } => Some(libc_errno::EPERM),
            Error::Kernel { source, .. } => source.raw_os_error(),
            Error::Timeout { .. } => Some(110), // ETIMEDOUT
            Error::Io(e) => e.raw_os_error(),
            Error::Decode(_) => None,
        }
    }
}

/// The errno values this crate interprets (Linux, all architectures).
pub(crate) mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EACCES: i32 = 13;
    pub const EEXIST: i32 = 17;
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
