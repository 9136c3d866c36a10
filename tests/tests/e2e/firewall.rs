//! Issue 31, the firewall check that can fail: on the real kernel, a user's nftables rule on
//! a real server that drops the VIP's traffic is found, named (table, chain, handle) and
//! makes `status` fail; `apply` leaves the user's table alone; once the rule is gone the
//! check passes again. The article's lab (`lab.toml`).
use std::time::Duration;

use lvs_tests::{Lab, ok, poll, step, text};

use super::LAB;

const CHECK: &str = "no firewall rule drops TCP 198.18.0.100:80";

/// rs1's firewall check as `lvsctl status -o json` reports it: (ok, detail).
fn rs1_check(lab: &Lab) -> Option<(bool, String)> {
    let (_, st) = lab.json(&["status", "--node", "rs1"]);
    let c = st["nodes"][0]["checks"].as_array()?.iter().find(|c| c["check"] == CHECK)?.clone();
    Some((c["ok"] == true, c["detail"].as_str().unwrap_or_default().to_string()))
}

fn nft(lab: &Lab, args: &[&str]) -> String {
    let mut cmd = vec!["/usr/sbin/nft"];
    cmd.extend(args);
    ok(&lab.exec("rs1", &cmd))
}

#[test]
#[ignore = "needs a kernel with IPVS: run by tests/vm/run e2e"]
fn a_users_drop_rule_on_a_real_server_is_found_and_named() {
    let lab = Lab::up("fw", LAB);
    ok(&lab.lvsctl(&["apply", "--yes"]));

    step("1. no rule of anyone's: the check passes on the real server and the director");
    let (passed, detail) = poll(Duration::from_secs(15), Duration::from_millis(300), || rs1_check(&lab))
        .unwrap_or_else(|| panic!("rs1 has no firewall check: {}", text(&lab.lvsctl(&["status"]))));
    assert!(passed, "{detail}");
    println!("rs1: {CHECK}: {detail}");

    step("2. a user's rule on rs1 drops the VIP's port 80: named, and status fails");
    nft(&lab, &["add", "table", "inet", "userfw"]);
    nft(&lab, &["add", "chain", "inet", "userfw", "input", "{ type filter hook input priority 0; }"]);
    nft(
        &lab,
        &[
            "add",
            "rule",
            "inet",
            "userfw",
            "input",
            "ip",
            "daddr",
            "198.18.0.100",
            "tcp",
            "dport",
            "80",
            "drop",
        ],
    );
    let listed = nft(&lab, &["-a", "list", "table", "inet", "userfw"]);
    let handle = listed
        .lines()
        .find(|l| l.contains("drop"))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("{listed}"));
    let (passed, detail) = rs1_check(&lab).expect("the check");
    assert!(!passed, "{detail}");
    assert_eq!(
        detail,
        format!("table inet userfw chain input handle {handle} drops requests to TCP 198.18.0.100:80")
    );
    println!("rs1: {CHECK}: {detail}");
    let status = lab.lvsctl(&["status"]);
    assert!(!status.status.success());
    assert!(
        text(&status)
            .contains(&format!("check failed: {CHECK}: table inet userfw chain input handle {handle}")),
        "{}",
        text(&status)
    );

    step("3. apply leaves the user's table alone; with it gone the check passes again");
    ok(&lab.lvsctl(&["apply", "--yes"]));
    assert!(
        nft(&lab, &["list", "table", "inet", "userfw"]).contains("ip daddr 198.18.0.100 tcp dport 80 drop")
    );
    nft(&lab, &["delete", "table", "inet", "userfw"]);
    let (passed, detail) = rs1_check(&lab).expect("the check");
    assert!(passed, "{detail}");
}
