//! Issue 28: a dual-stack cluster of its own shape (`deploy/examples/dual-stack.toml`: a
//! router `edge`, directors `lb1`/`lb2` under VRRP, three real servers weighted 1:2:3, a
//! TCP and a UDP service on an IPv4 and an IPv6 VIP, an IPv6 fwmark service with /64
//! persistence) on the real kernel. Clients reach every VIP over its family, and each step proves one
//! property on both families, as the article's steps do for IPv4 alone.
use std::time::{Duration, Instant};

use lvs_tests::{Lab, bin, ok, poll, start_load_with, step, stop_load, text};

const DUAL: &str = include_str!("../../../deploy/examples/dual-stack.toml");
const VIP4: &str = "198.18.6.100:80";
const VIP6: &str = "[2001:db8:6::100]:80";
const MARKED: &str = "[2001:db8:6::200]:80";

/// The master's name, as VRRP reports it.
fn master(lab: &Lab) -> Option<&'static str> {
    ["lb1", "lb2"].into_iter().find(|d| super::vrrp_state(lab, d).as_deref() == Some("MASTER"))
}

/// The weight of `rip` (as ipvsadm prints it, `[2001:db8:6::13]:80`) in every service of
/// the master that holds it.
fn weights(lab: &Lab, director: &str, rip: &str) -> Vec<u32> {
    text(&lab.exec(director, &["ipvsadm", "-Ln"]))
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("-> {rip}")))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
        .collect()
}

/// In- and out-packets of the service line starting with `head` in `ipvsadm -Ln --stats --exact`.
fn packets(lab: &Lab, director: &str, head: &str) -> (u64, u64) {
    let t = text(&lab.exec(director, &["ipvsadm", "-Ln", "--stats", "--exact"]));
    let l = t.lines().find(|l| l.starts_with(head)).unwrap_or_else(|| panic!("no `{head}` in:\n{t}"));
    let w: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // FWM lines carry the mark first: the last five numbers are the counters.
    let n = &w[w.len() - 5..];
    (n[1], n[2])
}

/// The router's neighbour entry for the IPv6 VIP: its MAC, if resolved.
fn vip_neighbour(lab: &Lab) -> String {
    text(&lab.exec("edge", &["/usr/sbin/ip", "-6", "neigh", "show", "2001:db8:6::100"]))
}

fn mac(lab: &Lab, node: &str) -> String {
    text(&lab.exec(node, &["cat", "/sys/class/net/eth1/address"])).trim().to_string()
}

pub(super) fn run() {
    let mut lab = Lab::up("d6", DUAL);

    step("1. apply the dual-stack cluster: lb1 (priority 150) is master and holds both families' VIPs");
    ok(&lab.lvsctl(&["apply", "--yes"]));
    let m = poll(Duration::from_secs(20), Duration::from_millis(50), || master(&lab))
        .unwrap_or_else(|| panic!("no master:\n{}", text(&lab.lvsctl(&["status"]))));
    assert_eq!(m, "lb1", "the definition's master");
    let held = poll(Duration::from_secs(10), Duration::from_millis(50), || {
        let a = text(&lab.exec("lb1", &["/usr/sbin/ip", "-o", "addr", "show", "dev", "eth1"]));
        (a.contains("inet 198.18.6.100/32") && a.contains("inet6 2001:db8:6::100/128")).then_some(a)
    })
    .expect("lb1 holds both VIPs");
    println!("{held}");
    // keepalived adds the IPv6 VIPs without DAD and deprecated (never a source address).
    let v6 = held.lines().find(|l| l.contains("2001:db8:6::100/128")).unwrap();
    assert!(v6.contains("nodad") && v6.contains("deprecated") && !v6.contains("tentative"), "{v6}");
    // The IPv6 fwmark service's marking rule is the director's agent's (`marks`), in its
    // own table: none is written here.
    let table = ok(&lab.exec("lb1", &["/usr/sbin/nft", "list", "table", "inet", "lvs_dr"]));
    assert!(table.contains("ip6 daddr 2001:db8:6::200 tcp dport 80 counter"), "{table}");
    // lvsctl's view of the table is ipvsadm's, IPv6 included, in both forms.
    let all = ok(&lab.lvsctl(&["ipvs", "save"]));
    // One section per director: lb1's.
    let save: String = all
        .split("# ")
        .find_map(|sec| sec.strip_prefix("lb1\n"))
        .unwrap_or_else(|| panic!("no lb1 section in:\n{all}"))
        .to_string();
    let referee = text(&lab.exec("lb1", &["ipvsadm", "-S", "-n"]));
    assert_eq!(save.trim(), referee.trim(), "lvsctl ipvs save\n{save}\nipvsadm -S -n\n{referee}");
    for want in [
        "-A -t [2001:db8:6::100]:80 -s wrr",
        "-A -u [2001:db8:6::100]:53 -s rr",
        "-A -f 6 -6 -s rr -p 60 -M 64",
        "-a -t [2001:db8:6::100]:80 -r [2001:db8:6::13]:80 -g -w 3",
    ] {
        assert!(save.contains(want), "`{want}` in:\n{save}");
    }
    let ours = ok(&lab.lvsctl(&["ipvs", "list", "--node", "lb1"]));
    let norm = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                ["TCP", "UDP", "FWM"].iter().any(|p| l.starts_with(p)) || l.trim_start().starts_with("->")
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let referee = text(&lab.exec("lb1", &["ipvsadm", "-Ln"]));
    assert_eq!(norm(&ours), norm(&referee), "ours:\n{ours}\nipvsadm:\n{referee}");

    step("2. wrr 1:2:3 on each family, the same real servers behind both VIPs");
    for (vip, family) in [(VIP4, "IPv4"), (VIP6, "IPv6")] {
        let seq = super::client_sequence_to(&lab, vip, 60);
        let n = |s: &str| seq.iter().filter(|x| *x == s).count();
        println!("{family}: web1 {} web2 {} web3 {}", n("web1"), n("web2"), n("web3"));
        assert_eq!((n("web1"), n("web2"), n("web3")), (10, 20, 30), "{family}: {seq:?}");
    }

    step("3. DR on both families: verify passes, the director carried no reply");
    let t = ok(&lab.lvsctl(&["verify", "-n", "30"]));
    assert!(t.contains("verify: PASS") && t.contains("2001:db8:6::100"), "{t}");
    for head in ["TCP  198.18.6.100:80", "TCP  [2001:db8:6::100]:80"] {
        let (inp, outp) = packets(&lab, "lb1", head);
        println!("{head}: in-packets {inp}, out-packets {outp}");
        assert!(inp > 0 && outp == 0, "{head}: in {inp} out {outp}");
    }

    step("4. the IPv6 fwmark service: marked traffic is balanced, one client's /64 sticks to one server");
    let seq = super::client_sequence_to(&lab, MARKED, 12);
    assert!(seq.windows(2).all(|w| w[0] == w[1]), "persistence /64: {seq:?}");
    // The kernel folds its per-CPU counters into what it reports every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let (inp, outp) = packets(&lab, "lb1", "FWM  6");
    println!("FWM 6 IPv6: {seq:?}, in-packets {inp}, out-packets {outp}");
    assert!(inp > 0 && outp == 0, "in {inp} out {outp}");
    let m6 = ok(&lab.lvsctl(&["metrics", "lb1"]));
    assert!(
        m6.contains("local_address=\"2001:db8:6::100\"") && m6.contains("remote_address=\"2001:db8:6::13\""),
        "{m6}"
    );

    step("5. stop web3's httpd: quarantined in both families; start it: restored");
    let httpd = lab.pid_of("httpd-web3").expect("httpd pid");
    let t0 = Instant::now();
    lab.kill(httpd, "TERM");
    let took = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let w4 = weights(&lab, "lb1", "198.18.6.13:80");
        // The TCP service's and the fwmark service's (port 0) destination; the unchecked
        // UDP service keeps web3.
        let w6 = [weights(&lab, "lb1", "[2001:db8:6::13]:80"), weights(&lab, "lb1", "[2001:db8:6::13]:0")];
        (w4 == [0] && w6 == [[0], [0]]).then(|| t0.elapsed())
    });
    let took =
        took.unwrap_or_else(|| panic!("web3 quarantined:\n{}", text(&lab.exec("lb1", &["ipvsadm", "-Ln"]))));
    println!(
        "httpd stopped -> web3 at weight 0 in both families in {} ms (interval 200 ms, fall 3)",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (_, st) = lab.json(&["status", "--node", "lb1"]);
    let health = st["nodes"][0]["health"].as_array().unwrap().clone();
    for dest in ["198.18.6.13:80", "[2001:db8:6::13]:80"] {
        assert!(
            health.iter().any(|h| h["destination"] == dest && h["quarantined"] == true),
            "{dest} quarantined in status: {health:#?}"
        );
    }
    let www = lab.dir.join("web3/www");
    lab.spawn(
        "web3",
        &["busybox", "httpd", "-f", "-p", "80", "-h", www.to_str().unwrap()],
        "httpd-web3-again.log",
    );
    let back = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        (weights(&lab, "lb1", "198.18.6.13:80") == [3]
            && weights(&lab, "lb1", "[2001:db8:6::13]:80") == [3]
            && weights(&lab, "lb1", "[2001:db8:6::13]:0") == [1])
        .then_some(())
    });
    assert!(back.is_some(), "web3 restored:\n{}", text(&lab.exec("lb1", &["ipvsadm", "-Ln"])));

    step("6. drain web2 under load on both families and enable it: zero failed requests");
    let load4 = start_load_with(&mut lab, VIP4, "drain4", &["-c", "2", "--timeout", "10s"]);
    let load6 = start_load_with(&mut lab, VIP6, "drain6", &["-c", "2", "--timeout", "10s"]);
    ok(&lab.lvsctl(&["rs", "drain", "web2", "--wait=30s"]));
    assert_eq!(
        weights(&lab, "lb1", "[2001:db8:6::12]:"),
        [0, 0, 0],
        "web2 drained in the IPv6 TCP, UDP and fwmark services"
    );
    assert_eq!(weights(&lab, "lb1", "198.18.6.12:80"), [0]);
    std::thread::sleep(Duration::from_secs(1));
    ok(&lab.lvsctl(&["rs", "enable", "web2"]));
    for (name, load) in [("IPv4", load4), ("IPv6", load6)] {
        let r = stop_load(&mut lab, load);
        println!("{name} load across the drain: {r}");
        assert_eq!(r["failed"], 0, "{name}: {r}");
        assert!(r["answered"].as_u64().unwrap() > 20, "{name}: {r}");
    }

    step(
        "6b. drains that fit the protocol: a drained server's persistent clients move on; a UDP drain waits until its flow goes quiet",
    );
    // The marked service's client stuck to `pinned` (step 4). Drained, its template is
    // expired at its next connection (expire_quiescent_template, planned with the
    // persistent service): the same client goes elsewhere, and sticks there.
    let pinned = seq[0].clone();
    ok(&lab.lvsctl(&["rs", "drain", &pinned, "--wait=20s"]));
    let moved = super::client_sequence_to(&lab, MARKED, 12);
    println!("{pinned} drained: the /64 that stuck to it now goes to {moved:?}");
    assert!(moved.iter().all(|s| *s != pinned), "{pinned} drained, yet: {moved:?}");
    assert!(moved.windows(2).all(|w| w[0] == w[1]), "persistence holds on the new server: {moved:?}");
    ok(&lab.lvsctl(&["rs", "enable", &pinned]));
    // A UDP flow (one client port, a datagram every 100 ms) to the dns service.
    let sock = lvs_tests::in_netns(&lab.ns("client"), || std::net::UdpSocket::bind("0.0.0.0:40053")).unwrap();
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let sending = std::sync::Arc::clone(&sending);
        std::thread::spawn(move || {
            while sending.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = sock.send_to(b"q", "198.18.6.100:53");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let conns = text(&lab.exec("lb1", &["ipvsadm", "-Lnc"]));
    let rip = conns
        .lines()
        .find(|l| l.starts_with("UDP") && l.contains(":40053 "))
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or_else(|| panic!("the UDP flow's entry:\n{conns}"))
        .to_string();
    let target = match rip.as_str() {
        "198.18.6.11:53" => "web1",
        "198.18.6.12:53" => "web2",
        "198.18.6.13:53" => "web3",
        other => panic!("{other}"),
    };
    // The flow goes on for 3 s into the drain, then stops: the drain ends once it has been
    // quiet for the liveness window (15 s), not at once (UDP has no ActiveConn) and not at
    // its 60 s timeout.
    let stopper = {
        let sending = std::sync::Arc::clone(&sending);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            sending.store(false, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let t0 = Instant::now();
    let out = ok(&lab.lvsctl(&["rs", "drain", target, "--wait=60s"]));
    let took = t0.elapsed();
    stopper.join().unwrap();
    sender.join().unwrap();
    println!("UDP drain of {target} ({rip}), its flow sending 3 s more: {} ms\n{out}", took.as_millis());
    assert!(out.contains(&format!("{target}: drained")), "{out}");
    assert!(took >= Duration::from_secs(15), "ended before the flow went quiet: {took:?}");
    assert!(took < Duration::from_secs(40), "ended by its timeout, not by the flow: {took:?}");
    ok(&lab.lvsctl(&["rs", "enable", target]));

    step(
        "7. planned hand-overs under load on both families: zero failed; the router's IPv6 neighbour entry follows the master",
    );
    let before = vip_neighbour(&lab);
    assert!(
        before.contains(&format!("lladdr {}", mac(&lab, "lb1"))),
        "the router reaches the IPv6 VIP at lb1:\n{before}"
    );
    let load4 = start_load_with(&mut lab, VIP4, "ha4", &["-c", "2", "--timeout", "10s"]);
    let load6 = start_load_with(&mut lab, VIP6, "ha6", &["-c", "2", "--timeout", "10s"]);
    let (mut from, mut to) = ("lb1", "lb2");
    for _ in 0..4 {
        let t = ok(&lab.lvsctl(&["director", "failover", "--to", to]));
        assert!(t.contains(&format!("farm: {from} handed over to {to}")), "{t}");
        // The new master's unsolicited neighbour advert moved the router's entry to it.
        let want = format!("lladdr {}", mac(&lab, to));
        let moved = poll(Duration::from_secs(3), Duration::from_millis(50), || {
            let _ = lab
                .exec("edge", &[bin("lvs-load").to_str().unwrap(), VIP6, "-c", "1", "-n", "1", "-d", "2s"]);
            vip_neighbour(&lab).contains(&want).then_some(())
        });
        assert!(
            moved.is_some(),
            "the router's entry for the IPv6 VIP is not {to}'s ({want}):\n{}",
            vip_neighbour(&lab)
        );
        (from, to) = (to, from);
        std::thread::sleep(Duration::from_millis(500));
    }
    for (name, load) in [("IPv4", load4), ("IPv6", load6)] {
        let r = stop_load(&mut lab, load);
        println!("{name} load across 4 hand-overs: {r}");
        assert_eq!(r["failed"], 0, "{name}: {r}");
        assert!(r["answered"].as_u64().unwrap() > 20, "{name}: {r}");
    }
    // Only the master's MAC for the VIP, ever: no real server answered a solicitation.
    let entries: Vec<String> = vip_neighbour(&lab).lines().map(String::from).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let rs_macs: Vec<String> = ["web1", "web2", "web3"]
        .iter()
        .map(|n| text(&lab.exec(n, &["cat", "/sys/class/net/eth0/address"])).trim().to_string())
        .collect();
    assert!(rs_macs.iter().all(|m| !entries[0].contains(m.as_str())), "{entries:?} {rs_macs:?}");
    let st = ok(&lab.lvsctl(&["status"]));
    assert!(
        st.contains("2001:db8:6::100") && st.contains("198.18.6.100"),
        "status shows both families:\n{st}"
    );
}
