//! The planned hand-over (`lvsctl director failover`) of a keepalived master, in order:
//!
//! 1. Watchers open before anything moves: one for the new master's first VRRP advert,
//!    one for its gratuitous ARP ([`crate::ha::advert_watch`]).
//! 2. keepalived stops: its shutdown sends a priority-0 advert at once, so the next
//!    director takes over without waiting for the master-down timer (after its skew time,
//!    under one advert interval) and sends gratuitous ARPs; keepalived itself takes about
//!    a second more to exit, and leaves the VIPs (`--dont-release-vrrp`), so that what
//!    still reaches this director meanwhile is forwarded.
//! 3. Once the new master advertises and its gratuitous ARP is seen here (the router got
//!    the same broadcast), and a moment for the router to act on it, this director puts
//!    the VIPs on `lo`, hidden, then takes them off its interface, and keeps them on `lo` for
//!    [`crate::ha::straddle::HIDE_FOR`]: the new master passes it the packets of
//!    connections whose handshake began here, and it forwards them
//!    ([`crate::ha::straddle`]).
//! 4. keepalived starts again and this director rejoins as a backup.
//!
//! Why the gratuitous ARP and not the advert: the router sends to the new master once it
//! has that ARP, which keepalived sends after its first advert (100 ms and more later under
//! TCG). Dropped at the advert, a SYN the router still sent here was lost (its client
//! retried a second later: 3 of ~2,450 requests failed at a 1 s timeout in 20 VM
//! hand-overs).
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lvs_proto::reply::VrrpState;
use lvs_proto::spec::{AddressSpec, VrrpSpec};
use tracing::{info, warn};

use crate::ha::advert_watch::{AdvertWatch, GarpWatch};
use crate::ha::keepalived::Keepalived;
use crate::ha::straddle::HIDE_FOR;
use crate::ha::vrrp::VrrpError;

/// How long a hand-over waits for the new master's gratuitous ARP after its first advert.
const GARP_WAIT: Duration = Duration::from_secs(1);
/// How long a hand-over keeps the VIPs after that gratuitous ARP: for the router to act on
/// it, and for the packets it sent before to arrive.
const GARP_GRACE: Duration = Duration::from_millis(20);
/// How long the rejoined engine has to report itself a backup.
const REJOIN_WAIT: Duration = Duration::from_secs(5);

impl Keepalived {
    /// Hand this master's VIPs to the next director now and rejoin as a backup.
    pub(super) async fn hand_over_now(&self) -> Result<(), VrrpError> {
        let mut run = self.run.lock().await;
        let state = self.tracker.get().map(|s| s.state);
        let Some(r) = run.take() else { return Err(VrrpError::NotMaster("not running".into())) };
        if state != Some(VrrpState::Master) {
            let s = state.map_or("unknown", VrrpState::as_str).to_string();
            *run = Some(r);
            return Err(VrrpError::NotMaster(s));
        }
        let (spec, config) = (r.spec.clone(), r.config.clone());
        let watchers = Watchers::open(&spec);
        info!(instance = %spec.instance, "hand-over: stopping the engine (its priority-0 advert hands over)");
        let settle = settle_time(&spec);
        let ((), _taken) = tokio::join!(self.stop_running(r), self.release_once_taken(&spec, &watchers));
        // Rejoining at once: the new master is there to be heard, and a next hand-over back
        // needs this director as a backup.
        *run = Some(self.start_running(&spec, config, Duration::ZERO)?);
        info!(instance = %spec.instance, "hand-over: rejoining as a backup");
        drop(run);
        self.until_backup(settle).await
    }

    /// Steps 3 of the module doc: wait for the new master, then move the VIPs from the
    /// interface to `lo`. `None`: no one took over (the VIPs are kept; rejoining makes
    /// this director master again).
    async fn release_once_taken(&self, spec: &VrrpSpec, w: &Watchers) -> Option<()> {
        let t0 = tokio::time::Instant::now();
        let master = match &w.advert {
            Some(a) => {
                let wait = Duration::from_millis(u64::from(spec.advert_ms) * 10).max(Duration::from_secs(3));
                let m = a.next_master(wait).await;
                if m.is_none() {
                    warn!(instance = %spec.instance, "hand-over: no other director advertised as master");
                    return None;
                }
                m
            }
            None => {
                tokio::time::sleep(settle_time(spec)).await;
                None
            }
        };
        if master.is_some() {
            let seen = match &w.garp {
                Some(g) => g.claimed(GARP_WAIT).await,
                None => None,
            };
            if seen.is_none() {
                warn!(instance = %spec.instance, "hand-over: no gratuitous ARP seen for the VIPs; releasing them anyway");
            }
            tokio::time::sleep(GARP_GRACE).await;
        }
        // Hidden first, then off the interface: the VIP stays local throughout, so no
        // packet meets a moment where this director would drop it.
        self.hide_for_a_while(&spec.vips).await;
        self.hands.release(&spec.vips).await;
        info!(
            instance = %spec.instance,
            new_master = %master.map_or_else(|| "?".to_string(), |m| m.to_string()),
            after_ms = t0.elapsed().as_millis() as u64,
            hidden_ms = HIDE_FOR.as_millis() as u64,
            "hand-over: the new master advertises; VIPs moved to lo"
        );
        Some(())
    }

    /// Put `vips` on `lo` now and take them off after [`HIDE_FOR`], unless a later
    /// hand-over has hidden them again meanwhile.
    async fn hide_for_a_while(&self, vips: &[AddressSpec]) {
        let epoch = self.hidden.fetch_add(1, Ordering::SeqCst) + 1;
        self.hands.hide(vips, true).await;
        let (hands, hidden, vips) = (Arc::clone(&self.hands), Arc::clone(&self.hidden), vips.to_vec());
        tokio::spawn(async move {
            tokio::time::sleep(HIDE_FOR).await;
            if hidden.load(Ordering::SeqCst) == epoch {
                hands.hide(&vips, false).await;
            }
        });
    }

    /// Take hidden copies of `vips` off `lo` now, and cancel a pending un-hide.
    pub(super) async fn unhide_now(&self, vips: &[AddressSpec]) {
        self.hidden.fetch_add(1, Ordering::SeqCst);
        self.hands.hide(vips, false).await;
    }

    /// Step 4's end: the rejoined engine reports backup (or, having become master again,
    /// says that no one took over).
    async fn until_backup(&self, settle: Duration) -> Result<(), VrrpError> {
        let deadline = tokio::time::Instant::now() + REJOIN_WAIT;
        while tokio::time::Instant::now() < deadline {
            match self.tracker.get().map(|s| s.state) {
                Some(VrrpState::Backup) => return Ok(()),
                Some(VrrpState::Master) => return Err(VrrpError::NotTaken(settle.as_millis())),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(())
    }
}

/// Step 1 of the module doc. A watcher that cannot open (no CAP_NET_RAW, say) leaves the
/// hand-over to fixed waits instead, and says so.
struct Watchers {
    advert: Option<AdvertWatch>,
    garp: Option<GarpWatch>,
}

impl Watchers {
    fn open(spec: &VrrpSpec) -> Self {
        let advert = AdvertWatch::open(spec.unicast_source, spec.vrid, &spec.unicast_peers)
            .map_err(|e| warn!(error = %e, "hand-over: cannot watch for the new master's advert; waiting a fixed time"))
            .ok();
        let vips: Vec<Ipv4Addr> = spec
            .vips
            .iter()
            .filter_map(|v| match v.address.addr() {
                std::net::IpAddr::V4(a) => Some(a),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        let garp = GarpWatch::open(&spec.interface, &vips)
            .map_err(|e| warn!(error = %e, "hand-over: cannot watch for the new master's gratuitous ARP"))
            .ok();
        Watchers { advert, garp }
    }
}

/// How long a hand-over without an advert watcher waits for the next director, and the
/// bound `NotTaken` reports: four advert intervals, at least 300 ms.
fn settle_time(spec: &VrrpSpec) -> Duration {
    Duration::from_millis(u64::from(spec.advert_ms) * 4).max(Duration::from_millis(300))
}
