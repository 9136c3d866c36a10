//! The BGP engine for real, on this host's kernel (BGP, BFD and multipath routes need no
//! IPVS): the router and three directors of `deploy/examples/ecmp.toml` in four network
//! namespaces on one bridge, each running the agent's [`Bird`] engine (a real BIRD,
//! supervised) from the specs the planner makes. Measured: the router's ECMP route over
//! every director, a withdrawal that keeps its session up, a director whose link is cut
//! (BFD) and one whose BIRD is killed (taken out, then back once the supervisor restarts
//! it), and nothing left once the engines stop. The IPVS side (the `mh` scheduler, a flow
//! that changes director) is the VM's: `tests/vm/run e2e`. Addresses stay in 198.18.0.0/15.
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lvs_agent::bgp::BgpEngine;
use lvs_agent::bgp::bird::Bird;
use lvs_agent::telemetry::Events;
use lvs_proto::spec::BgpSpec;
use lvs_tests::{in_netns, poll};

const ECMP: &str = include_str!("../../deploy/examples/ecmp.toml");
const VIP: &str = "198.18.0.100";

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// One namespace per node; the router's holds the bridge the others are plugged into.
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// The router (at `router`, a /24) and `nodes` (name, address/24) plugged into it.
    fn new(router: &str, nodes: &[(&str, &str)]) -> Net {
        let net = Net { prefix: format!("bg{}", std::process::id()) };
        let r = net.ns("router");
        ip(&["netns", "add", &r]);
        ip(&["-n", &r, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &r, "link", "set", "br0", "name", "eth1"]);
        ip(&["-n", &r, "addr", "add", router, "dev", "eth1"]);
        ip(&["-n", &r, "link", "set", "eth1", "up"]);
        ip(&["-n", &r, "link", "set", "lo", "up"]);
        for (i, (node, addr)) in nodes.iter().enumerate() {
            let n = net.ns(node);
            ip(&["netns", "add", &n]);
            let port = format!("p{i}");
            ip(&["link", "add", "tmpd", "netns", &n, "type", "veth", "peer", &port, "netns", &r]);
            ip(&["-n", &r, "link", "set", &port, "master", "eth1", "up"]);
            ip(&["-n", &n, "link", "set", "tmpd", "name", "eth1"]);
            ip(&["-n", &n, "addr", "add", addr, "dev", "eth1"]);
            ip(&["-n", &n, "link", "set", "eth1", "up"]);
            ip(&["-n", &n, "link", "set", "lo", "up"]);
        }
        net
    }

    /// The router's next hops for the VIP now.
    fn next_hops(&self) -> Vec<String> {
        let o = Command::new("ip").args(["-n", &self.ns("router"), "route", "show", VIP]).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout);
        let mut hops: Vec<String> = t
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        hops
    }

    /// Wait until the router's next hops are `want`; how long that took.
    fn wait_hops(&self, want: &[&str], within: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        poll(within, Duration::from_millis(5), || (self.next_hops() == want).then(|| t0.elapsed()))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["router", "lb1", "lb2", "lb3"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(n)]).status();
        }
    }
}

/// One node's engine, its runtime's threads (and so BIRD) in its namespace.
struct Node {
    rt: tokio::runtime::Runtime,
    engine: Arc<Bird>,
    spec: BgpSpec,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(ns: &str, spec: BgpSpec) -> Node {
        let rt = in_netns(ns, || {
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
        });
        // A short path: BIRD's control socket must fit a sockaddr_un.
        let dir = tempfile::Builder::new().prefix("bgp").tempdir_in("/tmp").unwrap();
        let engine = Arc::new(Bird::new(dir.path(), &Bird::default_program(), Events::default()));
        let n = Node { rt, engine, spec, dir };
        let all = n.spec.announce.clone();
        n.ensure(Some(&all));
        n
    }

    /// The engine's `ensure` on a worker (in the namespace): announcing `announced`, or
    /// stopped with `None`.
    fn ensure(&self, announced: Option<&[IpNet]>) {
        let (e, s, a) = (Arc::clone(&self.engine), self.spec.clone(), announced.map(<[IpNet]>::to_vec));
        self.rt
            .block_on(
                self.rt.spawn(
                    async move { e.ensure(a.as_ref().map(|_| &s), a.as_deref().unwrap_or(&[])).await },
                ),
            )
            .unwrap()
            .expect("ensure");
    }

    /// Sessions up, as the engine reads them over BIRD's control socket.
    fn sessions_up(&self) -> usize {
        let e = Arc::clone(&self.engine);
        let s = self.rt.block_on(self.rt.spawn(async move { e.sessions().await })).unwrap();
        s.ok().flatten().unwrap_or_default().iter().filter(|x| x.up).count()
    }

    fn bird_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("bird.pid")).ok()?.trim().parse().ok()
    }
}

fn specs() -> Vec<(String, BgpSpec)> {
    specs_of(ECMP)
}

/// The nodes of `definition` that have BGP, with their specs.
fn specs_of(definition: &str) -> Vec<(String, BgpSpec)> {
    let c = lvs_controller::load::load_str("ecmp.toml", definition).unwrap().cluster;
    lvs_controller::planner::plan(&c).into_iter().filter_map(|s| Some((s.node.clone(), s.bgp?))).collect()
}

#[test]
fn the_router_spreads_the_vip_over_every_director_that_announces_it_and_drops_a_dead_one_fast() {
    if !lvs_tests::root_suite_can_run(Some(("bird", Bird::default_program().exists()))) {
        return;
    }
    let net = Net::new(
        "198.18.0.1/24",
        &[("lb1", "198.18.0.2/24"), ("lb2", "198.18.0.3/24"), ("lb3", "198.18.0.4/24")],
    );
    let specs = specs();
    assert_eq!(specs.len(), 4, "the router and three directors have BGP: {specs:?}");
    let t0 = Instant::now();
    let nodes: Vec<(String, Node)> =
        specs.into_iter().map(|(n, s)| (n.clone(), Node::start(&net.ns(&n), s))).collect();
    let node = |name: &str| &nodes.iter().find(|(n, _)| n == name).unwrap().1;
    let all = ["198.18.0.2", "198.18.0.3", "198.18.0.4"];
    net.wait_hops(&all, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no ECMP route: {:?}", net.next_hops()));
    println!("ECMP route over 3 directors {} ms after the engines started", t0.elapsed().as_millis());
    assert!(
        poll(Duration::from_secs(5), Duration::from_millis(50), || (node("router").sessions_up() == 3)
            .then_some(()))
        .is_some()
    );
    assert_eq!(node("lb1").sessions_up(), 1);

    // A withdrawal reloads BIRD in place: the route goes, the session stays.
    node("lb2").ensure(Some(&[]));
    let took =
        net.wait_hops(&["198.18.0.2", "198.18.0.4"], Duration::from_secs(5)).expect("lb2's path withdrawn");
    println!("withdrawn by lb2: gone from the router in {} ms", took.as_millis());
    assert_eq!(node("lb2").sessions_up(), 1, "a withdrawal keeps the session up");
    let all_prefixes = node("lb2").spec.announce.clone();
    node("lb2").ensure(Some(&all_prefixes));
    net.wait_hops(&all, Duration::from_secs(5)).expect("lb2 announces again");

    // lb3's link cut at the router's side: BFD (100 ms x 3) takes it out.
    ip(&["-n", &net.ns("router"), "link", "set", "p2", "down"]);
    let took = net.wait_hops(&["198.18.0.2", "198.18.0.3"], Duration::from_secs(5)).expect("lb3 taken out");
    println!("lb3's link cut: out of the route in {} ms (BFD 100 ms x 3)", took.as_millis());
    assert!(took < Duration::from_secs(1), "BFD takes a dead director out in well under a second: {took:?}");
    ip(&["-n", &net.ns("router"), "link", "set", "p2", "up"]);
    let back = net.wait_hops(&all, Duration::from_secs(20)).expect("lb3 back");
    println!("lb3's link back: in the route again after {} ms", back.as_millis());

    // lb1's BIRD killed: its session closes at once; the supervisor starts a new one.
    let pid = node("lb1").bird_pid().expect("lb1's bird.pid");
    // SAFETY: a pid this test's engine started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let took = net.wait_hops(&["198.18.0.3", "198.18.0.4"], Duration::from_secs(5)).expect("lb1 taken out");
    println!("lb1's BIRD killed: out of the route in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(1), "{took:?}");
    let back = net.wait_hops(&all, Duration::from_secs(20)).expect("lb1's restarted BIRD announces again");
    println!("lb1's BIRD restarted by its supervisor: in the route again after {} ms", back.as_millis());
    assert_ne!(node("lb1").bird_pid(), Some(pid));

    // Stopped: every BIRD gone, and the router's routes with it.
    let pids: Vec<i32> = nodes.iter().filter_map(|(_, n)| n.bird_pid()).collect();
    for (_, n) in &nodes {
        n.ensure(None);
    }
    assert!(net.next_hops().is_empty(), "{:?}", net.next_hops());
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "BIRD {pid} outlived its engine");
    }
}

/// A router no agent runs: a plain BIRD in the router's namespace with the configuration
/// `lvsctl peering bird` printed. Killed (by its pid) when dropped.
struct ExternalBird {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl ExternalBird {
    fn start(ns: &str, config: &str) -> ExternalBird {
        let dir = tempfile::Builder::new().prefix("tor").tempdir_in("/tmp").unwrap();
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, config).unwrap();
        let sock = dir.path().join("s");
        // `ip netns exec` execs BIRD: the child's pid is BIRD's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(Bird::default_program())
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ExternalBird { child, _dir: dir }
    }
}

impl Drop for ExternalBird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Routes the router's kernel has now (`ip route`), one per line.
fn routes(net: &Net) -> String {
    let o = Command::new("ip").args(["-n", &net.ns("router"), "route", "show"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A router no agent runs, as FRR: zebra, bfdd and bgpd in the router's namespace (their
/// sockets, pid files and logs in a directory of the test's), loaded with `vtysh -f` of
/// what `lvsctl peering frr` printed. Each daemon is killed when dropped.
struct ExternalFrr {
    children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl ExternalFrr {
    fn start(ns: &str, config: &str) -> ExternalFrr {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("frr").tempdir_in("/tmp").unwrap();
        // The daemons drop to user frr: the directory must be theirs to write.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let d = dir.path();
        let mut children = Vec::new();
        for daemon in ["zebra", "bfdd", "bgpd"] {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(format!("/usr/lib/frr/{daemon}"))
                .args(["-u", "frr", "-g", "frr", "-f", "/dev/null"])
                .arg("--vty_socket")
                .arg(d)
                .arg("-z")
                .arg(d.join("zserv.api"))
                .arg("-i")
                .arg(d.join(format!("{daemon}.pid")))
                .arg("--log")
                .arg(format!("file:{}", d.join(format!("{daemon}.log")).display()));
            if daemon == "bfdd" {
                c.arg("--bfdctl").arg(d.join("bfdd.sock"));
            }
            // `ip netns exec` execs the daemon: the child's pid is the daemon's.
            children.push(
                c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap(),
            );
            if daemon == "zebra" {
                // bfdd and bgpd connect to zebra's socket.
                poll(Duration::from_secs(10), Duration::from_millis(20), || {
                    d.join("zserv.api").exists().then_some(())
                })
                .expect("zebra's socket");
            }
        }
        let vtys = || ["zebra", "bfdd", "bgpd"].iter().all(|x| d.join(format!("{x}.vty")).exists());
        poll(Duration::from_secs(10), Duration::from_millis(20), || vtys().then_some(()))
            .expect("FRR's vty sockets");
        std::fs::write(d.join("frr.conf"), config).unwrap();
        let o = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(d)
            .arg("-f")
            .arg(d.join("frr.conf"))
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(
            o.status.success() && !said.contains("Unknown command"),
            "vtysh -f refused the printed config: {said}"
        );
        ExternalFrr { children, _dir: dir }
    }
}

impl Drop for ExternalFrr {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The printed side of tor1 (`lvsctl -f ecmp-tor.toml peering DIALECT --router tor1`).
fn printed(dialect: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecmp-tor.toml");
    std::fs::write(&file, TOR).unwrap();
    let out = Command::new(lvs_tests::bin("lvsctl"))
        .args(["-f", file.to_str().unwrap(), "peering", dialect, "--router", "tor1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const TOR: &str = include_str!("../../deploy/examples/ecmp-tor.toml");

// Long on purpose: one scenario, step by step, for either router daemon.
/// tor1 of `ecmp-tor.toml` run by `start` (a real BIRD or FRR with the printed side) in
/// the router's namespace, the directors' agents' engines from the planner's specs: the
/// ECMP route over all three; a director announcing a prefix that is no VIP: nothing but
/// the VIP installed from it, and (`cut_off`) its session stopped; a cut link out of the route in under a second (BFD).
fn external_router<R>(name: &str, cut_off: bool, start: impl FnOnce(&str) -> R) {
    let net = Net::new(
        "198.18.0.250/24",
        &[("lb1", "198.18.0.2/24"), ("lb2", "198.18.0.3/24"), ("lb3", "198.18.0.4/24")],
    );
    let specs = specs_of(TOR);
    assert_eq!(specs.len(), 3, "only the directors run BIRD: {specs:?}");
    for (_, s) in &specs {
        let peers: Vec<String> = s.peers.iter().map(|p| format!("{} {}", p.name, p.address)).collect();
        assert_eq!(peers, ["tor1 198.18.0.250", "tor2 198.18.0.251"]);
    }
    let t0 = Instant::now();
    let _tor1 = start(&net.ns("router"));
    let nodes: Vec<(String, Node)> =
        specs.into_iter().map(|(n, s)| (n.clone(), Node::start(&net.ns(&n), s))).collect();
    let node = |n: &str| &nodes.iter().find(|(x, _)| x == n).unwrap().1;
    let all = ["198.18.0.2", "198.18.0.3", "198.18.0.4"];
    net.wait_hops(&all, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name}: no ECMP route on tor1: {:?}\n{}", net.next_hops(), routes(&net)));
    println!(
        "tor1 ({name}, the printed config): ECMP route over 3 directors {} ms after start",
        t0.elapsed().as_millis()
    );
    // Each director has its session with tor1 up and the one with tor2 (absent) down.
    let one_up = || (node("lb1").sessions_up() == 1).then_some(());
    assert!(poll(Duration::from_secs(5), Duration::from_millis(50), one_up).is_some());

    // A director announcing more than the VIPs (here a /24, as a compromised or
    // misconfigured one might): nothing but the VIP is ever installed from it. BIRD's
    // receive limit also cuts it off; FRR keeps it, filtered.
    let mut spoiled = node("lb3").spec.clone();
    spoiled.announce.push("198.18.1.0/24".parse().unwrap());
    node("lb3").ensure(None);
    net.wait_hops(&["198.18.0.2", "198.18.0.3"], Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name}: lb3 stopped but still a next hop: {:?}", net.next_hops()));
    let lb3 = Node::start(&net.ns("lb3"), spoiled);
    // lb3's session comes up (its side sees it established) before the router decides.
    let lb3_up = || (lb3.sessions_up() == 1).then_some(());
    assert!(
        poll(Duration::from_secs(15), Duration::from_millis(20), lb3_up).is_some(),
        "{name}: lb3 never peered"
    );
    std::thread::sleep(Duration::from_secs(2));
    let want: &[&str] = if cut_off { &["198.18.0.2", "198.18.0.3"] } else { &all };
    assert_eq!(net.next_hops(), want, "{name}: lb3 {}", if cut_off { "cut off" } else { "kept for its VIP" });
    let r = routes(&net);
    assert!(!r.contains("198.18.1.0/24"), "{name}: a prefix that is no VIP is never installed:\n{r}");

    // lb2's link cut: tor1's BFD at the definition's timers takes it out.
    ip(&["-n", &net.ns("router"), "link", "set", "p1", "down"]);
    let rest: Vec<&str> = want.iter().copied().filter(|h| *h != "198.18.0.3").collect();
    let took = net.wait_hops(&rest, Duration::from_secs(5)).expect("lb2 taken out");
    println!("{name}: lb2's link cut: out of tor1's route in {} ms (BFD 100 ms x 3)", took.as_millis());
    assert!(took < Duration::from_secs(1), "{name}: {took:?}");
    lb3.ensure(None);
    for (_, n) in &nodes {
        n.ensure(None);
    }
}

#[test]
fn an_external_bird_configured_from_lvsctl_peering_installs_the_vips_and_nothing_else() {
    if !lvs_tests::root_suite_can_run(Some(("bird", Bird::default_program().exists()))) {
        return;
    }
    let config = printed("bird");
    external_router("BIRD", true, |ns| ExternalBird::start(ns, &config));
}

#[test]
fn an_external_frr_configured_from_lvsctl_peering_installs_the_vips_and_nothing_else() {
    let frr =
        std::path::Path::new("/usr/lib/frr/bgpd").exists() && std::path::Path::new("/usr/bin/vtysh").exists();
    if !lvs_tests::root_suite_can_run(Some(("FRR (package frr)", frr))) {
        return;
    }
    let config = printed("frr");
    external_router("FRR", false, |ns| ExternalFrr::start(ns, &config));
}
