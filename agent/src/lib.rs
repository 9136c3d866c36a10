//! `lvs-agent`: makes one node of an LVS-DR cluster match its [`lvs_proto::NodeSpec`].
//!
//! ```text
//! observe(System) ──diff(spec, observed, owned)──► ordered Actions ──apply(System)──► kernel
//! ```
//!
//! # Where things are
//! - [`kernel`]: the [`kernel::System`] trait, its netlink implementation and a fake for
//!   unit tests. Only [`kernel::NetSystem`] touches the kernel.
//! - [`reconcile`]: diff, apply and the state store; the [`reconcile::Reconciler`] is the
//!   only writer of the kernel and the only owner of the accepted spec.
//! - [`health`]: destination checks, quorum, notify hooks, the node's own checks, scripts.
//! - [`ha`]: the VRRP engine (keepalived) and the planned hand-over.
//! - [`bgp`]: the BGP engine (BIRD) of ECMP directors and their router.
//! - [`arp`]: the router's ARP watch (who answers for each VIP).
//! - [`firewall`]: the nftables ruleset read and decided for a service (never changed).
//! - [`marks`]: the director's own nftables table (`inet lvs_dr`) of marking rules for its
//!   firewall-mark services, rendered, read back and decoded.
//! - [`server`]: the management port (listener, authorization, gRPC, enrolment, TLS).
//! - [`telemetry`]: events, counters and the `/metrics` exposition.
//! - [`node`]: the [`node::Agent`], which every gRPC handler hands its work to.
//! - [`run`]: the daemon's start-up and shutdown (what `main` calls).
//!
//! # Long-running tasks and the channels they own
//! - **clock loop** ([`node`]): measures the offset to the spec's NTP source every 5 s
//!   into the agent's clock reading.
//! - **start-up retry** ([`node`]): re-applies the stored spec with back-off while the
//!   first re-apply after start failed.
//! - **healer** ([`node`]): every `heal_interval`, diffs the node and re-applies on drift.
//! - **apply task** ([`node`]): each apply runs to completion in a task of its own, even
//!   when its caller goes away.
//! - **health checker** ([`health`]): a thread (`lvs-checker`) with its own runtime runs
//!   every probe; results go through a bounded `mpsc` channel to a flush task that
//!   applies quarantine and weights through the reconciler; the notify hook runner owns
//!   another bounded `mpsc` channel of transitions.
//! - **keepalived supervisor** ([`ha`]): starts, restarts and stops keepalived; a FIFO
//!   reader turns its notify lines into VRRP state and events; two forwarders copy its
//!   output into the agent's log.
//! - **listener** ([`server`]): the accept loop with one task per TLS handshake, a
//!   watcher of the revocation list (a `watch` channel) that cuts revoked callers off,
//!   and the `mpsc` channel of accepted connections tonic serves.
//! - **ARP watch** ([`node`], the router): every interval, asks each LAN in ARP who has
//!   each VIP (a raw packet socket on a blocking thread) and keeps the last round for
//!   status and metrics; a leak found or gone is an event.
//! - **metrics server** ([`telemetry`]): its accept loop and one task per scrape.
//! - **events** ([`telemetry`]): a bounded `broadcast` channel; a slow subscriber loses
//!   old events and never blocks the agent.
//! - **watchdog feeder** ([`run`]): tells systemd the agent is alive while the reconciler
//!   answers.
//! - **netlink connection** ([`kernel`]): rtnetlink's connection task, one per handle.
pub mod arp;
pub mod bgp;
pub mod firewall;
pub mod ha;
pub mod health;
pub mod kernel;
pub mod marks;
pub mod node;
pub mod reconcile;
pub mod run;
pub mod server;
pub mod tasks;
pub mod telemetry;
