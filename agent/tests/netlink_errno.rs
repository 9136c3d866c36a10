//! A kernel refusal keeps its errno through the agent's error types (issue 11, item 2):
//! code above the `System` boundary can still tell EEXIST from ENODEV. Real rtnetlink, in a
//! network namespace of this test's own (root; skipped elsewhere unless CI requires it).
use lvs_agent::kernel::NetSystem;
use lvs_agent::kernel::{Address, System};

#[test]
fn a_kernel_refusal_keeps_its_errno() {
    if !lvs_tests::root_suite_can_run(None) {
        return;
    }
    std::thread::spawn(|| {
        // SAFETY: unshare affects only this thread, which owns nothing else.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
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
    })
    .join()
    .unwrap();
}
