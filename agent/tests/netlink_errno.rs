//! A kernel refusal keeps its errno through the agent's error types (issue 11, item 2):
//! code above the `System` boundary can still tell EEXIST from ENODEV. Real rtnetlink, in a
//! network namespace of this test's own (root; skipped elsewhere unless CI requires it).
use lvs_agent::kernel::NetSystem;
use lvs_agent::kernel::{Address, System};

/// Run `f` on a thread of its own in a fresh network namespace (processes it starts too).
fn in_own_netns(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread, which owns nothing else.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap();
}

#[test]
fn a_kernel_refusal_keeps_its_errno() {
    if !lvs_tests::root_suite_can_run(None) {
        return;
    }
    in_own_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sys = NetSystem::new().unwrap();
            let a =
                Address { interface: "lo".into(), address: "198.18.99.1/32".parse().unwrap(), label: None };
            sys.add_address(&a).await.expect("first add");
            let e = sys.add_address(&a).await.expect_err("second add of the same address");
            assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
            let missing = Address { interface: "nope0".into(), ..a };
            let e = sys.add_address(&missing).await.unwrap_err();
            assert!(e.errno().is_none() && e.to_string().contains("no such interface"), "{e}");
        });
    });
}

/// Issue 28, on the real kernel: an IPv6 VIP the agent adds on a LAN interface is usable at
/// once (`nodad`, never `tentative`) and deprecated (preferred lifetime 0, so never a source
/// address), as keepalived adds its own; an IPv6 LAN address keeps duplicate address
/// detection. The agent reads both back as the addresses it asked for (no drift).
#[test]
fn an_ipv6_vip_is_usable_at_once_and_never_a_source() {
    if !lvs_tests::root_suite_can_run(None) {
        return;
    }
    in_own_netns(|| {
        let ip = |args: &[&str]| std::process::Command::new("ip").args(args).output().unwrap();
        assert!(ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]).status.success());
        assert!(ip(&["link", "set", "eth1p", "up"]).status.success());
        assert!(ip(&["link", "set", "eth1", "up"]).status.success());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sys = NetSystem::new().unwrap();
            let vip = Address {
                interface: "eth1".into(),
                address: "2001:db8:99::100/128".parse().unwrap(),
                label: None,
            };
            let lan = Address {
                interface: "eth1".into(),
                address: "2001:db8:99::2/64".parse().unwrap(),
                label: None,
            };
            sys.add_address(&lan).await.expect("LAN address");
            sys.add_address(&vip).await.expect("VIP");
            let seen = sys.addresses().await.unwrap();
            assert!(seen.contains(&vip) && seen.contains(&lan), "{seen:?}");
        });
        let shown =
            String::from_utf8_lossy(&ip(&["-6", "-o", "addr", "show", "dev", "eth1"]).stdout).into_owned();
        let line = |a: &str| {
            shown.lines().find(|l| l.contains(a)).unwrap_or_else(|| panic!("{a} in {shown}")).to_string()
        };
        let vip = line("2001:db8:99::100/128");
        assert!(vip.contains("nodad") && vip.contains("deprecated") && !vip.contains("tentative"), "{vip}");
        assert!(vip.contains("preferred_lft 0sec"), "{vip}");
        let lan = line("2001:db8:99::2/64");
        assert!(!lan.contains("nodad") && !lan.contains("deprecated"), "{lan}");
    });
}
