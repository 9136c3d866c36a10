//! The agent of one node: everything the gRPC handlers hand their work to. It owns the
//! reconciler (the only writer of the kernel), the health checker, the clock reading, the
//! event feed and the apply lease.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_proto::NodeSpec;
use lvs_proto::spec::{CheckSpec, Role, ServiceKey};

use crate::checks::{self, CheckResult};
use crate::clock::{self, Reading};
use crate::convert;
use crate::events::{Detail, Events};
use crate::facts;
use crate::health::{DestHealth, Health};
use crate::reconcile::{ReconcileError, Reconciler, Report};
use crate::state::{State, Store, override_key};
use crate::system::{IpvsService, System, SystemError};
use lvs_proto::reply::EventKind;
use lvs_proto::reply::Facts;

/// Why a request was not carried out, with its source kept typed. The gRPC layer maps
/// each to one status code, in one place (`grpc::status`).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Too many of this kind of request are running: try again.
    #[error("{0}")]
    Busy(String),
    /// Another controller holds this generation's reservation.
    #[error("{0}")]
    Leased(String),
    /// The reconciler refused or failed (its kind decides the code).
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// The state file.
    #[error(transparent)]
    Store(#[from] crate::state::StoreError),
    /// A kernel read or change.
    #[error(transparent)]
    System(#[from] SystemError),
    /// This kernel has no IPVS.
    #[error("this kernel has no IPVS (load ip_vs)")]
    NoIpvs,
    /// A live weight change the kernel does not show.
    #[error("weight change not applied: {0}")]
    NotApplied(String),
    /// The apply task panicked or was cancelled.
    #[error("the apply task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The VRRP engine (director HA).
    #[error("VRRP engine: {0}")]
    Vrrp(#[from] crate::vrrp::VrrpError),
}

/// A controller's reservation of a generation (see `SpecRequest.lease` in the proto).
#[derive(Debug, Clone)]
struct Lease {
    id: String,
    generation: u64,
    expires: Instant,
}

/// Everything `status` reports.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// Facts.
    pub facts: Facts,
    /// The persisted state.
    pub state: State,
    /// What differs from the accepted spec now.
    pub drift: Vec<crate::diff::Action>,
    /// Foreign objects seen.
    pub foreign: Vec<String>,
    /// Check outcomes.
    pub checks: Vec<CheckResult>,
    /// The IPVS table (directors).
    pub ipvs: Option<IpvsView>,
    /// The latest clock reading.
    pub clock: Option<Reading>,
    /// Health of the director's destinations.
    pub health: Vec<DestHealth>,
}

/// The IPVS table with what surrounds it.
#[derive(Debug, Clone)]
pub struct IpvsView {
    /// Version and table size.
    pub info: lvs_ipvs::Info,
    /// Timeouts.
    pub timeouts: lvs_ipvs::Timeouts,
    /// Services with destinations and counters; `bool`: created by this agent.
    pub services: Vec<(IpvsService, bool)>,
    /// Connections, when asked (at most the limit asked for).
    pub connections: Vec<lvs_ipvs::conn::Connection>,
    /// The table held more connections than were read.
    pub connections_truncated: bool,
}

/// Result of a live weight change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightView {
    /// Weight the kernel holds now.
    pub weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
}

/// A VIP probe's request.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// Where.
    pub target: SocketAddr,
    /// Path.
    pub path: String,
    /// Host header.
    pub host: Option<String>,
    /// How many requests.
    pub count: u32,
    /// How many at once.
    pub concurrency: u32,
    /// Per-request deadline.
    pub timeout: Duration,
}

/// A VIP probe's outcome.
#[derive(Debug, Clone, Default)]
pub struct ProbeView {
    /// Requests sent.
    pub sent: u32,
    /// Answered with a status < 500.
    pub answered: u32,
    /// Failed.
    pub failed: u32,
    /// First body line → count.
    pub bodies: BTreeMap<String, u32>,
    /// Distinct errors (first few).
    pub errors: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// First body lines in completion order (for small counts).
    pub sequence: Vec<String>,
}

/// The agent.
pub struct Agent<S: System + 'static> {
    node: String,
    rec: Arc<Reconciler<S>>,
    events: Events,
    health: Health,
    /// Turns for connection-table reads.
    heavy_reads: crate::reads::HeavyReads,
    clock: Mutex<Option<Reading>>,
    lease: Mutex<Option<Lease>>,
    /// Why the start-up re-apply failed, while it is being retried.
    startup: Mutex<Option<String>>,
    /// Certificate serials refused at the door (kept beside the state file).
    revoked: Arc<crate::revoked::Revoked>,
    /// The VRRP engine (directors sharing VIPs); [`crate::vrrp::NoVrrp`] elsewhere.
    vrrp: Arc<dyn crate::vrrp::VrrpEngine>,
}

/// How often the clock is measured.
const CLOCK_PERIOD: Duration = Duration::from_secs(5);
/// First and longest wait between start-up re-apply attempts.
const START_RETRY_MIN: Duration = Duration::from_secs(1);
const START_RETRY_MAX: Duration = Duration::from_secs(60);

impl<S: System + 'static> Agent<S> {
    /// An agent for `node` over `sys`, persisting in `store`.
    pub fn new(node: &str, sys: Arc<S>, store: Store) -> Arc<Self> {
        Self::with_vrrp(node, sys, store, |_| Arc::new(crate::vrrp::NoVrrp))
    }

    /// [`Agent::new`] with the VRRP engine `engine` makes (given the agent's event feed,
    /// which the engine publishes its transitions on).
    pub fn with_vrrp(
        node: &str,
        sys: Arc<S>,
        store: Store,
        engine: impl FnOnce(&Events) -> Arc<dyn crate::vrrp::VrrpEngine>,
    ) -> Arc<Self> {
        Self::with_parts(node, sys, store, Arc::default(), engine)
    }

    /// [`Agent::new`] whose checks and hooks come from the script policy `scripts`.
    pub fn with_scripts(
        node: &str,
        sys: Arc<S>,
        store: Store,
        scripts: crate::scripts::Scripts,
    ) -> Arc<Self> {
        Self::with_parts(node, sys, store, Arc::new(scripts), |_| Arc::new(crate::vrrp::NoVrrp))
    }

    /// The agent of `node` from all its parts: the kernel `sys`, the state `store`, the
    /// script policy `scripts` and the VRRP engine `engine` makes (given the event feed).
    pub fn with_parts(
        node: &str,
        sys: Arc<S>,
        store: Store,
        scripts: Arc<crate::scripts::Scripts>,
        engine: impl FnOnce(&Events) -> Arc<dyn crate::vrrp::VrrpEngine>,
    ) -> Arc<Self> {
        let revoked =
            Arc::new(crate::revoked::Revoked::load(store.path().parent().unwrap_or(Path::new("."))));
        let events = Events::default();
        let vrrp = engine(&events);
        Arc::new(Self {
            revoked,
            vrrp,
            node: node.to_string(),
            rec: Arc::new(Reconciler::with_scripts(node, sys, store, scripts)),
            events,
            health: Health::default(),
            heavy_reads: Default::default(),
            clock: Mutex::new(None),
            lease: Mutex::new(None),
            startup: Mutex::new(None),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The certificate serials this agent refuses.
    pub fn revoked(&self) -> &Arc<crate::revoked::Revoked> {
        &self.revoked
    }

    /// The event feed.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Start the clock timer and the health checks, and re-apply the persisted spec
    /// (addresses and IPVS rules do not survive a reboot). The checks and the clock run
    /// whatever the re-apply does: a director whose gateway is missing at boot still
    /// health-checks its real servers. A failed re-apply is retried with back-off (1 s
    /// doubling to 60 s) until it succeeds; until then `status` shows why.
    pub async fn start(self: &Arc<Self>) -> Result<Option<Report>, AgentError> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(a) = me.upgrade() else { return };
                a.measure_clock().await;
                drop(a);
                tokio::time::sleep(CLOCK_PERIOD).await;
            }
        });
        let first = self.start_once().await;
        if let Err(e) = &first {
            *self.startup.lock().expect("startup") = Some(e.to_string());
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut wait = START_RETRY_MIN;
                loop {
                    tokio::time::sleep(wait).await;
                    let Some(a) = me.upgrade() else { return };
                    if a.startup.lock().expect("startup").is_none() {
                        return; // an admin's apply got there first
                    }
                    match a.start_once().await {
                        Ok(_) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in = ?wait * 2, "start-up re-apply failed again");
                            *a.startup.lock().expect("startup") = Some(e.to_string());
                        }
                    }
                    wait = (wait * 2).min(START_RETRY_MAX);
                }
            });
        }
        // Health checks follow the stored spec even when it could not be re-applied.
        if first.is_err()
            && let Ok(st) = self.rec.state()
            && let Some(spec) = &st.spec
        {
            self.health.sync(spec, &st.runtime, &self.rec, &self.events);
        }
        first
    }

    async fn start_once(self: &Arc<Self>) -> Result<Option<Report>, AgentError> {
        let t0 = Instant::now();
        let r = self.rec.reapply_stored().await;
        self.events.metrics().reconciled("start", r.is_ok(), t0.elapsed());
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                self.events.emit(EventKind::Start, format!("re-applying the stored spec FAILED: {e}"));
                return Err(e.into());
            }
        };
        *self.startup.lock().expect("startup") = None;
        if let Some(r) = &r {
            self.events.emit_with(
                EventKind::Start,
                format!(
                    "re-applied stored generation {}: {} action(s), converged {}",
                    r.generation,
                    r.actions.len(),
                    r.converged()
                ),
                done(r),
            );
        }
        self.after_change().await?;
        Ok(r)
    }

    /// Whether the reconciler answers within `within` (the watchdog's question).
    pub async fn responsive(&self, within: Duration) -> bool {
        self.rec.responsive(within).await
    }

    /// Every `every`, compare the node with its accepted spec; on drift (someone deleted
    /// the VIP, flushed the IPVS table, reset a sysctl), report it as an event and re-apply.
    pub fn spawn_healer(self: &Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(a) = me.upgrade() else { return };
                a.heal().await;
            }
        });
    }

    async fn heal(&self) {
        let drift = match self.rec.drift().await {
            Ok(Some(r)) if !r.actions.is_empty() => r,
            Ok(_) => return,
            Err(e) => return tracing::warn!(error = %e, "drift check failed"),
        };
        let what: Vec<String> = drift.actions.iter().take(5).map(|a| a.change.to_string()).collect();
        self.events.emit_with(
            EventKind::Drift,
            format!(
                "{} difference(s) from generation {}: {}; re-applying",
                drift.actions.len(),
                drift.generation,
                what.join("; ")
            ),
            Detail {
                generation: drift.generation,
                changes: drift.actions.iter().map(|a| a.change.to_change()).collect(),
                failure: None,
            },
        );
        let t0 = Instant::now();
        let healed = self.rec.reapply_stored().await;
        self.events.metrics().reconciled("heal", healed.is_ok(), t0.elapsed());
        match healed {
            Ok(Some(r)) => self.events.emit_with(
                EventKind::Heal,
                format!(
                    "generation {} re-applied: {} action(s), converged {}",
                    r.generation,
                    r.actions.len(),
                    r.converged()
                ),
                done(&r),
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "re-applying after drift failed"),
        }
    }

    async fn after_change(self: &Arc<Self>) -> Result<(), AgentError> {
        let st = self.rec.state()?;
        if let Some(spec) = &st.spec {
            self.health.sync(spec, &st.runtime, &self.rec, &self.events);
        }
        // The VRRP engine follows the accepted spec (the IPVS table and the sync daemons
        // it needs are in place by now).
        self.vrrp.ensure(st.spec.as_ref().and_then(|s| s.vrrp.as_ref())).await?;
        Ok(())
    }

    /// This director's VRRP state (none outside a VRRP instance).
    pub fn vrrp_status(&self) -> Option<lvs_proto::reply::VrrpStatus> {
        self.vrrp.status()
    }

    /// Planned failover: hand the VIPs to the next director now, rejoin as a backup.
    pub async fn hand_over(&self) -> Result<Option<lvs_proto::reply::VrrpStatus>, AgentError> {
        self.vrrp.hand_over(&self.flush_targets()).await?;
        Ok(self.vrrp.status())
    }

    /// The TCP virtual services on this director's VRRP VIPs: what a hand-over connects
    /// to so that its last connection-sync message leaves at once ([`crate::sync_flush`]).
    fn flush_targets(&self) -> Vec<SocketAddr> {
        let Some(spec) = self.rec.state().ok().and_then(|st| st.spec) else { return Vec::new() };
        let Some(vrrp) = &spec.vrrp else { return Vec::new() };
        spec.virtual_services
            .iter()
            .filter_map(|v| match v.key {
                ServiceKey::Addr { protocol: lvs_proto::spec::Protocol::Tcp, address }
                    if vrrp.vips.iter().any(|a| a.address.addr() == address.ip()) =>
                {
                    Some(address)
                }
                _ => None,
            })
            .collect()
    }

    /// The kernel's IPVS sync daemons (none without IPVS). Asked of directors only: on a
    /// router or real server the question alone would make the kernel load ip_vs.
    pub async fn sync_daemons(&self) -> Vec<lvs_proto::reply::SyncDaemon> {
        let director = self.rec.state().is_ok_and(|st| st.spec.is_some_and(|s| s.role == Role::Director));
        self.sync_daemons_of(director).await
    }

    /// [`Agent::sync_daemons`] when the caller already knows whether this is a director.
    async fn sync_daemons_of(&self, director: bool) -> Vec<lvs_proto::reply::SyncDaemon> {
        if !director {
            return Vec::new();
        }
        self.rec
            .system()
            .ipvs_daemons()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|d| lvs_proto::reply::SyncDaemon {
                state: crate::diff::daemon_word(d.state).into(),
                interface: d.mcast_ifn,
                sync_id: d.sync_id,
            })
            .collect()
    }

    /// What a metrics scrape reads now: the IPVS table with its counters (directors),
    /// health, generation, clock, VRRP and sync daemons. One table dump per scrape, no
    /// diff: a scrape is cheap enough to run every few seconds.
    pub async fn metrics_snapshot(
        &self,
        certificate_not_after_unix: Option<u64>,
    ) -> crate::exposition::Snapshot {
        let state = self.rec.state().ok();
        let quorum = state
            .as_ref()
            .and_then(|st| st.spec.as_ref().map(|s| crate::quorum::view(s, &st.runtime)))
            .unwrap_or_default();
        let spec = state.and_then(|st| st.spec);
        let director = spec.as_ref().is_some_and(|s| s.role == Role::Director);
        let services = if director {
            match self.rec.system().ipvs().await {
                Ok(t) => t.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: IPVS table unreadable");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let clock_offset_ms = self.clock.lock().expect("clock").as_ref().and_then(|r| r.offset_ms);
        let clock_limit_ms = spec.iter().flat_map(|s| &s.checks).find_map(|c| match c {
            CheckSpec::ClockOffset { max_offset_ms, .. } => Some(*max_offset_ms),
            _ => None,
        });
        let sync_daemons = self.sync_daemons_of(director).await;
        crate::exposition::Snapshot {
            node: self.node.clone(),
            role: spec.as_ref().map(|s| s.role.as_str().to_string()).unwrap_or_default(),
            generation: spec.as_ref().map_or(0, |s| s.generation),
            services,
            health: self.health.snapshot(),
            quorum,
            certificate_not_after_unix,
            clock_offset_ms,
            clock_limit_ms,
            vrrp: self.vrrp_status(),
            sync_daemons,
        }
    }

    async fn measure_clock(&self) {
        let Ok(st) = self.rec.state() else { return };
        let server = st.spec.iter().flat_map(|s| &s.checks).find_map(|c| match c {
            CheckSpec::ClockOffset { server, .. } => Some(*server),
            _ => None,
        });
        let Some(server) = server else { return };
        self.measure_clock_against(server).await;
    }

    async fn measure_clock_against(&self, server: std::net::IpAddr) {
        let r = clock::measure(server, 123, Duration::from_secs(1)).await;
        *self.clock.lock().expect("clock") = Some(r);
    }

    /// Facts about the node.
    pub async fn facts(&self) -> Facts {
        facts::gather(self.rec.system(), &self.node).await
    }

    fn lease(&self, spec: &NodeSpec, id: &str, ttl: Duration, reserve: bool) -> Result<(), AgentError> {
        check_lease_id(id)?;
        let now = Instant::now();
        let mut l = self.lease.lock().expect("lease");
        if let Some(cur) = l.as_ref().filter(|c| c.expires > now && c.id != id) {
            return Err(AgentError::Leased(format!(
                "conflict: another controller is applying generation {} to {} (lease {} expires in {} s); \
                 wait for it to finish, then re-run",
                cur.generation,
                self.node,
                &cur.id[..cur.id.len().min(8)],
                (cur.expires - now).as_secs() + 1
            )));
        }
        if reserve && !id.is_empty() {
            *l = if ttl.is_zero() {
                None
            } else {
                Some(Lease { id: id.to_string(), generation: spec.generation, expires: now + ttl })
            };
        }
        Ok(())
    }

    /// Give up the reservation `id` holds, if it still holds one.
    fn release_lease(&self, id: &str) {
        let mut l = self.lease.lock().expect("lease");
        if l.as_ref().is_some_and(|c| c.id == id) {
            *l = None;
        }
    }

    /// Diff `spec` against the node; with a lease id, reserve the generation for `ttl`
    /// (a zero `ttl` releases the caller's reservation).
    /// Without a lease id it is a read (`lvsctl plan`) and never refused for someone
    /// else's reservation: only a plan that reserves can conflict with one. `adopt`: see
    /// [`Agent::apply`].
    pub async fn plan(
        &self,
        spec: &NodeSpec,
        lease: &str,
        ttl: Duration,
        adopt: bool,
    ) -> Result<Report, AgentError> {
        check_lease_id(lease)?;
        let r = self.rec.plan(spec, adopt).await?;
        if !lease.is_empty() {
            self.lease(spec, lease, ttl, true)?;
        }
        Ok(r)
    }

    /// Make the node match `spec`. The apply runs in a task of its own: once started it
    /// finishes even when the caller goes away (the controller killed, its deadline
    /// passed), because an apply cut off between two kernel changes is worse than a late
    /// one; its outcome is in the event feed and the next `status`. Whatever happens, the
    /// caller's lease is released at the end, so a failed apply never blocks the next one.
    /// With `adopt`, IPVS services the spec names that another tool created become this
    /// agent's; without it they refuse the apply (nothing is changed).
    pub async fn apply(
        self: &Arc<Self>,
        spec: &NodeSpec,
        lease: &str,
        adopt: bool,
    ) -> Result<Report, AgentError> {
        self.lease(spec, lease, Duration::ZERO, false)?;
        let (me, spec, lease) = (Arc::clone(self), spec.clone(), lease.to_string());
        let by = crate::caller::current();
        tokio::spawn(crate::caller::carry(by, async move {
            let r = me.apply_to_completion(&spec, adopt).await;
            me.release_lease(&lease);
            r
        }))
        .await
        .map_err(AgentError::Task)?
    }

    async fn apply_to_completion(
        self: &Arc<Self>,
        spec: &NodeSpec,
        adopt: bool,
    ) -> Result<Report, AgentError> {
        let t0 = Instant::now();
        let r = self.rec.apply(spec, adopt).await;
        self.events.metrics().reconciled("apply", r.is_ok(), t0.elapsed());
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                self.events.emit_with(
                    EventKind::Apply,
                    format!("generation {}: FAILED {e}", spec.generation),
                    Detail { generation: spec.generation, changes: Vec::new(), failure: Some(e.failure()) },
                );
                return Err(e.into());
            }
        };
        // The admin's apply supersedes a failed start-up and acknowledges a recovered state.
        *self.startup.lock().expect("startup") = None;
        self.rec.store().clear_recovery();
        self.events.emit_with(
            EventKind::Apply,
            format!(
                "generation {}: {}/{} action(s) applied, converged {}",
                r.generation,
                r.applied(),
                r.actions.len(),
                r.converged()
            ),
            done(&r),
        );
        self.after_change().await?;
        if spec.checks.iter().any(|c| matches!(c, CheckSpec::ClockOffset { .. })) {
            self.measure_clock().await;
        }
        Ok(r)
    }

    /// Observed against desired, checks, clock, health and (directors) the IPVS table.
    /// With `ntp`, the clock is measured against that server now.
    // Long on purpose: each section below degrades on its own (a failed read becomes a
    // failed check), and that is read best as one sequence.
    pub async fn status(&self, ntp: Option<std::net::IpAddr>) -> Result<StatusView, AgentError> {
        if let Some(server) = ntp {
            self.measure_clock_against(server).await;
        }
        let mut checks = Vec::new();
        // A damaged state file is reported, not a reason to stop answering.
        let state = match self.rec.state() {
            Ok(s) => s,
            Err(e) => {
                checks.push(CheckResult {
                    check: "state file readable".into(),
                    ok: false,
                    detail: e.to_string(),
                });
                State::default()
            }
        };
        if let Some(note) = self.rec.store().recovery() {
            checks.push(CheckResult { check: "state file intact".into(), ok: false, detail: note });
        }
        if let Some(e) = self.startup.lock().expect("startup").clone() {
            checks.push(CheckResult {
                check: "stored spec re-applied at start".into(),
                ok: false,
                detail: format!("{e} (retrying with back-off; `lvsctl apply` also clears this)"),
            });
        }
        // Drift as actions: the report carries them, the checks decide on them. A node
        // that cannot be diffed says so as a failed check.
        let (drift, foreign) = match self.rec.drift().await {
            Ok(Some(r)) => (Some(r.actions.into_iter().map(|a| a.change).collect::<Vec<_>>()), r.foreign),
            Ok(None) => (Some(Vec::new()), Vec::new()),
            Err(e) => {
                checks.push(CheckResult {
                    check: "drift measured".into(),
                    ok: false,
                    detail: format!("cannot diff: {e}"),
                });
                (None, Vec::new())
            }
        };
        if self.clock.lock().expect("clock").is_none() {
            self.measure_clock().await;
        }
        let clock = self.clock.lock().expect("clock").clone();
        if let Some(s) = &state.spec {
            checks.extend(checks::evaluate(self.rec.system(), &s.checks, clock.as_ref()).await);
        }
        if let Some(s) = state.spec.as_ref().filter(|s| s.role == Role::RealServer) {
            checks.push(vip_ready(s, drift.as_deref()));
        }
        if state.runtime.ipvs_cleared {
            checks.push(CheckResult {
                check: "IPVS services in force".into(),
                ok: false,
                detail: "withdrawn by `lvsctl ipvs clear`; `lvsctl apply` restores them".into(),
            });
        }
        // A director whose table cannot be read still reports everything else.
        let ipvs = match state.spec.as_ref().map(|s| s.role) {
            Some(Role::Director) => match self.ipvs_table(false, 0).await {
                Ok(t) => Some(t),
                Err(e) => {
                    checks.push(CheckResult {
                        check: "IPVS table readable".into(),
                        ok: false,
                        detail: e.to_string(),
                    });
                    None
                }
            },
            _ => None,
        };
        Ok(StatusView {
            facts: self.facts().await,
            state,
            drift: drift.unwrap_or_default(),
            foreign,
            checks,
            ipvs,
            clock,
            health: self.health.snapshot(),
        })
    }

    /// IPVS version, table size and timeouts; `NotFound` on a kernel without IPVS.
    async fn ipvs_info(&self) -> Result<(lvs_ipvs::Info, lvs_ipvs::Timeouts), AgentError> {
        self.rec.system().ipvs_info().await.map_err(AgentError::System)?.ok_or(AgentError::NoIpvs)
    }

    /// The IPVS table.
    pub async fn ipvs_table(&self, connections: bool, limit: u32) -> Result<IpvsView, AgentError> {
        let sys = self.rec.system();
        // Reading connections is the one heavy read a viewer can ask for: one at a time per
        // caller, a few at once in all (beyond: RESOURCE_EXHAUSTED, try again).
        let _turn = if connections { Some(self.heavy_reads.turn().map_err(AgentError::Busy)?) } else { None };
        let fail = AgentError::System;
        let (info, timeouts) = self.ipvs_info().await?;
        let owned = self.rec.state()?.owned.services;
        let services = sys
            .ipvs()
            .await
            .map_err(fail)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let managed = owned.iter().any(|k| convert::service_key(k) == s.service.key);
                (s, managed)
            })
            .collect();
        let limit = match limit {
            0 => DEFAULT_CONNECTIONS,
            n => (n as usize).min(MAX_CONNECTIONS_READ),
        };
        let (connections, connections_truncated) =
            if connections { sys.ipvs_connections(limit).await.map_err(fail)? } else { (Vec::new(), false) };
        Ok(IpvsView { info, timeouts, services, connections, connections_truncated })
    }

    /// Connections of each of `dests` now (see [`lvs_ipvs::conn::count`]).
    pub async fn live_connections(
        &self,
        dests: &[SocketAddr],
        live_within_s: u32,
    ) -> Result<Vec<lvs_ipvs::conn::DestCount>, AgentError> {
        if dests.len() > MAX_COUNTED_DESTINATIONS {
            return Err(AgentError::Invalid(format!(
                "destinations: at most {MAX_COUNTED_DESTINATIONS} at a time"
            )));
        }
        let _turn = self.heavy_reads.turn().map_err(AgentError::Busy)?;
        let sys = self.rec.system();
        let (_, timeouts) = self.ipvs_info().await?;
        sys.ipvs_count_connections(dests, timeouts.tcp, live_within_s).await.map_err(AgentError::System)
    }

    /// Take this node out of the cluster ([`Reconciler::decommission`]): its health checks
    /// stop and nothing is healed until a newer spec is applied. `node` must be this one.
    pub async fn decommission(self: &Arc<Self>, node: &str) -> Result<Report, AgentError> {
        if node != self.node {
            return Err(AgentError::Invalid(format!("this agent is {}, not {node}", self.node)));
        }
        let r = self.rec.decommission().await?;
        self.health.stop();
        // Out of the cluster: no VRRP engine, so no VIP held any more.
        self.vrrp.ensure(None).await?;
        self.events.emit_with(
            EventKind::Decommission,
            format!("decommissioned: {}/{} change(s) undone", r.applied(), r.actions.len()),
            done(&r),
        );
        Ok(r)
    }

    /// Withdraw every IPVS service this agent created until the next apply (foreign ones
    /// stay). The report lists what was removed.
    pub async fn clear_ipvs(self: &Arc<Self>) -> Result<Report, AgentError> {
        let (_, r) = self
            .rec
            .update_runtime(|_, rt| {
                rt.ipvs_cleared = true;
                Ok(())
            })
            .await?;
        self.events.emit_with(
            EventKind::Clear,
            format!("IPVS cleared by the admin: {} change(s)", r.actions.len()),
            done(&r),
        );
        Ok(r)
    }

    /// Set (or with `None` clear) the admin weight of one destination and apply it.
    pub async fn set_weight(
        self: &Arc<Self>,
        service: ServiceKey,
        dest: SocketAddr,
        weight: Option<u32>,
    ) -> Result<WeightView, AgentError> {
        if weight.is_some_and(|w| w > 65535) {
            return Err(AgentError::Invalid(format!("weight {} is outside 0..=65535", weight.unwrap_or(0))));
        }
        let key = override_key(&service, dest);
        let k = key;
        let (_, report) = self
            .rec
            .update_runtime(move |spec, rt| {
                let known = spec
                    .virtual_services
                    .iter()
                    .any(|v| v.key == service && v.destinations.iter().any(|d| d.address == dest));
                if !known {
                    return Err(ReconcileError::NotInSpec(format!(
                        "{dest} is not a destination of {service} in this node's spec"
                    )));
                }
                match weight {
                    Some(w) => rt.weights.insert(k, w),
                    None => rt.weights.remove(&k),
                };
                Ok(())
            })
            .await?;
        if !report.converged() {
            let left: Vec<String> = report.drift_after.iter().map(ToString::to_string).collect();
            return Err(AgentError::NotApplied(left.join("; ")));
        }
        let what = weight.map_or("spec weight restored".to_string(), |w| format!("weight {w}"));
        self.events.emit(EventKind::Weight, format!("{service} {dest}: {what}"));
        let table = self.rec.system().ipvs().await?;
        let entry = table
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.service.key == convert::service_key(&service))
            .flat_map(|s| s.destinations)
            .find(|d| d.dest.addr == dest);
        Ok(match entry {
            Some(d) => {
                WeightView { weight: d.dest.weight, active: d.active_conns, inactive: d.inactive_conns }
            }
            // Removed by quarantine (on_failure = remove): no connections can be scheduled.
            None => WeightView { weight: 0, active: 0, inactive: 0 },
        })
    }

    /// Send `count` HTTP requests to a target and tally the answers.
    pub async fn probe(&self, req: ProbeRequest) -> ProbeView {
        let start = Instant::now();
        let host = req.host.clone().unwrap_or_else(|| req.target.ip().to_string());
        let concurrency = req.concurrency.clamp(1, 64) as usize;
        // Each answer is tallied as it arrives and dropped: memory is `concurrency` bodies,
        // not `count` of them.
        let mut answers = futures::StreamExt::buffered(
            futures::stream::iter(
                (0..req.count).map(|_| crate::http::get(req.target, &host, &req.path, req.timeout)),
            ),
            concurrency,
        );
        let mut v = ProbeView { sent: req.count, ..Default::default() };
        while let Some(r) = futures::StreamExt::next(&mut answers).await {
            match r {
                Ok(resp) if resp.status < 500 => {
                    v.answered += 1;
                    // A real server's bytes reach the admin's terminal: no control characters.
                    let mut line: String = resp.first_line().chars().filter(|c| !c.is_control()).collect();
                    if line.len() > MAX_PROBE_LINE {
                        let cut = (0..=MAX_PROBE_LINE).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
                        line.truncate(cut);
                        line.push('…');
                    }
                    if req.count <= 64 {
                        v.sequence.push(line.clone());
                    }
                    // A tally per real server: a handful of keys, whatever answers.
                    if v.bodies.len() >= MAX_PROBE_BODIES && !v.bodies.contains_key(&line) {
                        line = "(other)".into();
                    }
                    *v.bodies.entry(line).or_default() += 1;
                }
                Ok(resp) => {
                    v.failed += 1;
                    push_distinct(&mut v.errors, format!("status {}", resp.status));
                }
                Err(e) => {
                    v.failed += 1;
                    push_distinct(&mut v.errors, e.chars().filter(|c| !c.is_control()).collect());
                }
            }
        }
        v.elapsed = start.elapsed();
        v
    }
}

/// Longest lease id accepted: ours are 16 hex digits.
const MAX_LEASE_ID: usize = 64;

/// A lease id is what the controller's generator makes: short, printable ASCII. Anything
/// else is refused before it is stored or sliced for a message.
fn check_lease_id(id: &str) -> Result<(), AgentError> {
    if id.len() > MAX_LEASE_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(AgentError::Invalid(format!(
            "lease id must be at most {MAX_LEASE_ID} ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

/// Most destinations one `LiveConnections` call may name.
const MAX_COUNTED_DESTINATIONS: usize = 1024;

/// Connection entries an `IpvsTable` read returns unless the caller asks for another number.
const DEFAULT_CONNECTIONS: usize = 10_000;
/// The most a caller may ask for (about 15 MiB on the wire).
const MAX_CONNECTIONS_READ: usize = 100_000;

/// Longest first line kept from a probe's answer.
const MAX_PROBE_LINE: usize = 120;
/// Most distinct first lines tallied by one probe; the rest count as `(other)`.
const MAX_PROBE_BODIES: usize = 64;

fn push_distinct(v: &mut Vec<String>, e: String) {
    if v.len() < 5 && !v.contains(&e) {
        v.push(e);
    }
}

/// A real server accepts VIP traffic when its hidden VIP, host route and ARP sysctls are
/// all in force: none of those is among the pending changes (`None`: the node could not
/// be diffed, so it cannot be said).
fn vip_ready(spec: &NodeSpec, drift: Option<&[crate::diff::Action]>) -> CheckResult {
    use crate::diff::Action;
    let vips: Vec<std::net::IpAddr> = spec
        .addresses
        .iter()
        .filter(|a| a.purpose == lvs_proto::spec::AddressPurpose::HiddenVip)
        .map(|a| a.address.addr())
        .collect();
    let names: Vec<String> = vips.iter().map(ToString::to_string).collect();
    let check = format!("kernel accepts VIP traffic ({} on lo, ARP hidden)", names.join(", "));
    let Some(drift) = drift else {
        return CheckResult {
            check,
            ok: false,
            detail: "cannot tell: the node could not be compared with its spec".into(),
        };
    };
    let missing: Vec<String> = drift
        .iter()
        .filter(|a| match a {
            Action::SetSysctl { key, .. } => key.ends_with(".arp_ignore") || key.ends_with(".arp_announce"),
            Action::AddAddress(x) | Action::DelAddress(x) => vips.contains(&x.address.addr()),
            Action::AddRoute { route, .. } | Action::DelRoute(route) => {
                vips.contains(&route.destination.addr())
            }
            Action::Ipvs(_) => false,
        })
        .map(ToString::to_string)
        .collect();
    CheckResult {
        check,
        ok: missing.is_empty(),
        detail: if missing.is_empty() {
            "hidden VIP, host route and arp_ignore/arp_announce in force".into()
        } else {
            format!("not yet: {}", missing.join("; "))
        },
    }
}

/// An event's detail for a report: its generation and the changes it applied.
fn done(r: &Report) -> Detail {
    Detail {
        generation: r.generation,
        changes: r
            .actions
            .iter()
            .filter(|a| a.outcome == crate::apply::Outcome::Applied)
            .map(|a| a.change.to_change())
            .collect(),
        failure: None,
    }
}
