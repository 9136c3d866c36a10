//! One probe per real thing probed. Destinations of several services whose checks probe
//! the same address and port the same way (kind, pages, interval, timeout, retry) share one
//! prober on one schedule; each probe's result is recorded for every one of them, under its
//! own `rise`, `fall` and `on_failure`. A standing keepalived request: ten services in front
//! of the same fifty servers cost fifty probes an interval, not five hundred. An exec check
//! is never shared: its script sees its own service's name.
use std::net::SocketAddr;
use std::time::Duration;

use lvs_proto::spec::{HealthCheckSpec, ProbeKind};

use super::outcomes::{Sender, Table, Transition, Work};
use crate::health::probe::Prober;
use crate::reconcile::state::DestKey;

/// What makes two destinations' checks one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProbeKey {
    /// The address and port probed (`connect_ip`/`connect_port` applied).
    target: SocketAddr,
    probe: ProbeKind,
    interval_ms: u64,
    timeout_ms: u64,
    retry_interval_ms: Option<u64>,
    /// Set for an exec check, which is never shared.
    alone: Option<DestKey>,
}

impl ProbeKey {
    /// The probe destination `dest` (kernel key `key`) gets from `hc`.
    pub(super) fn of(key: DestKey, dest: SocketAddr, hc: &HealthCheckSpec) -> Self {
        ProbeKey {
            target: hc.target(dest),
            probe: hc.probe.clone(),
            interval_ms: hc.interval_ms,
            timeout_ms: hc.timeout_ms,
            retry_interval_ms: hc.retry_interval_ms,
            alone: matches!(hc.probe, ProbeKind::Exec { .. }).then_some(key),
        }
    }
}

/// A destination that takes a shared probe's results, with its own check.
pub(super) type Member = (DestKey, HealthCheckSpec);

/// `items` grouped by probe, in the order each probe first appears.
pub(super) fn group<T>(items: impl IntoIterator<Item = (ProbeKey, T)>) -> Vec<(ProbeKey, Vec<T>)> {
    let mut out: Vec<(ProbeKey, Vec<T>)> = Vec::new();
    for (k, t) in items {
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some((_, v)) => v.push(t),
            None => out.push((k, vec![t])),
        }
    }
    out
}

/// What one shared probe's task is handed once.
pub(super) struct Probing {
    pub members: Vec<Member>,
    pub prober: Prober,
    pub stagger: Duration,
    pub table: Table,
    pub tx: Sender,
    /// One probe-latency histogram per member's service (the same probe is observed in each).
    pub latency: Vec<prometheus_client::metrics::histogram::Histogram>,
    pub epoch: tokio::time::Instant,
}

/// Probe every interval; after a failure, after the retry interval if the check has one.
/// Start times snap to the checker's grid ([`crate::health::runner::slot`]).
pub(super) async fn run(p: Probing) {
    let Probing { members, mut prober, stagger, table, tx, latency, epoch } = p;
    let Some((_, hc)) = members.first() else { return };
    let interval = Duration::from_millis(hc.interval_ms);
    let retry = hc.retry_interval_ms.map(Duration::from_millis);
    // The grid of the shorter of the two gaps: a retry is not made later by more than 5%.
    let slot = crate::health::runner::slot(retry.map_or(interval, |r| r.min(interval)));
    let mut next = crate::health::runner::snap(epoch, tokio::time::Instant::now() + stagger, slot);
    loop {
        tokio::time::sleep_until(next).await;
        let t0 = tokio::time::Instant::now();
        let result = prober.probe().await;
        for h in &latency {
            h.observe(t0.elapsed().as_secs_f64());
        }
        // From the slot it was due in, as an interval timer would; never in the past (a
        // probe never takes longer than its timeout, which is shorter than both).
        let due = next
            + match (&result, retry) {
                (Err(_), Some(r)) => r,
                _ => interval,
            };
        next = crate::health::runner::snap(epoch, due.max(t0), slot);
        let transitions: Vec<Transition> = {
            let mut t = table.lock().expect("health table");
            let mut out = Vec::new();
            for (key, hc) in &members {
                let Some(h) = t.get_mut(key) else { return };
                if let Some((quarantine, why)) = h.record(&result, hc) {
                    out.push(Transition { key: *key, quarantine, why });
                }
            }
            out
        };
        // Until the flusher has applied it, later probes may decide it again: the flusher
        // drops decisions that are already in force.
        for t in transitions {
            let _ = tx.try_send(Work::Transition(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::spec::{OnFailure, ServiceKey};

    fn hc(probe: ProbeKind, port: Option<u16>) -> HealthCheckSpec {
        HealthCheckSpec {
            probe,
            interval_ms: 200,
            timeout_ms: 100,
            rise: 2,
            fall: 3,
            on_failure: OnFailure::Weight0,
            connect_ip: None,
            connect_port: port,
            retry_interval_ms: None,
        }
    }

    fn key(port: u16, rs: &str) -> (DestKey, SocketAddr) {
        let svc = ServiceKey::Addr {
            protocol: lvs_proto::spec::Protocol::Tcp,
            address: format!("198.18.0.100:{port}").parse().unwrap(),
        };
        let dest: SocketAddr = rs.parse().unwrap();
        (crate::reconcile::state::override_key(&svc, dest), dest)
    }

    #[test]
    fn services_probing_one_server_the_same_way_share_one_probe() {
        let http = ProbeKind::Tcp;
        let (k80, d80) = key(80, "198.18.0.11:80");
        let (k81, d81) = key(81, "198.18.0.11:81");
        let (k82, d82) = key(82, "198.18.0.12:82");
        let groups = group([
            // Port 80's own check, and port 81's pointed at port 80: one probe.
            (ProbeKey::of(k80, d80, &hc(http.clone(), None)), 1),
            (ProbeKey::of(k81, d81, &hc(http.clone(), Some(80))), 2),
            // Another server: its own probe.
            (ProbeKey::of(k82, d82, &hc(http.clone(), Some(80))), 3),
            // The same server and port with another timeout: its own probe.
            (ProbeKey::of(k81, d81, &HealthCheckSpec { timeout_ms: 150, ..hc(http.clone(), Some(80)) }), 4),
        ]);
        let members: Vec<Vec<i32>> = groups.into_iter().map(|(_, v)| v).collect();
        assert_eq!(members, [vec![1, 2], vec![3], vec![4]]);
        // rise, fall and on_failure are each member's own: they do not split the probe.
        let other = HealthCheckSpec { rise: 5, fall: 1, on_failure: OnFailure::Remove, ..hc(http, None) };
        assert_eq!(ProbeKey::of(k80, d80, &other), ProbeKey::of(k81, d81, &hc(ProbeKind::Tcp, Some(80))));
    }

    #[test]
    fn an_exec_check_is_never_shared() {
        let exec = ProbeKind::Exec { command: vec!["/usr/lib/lvs-agent/checks/ok".into()] };
        let (k80, d80) = key(80, "198.18.0.11:80");
        let (k81, d81) = key(81, "198.18.0.11:81");
        let a = ProbeKey::of(k80, d80, &hc(exec.clone(), Some(80)));
        let b = ProbeKey::of(k81, d81, &hc(exec, Some(80)));
        assert_ne!(a, b);
    }
}
