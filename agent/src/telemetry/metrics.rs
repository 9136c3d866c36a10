//! The agent's Prometheus metrics: what it counts as it works ([`Metrics`]: events,
//! reconciles, health probes), the label sets every family shares, and the two text
//! formats. What it reads at each scrape, and the rendering of both, is
//! [`crate::telemetry::exposition`].
//!
//! Names are under `lvs_`. The IPVS ones keep node_exporter's ipvs collector suffixes and
//! label names (`lvs_ipvs_backend_connections_active{local_address,local_port,
//! remote_address,remote_port,proto,local_mark}`, …), so its dashboards translate by
//! prefix; unlike it, each service also has its own counters (`lvs_ipvs_service_*`).
//! Kernel counters are read at scrape time, never cached: a scrape shows what
//! `ipvsadm -L -n --stats` would show at that moment.
use std::time::Duration;

use lvs_ipvs::ServiceKey;
use lvs_proto::reply::EventKind;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set: names are fixed, values come from the table.
pub(crate) type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;
pub(crate) type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;
/// One of a service's or destination's kernel counters.
pub(crate) type StatOf = fn(&lvs_ipvs::Stats) -> u64;

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
    connections: Family<Labels, Counter>,
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
        let connections = Family::<Labels, Counter>::default();
        registry.register(
            "lvs_health_probe_connections",
            "Connections health probes opened, per service (HTTP, HTTPS and TCP checks); with kept-alive connections, far fewer than probes",
            connections.clone(),
        );
        Self { registry, events, reconciles, probes, connections }
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

    /// The counter of connections `service`'s probes open (a handle the probe keeps).
    pub fn probe_connections(&self, service: &ServiceKey) -> Counter {
        self.connections.get_or_create_owned(&service_labels(service))
    }

    /// What was counted, for [`crate::telemetry::exposition::render`].
    pub fn registry(&self) -> &Registry {
        &self.registry
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

pub(crate) fn proto(key: &ServiceKey) -> &'static str {
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
pub(crate) fn service_labels(key: &ServiceKey) -> Labels {
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

pub(crate) fn backend_labels(key: &ServiceKey, dest: std::net::SocketAddr) -> Labels {
    let mut l = service_labels(key);
    l.insert(2, ("remote_address", dest.ip().to_string()));
    l.insert(3, ("remote_port", dest.port().to_string()));
    l
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
