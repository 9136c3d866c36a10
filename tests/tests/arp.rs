//! The router's ARP watch on this host's kernel (ARP needs no IPVS): a router, a director
//! holding the VIP on its LAN interface and a real server holding it on `lo`, in three
//! network namespaces on one bridge. The agent's own asker ([`PacketArp`], a raw packet
//! socket) and judge decide who answers: the director alone while the real server's
//! `arp_ignore` is 1; the real server named as a leak once it is 0. The VM's e2e test does
//! the same through the agents, `status`, events and metrics. Addresses stay in
//! 198.18.0.0/15.
use std::process::Command;
use std::time::{Duration, Instant};

use lvs_agent::arp::ArpAsker;
use lvs_agent::arp::ask::PacketArp;
use lvs_proto::spec::{ArpWatchLan, ArpWatchNode, ArpWatchVip};
use lvs_tests::in_netns;

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

struct Net(String);

impl Net {
    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.0)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["router", "director", "rs1"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(n)]).status();
        }
    }
}

fn lab() -> Net {
    let net = Net(format!("arp{}", std::process::id()));
    let r = net.ns("router");
    ip(&["netns", "add", &r]);
    ip(&["-n", &r, "link", "add", "eth1", "type", "bridge"]);
    ip(&["-n", &r, "addr", "add", "198.18.0.1/24", "dev", "eth1"]);
    ip(&["-n", &r, "link", "set", "eth1", "up"]);
    for (i, (node, addr)) in [("director", "198.18.0.2/24"), ("rs1", "198.18.0.11/24")].iter().enumerate() {
        let n = net.ns(node);
        ip(&["netns", "add", &n]);
        let port = format!("p{i}");
        ip(&["link", "add", "tmpa", "netns", &n, "type", "veth", "peer", &port, "netns", &r]);
        ip(&["-n", &r, "link", "set", &port, "master", "eth1", "up"]);
        ip(&["-n", &n, "link", "set", "tmpa", "name", "eth1"]);
        ip(&["-n", &n, "addr", "add", addr, "dev", "eth1"]);
        ip(&["-n", &n, "link", "set", "eth1", "up"]);
        ip(&["-n", &n, "link", "set", "lo", "up"]);
    }
    // The director holds the VIP on its LAN interface; the real server on lo, hidden.
    ip(&["-n", &net.ns("director"), "addr", "add", "198.18.0.100/32", "dev", "eth1"]);
    ip(&["-n", &net.ns("rs1"), "addr", "add", "198.18.0.100/32", "dev", "lo"]);
    arp_ignore(&net, 1);
    net
}

/// Set the real server's `arp_ignore` (and `arp_announce` 2) on all and eth1.
fn arp_ignore(net: &Net, v: u8) {
    let ns = net.ns("rs1");
    for iface in ["all", "eth1"] {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "sysctl", "-qw"])
            .arg(format!("net.ipv4.conf.{iface}.arp_ignore={v}"))
            .arg(format!("net.ipv4.conf.{iface}.arp_announce=2"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

fn spec() -> ArpWatchLan {
    ArpWatchLan {
        interface: "eth1".into(),
        source: "198.18.0.1".parse().unwrap(),
        vips: vec![ArpWatchVip {
            address: "198.18.0.100".parse().unwrap(),
            holders: vec!["director".into()],
        }],
        nodes: [("director", "198.18.0.2"), ("rs1", "198.18.0.11")]
            .iter()
            .map(|(n, a)| ArpWatchNode { name: n.to_string(), address: a.parse().unwrap() })
            .collect(),
    }
}

/// One round from the router's namespace: the VIP's verdict and how long the round took.
fn round(net: &Net) -> (lvs_proto::reply::VipArp, Duration) {
    in_netns(&net.ns("router"), || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let lan = spec();
        let targets = lan.vips.iter().map(|v| v.address).chain(lan.nodes.iter().map(|n| n.address)).collect();
        let t0 = Instant::now();
        let replies = rt
            .block_on(PacketArp.ask(lan.interface.clone(), lan.source, targets, Duration::from_millis(300)))
            .expect("ask");
        (lvs_agent::arp::judge::judge(&lan, &replies).remove(0), t0.elapsed())
    })
}

#[test]
fn the_watch_names_a_real_server_that_answers_arp_for_the_vip() {
    if !lvs_tests::root_suite_can_run(None) {
        return;
    }
    let net = lab();
    let (v, took) = round(&net);
    assert_eq!(v.leak, None, "a healthy LAN: {v:?}");
    let who: Vec<Option<&str>> = v.answers.iter().map(|a| a.node.as_deref()).collect();
    assert_eq!(who, [Some("director")], "the director alone answers: {v:?}");
    println!("healthy: {v:?} in {} ms", took.as_millis());

    // Another tool resets arp_ignore on the real server: it answers for the VIP on lo.
    arp_ignore(&net, 0);
    let (v, _) = round(&net);
    let leak = v.leak.clone().unwrap_or_else(|| panic!("no leak found: {v:?}"));
    assert!(leak.starts_with("rs1 (") && leak.ends_with("answers ARP for it (only director may)"), "{leak}");
    assert_eq!(v.leakers().iter().map(|a| a.node.as_deref()).collect::<Vec<_>>(), [Some("rs1")]);
    println!("arp_ignore 0 on rs1: {leak}");

    // Put back: the leak is gone.
    arp_ignore(&net, 1);
    let (v, _) = round(&net);
    assert_eq!(v.leak, None, "{v:?}");
}
