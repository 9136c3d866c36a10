//! Every IPVS operation round-tripped against a real kernel, with `ipvsadm` (the
//! distribution's, run inside the VM) as the referee of what the kernel holds.
//!
//! These need a kernel with IPVS and root, so they are `#[ignore]`d on the host and run
//! by the VM test bed: `tests/vm/run ipvs` (part of `tests/run` and CI). Each test runs
//! in a network namespace of its own (IPVS tables are per namespace), so they can run in
//! parallel and leave nothing behind.
use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use lvs_ipvs::{
    Daemon, DaemonState, Destination, Error, Forward, Ipvs, Op, Protocol, Service, ServiceFlags, ServiceKey,
    Timeouts,
};

const NEEDS: &str = "needs a kernel with IPVS and root: run by tests/vm/run";

/// Run `f` in a fresh network namespace on this thread.
fn netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's namespace; the test
    // owns its thread and everything it spawns afterwards inherits the namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    sh("ip link set lo up");
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f());
}

/// Run a shell command. `ip` means iproute2's: busybox's shell would otherwise run its
/// own `ip` applet, which lacks netns and veth peers.
fn sh(cmd: &str) -> String {
    let cmd = cmd.replace("ip ", "/usr/sbin/ip ");
    let cmd = cmd.as_str();
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("spawn sh");
    assert!(o.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ipvsadm -Sn` lines (the kernel's table in rule form), sorted.
fn saved() -> Vec<String> {
    let mut v: Vec<String> = sh("ipvsadm -Sn").lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn tcp(addr: &str) -> ServiceKey {
    ServiceKey::Addr(Protocol::Tcp, addr.parse().unwrap())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn info_matches_ipvsadm() {
    let _ = NEEDS;
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let info = ipvs.info().await.unwrap();
        let head = sh("ipvsadm -Ln");
        let line = head.lines().next().unwrap();
        assert_eq!(
            line,
            format!("IP Virtual Server version {} (size={})", info.version_string(), info.conn_tab_size)
        );
        assert_eq!(info.version_string(), "1.2.1");
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn tcp_service_add_edit_delete() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let key = tcp("198.18.0.100:80");
        ipvs.apply_one(Op::AddService(Service::new(key, "rr"))).await.unwrap();
        assert_eq!(saved(), ["-A -t 198.18.0.100:80 -s rr"]);
        let mut s = Service::new(key, "wrr");
        s.timeout = 300;
        s.netmask = 0xffff_ff00;
        ipvs.apply_one(Op::EditService(s.clone())).await.unwrap();
        assert_eq!(saved(), ["-A -t 198.18.0.100:80 -s wrr -p 300 -M 255.255.255.0"]);
        let dumped = ipvs.service(&key).await.unwrap().service;
        assert_eq!(dumped.scheduler, "wrr");
        assert_eq!((dumped.timeout, dumped.netmask), (300, 0xffff_ff00));
        assert_ne!(dumped.flags.0 & ServiceFlags::PERSISTENT, 0);
        ipvs.apply_one(Op::DelService(key)).await.unwrap();
        assert!(saved().is_empty());
        assert!(ipvs.services().await.unwrap().is_empty());
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn every_service_kind_round_trips() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let mut one_packet = Service::new(ServiceKey::Addr(Protocol::Udp, sa("198.18.0.100:53")), "wlc");
        one_packet.flags = ServiceFlags(ServiceFlags::ONE_PACKET);
        let mut sh_port = Service::new(ServiceKey::Fwmark(7, false), "sh");
        sh_port.flags = ServiceFlags(ServiceFlags::SH_PORT | ServiceFlags::SH_FALLBACK);
        let services = vec![
            one_packet,
            Service::new(ServiceKey::Addr(Protocol::Sctp, sa("198.18.0.100:9")), "lc"),
            sh_port,
            Service::new(ServiceKey::Fwmark(8, true), "mh"),
            Service::new(ServiceKey::Addr(Protocol::Tcp, sa("[2001:db8::100]:443")), "sed"),
        ];
        let ops: Vec<Op> = services.iter().cloned().map(Op::AddService).collect();
        for r in ipvs.apply(&ops).await.unwrap() {
            r.unwrap();
        }
        assert_eq!(
            saved(),
            [
                "-A --sctp-service 198.18.0.100:9 -s lc",
                "-A -f 7 -s sh -b sh-fallback,sh-port",
                "-A -f 8 -6 -s mh",
                "-A -t [2001:db8::100]:443 -s sed",
                "-A -u 198.18.0.100:53 -s wlc -o",
            ]
        );
        let mut dumped: Vec<Service> =
            ipvs.services().await.unwrap().into_iter().map(|e| e.service).collect();
        dumped.sort_by_key(|s| s.key);
        let mut want = services.clone();
        want.sort_by_key(|s| s.key);
        // Whole lists: a short or long dump fails, not only a wrong entry.
        let got: Vec<_> =
            dumped.iter().map(|d| (d.key, d.scheduler.clone(), d.flags.settable(), d.timeout)).collect();
        let exp: Vec<_> = want.iter().map(|w| (w.key, w.scheduler.clone(), w.flags.0, 0)).collect();
        assert_eq!(got, exp);
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn destinations_add_edit_delete_with_thresholds() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let key = tcp("198.18.0.100:80");
        let mut tun = Destination::route(sa("198.18.0.12:80"), 1);
        tun.forward = Forward::Tunnel;
        let mut nat = Destination::route(sa("198.18.0.13:8080"), 0);
        nat.forward = Forward::Masq;
        nat.upper_threshold = 100;
        nat.lower_threshold = 10;
        let dr = Destination::route(sa("198.18.0.11:80"), 2);
        let ops = [
            Op::AddService(Service::new(key, "wrr")),
            Op::AddDest(key, dr),
            Op::AddDest(key, tun),
            Op::AddDest(key, nat),
        ];
        for r in ipvs.apply(&ops).await.unwrap() {
            r.unwrap();
        }
        let rules = saved();
        assert!(rules.contains(&"-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 2".to_string()), "{rules:?}");
        assert!(
            rules.contains(&"-a -t 198.18.0.100:80 -r 198.18.0.12:80 -i -w 1 --tun-type ipip".to_string()),
            "{rules:?}"
        );
        assert!(
            rules.iter().any(|r| r.starts_with("-a -t 198.18.0.100:80 -r 198.18.0.13:8080 -m -w 0")),
            "{rules:?}"
        );
        let th = sh("ipvsadm -Ln --thresholds");
        assert!(
            th.lines().any(|l| l.contains("198.18.0.13:8080")
                && l.split_whitespace().any(|w| w == "100")
                && l.split_whitespace().any(|w| w == "10")),
            "{th}"
        );
        let mut got: Vec<Destination> =
            ipvs.destinations(&key).await.unwrap().into_iter().map(|e| e.dest).collect();
        got.sort_by_key(|d| d.addr);
        assert_eq!(got, vec![dr, tun, nat]);
        // Edit one weight, then delete one destination.
        ipvs.apply_one(Op::EditDest(key, Destination { weight: 5, ..dr })).await.unwrap();
        assert!(saved().contains(&"-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 5".to_string()));
        ipvs.apply_one(Op::DelDest(key, tun.addr)).await.unwrap();
        assert!(!sh("ipvsadm -Ln").contains("198.18.0.12:80"));
        assert_eq!(ipvs.destinations(&key).await.unwrap().len(), 2);
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn kernel_refusals_have_meaning() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let key = tcp("198.18.0.100:80");
        let e = ipvs.apply_one(Op::DelService(key)).await.unwrap_err();
        assert!(matches!(e, Error::NoService { .. }), "{e}");
        ipvs.apply_one(Op::AddService(Service::new(key, "rr"))).await.unwrap();
        let e = ipvs.apply_one(Op::AddService(Service::new(key, "rr"))).await.unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert_eq!(e.to_string(), "add service TCP 198.18.0.100:80: already exists");
        let e =
            ipvs.apply_one(Op::EditDest(key, Destination::route(sa("198.18.0.11:80"), 1))).await.unwrap_err();
        assert!(matches!(e, Error::NoDestination { .. }), "{e}");
        let e =
            ipvs.apply_one(Op::AddService(Service::new(tcp("198.18.0.101:80"), "nosuch"))).await.unwrap_err();
        assert!(matches!(e, Error::NoScheduler { .. }), "{e}");
        let e = ipvs.service(&tcp("198.18.0.102:80")).await.unwrap_err();
        assert!(matches!(e, Error::NoService { .. }), "{e}");
        assert_eq!(saved(), ["-A -t 198.18.0.100:80 -s rr"], "refused requests changed nothing");
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn batch_reports_each_result_and_keeps_going() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let key = tcp("198.18.0.100:80");
        let ops = [
            Op::AddService(Service::new(key, "rr")),
            Op::AddService(Service::new(key, "rr")), // duplicate: refused
            Op::AddDest(key, Destination::route(sa("198.18.0.11:80"), 1)),
        ];
        let r = ipvs.apply(&ops).await.unwrap();
        assert!(r[0].is_ok());
        assert!(matches!(r[1], Err(Error::Exists { .. })));
        assert!(r[2].is_ok());
        assert_eq!(
            saved(),
            ["-A -t 198.18.0.100:80 -s rr", "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1"]
        );
        // A batch larger than one window, every result accounted for.
        let many: Vec<Op> = (1..=300u16)
            .map(|p| Op::AddService(Service::new(tcp(&format!("198.18.1.1:{p}")), "rr")))
            .collect();
        let before = ipvs.requests_sent();
        let r = ipvs.apply(&many).await.unwrap();
        assert_eq!(r.len(), 300);
        assert!(r.iter().all(Result::is_ok));
        assert_eq!(ipvs.requests_sent() - before, 300);
        assert_eq!(sh("ipvsadm -Sn").lines().count(), 302);
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn timeouts_get_and_set() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let t = ipvs.timeouts().await.unwrap();
        assert_eq!(
            sh("ipvsadm -L --timeout").trim(),
            format!("Timeout (tcp tcpfin udp): {} {} {}", t.tcp, t.tcp_fin, t.udp)
        );
        ipvs.apply_one(Op::SetTimeouts(Timeouts { tcp: 600, tcp_fin: 60, udp: 30 })).await.unwrap();
        assert_eq!(sh("ipvsadm -L --timeout").trim(), "Timeout (tcp tcpfin udp): 600 60 30");
        assert_eq!(ipvs.timeouts().await.unwrap(), Timeouts { tcp: 600, tcp_fin: 60, udp: 30 });
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn flush_empties_the_table() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let ops: Vec<Op> = (1..=20u16)
            .map(|p| Op::AddService(Service::new(tcp(&format!("198.18.0.100:{p}")), "rr")))
            .collect();
        assert!(ipvs.apply(&ops).await.unwrap().iter().all(Result::is_ok));
        assert_eq!(saved().len(), 20);
        ipvs.apply_one(Op::Flush).await.unwrap();
        assert!(saved().is_empty());
        assert!(ipvs.services().await.unwrap().is_empty());
    });
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn sync_daemon_start_list_stop() {
    netns(|| async {
        sh("ip link add sync0 type veth peer name sync1 && ip link set sync0 up && ip link set sync1 up");
        let mut ipvs = Ipvs::connect().await.unwrap();
        ipvs.apply_one(Op::StartDaemon(Daemon::new(DaemonState::Master, "sync0", 9))).await.unwrap();
        ipvs.apply_one(Op::StartDaemon(Daemon::new(DaemonState::Backup, "sync1", 9))).await.unwrap();
        let listed = sh("ipvsadm -L --daemon");
        assert!(
            listed.contains(
                "master sync daemon (mcast=sync0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
            ),
            "{listed}"
        );
        assert!(listed.contains("backup sync daemon (mcast=sync1, syncid=9,"), "{listed}");
        let mut d = ipvs.daemons().await.unwrap();
        d.sort_by_key(|d| d.mcast_ifn.clone());
        assert_eq!((d[0].state, d[0].mcast_ifn.as_str(), d[0].sync_id), (DaemonState::Master, "sync0", 9));
        assert_eq!((d[1].state, d[1].mcast_ifn.as_str()), (DaemonState::Backup, "sync1"));
        let defaults = (d[0].sync_maxlen, d[0].mcast_group, d[0].mcast_port, d[0].mcast_ttl);
        assert_eq!(defaults, (Some(1472), Some("224.0.0.81".parse().unwrap()), Some(8848), Some(1)));
        ipvs.apply_one(Op::StopDaemon(DaemonState::Master)).await.unwrap();
        ipvs.apply_one(Op::StopDaemon(DaemonState::Backup)).await.unwrap();
        assert!(ipvs.daemons().await.unwrap().is_empty());
        assert!(sh("ipvsadm -L --daemon").trim().is_empty());
    });
}

/// Fetch `url` from network namespace `ns` with busybox wget.
fn fetch(ns: &str, url: &str) -> String {
    sh(&format!("ip netns exec {ns} timeout 5 wget -q -O - {url}"))
}

#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn dr_traffic_counts_stats_rates_and_connections() {
    netns(|| async {
        // The DR path for real: this namespace is the director (bridge br0, DIP, VIP), a
        // client and a real server hang off the bridge; the real server holds the VIP on
        // lo with the ARP sysctls and answers with busybox httpd.
        let id = std::process::id();
        let (cl, rs) = (format!("cl{id}"), format!("rs{id}"));
        sh("ip link add br0 type bridge && ip link set br0 up");
        sh("ip addr add 198.18.9.2/24 dev br0 && ip addr add 198.18.9.100/32 dev br0");
        for (ns, addr) in [(&cl, "198.18.9.50/24"), (&rs, "198.18.9.11/24")] {
            sh(&format!("ip netns add {ns} && ip link add v{ns} type veth peer name eth0 netns {ns}"));
            sh(&format!("ip link set v{ns} master br0 up"));
            sh(&format!("ip -n {ns} link set lo up && ip -n {ns} addr add {addr} dev eth0"));
        }
        for k in ["all", "eth0"] {
            sh(&format!(
                "ip netns exec {rs} sysctl -qw net.ipv4.conf.{k}.arp_ignore=1 net.ipv4.conf.{k}.arp_announce=2"
            ));
        }
        sh(&format!("ip -n {rs} addr add 198.18.9.100/32 dev lo label lo:0"));
        sh(&format!("ip -n {cl} link set eth0 up && ip -n {rs} link set eth0 up"));
        sh(&format!("mkdir -p /tmp/{rs} && echo RS-{id} > /tmp/{rs}/index.html"));
        let mut httpd = Command::new("/usr/sbin/ip")
            .args(["netns", "exec", &rs, "httpd", "-f", "-p", "80", "-h", &format!("/tmp/{rs}")])
            .spawn()
            .unwrap();
        let vip = sa("198.18.9.100:80");
        let key = ServiceKey::Addr(Protocol::Tcp, vip);
        let mut ipvs = Ipvs::connect().await.unwrap();
        let dest = Destination::route(sa("198.18.9.11:80"), 1);
        for r in ipvs.apply(&[Op::AddService(Service::new(key, "rr")), Op::AddDest(key, dest)]).await.unwrap()
        {
            r.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Command::new("sh")
            .arg("-c")
            .arg(format!("/usr/sbin/ip netns exec {rs} timeout 1 wget -q -O /dev/null http://127.0.0.1/"))
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "httpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        for _ in 0..10 {
            assert_eq!(fetch(&cl, "http://198.18.9.100/").trim(), format!("RS-{id}"));
        }
        // The kernel folds per-CPU counters into what it reports from a 2 s estimator timer.
        let deadline = Instant::now() + Duration::from_secs(12);
        let stats = loop {
            let e = ipvs.service(&key).await.unwrap();
            if e.stats.conns >= 10 && e.stats.cps > 0 || Instant::now() > deadline {
                break e.stats;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let (table, _) = lvs_ipvs::conn::read(100_000).unwrap();
        let _ = httpd.kill();
        let _ = httpd.wait();
        for ns in [&cl, &rs] {
            sh(&format!("ip netns del {ns}"));
        }
        assert_eq!(stats.conns, 10, "{stats:?}");
        assert!(stats.inpkts >= 30 && stats.inbytes > 0, "{stats:?}");
        assert_eq!((stats.outpkts, stats.outbytes), (0, 0), "DR: replies bypass the director: {stats:?}");
        assert!(stats.cps > 0, "rates come from the estimator: {stats:?}");
        let dests = ipvs.destinations(&key).await.unwrap();
        assert_eq!(dests[0].stats.conns, 10);
        assert_eq!(dests[0].active_conns + dests[0].inactive_conns, 10, "{:?}", dests[0]);
        assert_eq!(
            table.iter().filter(|c| c.virtual_addr == vip && c.destination == dest.addr).count(),
            10,
            "{table:?}"
        );
        assert!(table.iter().all(|c| c.client.ip().to_string() == "198.18.9.50"), "{table:?}");
        let st = sh("ipvsadm -Ln --stats");
        let line: Vec<&str> = st.lines().find(|l| l.starts_with("TCP")).unwrap().split_whitespace().collect();
        assert_eq!(line[2], "10", "ipvsadm agrees: {st}");
        ipvs.apply_one(Op::Zero(Some(key))).await.unwrap();
        let z = ipvs.service(&key).await.unwrap().stats;
        assert_eq!((z.conns, z.inpkts, z.inbytes), (0, 0, 0), "{z:?}");
    });
}

/// Prints raw kernel replies as hex so they can be kept as decoding fixtures
/// (`ipvs/tests/fixtures/`); it also checks they decode to what was written.
#[test]
#[ignore = "needs a kernel with IPVS and root: run by tests/vm/run"]
fn capture_replies() {
    netns(|| async {
        let mut ipvs = Ipvs::connect().await.unwrap();
        let key = tcp("198.18.0.100:80");
        let mut s = Service::new(key, "wrr");
        s.timeout = 300;
        for r in ipvs
            .apply(&[Op::AddService(s), Op::AddDest(key, Destination::route(sa("198.18.0.11:80"), 2))])
            .await
            .unwrap()
        {
            r.unwrap();
        }
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let svc = ipvs.query_raw(lvs_ipvs::wire::get_services(), true, "dump").await.unwrap();
        let dst = ipvs.query_raw(lvs_ipvs::wire::get_dests(&key), true, "dump").await.unwrap();
        let info = ipvs.query_raw(lvs_ipvs::wire::get_info(), false, "info").await.unwrap();
        let cfg = ipvs.query_raw(lvs_ipvs::wire::get_config(), false, "config").await.unwrap();
        // The stored fixtures (decode_replies.rs) must still be what this kernel sends:
        // compared from the generic-netlink header on (the netlink header's sequence
        // number and port id differ per socket). The table is fresh, so every counter is
        // zero in both. A newer test kernel that changes the layout fails here.
        let stored = [
            ("service", include_str!("fixtures/service.hex")),
            ("dest", include_str!("fixtures/dest.hex")),
            ("info", include_str!("fixtures/info.hex")),
            ("config", include_str!("fixtures/config.hex")),
        ];
        for ((name, r), (_, fixture)) in
            [("service", &svc), ("dest", &dst), ("info", &info), ("config", &cfg)].into_iter().zip(stored)
        {
            assert_eq!(r.len(), 1);
            let fresh = hex(&r[0].1);
            println!("FIXTURE {name} {fresh}");
            assert_eq!(
                &fresh[32..],
                &fixture.trim()[32..],
                "{name}: this kernel's reply differs from tests/fixtures/{name}.hex; re-capture it"
            );
        }
        assert_eq!(lvs_ipvs::wire::decode_service(&svc[0].0).unwrap().service.timeout, 300);
        assert_eq!(lvs_ipvs::wire::decode_dest(&dst[0].0, false).unwrap().dest.weight, 2);
    });
}
