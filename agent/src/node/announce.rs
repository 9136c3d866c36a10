//! The announcer: a director of `[bgp]` announces only what works. Every [`TICK`] it reads
//! the kernel's IPVS table and its services' quorum, decides which VIPs to announce
//! ([`crate::bgp::gate`]) and hands them to the BGP engine, which reloads BIRD only when
//! the set changed. Every [`SESSION_POLL`] it reads the sessions. Each change (a VIP
//! announced or withdrawn, a session up or down) is reported once, as an event. The router
//! runs the same loop: it announces nothing and its engine installs what it learns.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use lvs_proto::reply::{BgpStatus, EventKind};
use lvs_proto::spec::{Role, ServiceKey};

use super::agent::Agent;
use super::error::AgentError;
use crate::kernel::system::System;
use crate::kernel::translate;

/// How often the announcement is decided: a director whose service left IPVS or fell
/// below quorum stops attracting flows within a quarter second (plus BGP's update).
pub(super) const TICK: Duration = Duration::from_millis(250);
/// How often the sessions are read for events.
const SESSION_POLL: u32 = 4;

impl<S: System + 'static> Agent<S> {
    /// Start the announcer loop (it runs until the agent stops).
    pub(super) fn start_announcer(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.tasks.spawn("bgp announcer", async move {
            let mut n: u32 = 0;
            loop {
                let Some(a) = me.upgrade() else { return };
                a.announce_once().await;
                if n.is_multiple_of(SESSION_POLL) {
                    a.watch_sessions().await;
                }
                drop(a);
                n = n.wrapping_add(1);
                tokio::time::sleep(TICK).await;
            }
        });
    }

    /// Decide and hand the result to the engine (also right after an apply or a drain).
    pub(super) async fn announce_once(&self) {
        let Ok(st) = self.rec.state() else { return };
        let spec = st.spec.as_ref().filter(|s| s.bgp.is_some());
        let announcements = match spec {
            Some(spec) if spec.role == Role::Director => {
                let kernel: Vec<lvs_ipvs::ServiceKey> = match self.rec.system().ipvs().await {
                    Ok(t) => t.unwrap_or_default().into_iter().map(|s| s.service.key).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "announcer: IPVS table unreadable; announcing nothing");
                        Vec::new()
                    }
                };
                let in_kernel = |k: &ServiceKey| kernel.contains(&translate::service_key(k));
                crate::bgp::gate::announcements(spec, &st.runtime, st.runtime.drained, in_kernel)
            }
            _ => Vec::new(),
        };
        let announced: Vec<IpNet> =
            announcements.iter().filter(|a| a.announced).filter_map(|a| a.prefix.parse().ok()).collect();
        let result = self.bgp.ensure(spec.and_then(|s| s.bgp.as_ref()), &announced).await;
        let mut seen = self.bgp_seen.lock().expect("bgp seen");
        for a in &announcements {
            let before = seen.announcements.iter().find(|b| b.prefix == a.prefix);
            if before.is_none_or(|b| b.announced != a.announced) {
                let what = if a.announced {
                    format!("{} announced", a.prefix)
                } else {
                    format!("{} withdrawn: {}", a.prefix, a.reason)
                };
                tracing::info!(prefix = %a.prefix, announced = a.announced, reason = %a.reason, "BGP announcement changed");
                self.events.emit(EventKind::Bgp, what);
            }
        }
        seen.announcements = announcements;
        let error = result.err().map(|e| e.to_string());
        if error != seen.error {
            if let Some(e) = &error {
                tracing::warn!(error = %e, "BGP engine");
                self.events.emit(EventKind::Bgp, format!("routing daemon: {e}"));
            }
            seen.error = error;
        }
    }

    /// Report sessions that came up or went down since the last look.
    async fn watch_sessions(&self) {
        let sessions = match self.bgp.sessions().await {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %e, "BGP sessions unreadable");
                return;
            }
        };
        let mut seen = self.bgp_seen.lock().expect("bgp seen");
        let mut now = BTreeMap::new();
        for s in &sessions {
            let key = (s.peer.clone(), s.address.clone());
            if seen.sessions.get(&key).copied().unwrap_or(false) != s.up {
                let what = if s.up { "up".to_string() } else { format!("down: {}", s.state) };
                tracing::info!(peer = %s.peer, address = %s.address, up = s.up, state = %s.state, "BGP session changed");
                self.events.emit(EventKind::Bgp, format!("session with {} ({}) {what}", s.peer, s.address));
            }
            now.insert(key, s.up);
        }
        seen.sessions = now;
    }

    /// This node's BGP for `status` and the metrics: sessions now, announcements as last
    /// decided; `None` outside `[bgp]`.
    pub async fn bgp_status(&self) -> Option<BgpStatus> {
        let st = self.rec.state().ok()?;
        st.spec.as_ref()?.bgp.as_ref()?;
        let (sessions, error) = match self.bgp.sessions().await {
            Ok(s) => (s.unwrap_or_default(), self.bgp.error()),
            Err(e) => (Vec::new(), Some(self.bgp.error().unwrap_or_else(|| e.to_string()))),
        };
        let announcements = self.bgp_seen.lock().expect("bgp seen").announcements.clone();
        Some(BgpStatus { sessions, announcements, error, drained: st.runtime.drained })
    }

    /// `lvsctl director drain|enable`: withdraw every VIP (kept across restarts) or
    /// announce what works again, at once.
    pub async fn set_drained(&self, drained: bool) -> Result<BgpStatus, AgentError> {
        let st = self.rec.state()?;
        let ecmp = st.spec.as_ref().is_some_and(|s| s.role == Role::Director && s.bgp.is_some());
        if !ecmp {
            return Err(AgentError::Invalid("this node is no [bgp] director: nothing to drain".into()));
        }
        self.rec
            .update_runtime(|_, rt| {
                rt.drained = drained;
                Ok(())
            })
            .await?;
        self.announce_once().await;
        self.bgp_status().await.ok_or_else(|| AgentError::Invalid("this node left [bgp]".into()))
    }
}
