//! Host-kernel suite (root): the lab topology in network namespaces, real agents over
//! mutual TLS, real chrony and httpd. This kernel has no IPVS, so the director's services
//! are proved in the VM suite; here the director's refusal is checked to change nothing,
//! and the router and real servers get the article's settings for real.
use std::time::Duration;

use lvs_tests::{Lab, edit, ok, poll, text};

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

fn addrs(lab: &Lab, node: &str) -> serde_json::Value {
    serde_json::from_slice(&lab.exec(node, &["ip", "-j", "addr"]).stdout).unwrap()
}

fn has_addr(v: &serde_json::Value, ifname: &str, local: &str, prefix: u64, label: Option<&str>) -> bool {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ifname"] == ifname)
        .flat_map(|l| l["addr_info"].as_array().unwrap().iter())
        .any(|a| a["local"] == local && a["prefixlen"] == prefix && label.is_none_or(|lb| a["label"] == lb))
}

fn sysctl(lab: &Lab, node: &str, path: &str) -> String {
    String::from_utf8_lossy(&lab.exec(node, &["cat", &format!("/proc/sys/{path}")]).stdout).trim().to_string()
}

fn actions(v: &serde_json::Value) -> usize {
    v.as_array().unwrap().iter().map(|n| n["actions"].as_array().map_or(0, Vec::len)).sum()
}

#[test]
fn agents_apply_the_articles_settings_over_mtls() {
    let Some(lab) = Lab::up_as_root("nsa", LAB) else { return };
    let nodes = ["--node", "router", "--node", "rs1", "--node", "rs2"];
    // A script without a terminal and without --yes is told so; nothing changes (exit 6).
    let mut a = vec!["apply"];
    a.extend(nodes);
    let o = lab.lvsctl(&a);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("stdin is not a terminal: pass --yes"), "{}", text(&o));
    assert!(!has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, None), "nothing changed");
    // CI's drift check: changes pending → 7.
    let mut p = vec!["plan", "--detailed-exitcode"];
    p.extend(nodes);
    let o = lab.lvsctl(&p);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    // The director cannot have its IPVS services on this kernel: refused whole, nothing changed.
    let o = lab.lvsctl(&["apply", "--yes", "--node", "director"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("this kernel has no IPVS (load ip_vs)"), "{}", text(&o));
    assert!(!has_addr(&addrs(&lab, "director"), "eth1", "198.18.0.100", 32, None), "nothing half-applied");

    let mut a = vec!["apply", "--yes"];
    a.extend(nodes);
    // `-o json`: stdout is one JSON document and nothing else (json() parses all of it).
    let (ok, v) = lab.json(&a);
    assert!(ok, "{v:#}");
    assert!(v.as_array().unwrap().iter().all(|n| n["converged"] == true), "{v:#}");
    // Converged (the director aside, which this kernel cannot serve): no drift on these.
    assert_eq!(lab.lvsctl(&p).status.code(), Some(0), "nothing pending after the apply");
    let (_, st) = lab.json(&["status", "--node", "rs1", "--node", "rs2"]);
    let shown: Vec<&str> =
        st["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(shown, ["rs1", "rs2"], "status --node shows those nodes only");
    assert_eq!(lab.lvsctl(&["status", "--node", "nosuch"]).status.code(), Some(2));
    // status --watch: one document per refresh, as many refreshes as asked.
    let o = lab.lvsctl(&["status", "--node", "rs1", "--watch", "200ms", "--count", "3", "-o", "json"]);
    let docs: Vec<serde_json::Value> =
        text(&o).lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3, "{}", text(&o));
    assert!(docs.iter().all(|d| d["nodes"][0]["node"] == "rs1"), "{}", text(&o));
    // The real agents' /metrics, scraped as Prometheus does, with the lab admin's certificate.
    let m = lvs_tests::ok(&lab.lvsctl(&["metrics", "rs1"]));
    assert!(m.contains("lvs_agent_info{agent=\"rs1\",role=\"real_server\""), "{m}");
    assert!(m.contains("# TYPE lvs_agent_events_total counter"), "{m}");
    assert!(!m.contains("lvs_ipvs_"), "a real server has no IPVS table: {m}");

    // Router: both legs, forwarding on.
    let r = addrs(&lab, "router");
    assert!(has_addr(&r, "eth1", "198.18.0.1", 24, None) && has_addr(&r, "eth0", "198.19.0.1", 24, None));
    assert_eq!(sysctl(&lab, "router", "net/ipv4/ip_forward"), "1");
    // Real servers: ARP sysctls, hidden VIP /32 on lo labelled lo:0, host route, gateway = router.
    for rs in ["rs1", "rs2"] {
        for k in ["all", "eth0"] {
            assert_eq!(sysctl(&lab, rs, &format!("net/ipv4/conf/{k}/arp_ignore")), "1", "{rs} {k}");
            assert_eq!(sysctl(&lab, rs, &format!("net/ipv4/conf/{k}/arp_announce")), "2", "{rs} {k}");
        }
        assert!(
            has_addr(&addrs(&lab, rs), "lo", "198.18.0.100", 32, Some("lo:0")),
            "{rs}: {:#}",
            addrs(&lab, rs)
        );
        let routes: serde_json::Value =
            serde_json::from_slice(&lab.exec(rs, &["ip", "-j", "route"]).stdout).unwrap();
        let routes = routes.as_array().unwrap();
        assert!(
            routes.iter().any(|r| r["dst"] == "default" && r["gateway"] == "198.18.0.1"),
            "{rs}: {routes:?}"
        );
        assert!(routes.iter().any(|r| r["dst"] == "198.18.0.100" && r["dev"] == "lo"), "{rs}: {routes:?}");
    }
    // The real NTP server on the router is what the agents measured against.
    let (_, st) = lab.json(&["status"]);
    let rs1 = st["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "rs1").unwrap();
    assert!(rs1["clock_offset_ms"].as_i64().is_some_and(|o| o.abs() < 1000), "{rs1:#}");
    assert!(
        rs1["checks"].as_array().unwrap().iter().any(|c| c["check"]
            .as_str()
            .unwrap()
            .starts_with("httpd answers")
            && c["ok"] == true),
        "{rs1:#}"
    );
    let router = st["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "router").unwrap();
    assert!(
        router["checks"].as_array().unwrap().iter().any(|c| c["check"]
            .as_str()
            .unwrap()
            .starts_with("NTP server answers")
            && c["ok"] == true),
        "{router:#}"
    );

    // A second apply does nothing and says so.
    let (ok, v) = lab.json(&a);
    assert!(ok && actions(&v) == 0, "{v:#}");

    // A stale generation is refused with a clear message; nothing changes.
    lab.redefine(&edit(LAB, &[("generation = 1", "generation = 3")]));
    assert!(lab.lvsctl(&a).status.success());
    // (It would move rs1's default route: the route is how "nothing changed" is seen.)
    let default_route = |lab: &Lab| text(&lab.exec("rs1", &["ip", "route", "show", "default"]));
    let before = default_route(&lab);
    assert!(before.contains("via 198.18.0.1"), "{before}");
    let moved = |g: &str| {
        edit(
            LAB,
            &[
                ("generation = 1", g),
                (
                    "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.1\"",
                    "address = \"198.18.0.11/24\" }]\ngateway = \"198.18.0.3\"",
                ),
            ],
        )
    };
    lab.redefine(&moved("generation = 2"));
    let o = lab.lvsctl(&a);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("stale generation 2: this node already accepted generation 3"), "{}", text(&o));
    assert_eq!(default_route(&lab), before, "the stale spec changed nothing");
    // Same generation, other content (another admin's definition): a conflict, not a mix.
    lab.redefine(&moved("generation = 3"));
    let o = lab.lvsctl(&a);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).contains("conflict: generation 3 was already accepted with different content"),
        "{}",
        text(&o)
    );
    assert_eq!(default_route(&lab), before, "the conflicting spec changed nothing");
    lab.redefine(&edit(LAB, &[("generation = 1", "generation = 3")]));
    let (_, st) = lab.json(&["status"]);
    let rs1 = st["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "rs1").cloned().unwrap();
    assert_eq!(rs1["generation"], 3, "the stored generation is still 3: {rs1:#}");
}

#[test]
fn an_agent_killed_mid_apply_converges_when_started_again() {
    let Some(mut lab) = Lab::up_as_root("nsk", LAB) else { return };
    let a = ["apply", "--yes", "--node", "rs1", "--ignore-clock"];
    // Restart rs1's agent with the crash hook: it kills itself (SIGKILL) before its 4th
    // kernel change — after the default route and both arp_ignore sysctls, before the
    // arp_announce ones, the hidden VIP and its route.
    let agent = lab.pid_of("agent-rs1").expect("agent pid");
    lab.kill(agent, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    let (agent_bin, cfg) = (lvs_tests::bin("lvs-agent"), lab.dir.join("rs1/agent.toml"));
    let (agent_bin, cfg) = (agent_bin.to_str().unwrap().to_string(), cfg.to_str().unwrap().to_string());
    let fault = format!("{}=3", lvs_agent::kernel::FAULT_KILL_AFTER);
    lab.spawn("rs1", &["env", &fault, &agent_bin, "--config", &cfg], "agent-rs1-faulty.log");
    let up = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        lab.lvsctl(&["status"]).status.code().filter(|c| *c != 3).map(|_| ())
    });
    assert!(up.is_some(), "faulty agent did not come up");

    let o = lab.lvsctl(&a);
    assert_eq!(o.status.code(), Some(3), "the node failed: {}", text(&o));
    assert!(text(&o).contains("rs1: FAILED"), "{}", text(&o));
    // The kernel holds exactly the first three changes.
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_ignore"), "1");
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/eth0/arp_ignore"), "1");
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_announce"), "0", "killed before the 4th change");
    assert!(!has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, None), "no hidden VIP yet");

    // Started again as the lab did (no fault): it re-applies its stored spec.
    lab.spawn("rs1", &[&agent_bin, "--config", &cfg], "agent-rs1-again.log");
    let converged = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, Some("lo:0")).then_some(())
    });
    assert!(converged.is_some(), "the restarted agent finished the stored spec by itself");
    let (ok, v) = lab.json(&a);
    assert!(ok && actions(&v) == 0, "converged and idempotent: {v:#}");
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_announce"), "2");
}

#[test]
fn the_time_gate_refuses_a_skewed_clock_unless_overridden() {
    let Some(mut lab) = Lab::up_as_root("nst", LAB) else { return };
    // A fault injector on the admin box stands for a bad clock source: 5 s ahead.
    let skewed = edit(LAB, &[("ntp_server = \"198.18.0.1\"", "ntp_server = \"198.18.0.250\"")]);
    lab.redefine(&skewed);
    lab.spawn(
        "admin",
        &[lvs_tests::bin("lvs-skewed-ntp").to_str().unwrap(), "198.18.0.250:123", "+5s"],
        "skew.log",
    );
    std::thread::sleep(Duration::from_millis(200));
    let a = ["apply", "--yes", "--node", "rs1", "--node", "rs2"];
    let o = lab.lvsctl(&a);
    assert_eq!(o.status.code(), Some(5), "a time-gate refusal has its own status: {}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("refused by the time gate")
            && (t.contains("rs1 is -49") || t.contains("rs1 is -50"))
            && t.contains("rs2 is -")
            && t.contains("(limit 1000 ms)"),
        "{t}"
    );
    assert!(!has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, None), "nothing changed");
    let mut b = a.to_vec();
    b.push("--ignore-clock");
    let o = lab.lvsctl(&b);
    assert!(o.status.success(), "{}", text(&o));
    assert!(has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, Some("lo:0")));
}

#[test]
fn drift_is_reported_on_the_event_stream_and_healed() {
    let Some(mut lab) = Lab::up_as_root("nsh", LAB) else { return };
    let o = lab.lvsctl(&["apply", "--yes", "--node", "router", "--node", "rs1", "--node", "rs2"]);
    assert!(o.status.success(), "{}", text(&o));
    lab.spawn_lvsctl(&["events", "--node", "rs1", "-n", "2"], "events.log");
    std::thread::sleep(Duration::from_millis(500));
    // Someone removes the hidden VIP by hand; the lab's agents look every 5 s.
    assert!(lab.exec("rs1", &["ip", "addr", "del", "198.18.0.100/32", "dev", "lo"]).status.success());
    assert!(!has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, None));
    let healed = poll(Duration::from_secs(15), Duration::from_millis(100), || {
        has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, Some("lo:0")).then_some(())
    });
    assert!(healed.is_some(), "the agent put the VIP back");
    let log = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        std::fs::read_to_string(lab.dir.join("events.log")).ok().filter(|l| l.contains(" heal: "))
    })
    .expect("events seen");
    assert!(
        log.contains("rs1 drift: ") && log.contains("add address 198.18.0.100/32 on lo label lo:0"),
        "{log}"
    );
    assert!(log.contains("rs1 heal: generation 1 re-applied") && log.contains("converged true"), "{log}");
}

#[test]
fn events_say_when_an_agent_vanishes_and_comes_back() {
    let Some(mut lab) = Lab::up_as_root("nsv", LAB) else { return };
    let pid = lab.spawn_lvsctl(&["events", "--node", "rs1"], "events.log");
    std::thread::sleep(Duration::from_millis(800));
    // The agent stops answering without closing anything (a hung host): only HTTP/2
    // keepalive can tell; without it the stream waits for ever.
    let agent = lab.pid_of("agent-rs1").expect("rs1's agent");
    lab.kill(agent, "STOP");
    let t0 = std::time::Instant::now();
    let lost = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        std::fs::read_to_string(lab.dir.join("events.log")).ok().filter(|l| l.contains("# rs1: "))
    });
    lab.kill(agent, "CONT");
    let log = lost.unwrap_or_else(|| panic!("no word of rs1 vanishing after 30 s"));
    println!("rs1 reported lost after {:?}: {log}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    lab.kill(pid as i32, "TERM");
}

#[test]
fn a_removed_node_is_left_as_it_was_found_and_not_healed_back() {
    let Some(lab) = Lab::up_as_root("nsd", LAB) else { return };
    let before = sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_ignore");
    ok(&lab.lvsctl(&["apply", "--yes", "--node", "router", "--node", "rs1"]));
    assert!(has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, Some("lo:0")));
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_ignore"), "1");
    // Without a terminal and without --yes: asked, nothing done.
    assert_eq!(lab.lvsctl(&["node", "remove", "rs1"]).status.code(), Some(6));
    let t = ok(&lab.lvsctl(&["node", "remove", "rs1", "--yes"]));
    assert!(t.contains("decommissioned") && t.contains("out of the cluster"), "{t}");
    // Everything the agent created is gone and the sysctls are back to what it found.
    let a = addrs(&lab, "rs1");
    assert!(!has_addr(&a, "lo", "198.18.0.100", 32, None), "hidden VIP left: {a:#}");
    assert_eq!(sysctl(&lab, "rs1", "net/ipv4/conf/all/arp_ignore"), before);
    let routes = text(&lab.exec("rs1", &["ip", "route"]));
    assert!(!routes.contains("default via 198.18.0.1") && !routes.contains("198.18.0.100"), "{routes}");
    // The LAN address the installer gave it stays: the agent never owned it.
    assert!(has_addr(&a, "eth0", "198.18.0.11", 24, None));
    // Nothing is healed back (the lab's agents heal every 5 s), and the node has no spec.
    std::thread::sleep(Duration::from_secs(7));
    assert!(!has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, None), "healed back");
    let (_, st) = lab.json(&["status", "--node", "rs1"]);
    assert_eq!(st["nodes"][0]["has_spec"], false, "{st:#}");
    // It can join again later with a newer generation.
    lab.redefine(&edit(LAB, &[("generation = 1", "generation = 2")]));
    ok(&lab.lvsctl(&["apply", "--yes", "--node", "rs1", "--ignore-clock"]));
    assert!(has_addr(&addrs(&lab, "rs1"), "lo", "198.18.0.100", 32, Some("lo:0")));
}

/// PassiveOpens of the TCP stack in namespace `ns`: connections it has accepted.
fn passive_opens(lab: &Lab, short: &str) -> u64 {
    let snmp = text(&lab.exec(short, &["cat", "/proc/net/snmp"]));
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names.split_whitespace().position(|n| n == "PassiveOpens").unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// Certificate rotation under control-plane load: four tasks sharing one `Fleet` (one
/// connection to the agent, as `lvsctl` holds it) call Status and Facts every 20 ms while
/// `pki rotate`'s own code renews and installs rs1's certificate over that same connection.
/// No call fails, the agent accepts no new connection (PassiveOpens in its namespace), it
/// is the same process, and a new connection sees the new certificate.
#[test]
fn a_rotation_under_control_plane_load_fails_no_call_and_keeps_the_connection() {
    let Some(lab) = Lab::up_as_root("nsr", LAB) else { return };
    let pid = lab.pid_of("agent-rs1").expect("rs1's agent");
    let cluster = lvs_controller::load::load_file(&lab.def).unwrap().cluster;
    let pki = lvs_controller::pki::Pki::new(lab.dir.join("pki"));
    let (opens_before, opens_after, ok, failed, before, after) =
        lvs_tests::in_netns(&lab.ns("admin"), || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let fleet = std::sync::Arc::new(
                    lvs_controller::fleet::Fleet::new(&cluster, &pki, Duration::from_secs(5)).unwrap(),
                );
                let before = fleet.status("rs1", None).await.unwrap().certificate.unwrap().serial;
                let opens_before = passive_opens(&lab, "rs1");
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let mut load = tokio::task::JoinSet::new();
                for i in 0..4 {
                    let (fleet, stop) = (fleet.clone(), stop.clone());
                    load.spawn(async move {
                        let (mut ok, mut failed) = (0u32, Vec::new());
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let r = if i % 2 == 0 {
                                fleet.status("rs1", None).await.map(|_| ())
                            } else {
                                fleet.facts("rs1").await.map(|_| ())
                            };
                            match r {
                                Ok(()) => ok += 1,
                                Err(e) => failed.push(e.to_string()),
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        (ok, failed)
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let done = lvs_controller::ops::trust::rotate_all(&fleet, &pki, &["rs1".to_string()]).await;
                let after = done[0].1.as_ref().expect("rotated").serial.clone();
                tokio::time::sleep(Duration::from_millis(500)).await;
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let (mut ok, mut failed) = (0, Vec::new());
                while let Some(r) = load.join_next().await {
                    let (o, f) = r.unwrap();
                    ok += o;
                    failed.extend(f);
                }
                let opens_after = passive_opens(&lab, "rs1");
                (opens_before, opens_after, ok, failed, before, after)
            })
        });
    println!(
        "rotation under load: {ok} calls answered, {} failed, PassiveOpens {opens_before} → {opens_after}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} calls failed during the rotation, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 100, "the load ran: {ok} calls");
    assert_ne!(before, after, "the certificate changed");
    assert_eq!(opens_after, opens_before, "the agent accepted a new connection during the rotation");
    assert_eq!(lab.pid_of("agent-rs1"), Some(pid), "the agent restarted");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the agent is gone");
    // A new connection (a new lvsctl) is shown the new certificate.
    let (_, st) = lab.json(&["status", "--node", "rs1"]);
    assert_eq!(st["nodes"][0]["certificate"]["serial"], after.as_str(), "{st:#}");
}

const DUAL: &str = include_str!("../../deploy/examples/dual-stack.toml");

/// The neighbour entry of `ip` in `short`'s table: its state and link-layer address.
fn neighbour(lab: &Lab, short: &str, ip: &str) -> Option<(String, Option<String>)> {
    let v: serde_json::Value =
        serde_json::from_slice(&lab.exec(short, &["ip", "-j", "-6", "neigh", "show", "to", ip]).stdout)
            .ok()?;
    let n = v.as_array()?.first()?;
    let state = n["state"]
        .as_array()
        .map(|s| s.iter().map(|x| x.as_str().unwrap_or("")).collect::<Vec<_>>().join(","));
    Some((state.unwrap_or_default(), n["lladdr"].as_str().map(String::from)))
}

/// Issue 28, the real-server side on the host kernel: the dual-stack example's router and
/// real servers applied for real (its directors need IPVS, proved in the VM). Each real
/// server holds both VIPs hidden on `lo` (IPv6 as /128, no label), an IPv6 default route,
/// and its IPv6 LAN address; the router forwards IPv6; every clock is measured against
/// chrony over IPv6. And the kernel's own rule, read from the router's neighbour table:
/// a real server answers neighbour solicitations for its RIP but never for the hidden VIP.
#[test]
fn a_dual_stack_real_server_hides_its_ipv6_vip_from_neighbour_discovery() {
    let Some(lab) = Lab::up_as_root("ns6", DUAL) else { return };
    let mut a = vec!["apply", "--yes"];
    a.extend(["--node", "edge", "--node", "web1", "--node", "web2", "--node", "web3"]);
    let (ok, v) = lab.json(&a);
    assert!(ok, "{v:#}");
    assert_eq!(sysctl(&lab, "edge", "net/ipv6/conf/all/forwarding"), "1");
    for (rs, rip) in [("web1", "2001:db8:6::11"), ("web2", "2001:db8:6::12"), ("web3", "2001:db8:6::13")] {
        let ad = addrs(&lab, rs);
        assert!(has_addr(&ad, "lo", "198.18.6.100", 32, Some("lo:0")), "{rs}: {ad:#}");
        assert!(has_addr(&ad, "lo", "2001:db8:6::100", 128, None), "{rs}: {ad:#}");
        assert!(has_addr(&ad, "lo", "2001:db8:6::200", 128, None), "{rs}: {ad:#}");
        assert!(has_addr(&ad, "eth0", rip, 64, None), "{rs}: {ad:#}");
        let routes = text(&lab.exec(rs, &["ip", "-6", "route", "show"]));
        assert!(routes.contains("default via 2001:db8:6::1 dev eth0"), "{rs}: {routes}");
        assert!(routes.contains("2001:db8:6::100 dev lo"), "{rs}: {routes}");
    }
    // Converged: nothing pending, the IPv6 pieces included (no label re-added forever).
    let mut p = vec!["plan", "--detailed-exitcode"];
    p.extend(["--node", "edge", "--node", "web1", "--node", "web2", "--node", "web3"]);
    let o = lab.lvsctl(&p);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Every clock is measured against the router's chrony over IPv6.
    let clocks_ok = poll(Duration::from_secs(20), Duration::from_millis(500), || {
        let (_, st) = lab.json(&["status", "--node", "web1", "--node", "edge"]);
        let all = st["nodes"].as_array()?.iter().all(|n| {
            n["checks"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    let name = c["check"].as_str().unwrap_or("");
                    (name == "clock within 1000 ms of 2001:db8:6::1"
                        || name == "NTP server answers on 2001:db8:6::1")
                        && c["ok"] == true
                })
            })
        });
        all.then_some(st)
    });
    assert!(clocks_ok.is_some(), "{:#}", lab.json(&["status"]).1);
    // The router resolves each RIP (once its duplicate address detection is over) and
    // never the VIP, which only a real server holds here (no director was applied).
    let connect = |ip: &str| {
        let target = format!("[{ip}]:80");
        let load = lvs_tests::bin("lvs-load");
        lab.exec(
            "edge",
            &[load.to_str().unwrap(), &target, "-c", "1", "-n", "1", "-d", "3s", "--timeout", "1s"],
        )
    };
    for rip in ["2001:db8:6::11", "2001:db8:6::12", "2001:db8:6::13"] {
        let resolved = poll(Duration::from_secs(10), Duration::from_millis(300), || {
            connect(rip);
            neighbour(&lab, "edge", rip).and_then(|(_, mac)| mac)
        });
        assert!(resolved.is_some(), "the router never resolved {rip}: {:?}", neighbour(&lab, "edge", rip));
    }
    for vip in ["2001:db8:6::100", "2001:db8:6::200"] {
        let o = connect(vip);
        let n = neighbour(&lab, "edge", vip);
        assert!(
            n.as_ref()
                .is_some_and(|(state, mac)| mac.is_none()
                    && (state.contains("INCOMPLETE") || state.contains("FAILED"))),
            "a real server answered the solicitation for {vip}: {n:?} ({})",
            text(&o)
        );
    }
}
