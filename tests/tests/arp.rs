//! The router's ARP watch on this host's kernel (ARP and ND need no IPVS): a router, a
//! director holding the VIP on its LAN interface and a real server holding it on `lo`, in
//! three network namespaces on one bridge, dual stack. The agent's own asker ([`PacketArp`]:
//! a raw packet socket for ARP, a raw ICMPv6 socket for neighbour solicitation) and judge
//! decide who answers: the director alone while the real server hides the VIP; the real
//! server named as a leak once its `arp_ignore` is 0 (IPv4) or the VIP is on its LAN
//! interface (IPv6). The VM's e2e test does the IPv4 case through the agents, `status`,
//! events and metrics. Addresses stay in 198.18.0.0/15 and 2001:db8::/32.
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
    ip(&["-n", &r, "addr", "add", "2001:db8:18::1/64", "dev", "eth1", "nodad"]);
    ip(&["-n", &r, "link", "set", "eth1", "up"]);
    for (i, (node, addr, addr6)) in
        [("director", "198.18.0.2/24", "2001:db8:18::2/64"), ("rs1", "198.18.0.11/24", "2001:db8:18::11/64")]
            .iter()
            .enumerate()
    {
        let n = net.ns(node);
        ip(&["netns", "add", &n]);
        let port = format!("p{i}");
        ip(&["link", "add", "tmpa", "netns", &n, "type", "veth", "peer", &port, "netns", &r]);
        ip(&["-n", &r, "link", "set", &port, "master", "eth1", "up"]);
        ip(&["-n", &n, "link", "set", "tmpa", "name", "eth1"]);
        ip(&["-n", &n, "addr", "add", addr, "dev", "eth1"]);
        ip(&["-n", &n, "addr", "add", addr6, "dev", "eth1", "nodad"]);
        ip(&["-n", &n, "link", "set", "eth1", "up"]);
        ip(&["-n", &n, "link", "set", "lo", "up"]);
    }
    // The director holds the VIP on its LAN interface; the real server on lo, hidden.
    ip(&["-n", &net.ns("director"), "addr", "add", "198.18.0.100/32", "dev", "eth1"]);
    ip(&["-n", &net.ns("rs1"), "addr", "add", "198.18.0.100/32", "dev", "lo"]);
    ip(&["-n", &net.ns("director"), "addr", "add", "2001:db8:18::100/128", "dev", "eth1", "nodad"]);
    ip(&["-n", &net.ns("rs1"), "addr", "add", "2001:db8:18::100/128", "dev", "lo", "nodad"]);
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

/// The watched LAN from `source` (its family's VIP and node addresses).
fn spec(source: &str) -> ArpWatchLan {
    let v6 = source.contains(':');
    let a = |v4: &str, v6a: &str| (if v6 { v6a } else { v4 }).parse().unwrap();
    ArpWatchLan {
        interface: "eth1".into(),
        source: source.parse().unwrap(),
        vips: vec![ArpWatchVip {
            address: a("198.18.0.100", "2001:db8:18::100"),
            holders: vec!["director".into()],
        }],
        nodes: vec![
            ArpWatchNode { name: "director".into(), address: a("198.18.0.2", "2001:db8:18::2") },
            ArpWatchNode { name: "rs1".into(), address: a("198.18.0.11", "2001:db8:18::11") },
        ],
    }
}

/// One round from the router's namespace, asking from `source`: the VIP's verdict and how
/// long the round took.
fn round(net: &Net, source: &str) -> (lvs_proto::reply::VipArp, Duration) {
    in_netns(&net.ns("router"), || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let lan = spec(source);
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
    let (v, took) = round(&net, "198.18.0.1");
    assert_eq!(v.leak, None, "a healthy LAN: {v:?}");
    let who: Vec<Option<&str>> = v.answers.iter().map(|a| a.node.as_deref()).collect();
    assert_eq!(who, [Some("director")], "the director alone answers: {v:?}");
    println!("healthy: {v:?} in {} ms", took.as_millis());

    // Another tool resets arp_ignore on the real server: it answers for the VIP on lo.
    arp_ignore(&net, 0);
    let (v, _) = round(&net, "198.18.0.1");
    let leak = v.leak.clone().unwrap_or_else(|| panic!("no leak found: {v:?}"));
    assert!(leak.starts_with("rs1 (") && leak.ends_with("answers ARP for it (only director may)"), "{leak}");
    assert_eq!(v.leakers().iter().map(|a| a.node.as_deref()).collect::<Vec<_>>(), [Some("rs1")]);
    println!("arp_ignore 0 on rs1: {leak}");

    // Put back: the leak is gone.
    arp_ignore(&net, 1);
    let (v, _) = round(&net, "198.18.0.1");
    assert_eq!(v.leak, None, "{v:?}");
}

#[test]
fn the_watch_names_a_real_server_that_answers_neighbour_solicitation_for_an_ipv6_vip() {
    if !lvs_tests::root_suite_can_run(None) {
        return;
    }
    let net = lab();
    let (v, took) = round(&net, "2001:db8:18::1");
    assert_eq!(v.leak, None, "a healthy LAN: {v:?}");
    let who: Vec<Option<&str>> = v.answers.iter().map(|a| a.node.as_deref()).collect();
    assert_eq!(who, [Some("director")], "the director alone answers: {v:?}");
    println!("IPv6 healthy: {v:?} in {} ms", took.as_millis());

    // Someone puts the VIP on the real server's LAN interface: it advertises it.
    ip(&["-n", &net.ns("rs1"), "addr", "add", "2001:db8:18::100/128", "dev", "eth1", "nodad"]);
    let (v, _) = round(&net, "2001:db8:18::1");
    let leak = v.leak.clone().unwrap_or_else(|| panic!("no leak found: {v:?}"));
    assert!(
        leak.starts_with("rs1 (")
            && leak.ends_with("answers neighbour solicitation for it (only director may)"),
        "{leak}"
    );
    println!("the IPv6 VIP on rs1's eth1: {leak}");
    ip(&["-n", &net.ns("rs1"), "addr", "del", "2001:db8:18::100/128", "dev", "eth1"]);
    let (v, _) = round(&net, "2001:db8:18::1");
    assert_eq!(v.leak, None, "{v:?}");
}
