//! `lvs-agent`: makes one node of an LVS-DR cluster match its [`lvs_proto::NodeSpec`].
//!
//! ```text
//! observe(System) ──diff(spec, observed, owned)──► ordered Actions ──apply(System)──► kernel
//! ```
//! Only [`netlink::NetSystem`] touches the kernel, behind the [`system::System`] trait.
pub mod advert_watch;
pub mod apply;
pub mod authz;
pub mod caller;
pub mod checker;
pub mod checks;
pub mod clock;
pub mod config;
pub mod convert;
pub mod credentials;
pub mod diff;
pub mod door;
pub mod enrol;
pub mod events;
pub mod exposition;
pub mod facts;
pub mod fake;
pub mod grpc;
pub mod health;
pub mod http;
pub mod http1;
pub mod keepalived;
pub mod metrics;
pub mod netlink;
pub mod node;
pub mod notify;
pub mod observe;
pub mod probe;
pub mod quorum;
pub mod reads;
pub mod reconcile;
pub mod replies;
pub mod revoked;
pub mod run;
pub mod scrape;
pub mod scripts;
pub mod state;
pub mod sync_flush;
pub mod system;
pub mod tls;
pub mod vrrp;
