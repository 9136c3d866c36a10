//! Load 100 services × 100 destinations (10,100 rules) with lvs-ipvs and with
//! `ipvsadm -R`, in one boot of the VM test bed, and cost a single weight change in the
//! loaded table. Needs root and IPVS: run by `tests/vm/run bench`.
//!
//! Each side runs 3 times, alternating, in the same network namespace (flushed between
//! runs); the medians are compared.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lvs_ipvs::{Destination, Ipvs, Op, Protocol, Service, ServiceKey};

const SERVICES: u32 = 100;
const DESTS: u32 = 100;
const RUNS: usize = 3;

fn key(s: u32) -> ServiceKey {
    ServiceKey::Addr(Protocol::Tcp, format!("198.18.{}.{}:80", 100 + s / 250, 1 + s % 250).parse().unwrap())
}

fn rip(d: u32) -> std::net::SocketAddr {
    format!("198.19.{}.{}:80", d / 250, 1 + d % 250).parse().unwrap()
}

fn ops() -> Vec<Op> {
    let mut v = Vec::with_capacity((SERVICES * (DESTS + 1)) as usize);
    for s in 0..SERVICES {
        v.push(Op::AddService(Service::new(key(s), "wrr")));
        for d in 0..DESTS {
            v.push(Op::AddDest(key(s), Destination::route(rip(d), 1 + d % 3)));
        }
    }
    v
}

fn restore_text() -> String {
    let mut t = String::new();
    for s in 0..SERVICES {
        let ServiceKey::Addr(_, vip) = key(s) else { unreachable!() };
        t.push_str(&format!("-A -t {vip} -s wrr\n"));
        for d in 0..DESTS {
            t.push_str(&format!("-a -t {vip} -r {} -g -w {}\n", rip(d), 1 + d % 3));
        }
    }
    t
}

fn rules_in_kernel() -> usize {
    let o = Command::new("ipvsadm").arg("-Sn").output().expect("ipvsadm");
    String::from_utf8_lossy(&o.stdout).lines().count()
}

fn ipvsadm_restore(text: &str) -> Duration {
    let t = Instant::now();
    let mut child = Command::new("ipvsadm").arg("-R").stdin(Stdio::piped()).spawn().expect("ipvsadm -R");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "ipvsadm -R failed");
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    // SAFETY: single-threaded program; moves this thread into a fresh network namespace.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare: needs root");
    // A namespace that never had an address has no local routing table yet, and IPVS
    // then refuses every destination (EINVAL from inet_addr_type): bring lo up first.
    assert!(Command::new("/usr/sbin/ip").args(["link", "set", "lo", "up"]).status().unwrap().success());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut ipvs = Ipvs::connect().await.expect("IPVS");

        let ops = ops();
        let text = restore_text();
        let total = ops.len();
        let (mut lib, mut adm) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ipvs.apply_one(Op::Flush).await.unwrap();
            let sent = ipvs.requests_sent();
            let t = Instant::now();
            let results = ipvs.apply(&ops).await.unwrap();
            lib.push(t.elapsed());
            let failed: Vec<String> =
                results.iter().filter_map(|r| r.as_ref().err()).map(ToString::to_string).collect();
            assert!(
                failed.is_empty(),
                "{} of {total} failed, first: {:?}",
                failed.len(),
                &failed[..failed.len().min(3)]
            );
            assert_eq!(ipvs.requests_sent() - sent, total as u64);
            assert_eq!(rules_in_kernel(), total);

            ipvs.apply_one(Op::Flush).await.unwrap();
            adm.push(ipvsadm_restore(&text));
            assert_eq!(rules_in_kernel(), total);
        }
        let (l, a) = (median(lib.clone()), median(adm.clone()));
        println!("BENCH load {total} rules: lvs-ipvs median {:.1} ms {:?}", l.as_secs_f64() * 1e3, lib);
        println!("BENCH load {total} rules: ipvsadm -R median {:.1} ms {:?}", a.as_secs_f64() * 1e3, adm);
        let ratio = l.as_secs_f64() / a.as_secs_f64();
        println!(
            "BENCH ratio lvs-ipvs/ipvsadm = {ratio:.3} (target <= 0.5: {})",
            if ratio <= 0.5 { "met" } else { "NOT met" }
        );

        // One weight change in the loaded 10,100-rule table.
        let k = key(SERVICES / 2);
        let mut times = Vec::new();
        let before = ipvs.requests_sent();
        for i in 0..50u32 {
            let t = Instant::now();
            ipvs.apply_one(Op::EditDest(k, Destination::route(rip(7), 10 + i % 2))).await.unwrap();
            times.push(t.elapsed());
        }
        let per_change = (ipvs.requests_sent() - before) / 50;
        println!(
            "BENCH one weight change in a {total}-rule table: {per_change} request(s), median {:.3} ms",
            median(times).as_secs_f64() * 1e3
        );
        let t = Instant::now();
        let s = Command::new("ipvsadm")
            .args([
                "-e",
                "-t",
                &format!(
                    "{}",
                    match k {
                        ServiceKey::Addr(_, a) => a,
                        _ => unreachable!(),
                    }
                ),
            ])
            .args(["-r", &rip(7).to_string(), "-g", "-w", "3"])
            .status()
            .unwrap();
        assert!(s.success());
        println!("BENCH ipvsadm -e (one weight, whole process): {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(per_change, 1);
    });
}
