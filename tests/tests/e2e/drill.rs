//! Issue 30, item 5: `lvsctl drill failover` on the real kernel. The HA lab
//! (`lab-ha.toml`): the drill hands the VRRP instance over and back while the router's
//! agent sends a request through the VIP every 25 ms; the report says what a client saw and
//! the router keeps it as metrics and an event.
use std::time::Duration;

use lvs_tests::{Lab, ok, poll, step};

use super::{HA, vrrp_state};

#[test]
#[ignore = "needs a kernel with IPVS: run by tests/vm/run e2e"]
fn a_failover_drill_hands_over_and_back_under_requests_and_reports_them() {
    let mut lab = Lab::up("drill", HA);
    ok(&lab.lvsctl(&["apply", "--yes"]));
    poll(Duration::from_secs(20), Duration::from_millis(100), || {
        (vrrp_state(&lab, "director").as_deref() == Some("MASTER")
            && vrrp_state(&lab, "director2").as_deref() == Some("BACKUP"))
        .then_some(())
    })
    .expect("director is master");
    lab.spawn_lvsctl(&["events", "--node", "router"], "drill-events.log");
    std::thread::sleep(Duration::from_millis(500));

    step("1. the drill: director → director2 and back, a request every 25 ms for 8 s");
    let (passed, r) = lab.json(&["drill", "failover", "--duration", "8s", "--every", "25ms"]);
    println!("drill report: {r}");
    assert!(passed, "{r}");
    assert_eq!(
        (r["there"]["from"].as_str(), r["there"]["to"].as_str()),
        (Some("director"), Some("director2")),
        "{r}"
    );
    assert_eq!(
        (r["back"]["from"].as_str(), r["back"]["to"].as_str()),
        (Some("director2"), Some("director")),
        "{r}"
    );
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert!(n("requests") >= 250, "8 s at one every 25 ms: {r}");
    assert_eq!(n("failed"), 0, "a planned hand-over fails no request: {r}");
    assert!(n("longest_gap_ms") < 500, "{r}");
    println!(
        "drill: {} requests, {} failed, slowest {} ms, longest without an answer {} ms; hand-over {} ms, back {} ms",
        n("requests"),
        n("failed"),
        n("slowest_ms"),
        n("longest_gap_ms"),
        r["there"]["took_ms"],
        r["back"]["took_ms"]
    );
    assert_eq!(vrrp_state(&lab, "director").as_deref(), Some("MASTER"), "back where it began");

    step("2. the router keeps the drill: metrics and an event");
    let metrics = ok(&lab.lvsctl(&["metrics", "router"]));
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{drill=\"web\"}}")))
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("lvs_drill_failed"), 0.0);
    assert_eq!(value("lvs_drill_requests"), n("requests") as f64);
    assert!(value("lvs_drill_last_run_timestamp_seconds") > 1.7e9);
    let log = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        std::fs::read_to_string(lab.dir.join("drill-events.log")).ok().filter(|l| l.contains("drill web: "))
    })
    .expect("the drill's event");
    assert!(log.contains(", 0 failed,"), "{log}");

    step("3. an instance the definition does not have: a usage error, nothing changed");
    let o = lab.lvsctl(&["drill", "failover", "--instance", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", lvs_tests::text(&o));
}
