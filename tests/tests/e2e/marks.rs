//! Issue 31, the marking table: on the real kernel, a firewall-mark service grouping ports
//! 80 and 443 works from the definition alone (no rule written by hand): the director's
//! agent keeps the marking rule in its own `inet lvs_dr` table, `ipvs save` shows the
//! service, one client's requests to both ports stick to one real server, a change to the
//! table by hand is healed, and a user's unrelated table survives apply, heal and
//! decommission. The article's lab with its web service made a fwmark service.
use std::time::{Duration, Instant};

use lvs_tests::{Lab, ok, poll, step, text};

use super::LAB;

const FROM: &str = "protocol = \"tcp\"\nvip = \"198.18.0.100\"\nport = 80\nscheduler = \"rr\"\ncheck = { kind = \"http\", path = \"/\",";
const TO: &str = "protocol = \"fwmark\"\nfwmark = 7\nvip = \"198.18.0.100\"\nscheduler = \"rr\"\npersistence = { timeout = \"60s\" }\nmarks = [{ protocol = \"tcp\", ports = [80, 443] }]\ncheck = { kind = \"http\", path = \"/\", port = 80,";
const RULE: &str = "TCP 198.18.0.100 ports 80,443 → mark 7 (web)";

fn nft(lab: &Lab, node: &str, args: &[&str]) -> String {
    let mut cmd = vec!["/usr/sbin/nft"];
    cmd.extend(args);
    ok(&lab.exec(node, &cmd))
}

/// director's marking rules as `lvsctl status -o json` reports them: (rule text, packets).
fn marks(lab: &Lab) -> Vec<(String, u64)> {
    let (_, st) = lab.json(&["status", "--node", "director"]);
    st["nodes"][0]["marks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let r = &m["rule"];
                    let ports: Vec<String> =
                        r["ports"].as_array().unwrap().iter().map(|p| p["first"].to_string()).collect();
                    (
                        format!("{} {} {}", r["address"], ports.join(","), r["mark"]),
                        m["packets"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The table holds exactly the agent's one rule again (poll until it does).
fn healed(lab: &Lab, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    poll(within, Duration::from_millis(100), || {
        let t = nft(lab, "director", &["list", "table", "inet", "lvs_dr"]);
        let rules = t.lines().filter(|l| l.contains("meta mark set") || l.contains("drop")).count();
        (rules == 1 && t.contains("tcp dport { 80, 443 }") && !t.contains("drop")).then(|| t0.elapsed())
    })
}

#[test]
#[ignore = "needs a kernel with IPVS: run by tests/vm/run e2e"]
fn a_fwmark_service_of_ports_80_and_443_works_from_the_definition_alone() {
    assert!(LAB.contains(FROM), "test setup: the lab's web service changed");
    let mut lab = Lab::up("mk", &LAB.replacen(FROM, TO, 1));
    // Port 443 served too (plain HTTP: the grouping is about ports), the same page.
    for rs in ["rs1", "rs2"] {
        let www = lab.dir.join(format!("{rs}-443"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), format!("{rs}\n")).unwrap();
        lab.spawn(
            rs,
            &["/bin/busybox", "httpd", "-f", "-p", "443", "-h", www.to_str().unwrap()],
            &format!("httpd443-{rs}.log"),
        );
    }
    // A user's table on the director, with nothing to do with us.
    nft(&lab, "director", &["add", "table", "inet", "userfw"]);
    nft(
        &lab,
        "director",
        &["add", "chain", "inet", "userfw", "input", "{ type filter hook input priority 0; }"],
    );
    nft(
        &lab,
        "director",
        &["add", "rule", "inet", "userfw", "input", "tcp", "dport", "22", "counter", "accept"],
    );
    let users = nft(&lab, "director", &["list", "table", "inet", "userfw"]);

    step("1. plan names the marking table; apply loads it; ipvs save shows the fwmark service");
    let offline = text(&lab.lvsctl(&["plan", "--offline"]));
    assert!(offline.contains(&format!("nft      {RULE}  (table inet lvs_dr")), "{offline}");
    let plan = text(&lab.lvsctl(&["plan"]));
    assert!(plan.contains("nftables: load table inet lvs_dr with 1 marking rule (found: absent)"), "{plan}");
    ok(&lab.lvsctl(&["apply", "--yes"]));
    let table = nft(&lab, "director", &["list", "table", "inet", "lvs_dr"]);
    println!("{table}");
    assert!(table.contains("type filter hook prerouting priority mangle; policy accept;"), "{table}");
    let line = table.lines().find(|l| l.contains("meta mark set")).unwrap_or_default().trim();
    assert!(line.starts_with("ip daddr 198.18.0.100 tcp dport { 80, 443 } counter packets "), "{table}");
    assert!(line.ends_with("meta mark set 0x00000007 comment \"web\""), "{table}");
    let save = ok(&lab.lvsctl(&["ipvs", "save"]));
    for want in
        ["-A -f 7 -s rr -p 60", "-a -f 7 -r 198.18.0.11:0 -g -w 1", "-a -f 7 -r 198.18.0.12:0 -g -w 1"]
    {
        assert!(save.contains(want), "`{want}` in:\n{save}");
    }
    assert_eq!(
        nft(&lab, "director", &["list", "table", "inet", "userfw"]),
        users,
        "the user's table, after apply"
    );

    step("2. one client's requests to 80 and 443 reach one real server (no rule written by hand)");
    let mut seq = super::client_sequence_to(&lab, "198.18.0.100:80", 10);
    seq.extend(super::client_sequence_to(&lab, "198.18.0.100:443", 10));
    println!("80 then 443: {seq:?}");
    assert!(seq.len() == 20 && seq.windows(2).all(|w| w[0] == w[1]), "one template for both ports: {seq:?}");
    let counted = poll(Duration::from_secs(5), Duration::from_millis(200), || {
        marks(&lab).first().filter(|m| m.1 > 0).cloned()
    });
    let (rule, packets) = counted.unwrap_or_else(|| panic!("status marks: {:?}", marks(&lab)));
    println!("status: {rule}: {packets} packets marked");
    assert_eq!(rule, "\"198.18.0.100\" 80,443 7");
    let metrics = ok(&lab.lvsctl(&["metrics", "director"]));
    let series = metrics.lines().find(|l| l.starts_with("lvs_mark_packets_total{service=\"web\""));
    println!("{}", series.unwrap_or("no lvs_mark_packets_total"));
    assert!(series.is_some_and(|l| l.contains("ports=\"80,443\",mark=\"7\"")), "{metrics}");
    let status = text(&lab.lvsctl(&["status"]));
    assert!(status.contains(&format!("nft inet lvs_dr: {RULE}")), "{status}");

    step("3. the table flushed by hand: drift named in status, healed, traffic flows again");
    // The healer may run between the flush and the status (every 5 s): flush again then.
    let want = "drift: nftables: load table inet lvs_dr with 1 marking rule (found: missing TCP 198.18.0.100 ports 80,443";
    let drift = (0..3)
        .map(|_| {
            nft(&lab, "director", &["flush", "chain", "inet", "lvs_dr", "marks"]);
            text(&lab.lvsctl(&["status"]))
        })
        .find(|s| s.contains(want));
    println!("{}", drift.as_deref().unwrap_or("no drift seen"));
    assert!(drift.is_some(), "`{want}` in status");
    let took = healed(&lab, Duration::from_secs(15)).expect("the flushed table healed");
    println!("flushed table healed in {} ms (heal interval 5 s)", took.as_millis());
    assert_eq!(super::client_sequence_to(&lab, "198.18.0.100:443", 3).len(), 3);

    step("4. a rule added to our table by hand: healed away; the user's table untouched");
    nft(
        &lab,
        "director",
        &[
            "add",
            "rule",
            "inet",
            "lvs_dr",
            "marks",
            "ip",
            "daddr",
            "198.18.0.100",
            "tcp",
            "dport",
            "8080",
            "drop",
        ],
    );
    let took = healed(&lab, Duration::from_secs(15)).expect("the extra rule removed");
    println!("a rule added by hand removed in {} ms", took.as_millis());
    assert_eq!(
        nft(&lab, "director", &["list", "table", "inet", "userfw"]),
        users,
        "the user's table, after heals"
    );

    step("5. decommission director: our table goes, the user's stays");
    ok(&lab.lvsctl(&["node", "remove", "director", "--yes"]));
    let tables = nft(&lab, "director", &["list", "tables"]);
    println!("director after decommission: {tables}");
    assert!(!tables.contains("lvs_dr") && tables.contains("table inet userfw"), "{tables}");
    assert_eq!(
        nft(&lab, "director", &["list", "table", "inet", "userfw"]),
        users,
        "the user's table, after decommission"
    );
}
