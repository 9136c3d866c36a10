//! The router's ARP watch loop: every interval of its spec, ask each watched LAN who has
//! each VIP ([`crate::arp::ask`]), judge the answers ([`crate::arp::judge`]), keep the round
//! for status and metrics, and report a leak found or gone once, as an event. Without a
//! watch in the spec (every node but the router) it only sleeps.
use std::sync::Arc;
use std::time::Duration;

use lvs_proto::reply::{ArpWatchStatus, EventKind, VipArp};

use super::agent::Agent;
use crate::kernel::system::System;

/// How long replies are waited for after the requests went out. A host answers ARP in
/// microseconds; a busy or virtual one in a few milliseconds.
const WINDOW: Duration = Duration::from_millis(300);
/// The sleep between checks for a watch while the spec has none.
const IDLE: Duration = Duration::from_secs(1);

impl<S: System + 'static> Agent<S> {
    /// Start the watch loop (it runs until the agent stops).
    pub(super) fn start_arp_watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.tasks.spawn("arp watch", async move {
            loop {
                let Some(a) = me.upgrade() else { return };
                let wait = a.arp_round().await;
                drop(a);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// One round; how long until the next.
    async fn arp_round(&self) -> Duration {
        let spec = self.rec.state().ok().and_then(|st| st.spec).and_then(|s| s.arp_watch);
        let Some(spec) = spec else {
            *self.arp_last.lock().expect("arp last") = None;
            return IDLE;
        };
        let mut vips: Vec<VipArp> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for lan in &spec.lans {
            let targets =
                lan.vips.iter().map(|v| v.address).chain(lan.nodes.iter().map(|n| n.address)).collect();
            match self.arp.ask(lan.interface.clone(), lan.source, targets, WINDOW).await {
                Ok(replies) => vips.extend(crate::arp::judge::judge(lan, &replies)),
                Err(e) => errors.push(format!("{}: {e}", lan.interface)),
            }
        }
        let mut last = self.arp_last.lock().expect("arp last");
        let before = last.take().unwrap_or_default();
        for v in &vips {
            let was = before.vips.iter().find(|b| b.address == v.address).and_then(|b| b.leak.as_ref());
            match (was, &v.leak) {
                (None, Some(leak)) => {
                    tracing::warn!(vip = %v.address, leak = %leak, "ARP leak");
                    self.events.emit(EventKind::Arp, format!("{}: ARP leak: {leak}", v.address));
                }
                (Some(_), None) => {
                    tracing::info!(vip = %v.address, "ARP leak gone");
                    self.events.emit(EventKind::Arp, format!("{}: ARP leak gone", v.address));
                }
                _ => {}
            }
        }
        *last = Some(ArpWatchStatus {
            vips,
            rounds: before.rounds + 1,
            last_round_unix_ms: crate::telemetry::events::unix_ms(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        });
        Duration::from_millis(spec.interval_ms.into())
    }

    /// The watch's last round (the router), for status and metrics.
    pub fn arp_status(&self) -> Option<ArpWatchStatus> {
        self.arp_last.lock().expect("arp last").clone()
    }
}
