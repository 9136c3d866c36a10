//! The director's marking table on this host's kernel (nf_tables needs no IPVS), through
//! the agent's own reconciler and `nft`: a spec's marks are loaded into `inet lvs_dr`, read
//! back exactly, count the packets they mark, are found drifted when flushed by hand and
//! healed by the next apply, and are removed on decommission, while a user's table in the
//! same namespace is never touched. A table of that name the agent did not make is a
//! conflict until adopted. The VM's e2e test carries real traffic to IPVS through it.
use std::process::Command;
use std::sync::Arc;

use lvs_agent::kernel::NetSystem;
use lvs_agent::kernel::System as _;
use lvs_agent::reconcile::{ReconcileError, Reconciler, Store};
use lvs_proto::NodeSpec;
use lvs_proto::spec::{MarkRule, PortRange, Protocol, Role};
use lvs_tests::{in_netns, root_suite_can_run};

fn nft(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip").args(["netns", "exec", ns, "nft"]).args(args).output().unwrap();
    assert!(o.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn rule(service: &str, address: &str, protocol: Protocol, ports: &[(u16, u16)], mark: u32) -> MarkRule {
    MarkRule {
        service: service.into(),
        address: address.parse().unwrap(),
        protocol,
        ports: ports.iter().map(|&(first, last)| PortRange { first, last }).collect(),
        mark,
    }
}

/// A director's spec holding only marks (the reconciler's part under test: no IPVS here).
fn spec(marks: Vec<MarkRule>) -> NodeSpec {
    NodeSpec {
        cluster: "t".into(),
        node: "lb1".into(),
        role: Role::Director,
        generation: 1,
        addresses: vec![],
        routes: vec![],
        sysctls: vec![],
        virtual_services: vec![],
        checks: vec![],
        ipvs_timeouts: None,
        vrrp: None,
        bgp: None,
        arp_watch: None,
        marks,
    }
}

#[test]
fn the_marking_table_is_loaded_counted_healed_and_removed_beside_a_users_table() {
    let have_nft = std::path::Path::new("/usr/sbin/nft").exists();
    if !root_suite_can_run(Some(("nft", have_nft))) {
        return;
    }
    let ns = Ns(format!("mk{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "198.18.0.100/32", "dev", "lo"]);
    nft(&ns.0, &["add", "table", "inet", "userfw"]);
    nft(&ns.0, &["add", "chain", "inet", "userfw", "input", "{ type filter hook input priority 0; }"]);
    nft(&ns.0, &["add", "rule", "inet", "userfw", "input", "tcp", "dport", "22", "accept"]);
    let users = nft(&ns.0, &["list", "table", "inet", "userfw"]);
    let mut marks = vec![
        rule("web", "198.18.0.100", Protocol::Tcp, &[(80, 80), (443, 443)], 7),
        rule("web", "2001:db8::100", Protocol::Tcp, &[(80, 80), (443, 443)], 7),
        rule("media", "198.18.0.100", Protocol::Udp, &[(8000, 8099)], 9),
        rule("media", "198.18.0.100", Protocol::Sctp, &[], 9),
    ];
    marks.sort();
    let dir = tempfile::tempdir().unwrap();
    in_netns(&ns.0, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sys = Arc::new(NetSystem::new().unwrap());
            let r = Reconciler::new("lb1", sys.clone(), Store::new(dir.path()));
            let want = spec(marks.clone());

            // Loaded, and read back exactly as the spec says.
            let rep = r.apply(&want, false).await.unwrap();
            assert!(rep.converged, "{rep:?}");
            let t = sys.mark_table().await.unwrap().expect("the table");
            assert!(t.strange.is_empty(), "{:?}", t.strange);
            assert_eq!(t.sorted_rules(), marks);
            assert!(r.drift().await.unwrap().unwrap().1.actions.is_empty(), "idempotent");

            // A packet to VIP:443 crosses prerouting and is marked (a refused connect sends a SYN).
            let _ = std::net::TcpStream::connect_timeout(
                &"198.18.0.100:443".parse().unwrap(),
                std::time::Duration::from_millis(200),
            );
            let t = sys.mark_table().await.unwrap().unwrap();
            let web = t.rules.iter().find(|f| f.rule.mark == 7 && f.rule.address.is_ipv4()).unwrap();
            assert!(web.packets >= 1, "{t:?}");
            println!("marked {} packet(s) to 198.18.0.100:443", web.packets);

            // Flushed by hand: drift names what is missing; the next apply puts it back.
            nft(&ns.0, &["flush", "chain", "inet", "lvs_dr", "marks"]);
            let drift = r.drift().await.unwrap().unwrap().1.actions;
            assert_eq!(drift.len(), 1);
            assert!(
                drift[0]
                    .to_string()
                    .starts_with("nftables: load table inet lvs_dr with 4 marking rules (found: missing "),
                "{}",
                drift[0]
            );
            assert!(r.apply(&want, false).await.unwrap().converged);
            assert_eq!(sys.mark_table().await.unwrap().unwrap().sorted_rules(), marks);

            // A rule of another shape added to it: strange, and healed away.
            nft(&ns.0, &["add", "rule", "inet", "lvs_dr", "marks", "ip", "daddr", "198.18.0.100", "drop"]);
            let t = sys.mark_table().await.unwrap().unwrap();
            assert_eq!(t.strange.len(), 1, "{t:?}");
            assert!(r.apply(&want, false).await.unwrap().converged);
            assert!(sys.mark_table().await.unwrap().unwrap().strange.is_empty());
            assert_eq!(
                nft(&ns.0, &["list", "table", "inet", "userfw"]),
                users,
                "the user's table after apply"
            );

            // Decommissioned: ours goes, the user's stays.
            let rep = r.decommission().await.unwrap();
            assert!(rep.converged, "{rep:?}");
            assert!(sys.mark_table().await.unwrap().is_none());
            assert_eq!(
                nft(&ns.0, &["list", "table", "inet", "userfw"]),
                users,
                "the user's table after decommission"
            );

            // A table of that name this agent did not make (its state lost): refused, then adopted.
            let other = tempfile::tempdir().unwrap();
            nft(&ns.0, &["add", "table", "inet", "lvs_dr"]);
            let fresh = Reconciler::new("lb1", sys.clone(), Store::new(other.path()));
            let want = NodeSpec { generation: 2, ..want };
            match fresh.apply(&want, false).await {
                Err(ReconcileError::Preflight(c)) => {
                    assert!(c[0].contains("was not created by this agent"), "{c:?}")
                }
                other => panic!("{other:?}"),
            }
            assert!(fresh.apply(&want, true).await.unwrap().converged);
            assert_eq!(sys.mark_table().await.unwrap().unwrap().sorted_rules(), marks);
        });
    });
}
