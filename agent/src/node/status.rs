//! What the node is and how it is doing: `status` (observed against desired, checks,
//! clock, health, the IPVS table) and the snapshot a metrics scrape reads.

use lvs_proto::NodeSpec;
use lvs_proto::spec::{CheckSpec, Role};

use super::agent::Agent;
use super::error::AgentError;
use crate::health::node_checks::{self, CheckResult};
use crate::health::outcomes::DestHealth;
use crate::kernel::system::System;
use crate::reconcile::state::State;
use lvs_proto::reply::{self, NodeStatus};

use crate::reconcile::action::Action;

impl<S: System + 'static> Agent<S> {
    /// Observed against desired, checks, clock, health, VRRP and (directors) the IPVS table
    /// and its sync daemons, as the `Status` call answers them (the server adds the
    /// certificate it presents). With `ntp`, the clock is measured against that server now.
    // Long on purpose: each section below degrades on its own (a failed read becomes a
    // failed check), and that is read best as one sequence.
    pub async fn status(&self, ntp: Option<std::net::IpAddr>) -> Result<NodeStatus, AgentError> {
        if let Some(server) = ntp {
            self.measure_clock_against(server).await;
        }
        let mut checks = Vec::new();
        // A damaged state file is reported, not a reason to stop answering.
        let state = match self.rec.state() {
            Ok(s) => s,
            Err(e) => {
                checks.push(CheckResult {
                    unknown: false,
                    check: "state file readable".into(),
                    ok: false,
                    detail: e.to_string(),
                });
                State::default()
            }
        };
        if let Some(note) = self.rec.store().recovery() {
            checks.push(CheckResult {
                unknown: false,
                check: "state file intact".into(),
                ok: false,
                detail: note,
            });
        }
        if let Some(e) = self.startup.lock().expect("startup").clone() {
            checks.push(CheckResult {
                unknown: false,
                check: "stored spec re-applied at start".into(),
                ok: false,
                detail: format!("{e} (retrying with back-off; `lvsctl apply` also clears this)"),
            });
        }
        // Drift as actions: the report carries them, the checks decide on them. A node
        // that cannot be diffed says so as a failed check.
        let (drift, foreign) = match self.rec.drift().await {
            Ok(Some((_, plan))) => (Some(plan.actions), plan.foreign),
            Ok(None) => (Some(Vec::new()), Vec::new()),
            Err(e) => {
                checks.push(CheckResult {
                    unknown: false,
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
            checks.extend(node_checks::evaluate(self.rec.system(), s, clock.as_ref()).await);
        }
        if let Some(s) = state.spec.as_ref().filter(|s| s.role == Role::RealServer) {
            checks.push(vip_ready(s, drift.as_deref()));
        }
        if state.runtime.ipvs_cleared {
            checks.push(CheckResult {
                unknown: false,
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
                        unknown: false,
                        check: "IPVS table readable".into(),
                        ok: false,
                        detail: e.to_string(),
                    });
                    None
                }
            },
            _ => None,
        };
        let spec = state.spec.as_ref();
        let director = spec.is_some_and(|s| s.role == Role::Director);
        Ok(NodeStatus {
            facts: self.facts().await,
            generation: state.generation,
            has_spec: spec.is_some(),
            drift: drift.unwrap_or_default().iter().map(Action::to_change).collect(),
            foreign,
            checks,
            ipvs,
            clock: clock
                .map(|c| reply::Clock { offset_ms: c.offset_ms, rtt_ms: c.rtt_ms, error: c.error })
                .unwrap_or_default(),
            health: self.health.snapshot().iter().map(DestHealth::to_reply).collect(),
            overrides: overrides(spec, &state.runtime),
            // The server's to fill in: the certificate is the listener's, not the node's.
            certificate: None,
            vrrp: self.vrrp_status(),
            sync_daemons: self.sync_daemons_of(director).await,
            services: spec.map(|s| crate::health::quorum::view(s, &state.runtime)).unwrap_or_default(),
            bgp: self.bgp_status().await,
            arp_watch: self.arp_status(),
            marks: self.mark_counts(spec).await,
        })
    }

    /// A director with marks: its marking table's rules as found, with their counters
    /// (none when it cannot be read: the drift already says so).
    async fn mark_counts(&self, spec: Option<&NodeSpec>) -> Vec<reply::MarkCount> {
        if spec.is_none_or(|s| s.marks.is_empty()) {
            return Vec::new();
        }
        match self.rec.system().mark_table().await {
            Ok(Some(t)) => t
                .rules
                .into_iter()
                .map(|r| reply::MarkCount { rule: r.rule, packets: r.packets, bytes: r.bytes })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "status: the marking table is unreadable");
                Vec::new()
            }
        }
    }

    /// What a metrics scrape reads now: the IPVS table with its counters (directors),
    /// health, generation, clock, VRRP and sync daemons. One table dump per scrape, no
    /// diff: a scrape is cheap enough to run every few seconds.
    pub async fn metrics_snapshot(
        &self,
        certificate_not_after_unix: Option<u64>,
    ) -> crate::telemetry::exposition::Snapshot {
        let state = self.rec.state().ok();
        let quorum = state
            .as_ref()
            .and_then(|st| st.spec.as_ref().map(|s| crate::health::quorum::view(s, &st.runtime)))
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
        crate::telemetry::exposition::Snapshot {
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
            bgp: self.bgp_status().await,
            arp_watch: self.arp_status(),
            drill: self.last_drill(),
            marks: self.mark_counts(spec.as_ref()).await,
        }
    }

    /// The kernel's IPVS sync daemons (none without IPVS). Asked of directors only: on a
    /// router or real server the question alone would make the kernel load ip_vs.
    pub async fn sync_daemons(&self) -> Vec<reply::SyncDaemon> {
        let director = self.rec.state().is_ok_and(|st| st.spec.is_some_and(|s| s.role == Role::Director));
        self.sync_daemons_of(director).await
    }

    /// [`Agent::sync_daemons`] when the caller already knows whether this is a director.
    pub(super) async fn sync_daemons_of(&self, director: bool) -> Vec<reply::SyncDaemon> {
        if !director {
            return Vec::new();
        }
        self.rec
            .system()
            .ipvs_daemons()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|d| reply::SyncDaemon {
                state: crate::reconcile::ipvs_diff::daemon_word(d.state).into(),
                interface: d.mcast_ifn,
                sync_id: d.sync_id,
            })
            .collect()
    }
}

/// A real server accepts VIP traffic when its hidden VIP, host route and ARP sysctls are
/// all in force: none of those is among the pending changes (`None`: the node could not
/// be diffed, so it cannot be said).
fn vip_ready(spec: &NodeSpec, drift: Option<&[Action]>) -> CheckResult {
    use crate::reconcile::action::Action;
    let vips: Vec<std::net::IpAddr> = spec
        .addresses
        .iter()
        .filter(|a| a.purpose == lvs_proto::spec::AddressPurpose::HiddenVip)
        .map(|a| a.address.addr())
        .collect();
    let names: Vec<String> = vips.iter().map(ToString::to_string).collect();
    // IPv4 VIPs are hidden by the ARP sysctls; IPv6 ones need nothing (the kernel never
    // answers a neighbour solicitation for an address of `lo` arriving elsewhere).
    let v4 = vips.iter().any(|v| v.is_ipv4());
    let hidden = if v4 { "ARP hidden" } else { "never announced" };
    let check = format!("kernel accepts VIP traffic ({} on lo, {hidden})", names.join(", "));
    let Some(drift) = drift else {
        return CheckResult {
            unknown: false,
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
            Action::Ipvs(_) | Action::LoadMarks { .. } | Action::RemoveMarks { .. } => false,
        })
        .map(ToString::to_string)
        .collect();
    CheckResult {
        unknown: false,
        check,
        ok: missing.is_empty(),
        detail: if missing.is_empty() {
            if v4 {
                "hidden VIP, host route and arp_ignore/arp_announce in force"
            } else {
                "hidden VIP and host route in force"
            }
            .into()
        } else {
            format!("not yet: {}", missing.join("; "))
        },
    }
}

/// The admin's live weights, one per destination of the spec that has one.
fn overrides(spec: Option<&NodeSpec>, rt: &crate::reconcile::state::Runtime) -> Vec<reply::WeightOverride> {
    spec.iter()
        .flat_map(|s| &s.virtual_services)
        .flat_map(|vs| vs.destinations.iter().map(move |d| (vs, d)))
        .filter_map(|(vs, d)| {
            let w = rt.weights.get(&crate::reconcile::state::override_key(&vs.key, d.address))?;
            Some(reply::WeightOverride { service: vs.key, destination: d.address, weight: *w })
        })
        .collect()
}
