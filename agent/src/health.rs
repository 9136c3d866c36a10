//! Director-side health checks of every destination (HTTP GET or TCP connect).
//!
//! One task per destination, started with a stagger inside its interval so hundreds of
//! probes spread out instead of firing together; a slow probe never delays another. A
//! destination failing `fall` times in a row is quarantined (weight 0 or removed, per the
//! definition) through the reconciler's runtime layer, so the change is persisted and
//! survives re-applies; `rise` successes in a row restore it. Transitions go to one flusher
//! task that applies everything queued as a single change: a switch that takes down 200
//! servers at once costs one reconcile, not 200 in a row.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_proto::NodeSpec;
use lvs_proto::spec::{HealthCheckSpec, ProbeKind, ServiceKey};
use tokio::task::JoinHandle;

use crate::events::Events;
use crate::reconcile::Reconciler;
use crate::state::{Runtime, override_key};
use crate::system::System;

/// What the checker knows of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestHealth {
    /// The service.
    pub service: ServiceKey,
    /// The destination.
    pub dest: SocketAddr,
    /// Whether the last probe succeeded.
    pub up: bool,
    /// Whether the destination is out of service.
    pub quarantined: bool,
    /// Successes in a row.
    pub successes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// Quarantines and restores so far.
    pub transitions: u64,
    /// Probes finished.
    pub probes: u64,
    /// The last probe's error.
    pub last_error: String,
}

type Table = Arc<Mutex<BTreeMap<String, DestHealth>>>;

/// A decision of a probe task: quarantine (`true`) or restore the destination.
#[derive(Debug, Clone)]
struct Transition {
    key: String,
    quarantine: bool,
    why: String,
}

type Sender = tokio::sync::mpsc::Sender<Transition>;

/// Transitions waiting for the flusher. Each destination's task re-decides on every probe
/// until its transition is in force, so a full queue loses nothing: the decision is
/// simply made again one interval later.
const MAX_QUEUED: usize = 4096;

/// The checker of one agent.
#[derive(Default)]
pub struct Health {
    table: Table,
    tasks: Mutex<BTreeMap<String, (HealthCheckSpec, JoinHandle<()>)>>,
    flusher: Mutex<Option<(Sender, JoinHandle<()>)>>,
}

impl Drop for Health {
    fn drop(&mut self) {
        for (_, (_, t)) in self.tasks.lock().expect("health tasks").iter() {
            t.abort();
        }
        if let Some((_, f)) = self.flusher.lock().expect("health flusher").as_ref() {
            f.abort();
        }
    }
}

impl Health {
    /// The current view, in key order.
    pub fn snapshot(&self) -> Vec<DestHealth> {
        self.table.lock().expect("health table").values().cloned().collect()
    }

    /// Check exactly the destinations `spec` asks for: keep the tasks whose check did not
    /// change, start new ones, stop the others.
    pub fn sync<S: System + 'static>(
        &self,
        spec: &NodeSpec,
        runtime: &Runtime,
        rec: &Arc<Reconciler<S>>,
        events: &Events,
    ) {
        let mut wanted = BTreeMap::new();
        for v in &spec.virtual_services {
            let Some(hc) = &v.health_check else { continue };
            for d in &v.destinations {
                wanted.insert(override_key(&v.key, d.address), (v.key, d.address, hc.clone()));
            }
        }
        let tx = {
            let mut f = self.flusher.lock().expect("health flusher");
            let (tx, _) = f.get_or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::channel(MAX_QUEUED);
                (tx, tokio::spawn(flush(rx, self.table.clone(), rec.clone(), events.clone())))
            });
            tx.clone()
        };
        let mut tasks = self.tasks.lock().expect("health tasks");
        let mut table = self.table.lock().expect("health table");
        tasks.retain(|k, (hc, t)| {
            let keep = wanted.get(k).is_some_and(|(_, _, w)| w == hc);
            if !keep {
                t.abort();
                table.remove(k);
            }
            keep
        });
        for (i, (key, (service, dest, hc))) in wanted.into_iter().enumerate() {
            if tasks.contains_key(&key) {
                continue;
            }
            let quarantined = runtime.quarantined.contains(&key);
            table.insert(
                key.clone(),
                DestHealth {
                    service,
                    dest,
                    up: !quarantined,
                    quarantined,
                    successes: 0,
                    failures: 0,
                    transitions: 0,
                    probes: 0,
                    last_error: String::new(),
                },
            );
            // Spread the first probes over the interval (golden-ratio steps never cluster).
            let stagger = Duration::from_millis((hc.interval_ms as f64 * ((i as f64 * 0.618) % 1.0)) as u64);
            let task = tokio::spawn(run(key.clone(), hc.clone(), stagger, self.table.clone(), tx.clone()));
            tasks.insert(key, (hc, task));
        }
    }
}

/// Probe one destination once.
pub async fn probe(dest: SocketAddr, hc: &HealthCheckSpec) -> Result<(), String> {
    let timeout = Duration::from_millis(hc.timeout_ms);
    match &hc.probe {
        ProbeKind::Tcp => crate::http::connect(dest, timeout).await,
        ProbeKind::Http { path, expect_status, expect_body, host } => {
            let host = host.clone().unwrap_or_else(|| dest.ip().to_string());
            let r = crate::http::get(dest, &host, path, timeout).await?;
            if r.status != *expect_status {
                return Err(format!("status {} (expected {expect_status})", r.status));
            }
            if let Some(b) = expect_body
                && !String::from_utf8_lossy(&r.body).contains(b.as_str())
            {
                return Err(format!("body lacks `{b}`"));
            }
            Ok(())
        }
    }
}

async fn run(key: String, hc: HealthCheckSpec, stagger: Duration, table: Table, tx: Sender) {
    tokio::time::sleep(stagger).await;
    let mut tick = tokio::time::interval(Duration::from_millis(hc.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dest = match table.lock().expect("health table").get(&key) {
            Some(h) => h.dest,
            None => return,
        };
        let result = probe(dest, &hc).await;
        let transition = {
            let mut t = table.lock().expect("health table");
            let Some(h) = t.get_mut(&key) else { return };
            h.probes += 1;
            match &result {
                Ok(()) => {
                    h.up = true;
                    h.successes = h.successes.saturating_add(1);
                    h.failures = 0;
                    (h.quarantined && h.successes >= hc.rise)
                        .then(|| format!("restored after {} successes", hc.rise))
                        .map(|why| (false, why))
                }
                Err(e) => {
                    h.up = false;
                    h.last_error.clone_from(e);
                    h.failures = h.failures.saturating_add(1);
                    h.successes = 0;
                    (!h.quarantined && h.failures >= hc.fall)
                        .then(|| format!("quarantined after {} failures: {e}", hc.fall))
                        .map(|why| (true, why))
                }
            }
        };
        if let Some((quarantine, why)) = transition {
            // Until the flusher has applied it, later probes may decide it again: the
            // flusher drops decisions that are already in force.
            let _ = tx.try_send(Transition { key: key.clone(), quarantine, why });
        }
    }
}

/// Apply queued transitions, everything queued at once as one runtime change.
async fn flush<S: System + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<Transition>,
    table: Table,
    rec: Arc<Reconciler<S>>,
    events: Events,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = BTreeMap::new();
        batch.insert(first.key.clone(), first);
        while let Ok(t) = rx.try_recv() {
            batch.insert(t.key.clone(), t);
        }
        let batch: Vec<Transition> = {
            let t = table.lock().expect("health table");
            batch
                .into_values()
                .filter(|x| t.get(&x.key).is_some_and(|h| h.quarantined != x.quarantine))
                .collect()
        };
        if batch.is_empty() {
            continue;
        }
        let change = batch.clone();
        let r = rec
            .update_runtime(move |_, rt| {
                for x in change {
                    if x.quarantine {
                        rt.quarantined.insert(x.key);
                    } else {
                        rt.quarantined.remove(&x.key);
                    }
                }
                Ok(())
            })
            .await;
        match r {
            Ok(_) => {
                let mut t = table.lock().expect("health table");
                for x in batch {
                    if let Some(h) = t.get_mut(&x.key) {
                        h.quarantined = x.quarantine;
                        h.transitions += 1;
                        events.emit("health", format!("{} {}", h.dest, x.why));
                    }
                }
            }
            // The kernel change failed: nothing is recorded, the old state stays and the
            // probes decide again; the failure is reported, never a quarantine claimed.
            Err(e) => {
                tracing::warn!(error = %e, transitions = batch.len(), "health transitions not applied");
                let t = table.lock().expect("health table");
                for x in &batch {
                    if let Some(h) = t.get(&x.key) {
                        events.emit("health", format!("{} {} — NOT in force: {e}", h.dest, x.why));
                    }
                }
            }
        }
    }
}
