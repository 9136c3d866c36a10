//! The exposition's routing and router families: BGP sessions and announcements (ECMP
//! directors and their router), the router's ARP watch and its last failover drill.
use prometheus_client::registry::Registry;

use crate::telemetry::families::{counters, gauge, gauges};

/// `lvs_bgp_*`: each session up or not, each VIP announced or not (the alert rule
/// "announced by fewer directors than defined" sums the latter over the directors).
pub(crate) fn register_bgp(reg: &mut Registry, b: &lvs_proto::reply::BgpStatus) {
    let up = |x: bool| if x { 1.0 } else { 0.0 };
    gauges(
        reg,
        "lvs_bgp_session_up",
        "BGP session established (1) or not (0), by peer node and address",
        b.sessions.iter().map(|s| (vec![("peer", s.peer.clone()), ("address", s.address.clone())], up(s.up))),
    );
    gauges(
        reg,
        "lvs_bgp_routes_received",
        "Routes accepted from each BGP peer (the router: one per director announcing a VIP)",
        b.sessions.iter().map(|s| {
            (vec![("peer", s.peer.clone()), ("address", s.address.clone())], f64::from(s.routes_received))
        }),
    );
    gauges(
        reg,
        "lvs_bgp_announced",
        "VIP prefix announced by this director (1) or withdrawn (0)",
        b.announcements.iter().map(|a| (vec![("prefix", a.prefix.clone())], up(a.announced))),
    );
    gauge(
        reg,
        "lvs_bgp_drained",
        "This director was drained by an admin (1): it announces nothing",
        up(b.drained),
    );
}

/// `lvs_arp_*`: per VIP, how many MACs answered and whether that is a leak; per leaking
/// node, a 1 (the alert names it). Served by the router.
pub(crate) fn register_arp(reg: &mut Registry, a: &lvs_proto::reply::ArpWatchStatus) {
    gauges(
        reg,
        "lvs_arp_vip_answers",
        "MACs that answered ARP for the VIP in the router's last round",
        a.vips.iter().map(|v| (vec![("vip", v.address.clone())], v.answers.len() as f64)),
    );
    gauges(
        reg,
        "lvs_arp_vip_leak",
        "The VIP leaks (1): a node that may not answer ARP for it did, or more than one did",
        a.vips.iter().map(|v| (vec![("vip", v.address.clone())], if v.leak.is_some() { 1.0 } else { 0.0 })),
    );
    gauges(
        reg,
        "lvs_arp_vip_leak_by",
        "A node answering ARP for a VIP it may not (1), by VIP, that node (`answered_by`; `unknown`: a MAC no node answers its own address with) and MAC",
        a.vips.iter().flat_map(|v| {
            v.leakers().into_iter().map(move |x| {
                let node = x.node.clone().unwrap_or_else(|| "unknown".into());
                (vec![("vip", v.address.clone()), ("answered_by", node), ("mac", x.mac.clone())], 1.0)
            })
        }),
    );
    counters(
        reg,
        "lvs_arp_watch_rounds",
        "Rounds of the router's ARP watch since the agent started",
        [(vec![], a.rounds)],
    );
}

/// A failover drill's requests through the VIP, as the router's agent sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillResult {
    /// The drill's name (its VRRP instance).
    pub name: String,
    /// What the requests got.
    pub tally: lvs_proto::reply::ProbeTally,
    /// When they ended, ms since the epoch.
    pub unix_ms: u64,
}

/// `lvs_drill_*`: the last drill's requests, failures, slowest answer and longest outage,
/// and when it ran (an alert can ask that drills keep running).
pub(crate) fn register_drill(reg: &mut Registry, d: &DrillResult) {
    let l = || vec![("drill", d.name.clone())];
    let t = &d.tally;
    gauges(
        reg,
        "lvs_drill_requests",
        "Requests the last failover drill sent through the VIP",
        [(l(), f64::from(t.sent))],
    );
    gauges(
        reg,
        "lvs_drill_failed",
        "Requests of the last failover drill that failed",
        [(l(), f64::from(t.failed))],
    );
    gauges(
        reg,
        "lvs_drill_slowest_seconds",
        "The slowest answer of the last failover drill",
        [(l(), t.slowest_ms as f64 / 1000.0)],
    );
    gauges(
        reg,
        "lvs_drill_longest_gap_seconds",
        "The longest time without an answer during the last failover drill (the outage a client saw)",
        [(l(), t.longest_gap_ms as f64 / 1000.0)],
    );
    gauges(
        reg,
        "lvs_drill_last_run_timestamp_seconds",
        "When the last failover drill's requests ended, seconds since the epoch",
        [(l(), d.unix_ms as f64 / 1000.0)],
    );
}
