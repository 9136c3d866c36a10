//! The drain wait's cost per poll against the size of the director's connection table
//! (issue 10, item 6). `rs drain --wait` polls every 200 ms. Before: the agent read all of
//! `/proc/net/ip_vs_conn`, parsed every entry, turned each into a protobuf message and
//! shipped the whole table; the controller decoded it and counted. Now: the agent counts
//! per destination while reading line by line and ships one number per destination.
//!
//! The table is synthesized in the kernel's own format (`ip_vs_conn` lines as
//! `/proc/net/ip_vs_conn` prints them: 4 real servers, mixed states) and read from a file,
//! the same code path the agent runs against procfs. Run: `cargo bench -p lvs-tests --bench drain`.
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lvs_proto::pb;
use prost::Message;

fn table(n: usize) -> String {
    let mut s = String::with_capacity(n * 100);
    s.push_str("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n");
    for i in 0..n {
        let client = 0xC613_0000u32 + (i as u32 % 65_000);
        let dest = 0xC612_000Bu32 + (i as u32 % 4);
        let (state, exp) = match i % 10 {
            0..=5 => ("ESTABLISHED", 900 - (i % 30) as u32),
            6 | 7 => ("FIN_WAIT", 100),
            _ => ("TIME_WAIT", 60),
        };
        s.push_str(&format!(
            "TCP {client:08X} {:04X} C6120064 0050 {dest:08X} 0050 {state:<11} {exp:>7}\n",
            1024 + i % 60_000
        ));
    }
    s
}

/// The old path: read everything, parse, encode as the agent did, decode and count as
/// the controller did. Returns (live count, bytes on the wire).
fn old_poll(path: &std::path::Path, dests: &[SocketAddr]) -> (u32, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let (conns, _) = lvs_ipvs::conn::parse(&text);
    let msg = pb::IpvsTableResponse {
        connections: conns.iter().map(|c| pb::Connection::from(&lvs_agent::kernel::connection(c))).collect(),
        ..Default::default()
    };
    let wire = msg.encode_to_vec();
    let back = pb::IpvsTableResponse::decode(&wire[..]).unwrap();
    let names: Vec<String> = dests.iter().map(ToString::to_string).collect();
    let live = back
        .connections
        .iter()
        .filter(|c| names.contains(&c.destination) && c.state == "ESTABLISHED" && c.expires_s + 15 >= 900)
        .count() as u32;
    (live, wire.len())
}

/// The new path: the agent's streaming count, and its reply as it goes on the wire.
fn new_poll(path: &std::path::Path, dests: &[SocketAddr]) -> (u32, usize) {
    let f = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(path).unwrap());
    let counts =
        lvs_ipvs::conn::count(f, dests, lvs_ipvs::conn::Liveness { tcp_s: 900, udp_s: 300, within_s: 15 })
            .unwrap();
    let reply = pb::LiveConnectionsResponse {
        counts: dests
            .iter()
            .zip(&counts)
            .map(|(d, c)| pb::DestinationConnections {
                destination: d.to_string(),
                live: c.live,
                total: c.total,
            })
            .collect(),
    };
    (counts.iter().map(|c| c.live).sum(), reply.encode_to_vec().len())
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> (T, Duration) {
    let mut last = f(); // warm the page cache and the allocator
    let t = Instant::now();
    for _ in 0..runs {
        last = f();
    }
    (last, t.elapsed() / runs)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let dests: Vec<SocketAddr> = vec!["198.18.0.11:80".parse().unwrap()];
    println!("drain-wait poll, one destination of four, table read from a file in procfs format");
    println!(
        "{:>10} {:>12} {:>14} {:>12} {:>10} {:>8}",
        "entries", "old ms/poll", "old bytes", "new ms/poll", "new bytes", "ratio"
    );
    for n in [10_000usize, 100_000, 1_000_000] {
        let path = dir.path().join(format!("ip_vs_conn.{n}"));
        std::fs::File::create(&path).unwrap().write_all(table(n).as_bytes()).unwrap();
        let runs = if n >= 1_000_000 { 3 } else { 10 };
        let ((old_live, old_bytes), old_t) = time(runs, || old_poll(&path, &dests));
        let ((new_live, new_bytes), new_t) = time(runs, || new_poll(&path, &dests));
        assert_eq!(old_live, new_live, "both paths count the same");
        println!(
            "{n:>10} {:>12.2} {old_bytes:>14} {:>12.2} {new_bytes:>10} {:>7.1}x",
            old_t.as_secs_f64() * 1e3,
            new_t.as_secs_f64() * 1e3,
            old_t.as_secs_f64() / new_t.as_secs_f64()
        );
    }
}
