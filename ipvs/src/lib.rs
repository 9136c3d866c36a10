//! Linux IPVS over generic netlink, async on tokio — what `ipvsadm` does, as a library.
//!
//! ```no_run
//! # async fn f() -> lvs_ipvs::Result<()> {
//! use lvs_ipvs::{Destination, Ipvs, Op, Protocol, Service, ServiceKey};
//! let mut ipvs = Ipvs::connect().await?; // Error::NoIpvs without the ip_vs module
//! let key = ServiceKey::Addr(Protocol::Tcp, "198.18.0.100:80".parse().unwrap());
//! let results = ipvs
//!     .apply(&[
//!         Op::AddService(Service::new(key, "rr")),
//!         Op::AddDest(key, Destination::route("198.18.0.11:80".parse().unwrap(), 2)),
//!     ])
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! A connection lives in the network namespace of the thread that opened it.
pub mod client;
pub mod conn;
pub mod consts;
pub mod error;
pub mod types;
pub mod wire;

pub use client::Ipvs;
pub use error::{Error, Result};
pub use types::*;
pub use wire::Op;
