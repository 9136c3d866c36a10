//! The exposition a scrape gets: what [`Metrics`] counted, then a [`Snapshot`] of the node
//! read at that moment (its IPVS table with the kernel's counters, health, generation,
//! certificate, clock, VRRP, sync daemons), in the format the scraper asked for.
use lvs_proto::reply::{ServiceHealth, SyncDaemon, VrrpState, VrrpStatus};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::health::outcomes::DestHealth;
use crate::kernel::system::IpvsService;
use crate::telemetry::metrics::{
    FloatGauge, Format, Labels, Metrics, StatOf, backend_labels, classic, service_labels,
};

/// The exposition in `format`: what `metrics` counted, then `snap`.
pub fn render(metrics: &Metrics, snap: &Snapshot, format: Format) -> String {
    let mut now = Registry::default();
    snap.register(&mut now);
    let dests: usize = snap.services.iter().map(|s| s.destinations.len()).sum();
    let mut om = String::with_capacity(4096 + 2048 * dests);
    // Writing into a String cannot fail.
    let _ = encode_registry(&mut om, metrics.registry());
    let _ = encode_registry(&mut om, &now);
    let _ = encode_eof(&mut om);
    match format {
        Format::OpenMetrics => om,
        Format::Classic => classic(&om),
    }
}

/// What a scrape reads from the node at that moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// This node.
    pub node: String,
    /// Its role in the accepted spec (`router`, `director`, `real-server`; empty: none yet).
    pub role: String,
    /// The accepted spec's generation (0: none).
    pub generation: u64,
    /// Directors: the IPVS table with its counters.
    pub services: Vec<IpvsService>,
    /// Directors: each checked destination.
    pub health: Vec<DestHealth>,
    /// Directors: each watched service against its quorum.
    pub quorum: Vec<ServiceHealth>,
    /// The serving certificate's expiry, seconds since the epoch.
    pub certificate_not_after_unix: Option<u64>,
    /// The last clock reading's offset, milliseconds (positive: ahead).
    pub clock_offset_ms: Option<i64>,
    /// The largest offset the spec's time gate allows, milliseconds.
    pub clock_limit_ms: Option<u64>,
    /// Directors in HA: the VRRP instance.
    pub vrrp: Option<VrrpStatus>,
    /// Directors in HA: the running IPVS sync daemons.
    pub sync_daemons: Vec<SyncDaemon>,
    /// ECMP directors and their router: BGP sessions and announcements.
    pub bgp: Option<lvs_proto::reply::BgpStatus>,
    /// The router's ARP watch, as of its last round.
    pub arp_watch: Option<lvs_proto::reply::ArpWatchStatus>,
    /// The router: the last failover drill's requests.
    pub drill: Option<DrillResult>,
}

/// Register a gauge family filled from `rows`.
fn gauges(reg: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
    let f = Family::<Labels, FloatGauge>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, help, f);
}

/// Register one unlabelled gauge.
fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = FloatGauge::default();
    g.set(v);
    reg.register(name, help, g);
}

/// Register one unlabelled counter.
fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

/// Register a counter family filled from `rows` (kernel counters, read now).
fn counters(reg: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
    let f = Family::<Labels, Counter>::default();
    for (l, v) in rows {
        f.get_or_create(&l).inc_by(v);
    }
    reg.register(name, help, f);
}

impl Snapshot {
    // Long on purpose: one registration per metric, in the order the exposition lists them.
    fn register(&self, reg: &mut Registry) {
        gauges(
            reg,
            "lvs_agent_info",
            "The agent: its node (agent), role and version (value 1)",
            [(
                vec![
                    ("agent", self.node.clone()),
                    ("role", self.role.clone()),
                    ("version", env!("CARGO_PKG_VERSION").to_string()),
                ],
                1.0,
            )],
        );
        gauge(
            reg,
            "lvs_agent_generation",
            "Generation of the accepted spec (0: none)",
            self.generation as f64,
        );
        if let Some(t) = self.certificate_not_after_unix {
            gauge(
                reg,
                "lvs_agent_certificate_expiry_timestamp_seconds",
                "When the agent's serving certificate expires (Unix time)",
                t as f64,
            );
        }
        if let Some(ms) = self.clock_offset_ms {
            gauge(
                reg,
                "lvs_agent_clock_offset_seconds",
                "Local clock minus the NTP server's at the last reading (positive: ahead)",
                ms as f64 / 1000.0,
            );
        }
        if let Some(ms) = self.clock_limit_ms {
            gauge(
                reg,
                "lvs_agent_clock_offset_limit_seconds",
                "The largest clock offset the definition's time gate allows (time.max_offset)",
                ms as f64 / 1000.0,
            );
        }
        if self.role == "director" {
            self.register_ipvs(reg);
            self.register_health(reg);
        }
        if let Some(v) = &self.vrrp {
            let l = || vec![("vrrp_instance", v.instance.clone())];
            let state = match v.state {
                VrrpState::Init => 0.0,
                VrrpState::Backup => 1.0,
                VrrpState::Master => 2.0,
                VrrpState::Fault => 3.0,
                VrrpState::Stopped => 4.0,
            };
            gauges(
                reg,
                "lvs_vrrp_state",
                "VRRP state of this director: 0 init, 1 backup, 2 master, 3 fault (as keepalived's exporter), 4 stopped",
                [(l(), state)],
            );
            gauges(
                reg,
                "lvs_vrrp_priority",
                "VRRP priority of this director",
                [(l(), f64::from(v.priority))],
            );
            counters(
                reg,
                "lvs_vrrp_transitions",
                "VRRP state changes since the agent started",
                [(l(), v.transitions)],
            );
        }
        if let Some(b) = &self.bgp {
            register_bgp(reg, b);
        }
        if let Some(a) = &self.arp_watch {
            register_arp(reg, a);
        }
        if let Some(d) = &self.drill {
            register_drill(reg, d);
        }
        if !self.sync_daemons.is_empty() {
            gauges(
                reg,
                "lvs_ipvs_sync_daemon_up",
                "IPVS connection-sync daemons running (value 1), by state, interface and sync id",
                self.sync_daemons.iter().map(|d| {
                    (
                        vec![
                            ("state", d.state.clone()),
                            ("interface", d.interface.clone()),
                            ("sync_id", d.sync_id.to_string()),
                        ],
                        1.0,
                    )
                }),
            );
        }
    }

    fn register_ipvs(&self, reg: &mut Registry) {
        let total = |f: StatOf| self.services.iter().map(|s| f(&s.stats)).sum::<u64>();
        let all: [(&str, &str, StatOf); 5] = [
            ("connections", "Connections scheduled", |s| s.conns),
            ("incoming_packets", "Incoming packets", |s| s.inpkts),
            ("outgoing_packets", "Outgoing packets (0 in DR: replies bypass the director)", |s| s.outpkts),
            ("incoming_bytes", "Incoming bytes", |s| s.inbytes),
            ("outgoing_bytes", "Outgoing bytes (0 in DR)", |s| s.outbytes),
        ];
        for (suffix, help, f) in all {
            counter(reg, &format!("lvs_ipvs_{suffix}"), &format!("{help}, all services"), total(f));
            counters(
                reg,
                &format!("lvs_ipvs_service_{suffix}"),
                &format!("{help}, per service"),
                self.services.iter().map(|s| (service_labels(&s.service.key), f(&s.stats))),
            );
            counters(
                reg,
                &format!("lvs_ipvs_backend_{suffix}"),
                &format!("{help}, per real server"),
                self.services.iter().flat_map(|s| {
                    s.destinations.iter().map(|d| (backend_labels(&s.service.key, d.dest.addr), f(&d.stats)))
                }),
            );
        }
        let backends = |f: fn(&lvs_ipvs::DestinationEntry) -> f64| {
            self.services
                .iter()
                .flat_map(move |s| {
                    s.destinations.iter().map(move |d| (backend_labels(&s.service.key, d.dest.addr), f(d)))
                })
                .collect::<Vec<_>>()
        };
        gauges(
            reg,
            "lvs_ipvs_backend_connections_active",
            "Active connections per real server",
            backends(|d| f64::from(d.active_conns)),
        );
        gauges(
            reg,
            "lvs_ipvs_backend_connections_inactive",
            "Inactive connections per real server",
            backends(|d| f64::from(d.inactive_conns)),
        );
        gauges(
            reg,
            "lvs_ipvs_backend_weight",
            "Weight per real server",
            backends(|d| f64::from(d.dest.weight)),
        );
    }

    fn register_health(&self, reg: &mut Registry) {
        let rows = |f: fn(&DestHealth) -> f64| {
            self.health
                .iter()
                .map(move |h| {
                    (backend_labels(&crate::kernel::translate::service_key(&h.service), h.dest), f(h))
                })
                .collect::<Vec<_>>()
        };
        gauges(
            reg,
            "lvs_health_up",
            "Whether the last health probe of a real server succeeded",
            rows(|h| f64::from(u8::from(h.up))),
        );
        gauges(
            reg,
            "lvs_health_in_service",
            "Whether a real server is in service (0: quarantined by its health check)",
            rows(|h| f64::from(u8::from(!h.quarantined))),
        );
        counters(
            reg,
            "lvs_health_transitions",
            "Quarantines and restores of a real server",
            self.health.iter().map(|h| {
                (backend_labels(&crate::kernel::translate::service_key(&h.service), h.dest), h.transitions)
            }),
        );
        counters(
            reg,
            "lvs_health_probes",
            "Health probes finished per real server",
            self.health.iter().map(|h| {
                (backend_labels(&crate::kernel::translate::service_key(&h.service), h.dest), h.probes)
            }),
        );
        let per_service = |f: fn(&ServiceHealth) -> f64| {
            self.quorum
                .iter()
                .map(move |q| (service_labels(&crate::kernel::translate::service_key(&q.service)), f(q)))
                .collect::<Vec<_>>()
        };
        gauges(
            reg,
            "lvs_health_service_in_service",
            "Real servers of a service in service (not quarantined)",
            per_service(|q| f64::from(q.in_service)),
        );
        gauges(
            reg,
            "lvs_health_service_quorum",
            "The quorum of a service",
            per_service(|q| f64::from(q.quorum)),
        );
        gauges(
            reg,
            "lvs_health_service_degraded",
            "Whether a service is below its quorum (its sorry server, if any, takes traffic)",
            per_service(|q| f64::from(u8::from(q.degraded))),
        );
    }
}

/// `lvs_bgp_*`: each session up or not, each VIP announced or not (the alert rule
/// "announced by fewer directors than defined" sums the latter over the directors).
fn register_bgp(reg: &mut Registry, b: &lvs_proto::reply::BgpStatus) {
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
fn register_arp(reg: &mut Registry, a: &lvs_proto::reply::ArpWatchStatus) {
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
fn register_drill(reg: &mut Registry, d: &DrillResult) {
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
