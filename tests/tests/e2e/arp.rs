//! Issue 30, item 1: the router's ARP watch on the real kernel, through the agents. The
//! article's lab (`lab.toml`) is applied; the router's agent asks every second who answers
//! ARP for the VIP. Healthy: the director alone, and no leak round after round. Then
//! another tool keeps resetting rs1's `arp_ignore` to 0 (it fights rs1's agent, which heals
//! it every 5 s): the leak is found and rs1 named in `status`, the metrics and the event
//! stream, within a measured time; once the other tool stops, rs1's agent heals the
//! sysctl and the leak is reported gone.
use std::time::{Duration, Instant};

use lvs_tests::{Lab, ok, poll, step, text};

use super::LAB;

/// The router's ARP watch as `lvsctl status -o json` reports it.
fn watch(lab: &Lab) -> serde_json::Value {
    let (_, st) = lab.json(&["status", "--node", "router"]);
    st["nodes"][0]["arp_watch"].clone()
}

/// The VIP's leak text now, if any.
fn leak(lab: &Lab) -> Option<String> {
    watch(lab)["vips"][0]["leak"].as_str().map(str::to_string)
}

#[test]
#[ignore = "needs a kernel with IPVS: run by tests/vm/run e2e"]
fn a_real_server_answering_arp_for_the_vip_is_found_and_named() {
    let mut lab = Lab::up("arp", LAB);
    ok(&lab.lvsctl(&["apply", "--yes"]));
    lab.spawn_lvsctl(&["events", "--node", "router"], "arp-events.log");

    step("1. healthy: the director alone answers ARP for the VIP, round after round");
    let rounds = |lab: &Lab| watch(lab)["rounds"].as_u64().unwrap_or(0);
    poll(Duration::from_secs(15), Duration::from_millis(200), || (rounds(&lab) >= 2).then_some(()))
        .unwrap_or_else(|| panic!("no ARP round: {}", watch(&lab)));
    let first = rounds(&lab);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let w = watch(&lab);
        let v = &w["vips"][0];
        assert_eq!(v["address"], "198.18.0.100", "{w}");
        assert!(v["leak"].is_null(), "a healthy cluster has no leak: {w}");
        let who: Vec<&str> =
            v["answers"].as_array().unwrap().iter().filter_map(|a| a["node"].as_str()).collect();
        assert_eq!(who, ["director"], "{w}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let healthy_rounds = rounds(&lab) - first;
    println!("healthy: {healthy_rounds} rounds in 5 s, the director alone answering, no leak");
    assert!(healthy_rounds >= 3, "{healthy_rounds}");

    step("2. another tool keeps resetting rs1's arp_ignore to 0: found and named");
    // It rewrites the sysctl every 100 ms for 8 s, so the leak outlives rs1's agent's heal
    // (every 5 s in the lab) whatever their phase.
    let mut fighter = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("rs1"), "sh", "-c"])
        .arg(
            "i=0; while [ $i -lt 80 ]; do echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore; \
             echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore; sleep 0.1; i=$((i+1)); done",
        )
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let found = poll(Duration::from_secs(6), Duration::from_millis(50), || leak(&lab)).unwrap_or_else(|| {
        let _ = fighter.kill();
        panic!("no leak found: {}", watch(&lab))
    });
    let took = t0.elapsed();
    println!("leak found {} ms after rs1's arp_ignore went to 0: {found}", took.as_millis());
    assert!(
        found.starts_with("rs1 (") && found.contains("answers ARP for it (only director may)"),
        "{found}"
    );
    assert!(took < Duration::from_secs(3), "found in {took:?} (1 s rounds)");
    let status = lab.lvsctl(&["status"]);
    assert!(!status.status.success(), "a leak makes status fail");
    assert!(text(&status).contains("VIP 198.18.0.100 ARP leak: rs1 ("), "{}", text(&status));
    let metrics = ok(&lab.lvsctl(&["metrics", "router"]));
    assert!(
        metrics.lines().any(|l| l.starts_with("lvs_arp_vip_leak_by{")
            && l.contains("answered_by=\"rs1\"")
            && l.ends_with(" 1.0")),
        "{metrics}"
    );
    assert!(metrics.contains("lvs_arp_vip_leak{vip=\"198.18.0.100\"} 1"), "{metrics}");

    step("3. the other tool stops: rs1's agent heals arp_ignore, the leak is reported gone");
    let _ = fighter.wait();
    let t0 = Instant::now();
    poll(Duration::from_secs(20), Duration::from_millis(200), || leak(&lab).is_none().then_some(()))
        .unwrap_or_else(|| panic!("the leak stayed: {}", watch(&lab)));
    println!(
        "leak gone {} ms after the other tool stopped (rs1's agent heals every 5 s)",
        t0.elapsed().as_millis()
    );
    let ignore = text(&lab.exec("rs1", &["cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"]));
    assert_eq!(ignore.trim(), "1", "healed by rs1's agent");
    let log = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        std::fs::read_to_string(lab.dir.join("arp-events.log")).ok().filter(|l| l.contains("ARP leak gone"))
    })
    .expect("the leak's events");
    assert!(log.contains("198.18.0.100: ARP leak: rs1 ("), "{log}");
}
