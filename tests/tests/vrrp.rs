//! The VRRP engine for real, on this host's kernel (VRRP needs no IPVS): two directors in
//! two network namespaces joined by a veth pair, each running the agent's
//! [`Keepalived`] engine (a real keepalived, supervised) from the specs the planner makes
//! of `deploy/examples/lab-ha.toml`. Measured: election (the priorities decide, whatever
//! starts first), failover after the master's
//! keepalived is killed, no second flap when it comes back, a planned hand-over, and the
//! VIP released when the engine stops. Addresses stay in 198.18.0.0/15.
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_agent::ha::VrrpEngine;
use lvs_agent::ha::straddle::NftProgram;
use lvs_agent::ha::{Keepalived, VipHands};
use lvs_agent::telemetry::Events;
use lvs_proto::reply::VrrpState;
use lvs_proto::spec::{AddressSpec, VrrpSpec};
use lvs_tests::{in_netns, poll};

const HA: &str = include_str!("../../deploy/examples/lab-ha.toml");
const VIP: &str = "198.18.0.100";

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Two namespaces, `eth1` in each, the directors' addresses of the HA lab.
struct Pair {
    ns: [String; 2],
}

impl Pair {
    fn new() -> Pair {
        let p = format!("vr{}", std::process::id());
        let ns = [format!("{p}-d1"), format!("{p}-d2")];
        for n in &ns {
            ip(&["netns", "add", n]);
        }
        ip(&[
            "link",
            "add",
            &format!("{p}a"),
            "netns",
            &ns[0],
            "type",
            "veth",
            "peer",
            &format!("{p}b"),
            "netns",
            &ns[1],
        ]);
        for (n, dev, addr) in
            [(&ns[0], format!("{p}a"), "198.18.0.2/24"), (&ns[1], format!("{p}b"), "198.18.0.3/24")]
        {
            ip(&["-n", n, "link", "set", &dev, "name", "eth1"]);
            ip(&["-n", n, "addr", "add", addr, "dev", "eth1"]);
            ip(&["-n", n, "link", "set", "eth1", "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        Pair { ns }
    }

    /// Whether director `i` has the VIP hidden on `lo`.
    fn hides_vip(&self, i: usize) -> bool {
        let o =
            Command::new("ip").args(["-n", &self.ns[i], "-4", "addr", "show", "dev", "lo"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/32"))
    }

    /// Director `i`'s hand-over bounce table, if it has one.
    fn bounce(&self, i: usize) -> Option<String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns[i], "nft", "list", "table", "ip", "lvs_handover"])
            .output()
            .unwrap();
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn holds_vip(&self, i: usize) -> bool {
        let o = Command::new("ip")
            .args(["-n", &self.ns[i], "-4", "addr", "show", "dev", "eth1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/32"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// What the agent's kernel interface does to the VIPs, with `ip` in namespace `.0`.
struct IpHands(String);

#[tonic::async_trait]
impl VipHands for IpHands {
    async fn release(&self, vips: &[AddressSpec]) {
        for v in vips {
            let _ = Command::new("ip")
                .args(["-n", &self.0, "addr", "del", &v.address.to_string(), "dev", &v.interface])
                .status();
        }
    }
    async fn hide(&self, vips: &[AddressSpec], hidden: bool) {
        for v in vips {
            let verb = if hidden { "add" } else { "del" };
            let host = format!("{}/32", v.address.addr());
            let _ = Command::new("ip").args(["-n", &self.0, "addr", verb, &host, "dev", "lo"]).status();
        }
    }
}

/// One director's engine, its runtime's threads (and so keepalived) in namespace `ns`.
struct Director {
    rt: tokio::runtime::Runtime,
    engine: Arc<Keepalived>,
    spec: VrrpSpec,
    _dir: tempfile::TempDir,
}

impl Director {
    fn start(ns: &str, spec: VrrpSpec) -> Director {
        let rt = in_netns(ns, || {
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
        });
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Keepalived::new(
            dir.path(),
            &Keepalived::default_program(),
            Events::default(),
            Arc::new(IpHands(ns.to_string())),
            Arc::new(NftProgram::default_program()),
        ));
        let d = Director { rt, engine, spec, _dir: dir };
        d.ensure(true);
        d
    }

    /// Run the engine's `ensure` on a worker (in the namespace), `on`: for the spec, or none.
    fn ensure(&self, on: bool) {
        let (e, s) = (Arc::clone(&self.engine), self.spec.clone());
        self.rt
            .block_on(self.rt.spawn(async move { e.ensure(on.then_some(&s)).await }))
            .unwrap()
            .expect("ensure");
    }

    fn hand_over(&self) -> Result<(), lvs_agent::ha::VrrpError> {
        let e = Arc::clone(&self.engine);
        self.rt.block_on(self.rt.spawn(async move { e.hand_over().await })).unwrap()
    }

    fn state(&self) -> Option<VrrpState> {
        self.engine.status().map(|s| s.state)
    }

    /// Kill keepalived hard (as a crash would), by the pid file it writes.
    fn kill_engine(&self) {
        let pid = std::fs::read_to_string(self._dir.path().join("keepalived.pid")).unwrap();
        let pid: i32 = pid.trim().parse().unwrap();
        // SAFETY: a pid this test's engine started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        // (keepalived's VRRP child is its own process: a crash takes both.)
        if let Ok(child) = std::fs::read_to_string(self._dir.path().join("vrrp.pid")) {
            // SAFETY: as above.
            unsafe { libc::kill(child.trim().parse().unwrap_or(0), libc::SIGKILL) };
        }
    }
}

fn specs() -> (VrrpSpec, VrrpSpec) {
    let c = lvs_controller::load::load_str("lab-ha.toml", HA).unwrap().cluster;
    let plan = lvs_controller::planner::plan(&c);
    let v = |n: &str| plan.iter().find(|s| s.node == n).unwrap().vrrp.clone().unwrap();
    (v("director"), v("director2"))
}

fn wait_state(d: &Director, want: VrrpState, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    poll(within, Duration::from_millis(5), || (d.state() == Some(want)).then(|| t0.elapsed()))
}

/// Whether the real engine can run here; says SKIPPED when not (a failure where skipping is
/// not allowed).
fn engines_can_run() -> bool {
    lvs_tests::root_suite_can_run(Some(("keepalived", Keepalived::default_program().exists())))
}

/// The other start order of the first election: the definition's master (150) starts a
/// second before director2 (100), which sits out its start-up delay and joins as backup.
#[test]
fn the_higher_priority_started_first_stays_master_and_the_other_joins_as_backup() {
    if !engines_can_run() {
        return;
    }
    let pair = Pair::new();
    let (s1, s2) = specs();
    let d1 = Director::start(&pair.ns[0], s1);
    std::thread::sleep(Duration::from_secs(1));
    let d2 = Director::start(&pair.ns[1], s2);
    wait_state(&d1, VrrpState::Master, Duration::from_secs(5)).expect("director becomes master");
    wait_state(&d2, VrrpState::Backup, Duration::from_secs(8)).expect("director2 joins as backup");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!((d1.state(), d2.state()), (Some(VrrpState::Master), Some(VrrpState::Backup)), "no flap");
    assert!(pair.holds_vip(0) && !pair.holds_vip(1), "one holder of the VIP: director");
}

#[test]
fn keepalived_elects_fails_over_in_under_a_second_does_not_flap_back_and_hands_over() {
    if !engines_can_run() {
        return;
    }
    let pair = Pair::new();
    let (s1, s2) = specs();
    // The first election follows the priorities, whatever starts first: director2
    // (100) starts a second before director (150). Without preemption it would be master
    // before director is heard, and stay master; it sits out its start-up delay instead.
    assert_eq!((s1.startup_delay_ms, s2.startup_delay_ms), (0, 5_400), "the planner's delays");
    let d2 = Director::start(&pair.ns[1], s2);
    std::thread::sleep(Duration::from_secs(1));
    let d1 = Director::start(&pair.ns[0], s1);

    // Election: the higher priority becomes master and holds the VIP; the other waits.
    let elected =
        wait_state(&d1, VrrpState::Master, Duration::from_secs(5)).expect("director becomes master");
    let joined =
        wait_state(&d2, VrrpState::Backup, Duration::from_secs(8)).expect("director2 joins as backup");
    println!(
        "director2 (started 1 s earlier) joined as backup {} ms after director was master",
        joined.as_millis()
    );
    assert!(pair.holds_vip(0) && !pair.holds_vip(1));
    println!("elected in {} ms", elected.as_millis());

    // The master's engine crashes: the backup takes over after the master-down timer.
    let t0 = Instant::now();
    d1.kill_engine();
    let took = wait_state(&d2, VrrpState::Master, Duration::from_secs(3)).expect("backup takes over");
    let vip_moved =
        poll(Duration::from_secs(2), Duration::from_millis(5), || pair.holds_vip(1).then(|| t0.elapsed()))
            .expect("the VIP moves");
    println!(
        "failover after a killed master: MASTER in {} ms, VIP on director2 in {} ms",
        took.as_millis(),
        vip_moved.as_millis()
    );
    assert!(took < Duration::from_secs(1), "100 ms adverts: master down after ~0.35 s, not {took:?}");

    // The supervisor restarts the crashed engine: it rejoins as backup (no preemption),
    // drops the VIP it still had, and director2 stays master: one flap, not two.
    let back = wait_state(&d1, VrrpState::Backup, Duration::from_secs(5)).expect("restarted as backup");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d2.state(), Some(VrrpState::Master), "no second flap");
    assert!(!pair.holds_vip(0) && pair.holds_vip(1), "one holder of the VIP");
    println!("crashed engine back as backup {} ms after its restart began", back.as_millis());

    // Planned hand-over: director2 gives the VIP back now (priority-0 advert), not after
    // the master-down timer.
    let e = Arc::clone(&d2.engine);
    let call = d2.rt.spawn(async move { e.hand_over().await });
    let planned = wait_state(&d1, VrrpState::Master, Duration::from_secs(3)).expect("director takes over");
    d2.rt.block_on(call).unwrap().expect("hand over");
    println!("planned hand-over: director MASTER {} ms after the call", planned.as_millis());
    assert!(planned < Duration::from_secs(1), "{planned:?}");
    assert_eq!(d2.state(), Some(VrrpState::Backup));
    assert!(pair.holds_vip(0) && !pair.holds_vip(1));
    // A backup has nothing to hand over.
    assert!(d2.hand_over().unwrap_err().to_string().contains("not master"));
    // The old master keeps the VIP hidden on lo for a while, and as a backup it bounces
    // to its peer what its IPVS does not know; the new master does the same for a while
    // after taking over (agent/src/ha/straddle.rs).
    assert!(pair.hides_vip(1), "the old master hides the VIP on lo");
    let b = pair.bounce(1).expect("the backup's bounce table");
    assert!(b.contains("ip daddr 198.18.0.100") && b.contains("dup to 198.18.0.2 device \"eth1\""), "{b}");
    let b = pair.bounce(0).expect("the new master's bounce table, for a while");
    assert!(b.contains("dup to 198.18.0.3 device \"eth1\""), "{b}");
    std::thread::sleep(lvs_agent::ha::straddle::HIDE_FOR + Duration::from_millis(500));
    assert!(!pair.hides_vip(1), "hidden for {:?}, not longer", lvs_agent::ha::straddle::HIDE_FOR);
    assert!(pair.bounce(0).is_none(), "a settled master resets what it does not know");
    assert!(pair.bounce(1).is_some(), "a backup keeps its bounce");
    assert!(pair.holds_vip(0) && !pair.holds_vip(1));

    // Stopping the engines releases the VIP.
    d1.ensure(false);
    d2.ensure(false);
    assert!(!pair.holds_vip(0) && !pair.holds_vip(1));
    assert!(
        pair.bounce(0).is_none() && pair.bounce(1).is_none(),
        "an engine stopped for good leaves no table"
    );
    assert_eq!(d1.state(), None);
}
