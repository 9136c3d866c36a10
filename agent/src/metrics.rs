//! The agent's Prometheus metrics: what it counts as it works ([`Metrics`]: events,
//! reconciles, health probes) and what it reads at each scrape ([`Snapshot`]: the IPVS
//! table with its kernel counters, health, generation, certificate, clock, VRRP, sync
//! daemons), rendered together as one exposition ([`Metrics::render`]).
//!
//! Names are under `lvs_`. The IPVS ones keep node_exporter's ipvs collector suffixes and
//! label names (`lvs_ipvs_backend_connections_active{local_address,local_port,
//! remote_address,remote_port,proto,local_mark}`, …), so its dashboards translate by
//! prefix; unlike it, each service also has its own counters (`lvs_ipvs_service_*`).
//! Kernel counters are read at scrape time, never cached: a scrape shows what
//! `ipvsadm -L -n --stats` would show at that moment.
use std::time::Duration;

use lvs_ipvs::ServiceKey;
use lvs_proto::reply::{EventKind, SyncDaemon, VrrpState, VrrpStatus};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::health::DestHealth;
use crate::system::IpvsService;

/// A label set: names are fixed, values come from the table.
type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;
/// One of a service's or destination's kernel counters.
type StatOf = fn(&lvs_ipvs::Stats) -> u64;

/// Probe latencies: 0.5 ms to about 4 s, doubling.
fn probe_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Reconcile durations: 1 ms to about 33 s, doubling.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What the agent counts while it works; one per agent, shared by its parts.
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    reconciles: Histograms,
    probes: Histograms,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "lvs_agent_events",
            "Events the agent published, by kind (drift: found; heal: re-applied; health: quarantines and restores; vrrp: state changes)",
            events.clone(),
        );
        let reconciles: Histograms = Family::new_with_constructor(reconcile_histogram);
        registry.register(
            "lvs_agent_reconcile_duration_seconds",
            "How long each reconcile took, by operation (apply, heal, start) and outcome (ok, failed); its _count is the number of applies",
            reconciles.clone(),
        );
        let probes: Histograms = Family::new_with_constructor(probe_histogram);
        registry.register(
            "lvs_health_probe_duration_seconds",
            "Health probe latency per service, successes and failures alike",
            probes.clone(),
        );
        Self { registry, events, reconciles, probes }
    }
}

impl Metrics {
    /// Count one published event.
    pub fn event(&self, kind: EventKind) {
        self.events.get_or_create(&vec![("kind", kind.as_str().to_string())]).inc();
    }

    /// Record one reconcile: `operation` is `apply`, `heal` or `start`.
    pub fn reconciled(&self, operation: &'static str, ok: bool, took: Duration) {
        let labels = vec![("operation", operation.to_string()), ("outcome", outcome(ok).to_string())];
        self.reconciles.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The probe-latency histogram of `service` (a handle a probe task keeps, so a probe
    /// costs one atomic update, not a lookup).
    pub fn probe_histogram(&self, service: &ServiceKey) -> Histogram {
        self.probes.get_or_create_owned(&service_labels(service))
    }

    /// The exposition in `format`: what was counted, then `snap`.
    pub fn render(&self, snap: &Snapshot, format: Format) -> String {
        let om = self.render_openmetrics(snap);
        match format {
            Format::OpenMetrics => om,
            Format::Classic => classic(&om),
        }
    }

    fn render_openmetrics(&self, snap: &Snapshot) -> String {
        let mut now = Registry::default();
        snap.register(&mut now);
        let mut out = String::with_capacity(
            4096 + 1024 * snap.services.iter().map(|s| s.destinations.len()).sum::<usize>(),
        );
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &now);
        let _ = encode_eof(&mut out);
        out
    }
}

/// Which text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`# EOF`-terminated; counter families named without `_total`), for
    /// scrapers that ask for it (Prometheus does).
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, for everything else (`curl`, `promtool`).
    Classic,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: &str) -> Self {
        if accept.contains("application/openmetrics-text") { Format::OpenMetrics } else { Format::Classic }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text as the classic format: the two differ (for what this agent exposes)
/// only in a counter family's name, which OpenMetrics gives without the `_total` its
/// samples carry and the classic format with it, and in the `# EOF` line. (prometheus-client
/// writes OpenMetrics only.)
pub fn classic(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in openmetrics.lines() {
        if let Some(name) = l.strip_prefix("# TYPE ").and_then(|r| r.strip_suffix(" counter")) {
            counters.insert(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for l in openmetrics.lines() {
        if l == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = l.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(r) => out.push_str(&r),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
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
}

fn proto(key: &ServiceKey) -> &'static str {
    match key {
        ServiceKey::Addr(p, _) => match p {
            lvs_ipvs::Protocol::Tcp => "TCP",
            lvs_ipvs::Protocol::Udp => "UDP",
            lvs_ipvs::Protocol::Sctp => "SCTP",
        },
        ServiceKey::Fwmark(..) => "FWM",
    }
}

/// node_exporter's service labels: address and port, or (a firewall-mark service) the mark.
fn service_labels(key: &ServiceKey) -> Labels {
    let (address, port, mark) = match key {
        ServiceKey::Addr(_, a) => (a.ip().to_string(), a.port().to_string(), String::new()),
        ServiceKey::Fwmark(m, _) => (String::new(), "0".to_string(), m.to_string()),
    };
    vec![
        ("local_address", address),
        ("local_port", port),
        ("proto", proto(key).to_string()),
        ("local_mark", mark),
    ]
}

fn backend_labels(key: &ServiceKey, dest: std::net::SocketAddr) -> Labels {
    let mut l = service_labels(key);
    l.insert(2, ("remote_address", dest.ip().to_string()));
    l.insert(3, ("remote_port", dest.port().to_string()));
    l
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
                .map(move |h| (backend_labels(&crate::convert::service_key(&h.service), h.dest), f(h)))
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
            self.health
                .iter()
                .map(|h| (backend_labels(&crate::convert::service_key(&h.service), h.dest), h.transitions)),
        );
        counters(
            reg,
            "lvs_health_probes",
            "Health probes finished per real server",
            self.health
                .iter()
                .map(|h| (backend_labels(&crate::convert::service_key(&h.service), h.dest), h.probes)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counter_families_with_total_and_has_no_eof() {
        let om = "# HELP a_events Events.\n# TYPE a_events counter\na_events_total{kind=\"x\"} 1\n\
                  # HELP b_up Up.\n# TYPE b_up gauge\nb_up 1\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\na_events_total{kind=\"x\"} 1\n\
             # HELP b_up Up.\n# TYPE b_up gauge\nb_up 1\n"
        );
        assert_eq!(
            Format::from_accept("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept("*/*"), Format::Classic);
    }
}
