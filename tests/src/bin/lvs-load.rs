//! `lvs-load`: the test load generator. Keeps CONCURRENCY HTTP/1.0 GETs in flight against
//! a URL's host:port for DURATION (or until a stop file appears) and reports, as one JSON
//! line, how many requests were sent, answered (2xx/3xx) and failed, and answers per body
//! first line. Each request is its own TCP connection, as a browser's would be through
//! LVS: a drained real server must finish it, a removed one would reset it.
//!
//! With `--every INTERVAL` it is an open-loop client instead: a new request starts every
//! INTERVAL whatever the others are doing, as independent users arrive. A closed loop
//! sends nothing while its requests stall, so it under-counts what a stall costs; an open
//! loop keeps arriving through it, and every request that meets the stall is counted.
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
    /// Open loop: start a request every INTERVAL, whatever the ones in flight are doing
    /// (`--concurrency` is then ignored).
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
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
    /// The slowest answered requests, slowest first (at most [`SLOW_KEPT`]): when each
    /// started and where its time went, to lay beside the moment of a failover.
    slow: Vec<Slow>,
}

/// How many of the slowest answered requests a report keeps.
const SLOW_KEPT: usize = 10;

/// One answered request and where its time went.
#[derive(Debug, Clone, serde::Serialize)]
struct Slow {
    /// When it started, milliseconds since the Unix epoch.
    start_unix_ms: u64,
    /// From start to the whole answer.
    took_ms: u64,
    /// From start to the connection being established (the handshake).
    connect_ms: u64,
    /// The client's port, to find it in a capture.
    local_port: u16,
}

impl Tally {
    /// Add a worker's tally.
    fn merge(&mut self, t: Tally) {
        self.sent += t.sent;
        self.answered += t.answered;
        self.failed += t.failed;
        self.lost_workers += t.lost_workers;
        self.slowest_ms = self.slowest_ms.max(t.slowest_ms);
        for (k, v) in t.bodies {
            *self.bodies.entry(k).or_default() += v;
        }
        for (k, v) in t.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.failures.extend(t.failures);
        self.keep_slow(t.slow);
    }

    /// Add a worker's outcome: its tally, or its panic (counted in `lost_workers`).
    fn fold(&mut self, r: Result<Tally, tokio::task::JoinError>) {
        match r {
            Ok(t) => self.merge(t),
            Err(e) => {
                self.lost_workers += 1;
                *self.errors.entry(format!("worker lost: {e}")).or_default() += 1;
            }
        }
    }

    /// Keep the [`SLOW_KEPT`] slowest of ours and `more`.
    fn keep_slow(&mut self, more: Vec<Slow>) {
        self.slow.extend(more);
        self.slow.sort_by_key(|s| std::cmp::Reverse(s.took_ms));
        self.slow.truncate(SLOW_KEPT);
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
        total.fold(r);
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
    /// Milliseconds from the start to the established connection.
    connect_ms: std::sync::atomic::AtomicU64,
}

const STAGES: [&str; 3] = ["connect", "send", "read"];

async fn one(target: SocketAddr, timeout: Duration, at: &Progress) -> Result<String, String> {
    use std::sync::atomic::Ordering::Relaxed;
    let t0 = Instant::now();
    let fut = async {
        let mut s =
            tokio::net::TcpStream::connect(target).await.map_err(|e| format!("connect: {}", e.kind()))?;
        at.connect_ms.store(t0.elapsed().as_millis() as u64, Relaxed);
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

/// What every request's outcome is recorded into: the caller's tally, and the answer
/// order and answer times shared by all requests.
#[derive(Clone, Default)]
struct Shared {
    seq: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    answered_at: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

/// Run one request and record its outcome in `t`.
async fn request(target: SocketAddr, timeout: Duration, t: &mut Tally, shared: &Shared) {
    use std::sync::atomic::Ordering::Relaxed;
    t.sent += 1;
    let (started, t0, at) = (unix_ms(), Instant::now(), Progress::default());
    match one(target, timeout, &at).await {
        Ok(b) => {
            t.answered += 1;
            let took_ms = t0.elapsed().as_millis() as u64;
            t.slowest_ms = t.slowest_ms.max(took_ms);
            if t.slow.len() < SLOW_KEPT || t.slow.last().is_some_and(|s| s.took_ms < took_ms) {
                let slow = Slow {
                    start_unix_ms: started,
                    took_ms,
                    connect_ms: at.connect_ms.load(Relaxed),
                    local_port: at.port.load(Relaxed),
                };
                t.keep_slow(vec![slow]);
            }
            shared.answered_at.lock().expect("answer times").push(unix_ms());
            let mut s = shared.seq.lock().expect("sequence");
            if s.len() < 200 {
                s.push(b.clone());
            }
            *t.bodies.entry(b).or_default() += 1;
        }
        Err(e) => {
            t.failed += 1;
            *t.errors.entry(e.clone()).or_default() += 1;
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total = run(&Args::parse()).await;
    println!("{}", serde_json::to_string(&total).expect("tally serializes"));
    if total.lost_workers > 0 {
        std::process::exit(3);
    }
}

/// The whole run: the closed loop, or the open one with `--every`.
async fn run(a: &Args) -> Tally {
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let shared = Shared::default();
    // Requests of the open loop that are over, folded in as it goes.
    let mut folded = Tally::default();
    let done = {
        let (duration, stop_file) = (a.duration, a.stop_file.clone());
        move || start.elapsed() >= duration || stop_file.as_ref().is_some_and(|f| f.exists())
    };
    if let Some(every) = a.every {
        // Open loop: one task per request, started on the clock. A tick missed while the
        // machine was busy is not made up in a burst (which would be load of our making).
        let mut clock = tokio::time::interval(every.max(Duration::from_millis(1)));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut issued = 0u64;
        while !done() && (a.requests == 0 || issued < a.requests) {
            clock.tick().await;
            issued += 1;
            let (target, timeout, shared) = (a.target, a.timeout, shared.clone());
            workers.spawn(async move {
                let mut t = Tally::default();
                request(target, timeout, &mut t, &shared).await;
                t
            });
            // The set holds only the requests in flight.
            while let Some(r) = workers.try_join_next() {
                folded.fold(r);
            }
        }
    } else {
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        for _ in 0..a.concurrency.max(1) {
            let (target, timeout, limit) = (a.target, a.timeout, a.requests);
            let (issued, shared, done) = (issued.clone(), shared.clone(), done.clone());
            workers.spawn(async move {
                let mut t = Tally::default();
                while !done() {
                    if limit > 0 && issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit {
                        break;
                    }
                    request(target, timeout, &mut t, &shared).await;
                }
                t
            });
        }
    }
    let mut total = collect(&mut workers).await;
    total.merge(folded);
    total.gaps(std::mem::take(&mut *shared.answered_at.lock().expect("answer times")));
    total.elapsed_ms = start.elapsed().as_millis() as u64;
    total.sequence = shared.seq.lock().expect("sequence").clone();
    total
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

    /// A server that accepts and never answers: the closed loop stops at its `-c` requests
    /// in flight, the open loop keeps starting one per interval, and each times out.
    #[tokio::test(flavor = "current_thread")]
    async fn the_open_loop_keeps_arriving_while_every_request_stalls() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.push(c);
            }
        });
        let to = target.to_string();
        let args = |extra: &[&str]| {
            let mut v = vec!["lvs-load", "-d", "500ms", "--timeout", "400ms", to.as_str()];
            v.extend(extra);
            Args::parse_from(v)
        };
        let closed = run(&args(&["-c", "2"])).await;
        assert_eq!((closed.sent, closed.answered), (4, 0), "two workers, two 400 ms timeouts each in 500 ms");
        let open = run(&args(&["--every", "20ms"])).await;
        assert!(open.sent >= 20, "one request per 20 ms for 500 ms, whatever the stall: {}", open.sent);
        assert_eq!((open.answered, open.failed), (0, open.sent), "every one timed out and was counted");
        assert_eq!(open.errors.get("timeout"), Some(&open.sent));
    }

    #[test]
    fn only_the_slowest_answers_are_kept_slowest_first() {
        let slow = |took_ms| Slow { start_unix_ms: 1, took_ms, connect_ms: 0, local_port: 0 };
        let mut t = Tally::default();
        t.keep_slow((1..=25).map(slow).collect());
        let mut other = Tally { lost_workers: 1, ..Tally::default() };
        other.keep_slow(vec![slow(7), slow(400)]);
        t.merge(other);
        let kept: Vec<u64> = t.slow.iter().map(|s| s.took_ms).collect();
        assert_eq!(kept, [400, 25, 24, 23, 22, 21, 20, 19, 18, 17]);
        assert_eq!(t.lost_workers, 1, "a folded-in tally's lost workers are kept");
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
