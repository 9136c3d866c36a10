//! The agent's life: start-up (with the clock loop and the start-up retry), the healer,
//! applies run to completion, decommission, and what follows every change (health checks
//! and the VRRP engine follow the accepted spec).
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_proto::NodeSpec;
use lvs_proto::spec::CheckSpec;

use super::agent::Agent;
use super::agent::{CLOCK_PERIOD, START_RETRY_MAX, START_RETRY_MIN};
use super::error::AgentError;
use crate::health::clock::{self, Reading};
use crate::kernel::system::System;
use crate::telemetry::events::Detail;
use lvs_proto::reply::EventKind;
use lvs_proto::reply::Report;

impl<S: System + 'static> Agent<S> {
    /// Start the clock timer and the health checks, and re-apply the persisted spec
    /// (addresses and IPVS rules do not survive a reboot). The checks and the clock run
    /// whatever the re-apply does: a director whose gateway is missing at boot still
    /// health-checks its real servers. A failed re-apply is retried with back-off (1 s
    /// doubling to 60 s) until it succeeds; until then `status` shows why.
    pub async fn start(self: &Arc<Self>) -> Result<Option<Report>, AgentError> {
        let me = Arc::downgrade(self);
        self.tasks.spawn("clock", async move {
            loop {
                let Some(a) = me.upgrade() else { return };
                a.measure_clock().await;
                drop(a);
                tokio::time::sleep(CLOCK_PERIOD).await;
            }
        });
        self.start_announcer();
        self.start_arp_watch();
        let first = self.start_once().await;
        if let Err(e) = &first {
            *self.startup.lock().expect("startup") = Some(e.to_string());
            let me = Arc::downgrade(self);
            self.tasks.spawn("start-up retry", async move {
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

    pub(super) async fn start_once(self: &Arc<Self>) -> Result<Option<Report>, AgentError> {
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
                    r.converged
                ),
                done(r),
            );
        }
        self.after_change().await?;
        Ok(r)
    }

    /// Every `every`, compare the node with its accepted spec; on drift (someone deleted
    /// the VIP, flushed the IPVS table, reset a sysctl), report it as an event and re-apply.
    pub fn spawn_healer(self: &Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let me = Arc::downgrade(self);
        self.tasks.spawn("healer", async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(a) = me.upgrade() else { return };
                a.heal().await;
            }
        });
    }

    pub(super) async fn heal(&self) {
        let (generation, drift) = match self.rec.drift().await {
            Ok(Some((generation, plan))) if !plan.actions.is_empty() => (generation, plan),
            Ok(_) => return,
            Err(e) => return tracing::warn!(error = %e, "drift check failed"),
        };
        let what: Vec<String> = drift.actions.iter().take(5).map(ToString::to_string).collect();
        self.events.emit_with(
            EventKind::Drift,
            format!(
                "{} difference(s) from generation {}: {}; re-applying",
                drift.actions.len(),
                generation,
                what.join("; ")
            ),
            Detail {
                generation,
                changes: drift.actions.iter().map(crate::reconcile::action::Action::to_change).collect(),
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
                    r.converged
                ),
                done(&r),
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "re-applying after drift failed"),
        }
    }

    pub(super) async fn after_change(self: &Arc<Self>) -> Result<(), AgentError> {
        let st = self.rec.state()?;
        if let Some(spec) = &st.spec {
            self.health.sync(spec, &st.runtime, &self.rec, &self.events);
        }
        // The VRRP engine follows the accepted spec (the IPVS table and the sync daemons
        // it needs are in place by now).
        self.vrrp.ensure(st.spec.as_ref().and_then(|s| s.vrrp.as_ref())).await?;
        // BGP follows at once too (the announcer would within a tick).
        self.announce_once().await;
        Ok(())
    }

    pub(super) async fn measure_clock(&self) {
        let Ok(st) = self.rec.state() else { return };
        let server = st.spec.iter().flat_map(|s| &s.checks).find_map(|c| match c {
            CheckSpec::ClockOffset { server, .. } => Some(*server),
            _ => None,
        });
        let Some(server) = server else { return };
        self.measure_clock_against(server).await;
    }

    pub(super) async fn measure_clock_against(&self, server: std::net::IpAddr) -> Reading {
        let r = clock::measure(server, 123, Duration::from_secs(1)).await;
        *self.clock.lock().expect("clock") = Some(r.clone());
        r
    }

    /// The clock's offset from `server`, measured now (the `Clock` call: the controller's
    /// time gate asks it of every node before an apply). It is also the reading `status`
    /// and the metrics report until the next one.
    pub async fn clock(&self, server: std::net::IpAddr) -> Reading {
        self.measure_clock_against(server).await
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
        let by = crate::server::caller::current();
        tokio::spawn(crate::server::caller::carry(by, async move {
            let r = me.apply_to_completion(&spec, adopt).await;
            let _ = me.release(&lease); // checked when the apply began
            r
        }))
        .await
        .map_err(AgentError::Task)?
    }

    pub(super) async fn apply_to_completion(
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
                r.converged
            ),
            done(&r),
        );
        self.after_change().await?;
        if spec.checks.iter().any(|c| matches!(c, CheckSpec::ClockOffset { .. })) {
            self.measure_clock().await;
        }
        Ok(r)
    }

    /// Take this node out of the cluster ([`Reconciler::decommission`]): its health checks
    /// stop and nothing is healed until a newer spec is applied. `node` must be this one.
    pub async fn decommission(self: &Arc<Self>, node: &str) -> Result<Report, AgentError> {
        if node != self.node {
            return Err(AgentError::Invalid(format!("this agent is {}, not {node}", self.node)));
        }
        let r = self.rec.decommission().await?;
        self.health.stop();
        // Out of the cluster: no VRRP engine, so no VIP held any more; no routing daemon,
        // so none announced.
        self.vrrp.ensure(None).await?;
        if let Err(e) = self.bgp.ensure(None, &[]).await {
            tracing::warn!(error = %e, "stopping the routing daemon");
        }
        self.events.emit_with(
            EventKind::Decommission,
            format!("decommissioned: {}/{} change(s) undone", r.applied(), r.actions.len()),
            done(&r),
        );
        Ok(r)
    }
}

/// An event's detail for a report: its generation and the changes it applied.
pub(super) fn done(r: &Report) -> Detail {
    Detail {
        generation: r.generation,
        changes: r
            .actions
            .iter()
            .filter(|a| a.outcome == lvs_proto::reply::Outcome::Applied)
            .map(|a| a.change.clone())
            .collect(),
        failure: None,
    }
}
