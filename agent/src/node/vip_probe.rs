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

impl ProbeRequest {
    /// A wire request checked field by field; the error names the field refused.
    pub fn from_wire(r: &lvs_proto::pb::ProbeRequest) -> Result<ProbeRequest, String> {
        if r.count == 0 || r.count > 100_000 {
            return Err("count: must be 1..=100000".into());
        }
        if r.interval_ms != 0 && !(5..=10_000).contains(&r.interval_ms) {
            return Err("interval_ms: must be 0 or 5..=10000".into());
        }
        if r.duration_ms > 600_000 {
            return Err("duration_ms: at most 600000 (10 minutes)".into());
        }
        let drill = Some(r.drill.clone()).filter(|d| !d.is_empty());
        if let Some(p) = drill.as_deref().and_then(lvs_proto::names::dns_label_problem) {
            return Err(format!("drill: {p}"));
        }
        Ok(ProbeRequest {
            target: r.target.parse().map_err(|e| format!("target: `{}`: {e}", r.target))?,
            path: if r.path.is_empty() { "/".to_string() } else { r.path.clone() },
            host: r.host.clone(),
            count: r.count,
            concurrency: r.concurrency,
            timeout: Duration::from_millis(r.timeout_ms.clamp(10, 60_000)),
            interval: (r.interval_ms > 0).then(|| Duration::from_millis(r.interval_ms.into())),
            duration: (r.duration_ms > 0).then(|| Duration::from_millis(r.duration_ms)),
            drill,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> lvs_proto::pb::ProbeRequest {
        lvs_proto::pb::ProbeRequest {
            target: "198.18.0.100:80".into(),
            count: 10,
            concurrency: 4,
            timeout_ms: 1000,
            interval_ms: 25,
            duration_ms: 8000,
            drill: "web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_probe_request_is_checked_field_by_field() {
        let r = ProbeRequest::from_wire(&good()).unwrap();
        assert_eq!(
            (r.interval, r.duration, r.drill.as_deref()),
            (Some(Duration::from_millis(25)), Some(Duration::from_secs(8)), Some("web"))
        );
        type Spoil = fn(&mut lvs_proto::pb::ProbeRequest);
        let cases: [(&str, Spoil); 6] = [
            ("count", |r| r.count = 0),
            ("interval_ms", |r| r.interval_ms = 1),
            ("interval_ms", |r| r.interval_ms = 10_001),
            ("duration_ms", |r| r.duration_ms = 600_001),
            ("drill", |r| r.drill = "web; reboot".into()),
            ("target", |r| r.target = "198.18.0.100".into()),
        ];
        for (field, spoil) in cases {
            let mut r = good();
            spoil(&mut r);
            let e = ProbeRequest::from_wire(&r).expect_err(field);
            assert!(e.starts_with(&format!("{field}: ")), "{field}: {e}");
        }
    }
}
