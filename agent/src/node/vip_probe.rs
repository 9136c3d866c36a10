//! `verify`'s probe of a VIP from this node: HTTP requests with a bounded tally of the
//! answers (which real server answered, how often).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lvs_proto::reply::ProbeTally;

use super::agent::Agent;
use crate::kernel::system::System;

/// A VIP probe's request.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// The VIP and port the requests go to, as a client reaches them.
    pub target: SocketAddr,
    /// The HTTP path asked for; an answer below 500 counts as answered.
    pub path: String,
    /// Host header.
    pub host: Option<String>,
    /// How many requests.
    pub count: u32,
    /// How many at once.
    pub concurrency: u32,
    /// Per-request deadline.
    pub timeout: Duration,
}

impl<S: System + 'static> Agent<S> {
    /// Send `count` HTTP requests to a target and tally the answers.
    pub async fn probe(&self, req: ProbeRequest) -> ProbeTally {
        let start = Instant::now();
        let host = req.host.clone().unwrap_or_else(|| req.target.ip().to_string());
        let concurrency = req.concurrency.clamp(1, 64) as usize;
        // Each answer is tallied as it arrives and dropped: memory is `concurrency` bodies,
        // not `count` of them.
        let mut answers = futures::StreamExt::buffered(
            futures::stream::iter(
                (0..req.count).map(|_| crate::health::http::get(req.target, &host, &req.path, req.timeout)),
            ),
            concurrency,
        );
        let mut v = ProbeTally { sent: req.count, ..Default::default() };
        while let Some(r) = futures::StreamExt::next(&mut answers).await {
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
                    if req.count <= 64 {
                        v.sequence.push(line.clone());
                    }
                    // A tally per real server: a handful of keys, whatever answers.
                    if v.bodies.len() >= MAX_PROBE_BODIES && !v.bodies.contains_key(&line) {
                        line = "(other)".into();
                    }
                    *v.bodies.entry(line).or_default() += 1;
                }
                Ok(resp) => {
                    v.failed += 1;
                    push_distinct(&mut v.errors, format!("status {}", resp.status));
                }
                Err(e) => {
                    v.failed += 1;
                    push_distinct(&mut v.errors, e.chars().filter(|c| !c.is_control()).collect());
                }
            }
        }
        v.elapsed_ms = start.elapsed().as_millis() as u64;
        v
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
