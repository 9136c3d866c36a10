//! The connections a planned hand-over catches half-way, and how they still reach their
//! real server.
//!
//! A *straddler* is a TCP connection whose SYN reached the old master and whose next
//! packet (the handshake's ACK, with the request) reaches the new one, because the
//! router's ARP entry moved in between: one client round trip around the switch. The
//! kernel syncs a TCP connection from ESTABLISHED on, never in SYN_RECV, so the new master
//! does not know it; IPVS passes the packet to the local stack, which answers with a
//! reset, and the request fails (1 of ~2,000 requests, 1 of 4 runs of 20 hand-overs in the
//! VM). The same holds for a connection established on the old master whose sync message
//! is still in the old master's buffer (the kernel sends the last one on a 2 s timer).
//!
//! Two pieces make the old master finish what it began:
//!
//! - **The bounce** ([`Bounce`]), on every director of an instance: an nftables table of
//!   our own (`ip lvs_handover`, and `ip6` for an IPv6 instance), in the input hook *after*
//!   IPVS (priority 110; IPVS takes what it knows at 99). A TCP packet for a VIP that
//!   reaches it is one IPVS did not know and would have been reset: unless it is a SYN
//!   (which IPVS schedules), it is copied to the other directors (`dup to`, the DR way: the
//!   peer's MAC, the VIP left as the destination) and dropped here. The table is in place
//!   whenever this director is not master, so that it works from the first packet after a
//!   takeover (installed when the engine reports MASTER, it would come tens of
//!   milliseconds after the gratuitous ARP, too late for exactly these packets), and is
//!   removed [`BOUNCE_FOR`] after becoming master: later, a packet no director knows gets
//!   its reset, as without us. Its counter says how many packets were passed on:
//!   `nft list table ip lvs_handover` within that window.
//! - **The hidden VIP** (`hide` in [`crate::ha::keepalived::VipHands`]): after a planned
//!   hand-over the old master keeps its VIPs on `lo` for [`HIDE_FOR`], so that the packets
//!   bounced to it are local and its IPVS forwards them by the connection it holds. Hidden
//!   as a real server hides its VIP: the planner sets `arp_ignore` 1 and `arp_announce` 2 on
//!   the VRRP interface of every director with IPv4 VIPs; IPv6 needs nothing (a neighbour
//!   solicitation is answered only for an address of the interface it arrives on).
//!
//! Loops cannot form: a bounced copy leaves with a hop limit of 2 (set to 3, and `dup`
//! takes one), and only packets above 3 are bounced. The old master's IPVS takes it to 1,
//! which still reaches the real server; a peer that does not hold the VIP and routes it
//! anyway hands it to a router that drops it.
//!
//! Not covered: a VIP of the family the adverts are not in (its peers' addresses of that
//! family are not in the spec), and an unplanned failover (the old master is gone; the
//! bounced packets are dropped instead of reset while the table is in place).
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_proto::reply::VrrpState;
use lvs_proto::spec::VrrpSpec;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

/// How long a new master keeps bouncing what it does not know: longer than the kernel
/// takes to send the old master's last sync message (its 2 s timer, checked every second).
pub const BOUNCE_FOR: Duration = Duration::from_secs(5);
/// How long an old master keeps its VIPs hidden on `lo`: past the new master's bounce.
pub const HIDE_FOR: Duration = Duration::from_secs(6);
/// The table, in each family it is needed in.
const TABLE: &str = "lvs_handover";

/// The nftables script that puts the bounce in place for `spec` (replacing any earlier
/// one), or `None` when the instance has no VIP of its adverts' family or no peer.
pub fn ruleset(spec: &VrrpSpec) -> Option<String> {
    let mut out = String::new();
    for (family, v6) in [("ip", false), ("ip6", true)] {
        let vips: Vec<String> = spec
            .vips
            .iter()
            .map(|v| v.address.addr())
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| a.to_string())
            .collect();
        let peers: Vec<&IpAddr> = spec.unicast_peers.iter().filter(|a| a.is_ipv6() == v6).collect();
        if vips.is_empty() || peers.is_empty() {
            continue;
        }
        let hops = if v6 { "ip6 hoplimit" } else { "ip ttl" };
        let dups: String =
            peers.iter().map(|p| format!(" dup to {p} device \"{}\"", spec.interface)).collect();
        // `table … {}` then `delete`: the script replaces the table whether or not it was
        // there, in one transaction.
        out.push_str(&format!(
            "table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n\
             table {family} {TABLE} {{\n  chain straddlers {{\n    \
             type filter hook input priority 110; policy accept;\n    \
             {family} daddr {{ {} }} tcp flags & syn != syn {hops} > 3 {hops} set 3 counter{dups} drop\n  }}\n}}\n",
            vips.join(", ")
        ));
    }
    (!out.is_empty()).then_some(out)
}

/// The script that removes the bounce in both families, whether or not it is there.
pub fn removal() -> String {
    ["ip", "ip6"].iter().map(|f| format!("table {f} {TABLE} {{}}\ndelete table {f} {TABLE}\n")).collect()
}

/// Where a ruleset goes: `nft -f -`. Behind a trait so that the state logic is tested
/// without a kernel.
#[tonic::async_trait]
pub trait Nft: Send + Sync + 'static {
    /// Load `script` as one transaction.
    async fn load(&self, script: &str) -> Result<(), String>;
}

/// The `nft` program (`LVS_NFT`, else `/usr/sbin/nft`).
pub struct NftProgram(pub PathBuf);

impl NftProgram {
    /// The program the agent runs.
    pub fn default_program() -> Self {
        Self(std::env::var_os("LVS_NFT").map_or_else(|| PathBuf::from("/usr/sbin/nft"), PathBuf::from))
    }
}

#[tonic::async_trait]
impl Nft for NftProgram {
    async fn load(&self, script: &str) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.0)
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e} (install nftables)", self.0.display()))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(script.as_bytes()).await.map_err(|e| e.to_string())?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| "nft took over 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// The bounce of one director, following its engine's state: in place unless this
/// director has been master for [`BOUNCE_FOR`].
#[derive(Clone)]
pub struct Bounce {
    nft: Arc<dyn Nft>,
    /// The instance as last configured.
    spec: Arc<Mutex<Option<VrrpSpec>>>,
    /// Bumped by every state change, so that a removal timer of an older mastership does
    /// nothing.
    epoch: Arc<AtomicU64>,
}

impl Bounce {
    /// A bounce loading its rules through `nft`.
    pub fn new(nft: Arc<dyn Nft>) -> Self {
        Self { nft, spec: Arc::default(), epoch: Arc::default() }
    }

    /// The instance is (re)configured as `spec`; armed now unless `master`.
    pub async fn configure(&self, spec: &VrrpSpec, master: bool) {
        *self.spec.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(spec.clone());
        if !master {
            self.follow(VrrpState::Backup).await;
        }
    }

    /// The engine reported `state`: arm on anything but master; as master, stay armed for
    /// [`BOUNCE_FOR`], then disarm.
    pub async fn follow(&self, state: VrrpState) {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(spec) = self.spec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return;
        };
        if state != VrrpState::Master {
            return self.arm(&spec).await;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(BOUNCE_FOR).await;
            if me.epoch.load(Ordering::SeqCst) == epoch {
                me.remove(&spec.instance).await;
            }
        });
    }

    async fn arm(&self, spec: &VrrpSpec) {
        let Some(script) = ruleset(spec) else { return };
        match self.nft.load(&script).await {
            Ok(()) => debug!(instance = %spec.instance, "hand-over bounce armed"),
            Err(e) => warn!(
                instance = %spec.instance,
                error = %e,
                "cannot arm the hand-over bounce: a connection caught half-way by a planned hand-over may be reset"
            ),
        }
    }

    /// The engine stopped for good: the rules go, and no state change brings them back.
    pub async fn stop(&self) {
        let instance = self.spec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(spec) = instance {
            self.remove(&spec.instance).await;
        }
    }

    async fn remove(&self, instance: &str) {
        match self.nft.load(&removal()).await {
            Ok(()) => info!(instance, "hand-over bounce removed"),
            Err(e) => warn!(instance, error = %e, "cannot remove the hand-over bounce table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use lvs_proto::spec::{AddressPurpose, AddressSpec};

    use super::*;

    /// The keepalived tests' instance with these VIPs (on eth1) and peers.
    fn spec(vips: &[&str], peers: &[&str]) -> VrrpSpec {
        let mut s = crate::ha::keepalived::tests::spec();
        s.unicast_peers = peers.iter().map(|p| p.parse().unwrap()).collect();
        s.vips = vips
            .iter()
            .map(|v| AddressSpec {
                interface: "eth1".into(),
                address: v.parse().unwrap(),
                label: None,
                purpose: AddressPurpose::Vip,
            })
            .collect();
        s
    }

    #[test]
    fn each_family_bounces_its_vips_to_its_peers_with_a_hop_limit_that_stops_loops() {
        let s = ruleset(&spec(&["198.18.0.100/32", "198.18.0.101/32", "2001:db8::100/128"], &["198.18.0.3"]))
            .unwrap();
        assert!(s.contains("table ip lvs_handover {}\ndelete table ip lvs_handover\n"), "{s}");
        assert!(s.contains("type filter hook input priority 110;"), "after IPVS (99): {s}");
        assert!(
            s.contains(
                "ip daddr { 198.18.0.100, 198.18.0.101 } tcp flags & syn != syn ip ttl > 3 ip ttl set 3 counter dup to 198.18.0.3 device \"eth1\" drop"
            ),
            "{s}"
        );
        // No IPv6 peer: the IPv6 VIP cannot be bounced, and no ip6 table is made.
        assert!(!s.contains("ip6"), "{s}");
        let six = ruleset(&spec(&["2001:db8::100/128"], &["2001:db8::3", "2001:db8::4"])).unwrap();
        assert!(
            six.contains("ip6 daddr { 2001:db8::100 } tcp flags & syn != syn ip6 hoplimit > 3 ip6 hoplimit set 3 counter dup to 2001:db8::3 device \"eth1\" dup to 2001:db8::4 device \"eth1\" drop"),
            "{six}"
        );
        assert_eq!(ruleset(&spec(&["198.18.0.100/32"], &[])), None, "no peer, nothing to bounce to");
    }

    /// What the bounce loaded, in order.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    #[tonic::async_trait]
    impl Nft for Log {
        async fn load(&self, script: &str) -> Result<(), String> {
            let what = if script.contains("chain straddlers") { "arm" } else { "disarm" };
            self.0.lock().unwrap().push(what.into());
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn armed_unless_master_and_disarmed_only_once_a_mastership_has_lasted() {
        let log = Arc::new(Log::default());
        let b = Bounce::new(log.clone());
        let s = spec(&["198.18.0.100/32"], &["198.18.0.3"]);
        let seen = || log.0.lock().unwrap().clone();
        b.follow(VrrpState::Backup).await;
        assert!(seen().is_empty(), "nothing before the instance is configured");
        b.configure(&s, false).await;
        assert_eq!(seen(), ["arm"]);
        // Master, then handed back within the window: the first mastership's timer must
        // not take the table from the backup.
        b.follow(VrrpState::Master).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.follow(VrrpState::Backup).await;
        tokio::time::sleep(BOUNCE_FOR * 2).await;
        assert_eq!(seen(), ["arm", "arm"]);
        // A mastership that lasts: disarmed after the window, not before.
        b.follow(VrrpState::Master).await;
        tokio::time::sleep(BOUNCE_FOR - Duration::from_millis(100)).await;
        assert_eq!(seen(), ["arm", "arm"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(seen(), ["arm", "arm", "disarm"]);
        // Stopped for good while armed: removed, and a late state report changes nothing.
        b.follow(VrrpState::Backup).await;
        b.stop().await;
        b.follow(VrrpState::Backup).await;
        assert_eq!(seen(), ["arm", "arm", "disarm", "arm", "disarm"]);
    }
}
