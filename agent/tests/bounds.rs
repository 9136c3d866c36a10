//! What a peer sends cannot grow the agent's memory without bound (issue 10, item 6): a
//! real server answering with an endless body, or with a different first line every time.
//! Real HTTP over loopback from a tiny server in this test.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::{Agent, ProbeRequest};
use lvs_agent::reconcile::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serve every connection with `reply(n)` for the n-th request; `endless`: then keep
/// sending body chunks until the peer goes away.
async fn server(reply: impl Fn(u64) -> String + Send + Sync + 'static, endless: bool) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let reply = Arc::new(reply);
    let n = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let (reply, n) = (Arc::clone(&reply), Arc::clone(&n));
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let text = reply(n.fetch_add(1, Ordering::Relaxed));
                if s.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                while endless && s.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    let addr = server(|_| "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".into(), true).await;
    let r = lvs_agent::health::get(addr, "x", "/", Duration::from_secs(5))
        .await
        .expect("answer within the deadline");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), lvs_agent::health::MAX_BODY);
}

#[tokio::test]
async fn a_probe_tallies_a_bounded_number_of_short_lines() {
    let long = "y".repeat(10_000);
    let addr = server(
        move |n| {
            let body = format!("server {n} {long}\n");
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        },
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(dir.path()));
    let v = a
        .probe(ProbeRequest {
            target: addr,
            path: "/".into(),
            host: None,
            count: 500,
            concurrency: 8,
            timeout: Duration::from_secs(5),
            interval: None,
            duration: None,
            drill: None,
        })
        .await;
    assert_eq!(v.answered, 500, "{:?}", v.errors);
    assert!(v.bodies.len() <= 65, "{} distinct keys kept", v.bodies.len());
    assert!(v.bodies.keys().all(|k| k.chars().count() <= 121), "lines are cut");
    assert_eq!(v.bodies.values().sum::<u32>(), 500, "every answer counted");
    assert!(v.bodies["(other)"] > 400);
}
