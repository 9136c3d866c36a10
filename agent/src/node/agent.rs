//! The agent of one node: the parts it owns (the reconciler, the only writer of the
//! kernel; the health checker; the clock reading; the event feed; the apply lease; the
//! VRRP engine) and how it is made. What it does is in the sibling modules, one per
//! responsibility.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::health::clock::Reading;
use crate::health::destinations::Health;
use crate::kernel::facts;
use crate::kernel::system::System;
use crate::reconcile::reconciler::Reconciler;
use crate::reconcile::state::Store;
use crate::telemetry::events::Events;
use lvs_proto::reply::Facts;

/// The agent of one node. Made once by [`crate::run`] (or a test), shared as an `Arc` by the
/// gRPC service, the metrics server and its own background tasks.
pub struct Agent<S: System + 'static> {
    pub(super) node: String,
    pub(super) rec: Arc<Reconciler<S>>,
    pub(super) events: Events,
    pub(super) health: Health,
    /// Turns for connection-table reads.
    pub(super) heavy_reads: crate::server::heavy_reads::HeavyReads,
    pub(super) clock: Mutex<Option<Reading>>,
    pub(super) lease: Mutex<Option<Lease>>,
    /// Why the start-up re-apply failed, while it is being retried.
    pub(super) startup: Mutex<Option<String>>,
    /// Certificate serials refused at the door (kept beside the state file).
    pub(super) revoked: Arc<crate::server::revoked::Revoked>,
    /// The VRRP engine (directors sharing VIPs); [`crate::ha::vrrp::NoVrrp`] elsewhere.
    pub(super) vrrp: Arc<dyn crate::ha::vrrp::VrrpEngine>,
    /// The BGP engine (ECMP directors and their router); [`crate::bgp::NoBgp`] in tests.
    pub(super) bgp: Arc<dyn crate::bgp::BgpEngine>,
    /// What the announcer last decided and saw, to report changes once (`node::announce`).
    pub(super) bgp_seen: Mutex<crate::bgp::Seen>,
    /// The router's ARP socket; [`crate::arp::NoArp`] in tests.
    pub(super) arp: Arc<dyn crate::arp::ArpAsker>,
    /// The ARP watch's last round (`node::arp_watch`).
    pub(super) arp_last: Mutex<Option<lvs_proto::reply::ArpWatchStatus>>,
    /// The last failover drill's requests (`node::vip_probe`).
    pub(super) drill_last: Mutex<Option<crate::telemetry::ha_families::DrillResult>>,
    /// Every background loop the agent starts (clock, start-up retry, healer, and the
    /// servers `run` starts beside it): one stop ends them all.
    pub(super) tasks: crate::tasks::Tasks,
}

/// The engines an agent drives, made once the event feed exists (they publish on it).
pub struct Engines {
    /// VRRP: keepalived on directors sharing VIPs.
    pub vrrp: Arc<dyn crate::ha::vrrp::VrrpEngine>,
    /// BGP: BIRD on ECMP directors and their router.
    pub bgp: Arc<dyn crate::bgp::BgpEngine>,
    /// ARP: the router's watch asks through it.
    pub arp: Arc<dyn crate::arp::ArpAsker>,
}

impl Engines {
    /// `vrrp`, and no BGP or ARP.
    pub fn vrrp_only(vrrp: Arc<dyn crate::ha::vrrp::VrrpEngine>) -> Self {
        Self { vrrp, bgp: Arc::new(crate::bgp::NoBgp), arp: Arc::new(crate::arp::NoArp) }
    }
}

/// A controller's reservation of a generation (see `SpecRequest.lease` in the proto).
#[derive(Debug, Clone)]
pub(super) struct Lease {
    pub(super) id: String,
    pub(super) generation: u64,
    pub(super) expires: Instant,
}

/// How often the clock is measured.
pub(super) const CLOCK_PERIOD: Duration = Duration::from_secs(5);
/// First and longest wait between start-up re-apply attempts.
pub(super) const START_RETRY_MIN: Duration = Duration::from_secs(1);
pub(super) const START_RETRY_MAX: Duration = Duration::from_secs(60);

impl<S: System + 'static> Agent<S> {
    /// An agent for `node` over `sys`, persisting in `store`.
    pub fn new(node: &str, sys: Arc<S>, store: Store) -> Arc<Self> {
        Self::with_vrrp(node, sys, store, |_| Arc::new(crate::ha::vrrp::NoVrrp))
    }

    /// [`Agent::new`] with the VRRP engine `engine` makes (given the agent's event feed,
    /// which the engine publishes its transitions on).
    pub fn with_vrrp(
        node: &str,
        sys: Arc<S>,
        store: Store,
        engine: impl FnOnce(&Events) -> Arc<dyn crate::ha::vrrp::VrrpEngine>,
    ) -> Arc<Self> {
        Self::with_parts(node, sys, store, Arc::default(), |e| Engines::vrrp_only(engine(e)))
    }

    /// [`Agent::new`] whose checks and hooks come from the script policy `scripts`.
    pub fn with_scripts(
        node: &str,
        sys: Arc<S>,
        store: Store,
        scripts: crate::health::scripts::Scripts,
    ) -> Arc<Self> {
        Self::with_parts(node, sys, store, Arc::new(scripts), |_| {
            Engines::vrrp_only(Arc::new(crate::ha::vrrp::NoVrrp))
        })
    }

    /// The agent of `node` from all its parts: the kernel `sys`, the state `store`, the
    /// script policy `scripts` and the engines `engines` makes (given the event feed).
    pub fn with_parts(
        node: &str,
        sys: Arc<S>,
        store: Store,
        scripts: Arc<crate::health::scripts::Scripts>,
        engines: impl FnOnce(&Events) -> Engines,
    ) -> Arc<Self> {
        let revoked =
            Arc::new(crate::server::revoked::Revoked::load(store.path().parent().unwrap_or(Path::new("."))));
        let events = Events::default();
        let Engines { vrrp, bgp, arp } = engines(&events);
        Arc::new(Self {
            revoked,
            vrrp,
            bgp,
            bgp_seen: Mutex::default(),
            arp,
            arp_last: Mutex::new(None),
            drill_last: Mutex::new(None),
            node: node.to_string(),
            rec: Arc::new(Reconciler::with_scripts(node, sys, store, scripts)),
            events,
            health: Health::default(),
            heavy_reads: Default::default(),
            clock: Mutex::new(None),
            lease: Mutex::new(None),
            startup: Mutex::new(None),
            tasks: crate::tasks::Tasks::default(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The certificate serials this agent refuses.
    pub fn revoked(&self) -> &Arc<crate::server::revoked::Revoked> {
        &self.revoked
    }

    /// The event feed.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The registry the agent's background tasks run in; servers started beside the agent
    /// (the metrics endpoint, the watchdog) spawn into it too, so that [`Agent::stop`]
    /// ends them with the rest.
    pub fn tasks(&self) -> &crate::tasks::Tasks {
        &self.tasks
    }

    /// Stop every background task, then wait (at most `grace`) for an apply in progress
    /// to finish: applies are not cancelled, because one cut off between two kernel
    /// changes is worse than a late one. The health probes go last, once no apply can
    /// start them again. Returns whether the reconciler was idle in time.
    pub async fn stop(&self, grace: Duration) -> bool {
        let n = self.tasks.shutdown(grace).await;
        let idle = self.rec.responsive(grace).await;
        self.health.shutdown();
        tracing::info!(tasks = n, apply_finished = idle, "background tasks stopped");
        idle
    }

    /// Whether the reconciler answers within `within` (the watchdog's question).
    pub async fn responsive(&self, within: Duration) -> bool {
        self.rec.responsive(within).await
    }

    /// Facts about the node.
    pub async fn facts(&self) -> Facts {
        facts::gather(self.rec.system(), &self.node).await
    }
}
