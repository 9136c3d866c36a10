//! The real [`NetSystem`] under concurrent observers (issue 10, item 1). The agent's apply,
//! heal, status, health flusher and facts all read the kernel at once; rtnetlink shares one
//! socket, and a second dump started while the first is in flight is refused with EBUSY.
//! Reads only, so it runs in the test's own network namespace; needs root for nothing but
//! is meaningful only where the kernel is real (always).
use std::sync::Arc;

use lvs_agent::kernel::NetSystem;
use lvs_agent::kernel::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dumps_of_links_addresses_and_routes_never_fail() {
    let sys = Arc::new(NetSystem::new().expect("rtnetlink"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let s = Arc::clone(&sys);
        tasks.spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..150 {
                let r = match i % 3 {
                    0 => s.links().await.map(|_| ()),
                    1 => s.addresses().await.map(|_| ()),
                    _ => s.routes().await.map(|_| ()),
                };
                if let Err(e) = r {
                    errors.push(e.to_string());
                }
            }
            errors
        });
    }
    let mut failures = Vec::new();
    while let Some(r) = tasks.join_next().await {
        failures.extend(r.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of 1800 reads failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}
