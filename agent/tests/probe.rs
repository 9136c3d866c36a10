//! The open-loop probe a failover drill sends through the VIP: requests start on time
//! whatever the answers do, the longest time without an answer is the outage a client saw,
//! and a drill's result is kept for the router's metrics. Real HTTP over loopback from a
//! server in this test that stops answering for a while.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::{Agent, ProbeRequest};
use lvs_agent::reconcile::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers 200, except from `down.0` to `down.1` after it started, when it closes every
/// connection unanswered.
async fn server(down: (Duration, Duration)) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let t0 = Instant::now();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let at = t0.elapsed();
                if at >= down.0 && at < down.1 {
                    return;
                }
                let body = "web\n";
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_open_loop_probe_keeps_its_pace_through_an_outage_and_measures_it() {
    let addr = server((Duration::from_millis(400), Duration::from_millis(800))).await;
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::new("router", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(dir.path()));
    let v = a
        .probe(ProbeRequest {
            target: addr,
            path: "/".into(),
            host: None,
            count: 10_000,
            concurrency: 16,
            timeout: Duration::from_millis(500),
            interval: Some(Duration::from_millis(20)),
            duration: Some(Duration::from_millis(1200)),
            drill: Some("web".into()),
        })
        .await;
    // 1.2 s at one every 20 ms: about 60, whatever the outage did (open loop; a loaded
    // machine may start the last few late, never more than the schedule).
    assert!((40..=61).contains(&v.sent), "sent {}", v.sent);
    assert_eq!(v.answered + v.failed, v.sent);
    // The 0.4 s outage: its requests failed, and no answer came for about that long.
    assert!((10..=26).contains(&v.failed), "failed {}: {:?}", v.failed, v.errors);
    assert!((380..1000).contains(&v.longest_gap_ms), "longest gap {} ms", v.longest_gap_ms);
    assert!(v.slowest_ms < 400, "slowest {} ms", v.slowest_ms);
    // Kept as the drill's last result, for the router's metrics.
    let d = a.last_drill().expect("the drill's result");
    assert_eq!((d.name.as_str(), d.tally.sent, d.tally.failed), ("web", v.sent, v.failed));
    assert!(d.unix_ms > 0);
}

#[tokio::test]
async fn a_closed_loop_probe_sends_its_count_and_keeps_no_drill() {
    let addr = server((Duration::from_secs(3600), Duration::from_secs(3601))).await;
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::new("router", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(dir.path()));
    let v = a
        .probe(ProbeRequest {
            target: addr,
            path: "/".into(),
            host: None,
            count: 40,
            concurrency: 1,
            timeout: Duration::from_secs(1),
            interval: None,
            duration: None,
            drill: None,
        })
        .await;
    assert_eq!((v.sent, v.answered, v.failed), (40, 40, 0));
    assert_eq!(v.sequence.len(), 40);
    assert!(a.last_drill().is_none());
}
