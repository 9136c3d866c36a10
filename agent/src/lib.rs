//! `lvs-agent`: makes one node of an LVS-DR cluster match its [`lvs_proto::NodeSpec`].
//!
//! ```text
//! observe(System) ──diff(spec, observed, owned)──► ordered Actions ──apply(System)──► kernel
//! ```
//! Only [`netlink::NetSystem`] touches the kernel, behind the [`system::System`] trait.
pub mod apply;
pub mod convert;
pub mod diff;
pub mod fake;
pub mod netlink;
pub mod observe;
pub mod reconcile;
pub mod state;
pub mod system;
