//! What the root benchmarks share: a private network namespace with the test range local,
//! a real httpd, and this process's CPU time.
#![allow(dead_code)] // each benchmark uses part of it
use std::process::{Child, Command};
use std::time::Duration;

/// Enter a network namespace of this process's own where 198.18.0.0/16 is local on `lo`.
/// Call it first thing in `main`, before any thread exists.
pub fn enter_private_netns() {
    // SAFETY: called before any thread exists (see above).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!("unshare(CLONE_NEWNET): {} (the benchmark needs root)", std::io::Error::last_os_error());
    }
    for args in [&["link", "set", "lo", "up"][..], &["addr", "add", "198.18.0.0/16", "dev", "lo"]] {
        assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    }
}

/// busybox httpd on port 80 of every local address, serving `ok` from `www` (a child
/// process: its CPU is not this process's).
pub fn httpd(www: &std::path::Path) -> Child {
    std::fs::write(www.join("index.html"), "ok\n").unwrap();
    let c = Command::new("busybox")
        .args(["httpd", "-f", "-p", "80", "-h"])
        .arg(www)
        .spawn()
        .expect("busybox httpd");
    std::thread::sleep(Duration::from_millis(200));
    c
}

/// lighttpd on port 80 of every local address, serving `ok` from `www`: an httpd that
/// keeps connections alive (busybox's closes after every answer). Its configuration goes
/// beside the page; up to 8,192 connections at once.
pub fn lighttpd(www: &std::path::Path) -> Child {
    std::fs::write(www.join("index.html"), "ok\n").unwrap();
    let conf = www.join("lighttpd.conf");
    std::fs::write(
        &conf,
        format!(
            "server.document-root = \"{}\"\nserver.port = 80\nserver.max-fds = 16384\n\
             server.max-connections = 8192\nindex-file.names = (\"index.html\")\n",
            www.display()
        ),
    )
    .unwrap();
    let c = Command::new("lighttpd").arg("-D").arg("-f").arg(&conf).spawn().expect("lighttpd");
    std::thread::sleep(Duration::from_millis(300));
    c
}

/// What every root benchmark starts with, first thing in `main`: a private namespace
/// ([`enter_private_netns`]), a runtime with two workers as the agent's, and a real httpd
/// (`server`: [`httpd`] or [`lighttpd`]) serving from the returned directory.
pub fn start(server: fn(&std::path::Path) -> Child) -> (tokio::runtime::Runtime, tempfile::TempDir, Child) {
    enter_private_netns();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let www = tempfile::tempdir().unwrap();
    let server = server(www.path());
    (rt, www, server)
}

/// This process's CPU time so far, user and system (getrusage).
pub fn cpu() -> Duration {
    let (user, system) = cpu_split();
    user + system
}

/// This process's CPU time so far: (user, system).
pub fn cpu_split() -> (Duration, Duration) {
    // SAFETY: rusage is plain integers; all-zero is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a zeroed rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

use lvs_proto::spec::*;

/// A director's spec holding `services` and nothing else.
pub fn director(services: Vec<VirtualServiceSpec>) -> NodeSpec {
    NodeSpec {
        cluster: "bench".into(),
        node: "director".into(),
        role: Role::Director,
        generation: 1,
        addresses: vec![],
        routes: vec![],
        sysctls: vec![],
        checks: vec![],
        ipvs_timeouts: None,
        vrrp: None,
        bgp: None,
        arp_watch: None,
        marks: vec![],
        virtual_services: services,
    }
}

/// An rr service `name` on `vip` with DR destinations at `rips` (port 80, weight 1), each
/// checked by `GET /` (status 200) every `interval_ms`, quarantined to weight 0.
pub fn http_service(
    name: &str,
    vip: &str,
    rips: impl Iterator<Item = String>,
    interval_ms: u64,
    timeout_ms: u64,
    rise: u32,
    fall: u32,
) -> VirtualServiceSpec {
    VirtualServiceSpec {
        name: name.into(),
        key: ServiceKey::Addr { protocol: Protocol::Tcp, address: vip.parse().unwrap() },
        scheduler: "rr".into(),
        persistence: None,
        flags: vec![],
        destinations: rips
            .enumerate()
            .map(|(i, rip)| DestinationSpec {
                node: format!("rs{i}"),
                address: format!("{rip}:80").parse().unwrap(),
                forwarding: Forwarding::Route,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                check: Default::default(),
            })
            .collect(),
        health_check: Some(HealthCheckSpec {
            probe: ProbeKind::Http {
                path: "/".into(),
                expect_status: StatusSet::one(200),
                expect_body: None,
                host: None,
                expect_digest: None,
                tls: None,
                reuse_connection: true,
                urls: vec![],
            },
            interval_ms,
            timeout_ms,
            rise,
            fall,
            on_failure: OnFailure::Weight0,
            connect_ip: None,
            connect_port: None,
            retry_interval_ms: None,
        }),
        sorry: None,
        quorum: 1,
        hysteresis: 0,
        notify: vec![],
    }
}
