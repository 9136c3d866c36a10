//! `verify`'s probe of a VIP from this node, and a failover drill's requests: HTTP requests
//! with a bounded tally of the answers (which real server answered, how often, the slowest
//! answer, the longest time with none). Closed loop (the next request when one ends) or open
//! loop (one every interval, whatever the answers do, as a VIP's clients send them).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use lvs_proto::reply::{EventKind, ProbeTally};

use super::agent::Agent;
use crate::kernel::system::System;
use crate::telemetry::ha_families::DrillResult;

/// A VIP probe's request.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// The VIP and port the requests go to, as a client reaches them.
    pub target: SocketAddr,
    /// The HTTP path asked for; an answer below 500 counts as answered.
    pub path: String,
    /// Host header.
    pub host: Option<String>,
    /// How many requests (the cap, with `duration`).
    pub count: u32,
    /// How many at once.
    pub concurrency: u32,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Open loop: a request starts every `interval`; `None`: when one ends.
    pub interval: Option<Duration>,
    /// Keep sending this long; `None`: until `count` were sent.
    pub duration: Option<Duration>,
    /// A failover drill's name: the tally is kept as its last result and reported.
    pub drill: Option<String>,
}

impl<S: System + 'static> Agent<S> {
    // Long on purpose: one loop that starts requests on time and tallies each answer as it
    // arrives; split, its timing state would be passed around in pieces.
    /// Send the requests and tally the answers. Memory is `concurrency` requests in flight
    /// and a bounded tally, whatever `count` is.
    pub async fn probe(&self, req: ProbeRequest) -> ProbeTally {
        let start = Instant::now();
        let host = req.host.clone().unwrap_or_else(|| req.target.ip().to_string());
        let concurrency = req.concurrency.clamp(1, 64) as usize;
        let mut inflight = FuturesUnordered::new();
        let mut v = ProbeTally::default();
        let (mut started, mut next_at, mut last_answer) = (0u32, start, start);
        loop {
            let more = started < req.count && req.duration.is_none_or(|d| start.elapsed() < d);
            if !more && inflight.is_empty() {
                break;
            }
            let room = inflight.len() < concurrency;
            if more && room && Instant::now() >= next_at {
                started += 1;
                if let Some(i) = req.interval {
                    next_at += i;
                }
                let (target, host, path, timeout) = (req.target, host.clone(), req.path.clone(), req.timeout);
                inflight.push(async move {
                    let t0 = Instant::now();
                    (crate::health::http::get(target, &host, &path, timeout).await, t0.elapsed())
                });
                continue;
            }
            tokio::select! {
                Some((r, took)) = inflight.next(), if !inflight.is_empty() => {
                    if tally(&mut v, r, req.count <= 64) {
                        let now = Instant::now();
                        v.longest_gap_ms = v.longest_gap_ms.max(now.duration_since(last_answer).as_millis() as u64);
                        last_answer = now;
                        v.slowest_ms = v.slowest_ms.max(took.as_millis() as u64);
                    }
                }
                () = tokio::time::sleep_until(next_at.into()), if more && room => {}
            }
        }
        v.longest_gap_ms = v.longest_gap_ms.max(last_answer.elapsed().as_millis() as u64);
        v.sent = started;
        v.elapsed_ms = start.elapsed().as_millis() as u64;
        if let Some(name) = req.drill {
            self.events.emit(
                EventKind::Drill,
                format!(
                    "drill {name}: {} request(s) through {}, {} failed, slowest {} ms, longest without an answer {} ms",
                    v.sent, req.target, v.failed, v.slowest_ms, v.longest_gap_ms
                ),
            );
            let unix_ms = crate::telemetry::events::unix_ms();
            *self.drill_last.lock().expect("drill") = Some(DrillResult { name, tally: v.clone(), unix_ms });
        }
        v
    }

    /// The last failover drill's requests (the router), for metrics.
    pub fn last_drill(&self) -> Option<DrillResult> {
        self.drill_last.lock().expect("drill").clone()
    }
}

/// Count one answer into `v` (its first line into the sequence too, with `keep_sequence`);
/// whether it was answered.
fn tally(v: &mut ProbeTally, r: Result<crate::health::http::Response, String>, keep_sequence: bool) -> bool {
    match r {
        Ok(resp) if resp.status < 500 => {
            v.answered += 1;
            // A real server's bytes reach the admin's terminal: no control characters.
            let mut line: String = resp.first_line().chars().filter(|c| !c.is_control()).collect();
            if line.len() > MAX_PROBE_LINE {
                let cut = (0..=MAX_PROBE_LINE).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
                line.truncate(cut);
                line.push('…');
            }
            if keep_sequence {
                v.sequence.push(line.clone());
            }
            // A tally per real server: a handful of keys, whatever answers.
            if v.bodies.len() >= MAX_PROBE_BODIES && !v.bodies.contains_key(&line) {
                line = "(other)".into();
            }
            *v.bodies.entry(line).or_default() += 1;
            true
        }
        Ok(resp) => {
            v.failed += 1;
            push_distinct(&mut v.errors, format!("status {}", resp.status));
            false
        }
        Err(e) => {
            v.failed += 1;
            push_distinct(&mut v.errors, e.chars().filter(|c| !c.is_control()).collect());
            false
        }
    }
}

/// Longest first line kept from a probe's answer.
const MAX_PROBE_LINE: usize = 120;
/// Most distinct first lines tallied by one probe; the rest count as `(other)`.
const MAX_PROBE_BODIES: usize = 64;

fn push_distinct(v: &mut Vec<String>, e: String) {
    if v.len() < 5 && !v.contains(&e) {
        v.push(e);
    }
}
