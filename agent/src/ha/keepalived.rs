//! keepalived as the VRRP engine ([`crate::ha::vrrp::VrrpEngine`]): `keepalived --vrrp`,
//! VRRP only (no `virtual_server`: IPVS stays the agent's), configured from the spec
//! ([`render`]: VRRPv3, unicast peers, no preemption unless asked, a periodic gratuitous
//! ARP), run as the agent's child and restarted when it dies, its state changes read
//! from its notify FIFO. Files live in `<state_dir>/keepalived/`.
//!
//! Why keepalived: it is the engine LVS users run already and know how to read, it does
//! VRRPv3 with centisecond adverts and unicast peers, sends the gratuitous ARPs and the
//! priority-0 advert on shutdown (immediate takeover). The Rust VRRP crates are v2-only
//! with whole-second adverts or tied to a routing daemon.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use lvs_proto::reply::VrrpStatus;
use lvs_proto::spec::{AddressSpec, VrrpSpec};
use tokio::sync::{Mutex, watch};

use super::keepalived_conf::render;
use super::notify_fifo::{make_fifo, read_fifo};
use super::supervisor::Supervisor;
use super::supervisor::nonzero;
use super::supervisor::signal;
use crate::ha::straddle::{Bounce, Nft};
use crate::ha::vrrp::{Tracker, VrrpEngine, VrrpError};
use crate::telemetry::events::Events;

/// What the agent does to the VIPs besides keepalived's own adds, through its kernel
/// interface.
#[tonic::async_trait]
pub trait VipHands: Send + Sync + 'static {
    /// Take `vips` off their interface: the engine stopped for good, or handed over
    /// (keepalived runs with `--dont-release-vrrp`, see `hand_over`, so it leaves them).
    async fn release(&self, vips: &[AddressSpec]);
    /// Put `vips` on `lo` (`true`), hidden, or take them off it again (`false`): the old
    /// master's side of [`crate::ha::straddle`]. Already there (or already gone) is fine.
    async fn hide(&self, vips: &[AddressSpec], hidden: bool);
}

/// The engine: keepalived, supervised.
pub struct Keepalived {
    dir: PathBuf,
    program: PathBuf,
    events: Events,
    pub(super) tracker: Tracker,
    pid: Arc<AtomicU32>,
    pub(super) run: Mutex<Option<Running>>,
    pub(super) hands: Arc<dyn VipHands>,
    pub(super) bounce: Bounce,
    /// Bumped by every hand-over, so that an older hand-over's un-hide does nothing.
    pub(super) hidden: Arc<AtomicU64>,
}

pub(super) struct Running {
    pub(super) spec: VrrpSpec,
    pub(super) config: String,
    stop: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Keepalived {
    /// An engine keeping its files in `dir`, running `program` (keepalived), publishing
    /// its transitions on `events`.
    /// `hands` removes and hides the VIPs; `nft` loads the hand-over bounce
    /// ([`crate::ha::straddle`]).
    pub fn new(
        dir: &Path,
        program: &Path,
        events: Events,
        hands: Arc<dyn VipHands>,
        nft: Arc<dyn Nft>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            program: program.to_path_buf(),
            events,
            tracker: Tracker::default(),
            pid: Arc::default(),
            run: Mutex::new(None),
            hands,
            bounce: Bounce::new(nft),
            hidden: Arc::default(),
        }
    }

    /// The keepalived the agent runs: `LVS_KEEPALIVED`, else `/usr/sbin/keepalived`.
    pub fn default_program() -> PathBuf {
        std::env::var_os("LVS_KEEPALIVED")
            .map_or_else(|| PathBuf::from("/usr/sbin/keepalived"), PathBuf::from)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> VrrpError {
        let path = path.to_path_buf();
        move |source| VrrpError::Io { path, source }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }

    fn fifo_path(&self) -> PathBuf {
        self.dir.join("notify.fifo")
    }

    /// Check the configuration with keepalived itself before it replaces a running one.
    async fn config_test(&self, path: &Path) -> Result<(), VrrpError> {
        let o = tokio::process::Command::new(&self.program)
            .arg("--config-test")
            .arg("--use-file")
            .arg(path)
            .output()
            .await
            .map_err(|source| VrrpError::Spawn { program: self.program.display().to_string(), source })?;
        if o.status.success() {
            Ok(())
        } else {
            Err(VrrpError::Config(String::from_utf8_lossy(&o.stderr).trim().to_string()))
        }
    }

    pub(super) async fn stop_running(&self, r: Running) {
        let _ = r.stop.send(true);
        if let Some(pid) = nonzero(self.pid.load(Ordering::SeqCst)) {
            signal(pid, libc::SIGTERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), r.supervisor).await;
        self.tracker.stop();
    }

    /// Start the engine for `spec` with `config` (already on disk), its first spawn after
    /// `delay`.
    pub(super) fn start_running(
        &self,
        spec: &VrrpSpec,
        config: String,
        delay: Duration,
    ) -> Result<Running, VrrpError> {
        let fifo = self.fifo_path();
        make_fifo(&fifo).map_err(self.io(&fifo))?;
        self.tracker.start(spec);
        let (stop, stopped) = watch::channel(false);
        let sup = Supervisor {
            engine: "keepalived",
            program: self.program.clone(),
            args: super::keepalived_conf::args(&self.config_path(), &self.dir),
            pid: Arc::clone(&self.pid),
            health: Arc::new(self.tracker.clone()),
            events: self.events.clone(),
            kind: lvs_proto::reply::EventKind::Vrrp,
            dies_with_agent: false,
        };
        tokio::spawn(read_fifo(
            fifo,
            spec.instance.clone(),
            (self.tracker.clone(), self.bounce.clone()),
            self.events.clone(),
            stopped.clone(),
        ));
        let supervisor = tokio::spawn(sup.run(stopped, delay));
        Ok(Running { spec: spec.clone(), config, stop, supervisor })
    }
}

#[tonic::async_trait]
impl VrrpEngine for Keepalived {
    async fn ensure(&self, spec: Option<&VrrpSpec>) -> Result<(), VrrpError> {
        let mut run = self.run.lock().await;
        let Some(spec) = spec else {
            if let Some(r) = run.take() {
                let vips = r.spec.vips.clone();
                self.stop_running(r).await;
                self.bounce.stop().await;
                self.hands.release(&vips).await;
                self.unhide_now(&vips).await;
                let _ = std::fs::remove_file(self.config_path());
            }
            return Ok(());
        };
        let config = render(spec, &self.fifo_path());
        if run.as_ref().is_some_and(|r| r.config == config && !r.supervisor.is_finished()) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let next = self.dir.join("keepalived.conf.next");
        lvs_proto::files::atomic_write(&next, config.as_bytes(), 0o600).map_err(self.io(&next))?;
        self.config_test(&next).await?;
        let path = self.config_path();
        std::fs::rename(&next, &path).map_err(self.io(&path))?;
        match run.as_mut() {
            // Same instance, new settings: keepalived reloads on SIGHUP, keeping its state.
            Some(r) if r.spec.instance == spec.instance && !r.supervisor.is_finished() => {
                if let Some(pid) = nonzero(self.pid.load(Ordering::SeqCst)) {
                    signal(pid, libc::SIGHUP);
                }
                r.spec = spec.clone();
                r.config = config;
                let master =
                    self.tracker.get().is_some_and(|s| s.state == lvs_proto::reply::VrrpState::Master);
                self.bounce.configure(spec, master).await;
            }
            _ => {
                if let Some(r) = run.take() {
                    let vips = r.spec.vips.clone();
                    self.stop_running(r).await;
                    self.hands.release(&vips).await;
                }
                // Hidden copies an agent stopped within a hand-over's window left on `lo`.
                self.unhide_now(&spec.vips).await;
                self.bounce.configure(spec, false).await;
                // A first start sits out the spec's delay, so that a lower priority started
                // with (or before) the highest does not win the first election.
                let delay = Duration::from_millis(spec.startup_delay_ms.into());
                *run = Some(self.start_running(spec, config, delay)?);
            }
        }
        Ok(())
    }

    fn status(&self) -> Option<VrrpStatus> {
        self.tracker.get()
    }

    async fn hand_over(&self) -> Result<(), VrrpError> {
        self.hand_over_now().await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use lvs_proto::spec::{AddressPurpose, SyncDaemonSpec};

    /// One director's part in instance `web` (VIP 198.18.0.100 on eth1, peer 198.18.0.3).
    pub(in crate::ha) fn spec() -> VrrpSpec {
        VrrpSpec {
            instance: "web".into(),
            interface: "eth1".into(),
            vrid: 51,
            priority: 150,
            advert_ms: 100,
            preempt: false,
            unicast_source: "198.18.0.2".parse().unwrap(),
            unicast_peers: vec!["198.18.0.3".parse().unwrap()],
            vips: vec![AddressSpec {
                interface: "eth1".into(),
                address: "198.18.0.100/32".parse().unwrap(),
                label: Some("eth1:0".into()),
                purpose: AddressPurpose::Vip,
            }],
            sync_daemon: Some(SyncDaemonSpec { interface: "eth1".into(), sync_id: 51 }),
            startup_delay_ms: 0,
        }
    }

    #[test]
    fn the_configuration_says_what_the_spec_says_and_nothing_about_ipvs() {
        let c = render(&spec(), Path::new("/var/lib/lvs-agent/keepalived/notify.fifo"));
        for want in [
            "vrrp_version 3",
            "vrrp_notify_fifo \"/var/lib/lvs-agent/keepalived/notify.fifo\"",
            "vrrp_instance web {",
            "state BACKUP",
            "interface eth1",
            "virtual_router_id 51",
            "priority 150",
            "advert_int 0.10",
            "nopreempt",
            "unicast_src_ip 198.18.0.2",
            "        198.18.0.3\n",
            "198.18.0.100/32 dev eth1 label eth1:0",
            "vrrp_garp_master_refresh 10",
        ] {
            assert!(c.contains(want), "missing `{want}` in:\n{c}");
        }
        assert!(
            !c.contains("virtual_server") && !c.contains("lvs_sync_daemon"),
            "IPVS stays the agent's:\n{c}"
        );
        assert!(!c.contains("virtual_ipaddress_excluded"), "no other family, no excluded block:\n{c}");
        let preempting = render(&VrrpSpec { preempt: true, ..spec() }, Path::new("/f"));
        assert!(!preempting.contains("nopreempt"));
    }

    #[test]
    fn a_dual_stack_instance_adverts_one_family_and_carries_the_other_excluded() {
        let mut dual = spec();
        dual.vips.push(AddressSpec {
            interface: "eth1".into(),
            address: "2001:db8:18::100/128".parse().unwrap(),
            // A label on an IPv6 VIP is dropped: keepalived (and the kernel) keep none.
            label: Some("eth1:1".into()),
            purpose: AddressPurpose::Vip,
        });
        let c = render(&dual, Path::new("/f"));
        let block = |name: &str| {
            let start = c.find(&format!("    {name} {{\n")).unwrap_or_else(|| panic!("no {name} in:\n{c}"));
            let rest = &c[start..];
            rest[..rest.find("    }\n").unwrap()].to_string()
        };
        let adverts = block("virtual_ipaddress");
        let excluded = block("virtual_ipaddress_excluded");
        assert!(
            adverts.contains("198.18.0.100/32 dev eth1 label eth1:0") && !adverts.contains("2001:"),
            "{c}"
        );
        assert!(excluded.contains("2001:db8:18::100/128 dev eth1\n") && !excluded.contains("198.18"), "{c}");
        assert!(!c.contains("eth1:1"), "{c}");
        // An IPv6 instance (its adverts over IPv6) excludes the IPv4 VIPs instead.
        let v6 = VrrpSpec { unicast_source: "2001:db8:18::2".parse().unwrap(), ..dual };
        let c6 = render(&v6, Path::new("/f"));
        let i = c6.find("virtual_ipaddress_excluded").unwrap();
        assert!(c6[i..].contains("198.18.0.100/32") && !c6[i..].contains("2001:db8:18::100"), "{c6}");
    }

    struct NoHands;
    #[tonic::async_trait]
    impl VipHands for NoHands {
        async fn release(&self, _: &[AddressSpec]) {}
        async fn hide(&self, _: &[AddressSpec], _: bool) {}
    }
    struct NoNft;
    #[tonic::async_trait]
    impl Nft for NoNft {
        async fn load(&self, _: &str) -> Result<(), String> {
            Err("not in unit tests".into())
        }
    }

    #[tokio::test]
    async fn a_director_without_keepalived_is_told_to_install_it_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keepalived::new(
            dir.path(),
            Path::new("/nonexistent/keepalived"),
            Events::default(),
            Arc::new(NoHands),
            Arc::new(NoNft),
        );
        let e = k.ensure(Some(&spec())).await.unwrap_err().to_string();
        assert!(e.contains("install keepalived"), "{e}");
        assert!(k.status().is_none(), "no engine state reported");
        assert!(!dir.path().join("keepalived.conf").exists(), "the checked config was never put in place");
    }

    #[tokio::test]
    async fn keepalived_accepts_the_configuration() {
        let program = Keepalived::default_program();
        if !lvs_tests::root_suite_can_run(Some(("keepalived", program.exists()))) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        // keepalived checks that the interface exists and is not loopback: use one of
        // this host's.
        let iface = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n != "lo")
            .expect("a non-loopback interface");
        let mut here = spec();
        here.interface.clone_from(&iface);
        here.vips[0].interface.clone_from(&iface);
        here.vips[0].label = None;
        // Dual stack: the IPv6 VIP rides in the excluded block.
        here.vips.push(AddressSpec {
            interface: iface.clone(),
            address: "2001:db8:18::100/128".parse().unwrap(),
            label: None,
            purpose: AddressPurpose::Vip,
        });
        std::fs::write(&path, render(&here, &dir.path().join("fifo"))).unwrap();
        let k = Keepalived::new(dir.path(), &program, Events::default(), Arc::new(NoHands), Arc::new(NoNft));
        k.config_test(&path).await.expect("keepalived --config-test passes");
        std::fs::write(&path, "vrrp_instance x {\n    virtual_router_id 999\n}\n").unwrap();
        let e = k.config_test(&path).await.unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
    }
}
