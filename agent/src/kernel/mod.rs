//! The node's kernel as the agent sees it: the [`System`] trait every read and change goes
//! through, its netlink implementation ([`NetSystem`]: rtnetlink for addresses and routes,
//! generic netlink for IPVS, procfs for sysctls), an in-memory [`FakeSystem`] for unit
//! tests of planning and diffing, one consistent read of everything a spec talks about
//! (`observe`), the node's facts, and the translation between the spec's words and the
//! kernel's (`translate`).
pub(crate) mod address_add;
pub(crate) mod facts;
pub(crate) mod fake;
pub(crate) mod netlink;
pub(crate) mod observe;
pub(crate) mod rtnl;
pub(crate) mod system;
pub(crate) mod translate;

pub use fake::FakeSystem;
pub use netlink::{FAULT_KILL_AFTER, NetSystem};
pub use system::{Address, IpvsService, Route, System, SystemError};
pub use translate::connection;
