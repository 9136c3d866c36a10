//! `lvs-load`: the test load generator. Keeps CONCURRENCY HTTP/1.0 GETs in flight against
//! a URL's host:port for DURATION (or until a stop file appears) and reports, as one JSON
//! line, how many requests were sent, answered (2xx/3xx) and failed, and answers per body
//! first line. Each request is its own TCP connection, as a browser's would be through
//! LVS: a drained real server must finish it, a removed one would reset it.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
struct Args {
    /// Target ip:port.
    target: SocketAddr,
    /// Requests in flight at once.
    #[arg(short, long, default_value_t = 4)]
    concurrency: usize,
    /// How long to run.
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop early when this file exists.
    #[arg(long)]
    stop_file: Option<PathBuf>,
    /// Stop after this many requests in all (0: no limit).
    #[arg(short = 'n', long, default_value_t = 0)]
    requests: u64,
    /// Per-request deadline.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Default, serde::Serialize)]
struct Tally {
    sent: u64,
    answered: u64,
    failed: u64,
    bodies: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    elapsed_ms: u64,
    /// Body first lines in order (first 200 answers), to see round-robin alternate.
    sequence: Vec<String>,
    /// The slowest answered request, in milliseconds.
    slowest_ms: u64,
    /// The first 50 failures, each with when and where it failed, to lay beside the
    /// moment of a failover or a drain.
    failures: Vec<Failure>,
    /// Workers that panicked: their requests are lost from the counts above, so a run with
    /// any is a failed run (exit status 3), never a clean one.
    lost_workers: u64,
    /// The longest time with no request answered, in milliseconds, from the first answer to
    /// the last (0 with fewer than two): with several clients in flight, the outage a client
    /// saw, to within the time one request takes.
    longest_gap_ms: u64,
    /// When that gap began (the answer before it), milliseconds since the Unix epoch.
    gap_start_unix_ms: u64,
}

impl Tally {
    /// Add a worker's tally.
    fn merge(&mut self, t: Tally) {
        self.sent += t.sent;
        self.answered += t.answered;
        self.failed += t.failed;
        self.slowest_ms = self.slowest_ms.max(t.slowest_ms);
        for (k, v) in t.bodies {
            *self.bodies.entry(k).or_default() += v;
        }
        for (k, v) in t.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.failures.extend(t.failures);
    }

    /// The longest gap between consecutive answers (their completion times, in ms).
    fn gaps(&mut self, mut answered_at: Vec<u64>) {
        answered_at.sort_unstable();
        if let Some(w) = answered_at.windows(2).max_by_key(|w| w[1] - w[0]) {
            (self.longest_gap_ms, self.gap_start_unix_ms) = (w[1] - w[0], w[0]);
        }
    }
}

/// Every worker's tally, however each ended: one that panicked is counted in
/// `lost_workers` and its panic in `errors`; the others' tallies all arrive.
async fn collect(workers: &mut tokio::task::JoinSet<Tally>) -> Tally {
    let mut total = Tally::default();
    while let Some(r) = workers.join_next().await {
        match r {
            Ok(t) => total.merge(t),
            Err(e) => {
                total.lost_workers += 1;
                *total.errors.entry(format!("worker lost: {e}")).or_default() += 1;
            }
        }
    }
    total
}

/// One failed request.
#[derive(Debug, serde::Serialize)]
struct Failure {
    /// When it started, milliseconds since the Unix epoch.
    start_unix_ms: u64,
    /// How long it took to fail.
    took_ms: u64,
    /// What it was doing: `connect`, `send` or `read` (for a timeout, where it stood).
    stage: &'static str,
    /// The error.
    error: String,
    /// The client's port (0 if it had none yet), to find it in a capture.
    local_port: u16,
}

/// Where a request stands, for a timeout to say.
#[derive(Default)]
struct Progress {
    stage: std::sync::atomic::AtomicU8,
    port: std::sync::atomic::AtomicU16,
}

const STAGES: [&str; 3] = ["connect", "send", "read"];

async fn one(target: SocketAddr, timeout: Duration, at: &Progress) -> Result<String, String> {
    use std::sync::atomic::Ordering::Relaxed;
    let fut = async {
        let mut s =
            tokio::net::TcpStream::connect(target).await.map_err(|e| format!("connect: {}", e.kind()))?;
        at.port.store(s.local_addr().map(|a| a.port()).unwrap_or(0), Relaxed);
        at.stage.store(1, Relaxed);
        s.write_all(format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", target.ip()).as_bytes())
            .await
            .map_err(|e| format!("send: {}", e.kind()))?;
        at.stage.store(2, Relaxed);
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| format!("read: {}", e.kind()))?;
        let text = String::from_utf8_lossy(&buf);
        let status = text.split_whitespace().nth(1).unwrap_or("");
        if !(status.starts_with('2') || status.starts_with('3')) {
            return Err(format!("status {status}"));
        }
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok(body.lines().next().unwrap_or("").trim().to_string())
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| Err("timeout".into()))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seq = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let answered_at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for _ in 0..a.concurrency.max(1) {
        let (target, timeout, duration, stop_file) = (a.target, a.timeout, a.duration, a.stop_file.clone());
        let (issued, limit, seq, answered_at) =
            (issued.clone(), a.requests, seq.clone(), answered_at.clone());
        workers.spawn(async move {
            let mut t = Tally::default();
            while !(start.elapsed() >= duration || stop_file.as_ref().is_some_and(|f| f.exists())) {
                if limit > 0 && issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit {
                    break;
                }
                t.sent += 1;
                let (started, t0, at) = (unix_ms(), Instant::now(), Progress::default());
                match one(target, timeout, &at).await {
                    Ok(b) => {
                        t.answered += 1;
                        t.slowest_ms = t.slowest_ms.max(t0.elapsed().as_millis() as u64);
                        answered_at.lock().expect("answer times").push(unix_ms());
                        let mut s = seq.lock().expect("sequence");
                        if s.len() < 200 {
                            s.push(b.clone());
                        }
                        *t.bodies.entry(b).or_default() += 1;
                    }
                    Err(e) => {
                        t.failed += 1;
                        *t.errors.entry(e.clone()).or_default() += 1;
                        use std::sync::atomic::Ordering::Relaxed;
                        if t.failures.len() < 50 {
                            t.failures.push(Failure {
                                start_unix_ms: started,
                                took_ms: t0.elapsed().as_millis() as u64,
                                stage: STAGES[usize::from(at.stage.load(Relaxed)).min(2)],
                                error: e,
                                local_port: at.port.load(Relaxed),
                            });
                        }
                    }
                }
            }
            t
        });
    }
    let mut total = collect(&mut workers).await;
    total.gaps(std::mem::take(&mut *answered_at.lock().expect("answer times")));
    total.elapsed_ms = start.elapsed().as_millis() as u64;
    total.sequence = seq.lock().expect("sequence").clone();
    println!("{}", serde_json::to_string(&total).expect("tally serializes"));
    if total.lost_workers > 0 {
        std::process::exit(3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker that panics is counted and named; the tallies of the workers that end after
    /// it still arrive.
    #[tokio::test]
    async fn a_panicked_worker_is_counted_and_the_later_tallies_are_kept() {
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(async { panic!("boom") });
        for i in 1..=3u64 {
            workers.spawn(async move {
                tokio::time::sleep(Duration::from_millis(20 * i)).await;
                Tally { sent: i, answered: i, ..Tally::default() }
            });
        }
        let t = collect(&mut workers).await;
        assert_eq!(t.lost_workers, 1);
        assert_eq!((t.sent, t.answered), (6, 6), "every other worker's tally arrived");
        assert!(t.errors.keys().any(|e| e.contains("worker lost") && e.contains("panic")), "{:?}", t.errors);
    }

    #[test]
    fn the_longest_gap_between_answers_is_found_in_any_order() {
        let mut t = Tally::default();
        t.gaps(vec![1_000, 1_050, 1_400, 1_100, 1_420]);
        assert_eq!((t.longest_gap_ms, t.gap_start_unix_ms), (300, 1_100));
        let mut one = Tally::default();
        one.gaps(vec![5]);
        assert_eq!(one.longest_gap_ms, 0);
    }
}
