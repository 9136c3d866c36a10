//! Director-side health checks of every destination (HTTP or HTTPS GET, TCP connect, or
//! an executable: [`crate::health::probe`]), each with its service's check or its own.
//!
//! One task per destination, started with a stagger inside its interval so hundreds of
//! probes spread out instead of firing together; a slow probe never delays another. A
//! destination failing `fall` times in a row is quarantined (weight 0 or removed, per the
//! definition) through the reconciler's runtime layer, so the change is persisted and
//! survives re-applies; `rise` successes in a row restore it. Transitions go to one flusher
//! task that applies everything queued as a single change: a switch that takes down 200
//! servers at once costs one reconcile, not 200 in a row. The same change settles each
//! service against its quorum ([`crate::health::quorum`]), and every transition is published as an
//! event and handed to the service's notify hook ([`crate::health::notify`]).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_proto::NodeSpec;
use lvs_proto::spec::{HealthCheckSpec, ServiceKey, VirtualServiceSpec};
use tokio::task::JoinHandle;

use crate::health::notify::{Note, Notifier};
use crate::health::probe::Prober;
use crate::health::runner::CheckerThread;
use crate::kernel::system::System;
use crate::reconcile::reconciler::Reconciler;
use crate::reconcile::state::{DestKey, Runtime, override_key};
use crate::telemetry::events::Events;
use lvs_proto::reply::EventKind;

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

impl DestHealth {
    /// Count one probe's result and decide: `Some((true, why))` when this failure is the
    /// `fall`-th in a row of a destination in service (quarantine it), `Some((false, why))`
    /// when this success is the `rise`-th in a row of a quarantined one (restore it).
    /// Until the flusher has put a decision in force, `quarantined` is unchanged, so the
    /// next probe decides the same again (nothing is lost if the queue was full).
    pub fn record(&mut self, result: &Result<(), String>, hc: &HealthCheckSpec) -> Option<(bool, String)> {
        self.probes += 1;
        match result {
            Ok(()) => {
                self.up = true;
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                (self.quarantined && self.successes >= hc.rise)
                    .then(|| (false, format!("restored after {} successes", hc.rise)))
            }
            Err(e) => {
                self.up = false;
                self.last_error.clone_from(e);
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                (!self.quarantined && self.failures >= hc.fall)
                    .then(|| (true, format!("quarantined after {} failures: {e}", hc.fall)))
            }
        }
    }
}

/// When the `i`-th destination's first probe fires within its interval: golden-ratio
/// steps spread any number of destinations over the interval without clustering.
pub fn stagger(interval_ms: u64, i: usize) -> Duration {
    Duration::from_millis((interval_ms as f64 * ((i as f64 * 0.618) % 1.0)) as u64)
}

type Table = Arc<Mutex<BTreeMap<DestKey, DestHealth>>>;

/// A decision of a probe task: quarantine (`true`) or restore the destination.
#[derive(Debug, Clone)]
struct Transition {
    key: DestKey,
    quarantine: bool,
    why: String,
}

/// What the flusher is asked to do.
#[derive(Debug, Clone)]
enum Work {
    /// Put a probe task's decision in force.
    Transition(Transition),
    /// The spec changed (servers added or removed, a new quorum): settle every service
    /// against its quorum, as a transition would, and publish what changed.
    Settle,
}

type Sender = tokio::sync::mpsc::Sender<Work>;

/// Transitions waiting for the flusher. Each destination's task re-decides on every probe
/// until its transition is in force, so a full queue loses nothing: the decision is
/// simply made again one interval later.
const MAX_QUEUED: usize = 4096;

/// The checker of one agent.
#[derive(Default)]
pub struct Health {
    table: Table,
    tasks: Mutex<BTreeMap<DestKey, (HealthCheckSpec, JoinHandle<()>)>>,
    flusher: Mutex<Option<(Sender, JoinHandle<()>)>>,
    /// Started with the first destination to check (a router or real server never has one).
    thread: Mutex<Option<Arc<CheckerThread>>>,
}

/// What a destination's task is started with.
struct Wanted {
    service: ServiceKey,
    name: String,
    dest: SocketAddr,
    hc: HealthCheckSpec,
}

impl Health {
    /// The checker thread, started on first use; `None` (logged) if no thread can be made.
    fn thread(&self) -> Option<Arc<CheckerThread>> {
        let mut t = self.thread.lock().expect("checker thread");
        if t.is_none() {
            match CheckerThread::start() {
                Ok(c) => *t = Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the health checker's thread: no probes run")
                }
            }
        }
        t.clone()
    }

    /// Stop every probe and forget every destination (the node was decommissioned).
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().expect("health tasks");
        for (_, (_, t)) in tasks.iter() {
            t.abort();
        }
        tasks.clear();
        self.table.lock().expect("health table").clear();
    }
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
        // Only a director checks real servers (the wire refuses services elsewhere; a
        // stored spec of before is held to the same rule).
        let services =
            if spec.role == lvs_proto::spec::Role::Director { &spec.virtual_services[..] } else { &[] };
        for v in services {
            for d in &v.destinations {
                let Some(hc) = v.check_of(d) else { continue };
                let w = Wanted { service: v.key, name: v.name.clone(), dest: d.address, hc: hc.clone() };
                wanted.insert(override_key(&v.key, d.address), w);
            }
        }
        let tx = {
            let mut f = self.flusher.lock().expect("health flusher");
            let (tx, _) = f.get_or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::channel(MAX_QUEUED);
                let notifier = Notifier::spawn(Arc::clone(rec.scripts()));
                (tx, tokio::spawn(flush(rx, self.table.clone(), rec.clone(), events.clone(), notifier)))
            });
            tx.clone()
        };
        let mut tasks = self.tasks.lock().expect("health tasks");
        let mut table = self.table.lock().expect("health table");
        tasks.retain(|k, (hc, t)| {
            let keep = wanted.get(k).is_some_and(|w| w.hc == *hc);
            if !keep {
                t.abort();
                table.remove(k);
            }
            keep
        });
        for (i, (key, w)) in wanted.into_iter().enumerate() {
            if tasks.contains_key(&key) {
                continue;
            }
            let quarantined = runtime.quarantined.contains(&key);
            table.insert(
                key,
                DestHealth {
                    service: w.service,
                    dest: w.dest,
                    up: !quarantined,
                    quarantined,
                    successes: 0,
                    failures: 0,
                    transitions: 0,
                    probes: 0,
                    last_error: String::new(),
                },
            );
            let first = stagger(w.hc.interval_ms, i);
            let svc = crate::kernel::translate::service_key(&w.service);
            let latency = events.metrics().probe_histogram(&svc);
            let prober = Prober::new(&w.name, &w.service, w.dest, &w.hc, rec.scripts())
                .counting(events.metrics().probe_connections(&svc));
            let Some(thread) = self.thread() else { return };
            let epoch = thread.epoch();
            let task = thread.spawn(run(
                key,
                w.hc.clone(),
                prober,
                first,
                self.table.clone(),
                tx.clone(),
                latency,
                epoch,
            ));
            tasks.insert(key, (w.hc, task));
        }
        // A full queue drops this: a later transition settles the quorum too.
        let _ = tx.try_send(Work::Settle);
    }
}

/// Probe one destination once (a one-off: the checker prepares its probes once).
pub async fn probe(
    name: &str,
    service: &ServiceKey,
    dest: SocketAddr,
    hc: &HealthCheckSpec,
    scripts: &Arc<crate::health::scripts::Scripts>,
) -> Result<(), String> {
    Prober::new(name, service, dest, hc, scripts).probe().await
}

/// Probe every interval; after a failure, after the retry interval if the check has one.
/// Start times snap to the checker's grid ([`crate::health::runner::slot`]).
#[allow(clippy::too_many_arguments)] // one task's whole context, handed over once
async fn run(
    key: DestKey,
    hc: HealthCheckSpec,
    mut prober: Prober,
    stagger: Duration,
    table: Table,
    tx: Sender,
    latency: prometheus_client::metrics::histogram::Histogram,
    epoch: tokio::time::Instant,
) {
    let interval = Duration::from_millis(hc.interval_ms);
    let retry = hc.retry_interval_ms.map(Duration::from_millis);
    // The grid of the shorter of the two gaps: a retry is not made later by more than 5%.
    let slot = crate::health::runner::slot(retry.map_or(interval, |r| r.min(interval)));
    let mut next = crate::health::runner::snap(epoch, tokio::time::Instant::now() + stagger, slot);
    loop {
        tokio::time::sleep_until(next).await;
        let t0 = tokio::time::Instant::now();
        let result = prober.probe().await;
        latency.observe(t0.elapsed().as_secs_f64());
        // From the slot it was due in, as an interval timer would; never in the past (a
        // probe never takes longer than its timeout, which is shorter than both).
        let due = next
            + match (&result, retry) {
                (Err(_), Some(r)) => r,
                _ => interval,
            };
        next = crate::health::runner::snap(epoch, due.max(t0), slot);
        let transition = {
            let mut t = table.lock().expect("health table");
            let Some(h) = t.get_mut(&key) else { return };
            h.record(&result, &hc)
        };
        if let Some((quarantine, why)) = transition {
            // Until the flusher has applied it, later probes may decide it again: the
            // flusher drops decisions that are already in force.
            let _ = tx.try_send(Work::Transition(Transition { key, quarantine, why }));
        }
    }
}

/// Apply queued transitions, everything queued at once as one runtime change, then
/// publish them and run the services' hooks.
async fn flush<S: System + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<Work>,
    table: Table,
    rec: Arc<Reconciler<S>>,
    events: Events,
    notifier: Notifier,
) {
    while let Some(first) = rx.recv().await {
        let (mut batch, mut settle) = (BTreeMap::new(), false);
        let mut take = |w: Work| match w {
            Work::Transition(t) => {
                batch.insert(t.key, t);
            }
            Work::Settle => settle = true,
        };
        take(first);
        while let Ok(w) = rx.try_recv() {
            take(w);
        }
        let batch: Vec<Transition> = {
            let t = table.lock().expect("health table");
            batch
                .into_values()
                .filter(|x| t.get(&x.key).is_some_and(|h| h.quarantined != x.quarantine))
                .collect()
        };
        if batch.is_empty() && !settle {
            continue;
        }
        let change = batch.clone();
        let r = rec
            .update_runtime(move |spec, rt| {
                for x in &change {
                    if x.quarantine {
                        rt.quarantined.insert(x.key);
                    } else {
                        rt.quarantined.remove(&x.key);
                    }
                }
                let mut notes: Vec<Announcement> =
                    change.iter().filter_map(|x| destination_note(spec, x)).collect();
                notes.extend(
                    crate::health::quorum::settle(spec, rt)
                        .into_iter()
                        .map(|(v, lost)| quorum_note(v, rt, lost)),
                );
                Ok(notes)
            })
            .await;
        match r {
            Ok((notes, _)) => {
                let mut t = table.lock().expect("health table");
                for x in &batch {
                    if let Some(h) = t.get_mut(&x.key) {
                        h.quarantined = x.quarantine;
                        h.transitions += 1;
                    }
                }
                drop(t);
                for n in notes {
                    events.emit(EventKind::Health, n.message);
                    if let Some(note) = n.hook {
                        notifier.send(note);
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
                        events.emit(EventKind::Health, format!("{} {} — NOT in force: {e}", h.dest, x.why));
                    }
                }
            }
        }
    }
}

/// A transition in force: the event's message and the hook run it calls for.
struct Announcement {
    message: String,
    hook: Option<Note>,
}

/// The hook run of `v` for `event`, with the variables every run has.
fn hook(
    v: &VirtualServiceSpec,
    event: &str,
    reason: &str,
    more: Vec<(&'static str, String)>,
) -> Option<Note> {
    if v.notify.is_empty() {
        return None;
    }
    let mut env = vec![
        ("LVS_EVENT", event.to_string()),
        ("LVS_SERVICE", v.name.clone()),
        ("LVS_VIRTUAL", v.key.to_string()),
        ("LVS_REASON", reason.to_string()),
    ];
    env.extend(more);
    Some(Note { command: v.notify.clone(), env })
}

/// A destination quarantined (`down`) or restored (`up`).
fn destination_note(spec: &NodeSpec, x: &Transition) -> Option<Announcement> {
    let v = spec.virtual_services.iter().find(|v| v.key == x.key.service)?;
    let d = v.destinations.iter().find(|d| d.address == x.key.dest)?;
    let event = if x.quarantine { "down" } else { "up" };
    let more = vec![
        ("LVS_RS_NODE", d.node.clone()),
        ("LVS_RS_ADDRESS", d.address.ip().to_string()),
        ("LVS_RS_PORT", d.address.port().to_string()),
    ];
    Some(Announcement { message: format!("{} {}", d.address, x.why), hook: hook(v, event, &x.why, more) })
}

/// A service that lost (`lost`) or regained its quorum.
fn quorum_note(v: &VirtualServiceSpec, rt: &Runtime, lost: bool) -> Announcement {
    let n = crate::health::quorum::in_service(v, rt);
    let counts = format!("{n} of {} real server(s) in service, quorum {}", v.destinations.len(), v.quorum);
    let sorry = v.sorry.as_ref().map(|s| {
        if lost {
            format!("; sorry server {} takes traffic", s.address)
        } else {
            format!("; sorry server {} withdrawn", s.address)
        }
    });
    let what = if lost { "quorum lost" } else { "quorum regained" };
    let reason = format!("{counts}{}", sorry.unwrap_or_default());
    let event = if lost { "quorum-lost" } else { "quorum-regained" };
    let more = vec![("LVS_IN_SERVICE", n.to_string()), ("LVS_QUORUM", v.quorum.to_string())];
    Announcement {
        message: format!("service {} ({}): {what}: {reason}", v.name, v.key),
        hook: hook(v, event, &reason, more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::spec::{OnFailure, ProbeKind};

    fn hc(rise: u32, fall: u32) -> HealthCheckSpec {
        HealthCheckSpec {
            probe: ProbeKind::Tcp,
            interval_ms: 200,
            timeout_ms: 100,
            rise,
            fall,
            on_failure: OnFailure::Weight0,
            connect_ip: None,
            connect_port: None,
            retry_interval_ms: None,
        }
    }

    fn dest() -> DestHealth {
        DestHealth {
            service: ServiceKey::Fwmark { mark: 1, ipv6: false },
            dest: "198.18.0.11:80".parse().unwrap(),
            up: true,
            quarantined: false,
            successes: 0,
            failures: 0,
            transitions: 0,
            probes: 0,
            last_error: String::new(),
        }
    }

    /// Feed `seq` (`+` success, `-` failure) and return the probe numbers (1-based) that
    /// decided a transition, applying each decision at once as the flusher would.
    fn run(seq: &str, rise: u32, fall: u32) -> Vec<(usize, bool)> {
        let (mut h, hc) = (dest(), hc(rise, fall));
        let mut out = Vec::new();
        for (i, c) in seq.chars().enumerate() {
            let r = if c == '+' { Ok(()) } else { Err("refused".to_string()) };
            if let Some((q, _)) = h.record(&r, &hc) {
                h.quarantined = q;
                out.push((i + 1, q));
            }
        }
        out
    }

    #[test]
    fn fall_failures_in_a_row_quarantine_and_a_success_resets_the_count() {
        assert_eq!(run("--+--+---", 2, 3), [(9, true)]);
        assert_eq!(run("---", 2, 3), [(3, true)]);
        assert_eq!(run("-", 2, 1), [(1, true)]);
    }

    #[test]
    fn rise_successes_in_a_row_restore_and_a_failure_resets_the_count() {
        assert_eq!(run("---+-++", 2, 3), [(3, true), (7, false)]);
        assert_eq!(run("---+++", 3, 3), [(3, true), (6, false)]);
    }

    #[test]
    fn a_decision_not_yet_in_force_is_made_again_by_the_next_probe() {
        let (mut h, hc) = (dest(), hc(2, 3));
        let e = Err("refused".to_string());
        assert!(h.record(&e, &hc).is_none() && h.record(&e, &hc).is_none());
        assert_eq!(h.record(&e, &hc).map(|x| x.0), Some(true));
        // The flusher has not applied it (queue full, kernel refused): decided again.
        assert_eq!(h.record(&e, &hc).map(|x| x.0), Some(true));
        assert_eq!((h.probes, h.failures, h.up), (4, 4, false));
        assert_eq!(h.last_error, "refused");
    }

    #[tokio::test]
    async fn transitions_queued_together_are_applied_as_one_change() {
        use crate::kernel::fake::FakeSystem;
        use crate::reconcile::state::Store;
        // The lab's director (two destinations), applied once on the fake kernel.
        let dir = tempfile::tempdir().unwrap();
        let sys = Arc::new(FakeSystem::new(&["eth1"], true));
        let rec = Arc::new(Reconciler::new("director", Arc::clone(&sys), Store::new(dir.path())));
        let spec = director_spec();
        rec.apply(&spec, false).await.unwrap();
        sys.ipvs_batches.lock().unwrap().clear();
        let v = &spec.virtual_services[0];
        let table: Table = Arc::default();
        let mut keys = Vec::new();
        for d in &v.destinations {
            let key = override_key(&v.key, d.address);
            table.lock().unwrap().insert(key, DestHealth { service: v.key, dest: d.address, ..dest() });
            keys.push(key);
        }
        // A switch dies: both destinations fail at once; both decisions are queued
        // before the flusher runs.
        let (tx, rx) = tokio::sync::mpsc::channel(MAX_QUEUED);
        for k in &keys {
            tx.try_send(Work::Transition(Transition { key: *k, quarantine: true, why: "down".into() }))
                .unwrap();
        }
        drop(tx);
        flush(rx, Arc::clone(&table), Arc::clone(&rec), Events::default(), Notifier::spawn(Arc::default()))
            .await;
        assert_eq!(*sys.ipvs_batches.lock().unwrap(), [2], "one kernel batch with both weight edits");
        let st = rec.state().unwrap();
        assert_eq!(st.runtime.quarantined.len(), 2);
        assert!(table.lock().unwrap().values().all(|h| h.quarantined && h.transitions == 1));
    }

    /// The lab's director spec as the planner makes it (`lvsctl -f deploy/examples/lab.toml
    /// plan --offline -o json`); this crate's unit tests cannot call the controller.
    fn director_spec() -> NodeSpec {
        let json = include_str!("../../tests/fixtures/director-spec.json");
        serde_json::from_str(json).expect("director spec fixture")
    }

    #[test]
    fn first_probes_spread_over_the_interval() {
        let n = 200;
        let mut at: Vec<u64> = (0..n).map(|i| stagger(1000, i).as_millis() as u64).collect();
        assert!(at.iter().all(|t| *t < 1000));
        at.sort();
        let widest = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        // 200 probes evenly would be 5 ms apart; golden-ratio steps stay close to that.
        assert!(widest <= 15, "a gap of {widest} ms");
        assert!(at[0] < 15 && at[n - 1] > 985, "{} .. {}", at[0], at[n - 1]);
    }
}
