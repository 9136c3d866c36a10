//! The exposition a scrape gets: what [`Metrics`] counted, then a [`Snapshot`] of the node
//! read at that moment (its IPVS table with the kernel's counters, health, generation,
//! certificate, clock, VRRP, sync daemons), in the format the scraper asked for.
use lvs_proto::reply::{ServiceHealth, SyncDaemon, VrrpState, VrrpStatus};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use crate::health::outcomes::DestHealth;
use crate::kernel::system::IpvsService;
use crate::telemetry::families::{counter, counters, gauge, gauges};
pub use crate::telemetry::ha_families::DrillResult;
use crate::telemetry::ha_families::{register_arp, register_bgp, register_drill};
use crate::telemetry::metrics::{Format, Metrics, StatOf, backend_labels, classic, service_labels};

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
    /// Directors with marks: each rule of the marking table and what it counted.
    pub marks: Vec<lvs_proto::reply::MarkCount>,
}

/// `lvs_mark_*`: what each rule of the director's marking table marked since it was last
/// loaded (a reload starts it at 0, as a restart does any counter).
fn register_marks(reg: &mut Registry, marks: &[lvs_proto::reply::MarkCount]) {
    let labels = |m: &lvs_proto::reply::MarkCount| {
        let r = &m.rule;
        let ports: Vec<String> = r.ports.iter().map(ToString::to_string).collect();
        vec![
            ("service", r.service.clone()),
            ("vip", r.address.to_string()),
            ("protocol", r.protocol.as_str().to_ascii_lowercase()),
            ("ports", if ports.is_empty() { "all".into() } else { ports.join(",") }),
            ("mark", r.mark.to_string()),
        ]
    };
    let help =
        "marked by the director's nftables table inet lvs_dr, by rule (service, VIP, protocol, ports, mark)";
    counters(
        reg,
        "lvs_mark_packets",
        &format!("Packets {help}"),
        marks.iter().map(|m| (labels(m), m.packets)),
    );
    counters(reg, "lvs_mark_bytes", &format!("Bytes {help}"), marks.iter().map(|m| (labels(m), m.bytes)));
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
        if !self.marks.is_empty() {
            register_marks(reg, &self.marks);
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
