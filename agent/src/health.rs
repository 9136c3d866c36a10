//! Director-side health checks of every destination (HTTP GET or TCP connect).
//!
//! One task per destination, started with a stagger inside its interval so hundreds of
//! probes spread out instead of firing together; a slow probe never delays another. A
//! destination failing `fall` times in a row is quarantined (weight 0 or removed, per the
//! definition) through the reconciler's runtime layer, so the change is persisted and
//! survives re-applies; `rise` successes in a row restore it.
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

/// The checker of one agent.
#[derive(Default)]
pub struct Health {
    table: Table,
    tasks: Mutex<BTreeMap<String, (HealthCheckSpec, JoinHandle<()>)>>,
}

impl Drop for Health {
    fn drop(&mut self) {
        for (_, (_, t)) in self.tasks.lock().expect("health tasks").iter() {
            t.abort();
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
            let task = tokio::spawn(run(
                key.clone(),
                hc.clone(),
                stagger,
                self.table.clone(),
                rec.clone(),
                events.clone(),
            ));
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

async fn run<S: System + 'static>(
    key: String,
    hc: HealthCheckSpec,
    stagger: Duration,
    table: Table,
    rec: Arc<Reconciler<S>>,
    events: Events,
) {
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
        // Update counters and decide, without holding the lock across the kernel change.
        let transition = {
            let mut t = table.lock().expect("health table");
            let Some(h) = t.get_mut(&key) else { return };
            h.probes += 1;
            match &result {
                Ok(()) => {
                    h.up = true;
                    h.successes = h.successes.saturating_add(1);
                    h.failures = 0;
                    (h.quarantined && h.successes >= hc.rise).then_some(false)
                }
                Err(e) => {
                    h.up = false;
                    h.last_error.clone_from(e);
                    h.failures = h.failures.saturating_add(1);
                    h.successes = 0;
                    (!h.quarantined && h.failures >= hc.fall).then_some(true)
                }
            }
        };
        let Some(quarantine) = transition else { continue };
        let k = key.clone();
        let r = rec
            .update_runtime(move |_, rt| {
                if quarantine {
                    rt.quarantined.insert(k);
                } else {
                    rt.quarantined.remove(&k);
                }
                Ok(())
            })
            .await;
        match r {
            Ok(_) => {
                let mut t = table.lock().expect("health table");
                if let Some(h) = t.get_mut(&key) {
                    h.quarantined = quarantine;
                    h.transitions += 1;
                }
                let why = result.err().unwrap_or_default();
                if quarantine {
                    events.emit("health", format!("{dest} quarantined after {} failures: {why}", hc.fall));
                } else {
                    events.emit("health", format!("{dest} restored after {} successes", hc.rise));
                }
            }
            // The kernel change failed: keep the old state and try again on the next probe.
            Err(e) => tracing::warn!(dest = %dest, error = %e, "health transition not applied"),
        }
    }
}
