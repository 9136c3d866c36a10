//! The plans of both example definitions, snapshot-tested, and the seed plan checked
//! against every step of the article (../shared/seed/README.md).
use lvs_controller::load::load_str;
use lvs_controller::planner;
use lvs_proto::spec::{AddressPurpose, CheckSpec, NodeSpec, Role, RoutePurpose, ServiceKey, Step};

fn plan(name: &str, text: &str) -> Vec<NodeSpec> {
    planner::plan(&load_str(name, text).expect("valid").cluster)
}

fn human(name: &str, text: &str) -> String {
    let loaded = load_str(name, text).expect("valid");
    let agents = |n: &str| loaded.cluster.nodes.iter().find(|x| x.name == n).unwrap().agent.clone();
    lvs_controller::render::plan(&planner::plan(&loaded.cluster), &agents)
}

const SEED: &str = include_str!("../../deploy/examples/seed.toml");
const LAB: &str = include_str!("../../deploy/examples/lab.toml");

#[test]
fn seed_plan_snapshot() {
    insta::assert_json_snapshot!("seed_plan_json", plan("seed.toml", SEED));
    insta::assert_snapshot!("seed_plan_human", human("seed.toml", SEED));
}

#[test]
fn lab_plan_snapshot() {
    insta::assert_json_snapshot!("lab_plan_json", plan("lab.toml", LAB));
    insta::assert_snapshot!("lab_plan_human", human("lab.toml", LAB));
}

fn node<'a>(specs: &'a [NodeSpec], name: &str) -> &'a NodeSpec {
    specs.iter().find(|s| s.node == name).expect(name)
}

fn sysctl(spec: &NodeSpec, key: &str) -> Option<String> {
    spec.sysctls.iter().find(|s| s.key == key).map(|s| s.value.clone())
}

#[test]
fn seed_plan_has_every_step_of_the_article() {
    let specs = plan("seed.toml", SEED);
    // Step 1: time sync, director and real servers within 1 s of the router's NTP server.
    let router = node(&specs, "router");
    assert_eq!(router.role, Role::Router);
    assert!(router.checks.contains(&CheckSpec::NtpServing { address: "192.168.40.254".parse().unwrap() }));
    for n in ["director", "rs1", "rs2"] {
        assert!(
            node(&specs, n).checks.contains(&CheckSpec::ClockOffset {
                server: "192.168.40.254".parse().unwrap(),
                max_offset_ms: 1000
            }),
            "{n}"
        );
    }
    // Step 2: kernel check, IPVS with the rr scheduler.
    let director = node(&specs, "director");
    assert!(director.checks.contains(&CheckSpec::KernelIpvs { schedulers: vec!["rr".into()] }));
    // Step 4: router's two legs and ip_forward = 1.
    let legs: Vec<String> =
        router.addresses.iter().map(|a| format!("{} {}", a.interface, a.address)).collect();
    assert_eq!(legs, ["eth1 192.168.40.254/24", "eth2 172.16.0.254/16"]);
    assert_eq!(sysctl(router, "net.ipv4.ip_forward").as_deref(), Some("1"));
    // Step 5: DIP on eth1 without gateway, VIP as eth1:0 (/16, as in the article); firewall reported.
    assert!(director.routes.is_empty(), "the director has no gateway in the article");
    let a: Vec<String> =
        director.addresses.iter().map(|a| format!("{} {} {:?}", a.interface, a.address, a.label)).collect();
    assert_eq!(a, ["eth1 192.168.40.11/24 None", "eth1 172.16.21.10/16 Some(\"eth1:0\")"]);
    assert!(director.checks.iter().any(|c| matches!(c, CheckSpec::FirewallAllows { .. })));
    // Step 6: each real server in the article's order.
    for (rs, rip) in [("rs1", "192.168.40.12/24"), ("rs2", "192.168.40.13/24")] {
        let s = node(&specs, rs);
        for k in ["all", "eth1"] {
            assert_eq!(sysctl(s, &format!("net.ipv4.conf.{k}.arp_ignore")).as_deref(), Some("1"));
            assert_eq!(sysctl(s, &format!("net.ipv4.conf.{k}.arp_announce")).as_deref(), Some("2"));
        }
        let order: Vec<String> = s
            .steps()
            .iter()
            .filter_map(|st| match st {
                Step::Address(a) => Some(format!(
                    "addr {} {} {}",
                    a.interface,
                    a.address,
                    a.label.clone().unwrap_or_default()
                )),
                Step::Route(r) if r.purpose == RoutePurpose::DefaultGateway => {
                    Some(format!("gw {}", r.gateway.unwrap()))
                }
                Step::Route(r) => Some(format!("route {} dev {}", r.destination, r.device.clone().unwrap())),
                Step::Sysctl(_) => Some("sysctl".into()),
                _ => None,
            })
            .collect::<Vec<_>>();
        let mut dedup = order.clone();
        dedup.dedup();
        assert_eq!(
            dedup,
            [
                format!("addr eth1 {rip} "),
                "gw 192.168.40.254".into(),
                "sysctl".into(),
                "addr lo 172.16.21.10/32 lo:0".into(),
                "route 172.16.21.10/32 dev lo".into(),
            ],
            "{rs}: RIP, gateway (the router), ARP sysctls before the VIP, VIP /32 on lo:0, host route"
        );
        assert!(s.checks.contains(&CheckSpec::HttpLocal { port: 80, path: "/".into() }));
        assert!(s.checks.iter().any(|c| matches!(c, CheckSpec::GatewayIsNot { forbidden } if forbidden.contains(&"192.168.40.11".parse().unwrap()))));
        assert!(s.addresses.iter().filter(|a| a.purpose == AddressPurpose::HiddenVip).count() == 1);
    }
    // Step 7: ipvsadm -A -t 172.16.21.10:80 -s rr; RS1 -g -w 2; RS2 -g -w 1.
    let [vs] = director.virtual_services.as_slice() else { panic!("one service") };
    assert_eq!(
        vs.key,
        ServiceKey::Addr {
            protocol: lvs_proto::spec::Protocol::Tcp,
            address: "172.16.21.10:80".parse().unwrap()
        }
    );
    assert_eq!(vs.scheduler, "rr");
    let d: Vec<String> = vs
        .destinations
        .iter()
        .map(|d| format!("{} {} {}", d.address, d.forwarding.as_str(), d.weight))
        .collect();
    assert_eq!(d, ["192.168.40.12:80 Route 2", "192.168.40.13:80 Route 1"]);
    // Only directors get IPVS rules.
    assert!(specs.iter().filter(|s| s.role != Role::Director).all(|s| s.virtual_services.is_empty()));
}

#[test]
fn plan_is_deterministic_and_carries_the_generation() {
    let a = plan("lab.toml", LAB);
    let b = plan("lab.toml", LAB);
    assert_eq!(a, b);
    let bumped = plan("lab.toml", &LAB.replace("generation = 1", "generation = 7"));
    assert!(bumped.iter().all(|s| s.generation == 7));
}

#[test]
fn ha_directors_leave_the_shared_vip_to_vrrp_and_advertise_to_each_other() {
    let specs = plan("lab-ha.toml", include_str!("../../deploy/examples/lab-ha.toml"));
    let d = |n: &str| specs.iter().find(|s| s.node == n).unwrap();
    // The lower priority sits out 5 s + 4 adverts of 100 ms at its first start: the
    // highest wins the first election whatever starts first.
    for (me, peer, priority, delay) in
        [("director", "198.18.0.3", 150, 0), ("director2", "198.18.0.2", 100, 5_400)]
    {
        let s = d(me);
        // The VIP is not the agent's to add: the VRRP engine adds it on the master only.
        assert!(!s.addresses.iter().any(|a| a.purpose == AddressPurpose::Vip), "{me}: {:?}", s.addresses);
        let v = s.vrrp.as_ref().expect("in the VRRP instance");
        assert_eq!(
            (v.instance.as_str(), v.vrid, v.priority, v.advert_ms, v.preempt),
            ("web", 51, priority, 100, false)
        );
        assert_eq!(v.startup_delay_ms, delay, "{me}");
        assert_eq!(v.interface, "eth1");
        assert_eq!(v.unicast_peers, vec![peer.parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(v.vips.iter().map(|a| a.address.to_string()).collect::<Vec<_>>(), ["198.18.0.100/32"]);
        assert_eq!(v.sync_daemon.as_ref().map(|d| (d.interface.as_str(), d.sync_id)), Some(("eth1", 51)));
        // Both directors have the IPVS table: the backup must, for synced connections.
        assert_eq!(s.virtual_services.len(), 1);
        // The VIP an old master keeps on lo after a hand-over is hidden from ARP as a real
        // server's is. Connections are synced from their handshake's ACK on (state
        // changes), not at their 3rd packet, so a failover between handshake and request
        // loses none.
        let sysctls: Vec<(&str, &str)> =
            s.sysctls.iter().map(|x| (x.key.as_str(), x.value.as_str())).collect();
        assert_eq!(
            sysctls,
            [
                ("net.ipv4.conf.eth1.arp_ignore", "1"),
                ("net.ipv4.conf.eth1.arp_announce", "2"),
                ("net.ipv4.vs.sync_threshold", "3 0"),
                ("net.ipv4.vs.sync_refresh_period", "10"),
                ("net.ipv4.vs.conn_reuse_mode", "1"),
                ("net.ipv4.vs.expire_nodest_conn", "1")
            ],
            "{me}"
        );
    }
    // The single-director lab: the VIP is an address the agent holds, no ARP or sync
    // sysctls (no VRRP, no sync daemon), only what a drain needs.
    let lab = plan("lab.toml", LAB);
    let director = lab.iter().find(|s| s.node == "director").unwrap();
    assert!(director.vrrp.is_none() && director.addresses.iter().any(|a| a.purpose == AddressPurpose::Vip));
    let keys: Vec<&str> = director.sysctls.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["net.ipv4.vs.conn_reuse_mode", "net.ipv4.vs.expire_nodest_conn"]);
}

#[test]
fn a_director_with_a_persistent_service_expires_the_templates_of_a_drained_server() {
    let dual = plan("dual-stack.toml", include_str!("../../deploy/examples/dual-stack.toml"));
    let lb1 = dual.iter().find(|s| s.node == "lb1").unwrap();
    let t = lb1.sysctls.iter().find(|x| x.key == "net.ipv4.vs.expire_quiescent_template").expect("planned");
    assert_eq!(t.value, "1");
    assert!(t.reason.contains("persistent client"), "{}", t.reason);
    // Without persistence, templates do not exist: nothing to plan.
    let lab = plan("lab.toml", LAB);
    assert!(lab.iter().flat_map(|s| &s.sysctls).all(|x| x.key != "net.ipv4.vs.expire_quiescent_template"));
}

#[test]
fn ecmp_directors_announce_the_hidden_vip_and_the_router_hashes_on_ports() {
    let specs = plan("ecmp.toml", include_str!("../../deploy/examples/ecmp.toml"));
    // The router: a session per director, routes installed, and L4 multipath hashing (without
    // it one client's flows all go to one director).
    let r = node(&specs, "router");
    let b = r.bgp.as_ref().expect("the router peers");
    assert!(b.install_routes);
    assert_eq!((b.local_asn, b.router_id.to_string().as_str()), (65000, "198.18.0.1"));
    let peers: Vec<(&str, String, u32)> =
        b.peers.iter().map(|p| (p.name.as_str(), p.address.to_string(), p.asn)).collect();
    assert_eq!(
        peers,
        [
            ("lb1", "198.18.0.2".into(), 65001),
            ("lb2", "198.18.0.3".into(), 65001),
            ("lb3", "198.18.0.4".into(), 65001)
        ]
    );
    assert!(b.announce.is_empty());
    assert_eq!(sysctl(r, "net.ipv4.fib_multipath_hash_policy").as_deref(), Some("1"));
    assert_eq!(sysctl(r, "net.ipv4.ip_forward").as_deref(), Some("1"));
    for (me, dip) in [("lb1", "198.18.0.2"), ("lb2", "198.18.0.3"), ("lb3", "198.18.0.4")] {
        let d = node(&specs, me);
        let b = d.bgp.as_ref().expect("a director peers");
        assert!(!b.install_routes, "{me}");
        assert_eq!(b.router_id.to_string(), dip);
        assert_eq!(b.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["router"]);
        assert_eq!(b.announce.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["198.18.0.100/32"]);
        // The VIP is on lo, hidden: the router reaches it by BGP next hop, never by ARP.
        let vip = d.addresses.iter().find(|a| a.address.to_string() == "198.18.0.100/32").expect("the VIP");
        assert_eq!((vip.interface.as_str(), vip.purpose), ("lo", AddressPurpose::HiddenVip));
        for key in ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.eth1.arp_ignore"] {
            assert_eq!(sysctl(d, key).as_deref(), Some("1"), "{me} {key}");
        }
        assert_eq!(sysctl(d, "net.ipv4.vs.sloppy_tcp").as_deref(), Some("1"), "{me}");
        assert!(d.vrrp.is_none(), "{me}");
    }
}

#[test]
fn the_router_watches_each_vip_in_its_own_family_with_the_directors_that_may_answer() {
    let specs = plan("dual-stack.toml", include_str!("../../deploy/examples/dual-stack.toml"));
    let w = node(&specs, "edge").arp_watch.as_ref().expect("the router watches");
    let lans: Vec<(String, String, Vec<String>)> = w
        .lans
        .iter()
        .map(|l| {
            (
                l.interface.clone(),
                l.source.to_string(),
                l.vips.iter().map(|v| format!("{} {}", v.address, v.holders.join("+"))).collect(),
            )
        })
        .collect();
    assert_eq!(
        lans,
        [
            ("eth1".into(), "198.18.6.1".into(), vec!["198.18.6.100 lb1+lb2".to_string()]),
            (
                "eth1".into(),
                "2001:db8:6::1".into(),
                vec!["2001:db8:6::100 lb1+lb2".to_string(), "2001:db8:6::200 lb1+lb2".to_string()]
            ),
        ]
    );
    // Every node named on a LAN is of that LAN's family; no director or router watches.
    for l in &w.lans {
        assert!(l.nodes.iter().all(|n| n.address.is_ipv6() == l.source.is_ipv6()), "{l:?}");
        assert!(l.nodes.iter().any(|n| n.name == "web1"), "{l:?}");
    }
    assert!(specs.iter().filter(|s| s.node != "edge").all(|s| s.arp_watch.is_none()));
    // ECMP directors hold their VIPs on lo: nobody may answer for them.
    let ecmp = plan("ecmp.toml", include_str!("../../deploy/examples/ecmp.toml"));
    let w = node(&ecmp, "router").arp_watch.as_ref().expect("the router watches");
    assert!(w.lans[0].vips[0].holders.is_empty(), "{w:?}");
}

#[test]
fn a_fwmark_services_marks_go_to_every_director_holding_it_and_nowhere_else() {
    let text = include_str!("../../deploy/examples/dual-stack.toml");
    let specs = plan("dual-stack.toml", text);
    for d in ["lb1", "lb2"] {
        let m: Vec<String> = node(&specs, d).marks.iter().map(ToString::to_string).collect();
        assert_eq!(m, ["TCP 2001:db8:6::200 port 80 → mark 6 (marked)"], "{d}");
    }
    assert!(specs.iter().filter(|s| !s.node.starts_with("lb")).all(|s| s.marks.is_empty()));
    let h = human("dual-stack.toml", text);
    assert!(h.contains("nft      TCP 2001:db8:6::200 port 80 → mark 6 (marked)  (table inet lvs_dr"), "{h}");
    // Two entries of one protocol are one rule, their ports merged; without marks, no rule.
    let two = text.replacen(
        "marks = [{ protocol = \"tcp\", ports = [80] }]",
        "marks = [{ protocol = \"tcp\", ports = [80] }, { protocol = \"tcp\", ports = [\"81-90\", 443] }, { protocol = \"udp\" }]",
        1,
    );
    let m: Vec<String> = node(&plan("two.toml", &two), "lb1").marks.iter().map(ToString::to_string).collect();
    assert_eq!(
        m,
        [
            "TCP 2001:db8:6::200 ports 80-90,443 → mark 6 (marked)",
            "UDP 2001:db8:6::200 every port → mark 6 (marked)"
        ]
    );
    let none = text.replacen("marks = [{ protocol = \"tcp\", ports = [80] }]\n", "", 1);
    assert!(node(&plan("none.toml", &none), "lb1").marks.is_empty());
}
