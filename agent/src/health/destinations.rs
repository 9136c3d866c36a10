//! Director-side health checks of every destination (HTTP or HTTPS GET, TCP connect, or
//! an executable: [`crate::health::probe`]), each with its service's check or its own.
//!
//! One task per probe, shared by every destination that probes the same address and port
//! the same way ([`crate::health::probe_loop`]: ten services in front of one server cost
//! one probe an interval), started with a stagger inside its interval so hundreds of
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

use lvs_proto::NodeSpec;
use lvs_proto::spec::{HealthCheckSpec, ServiceKey};
use tokio::task::JoinHandle;

use super::outcomes::DestHealth;
use super::outcomes::MAX_QUEUED;
use super::outcomes::Sender;
use super::outcomes::Table;
use super::outcomes::Work;
use super::outcomes::flush;
use super::outcomes::stagger;
use crate::health::notify::Notifier;
use crate::health::probe::Prober;
use crate::health::probe_loop::{Member, ProbeKey, Probing, group, run};
use crate::health::runner::CheckerThread;
use crate::kernel::system::System;
use crate::reconcile::reconciler::Reconciler;
use crate::reconcile::state::{DestKey, Runtime, override_key};
use crate::telemetry::events::Events;

/// The checker of one agent.
#[derive(Default)]
pub struct Health {
    table: Table,
    /// One task per shared probe, with the destinations that take its results.
    tasks: Mutex<Vec<ProbeTask>>,
    flusher: Mutex<Option<(Sender, JoinHandle<()>)>>,
    /// Started with the first destination to check (a router or real server never has one).
    thread: Mutex<Option<Arc<CheckerThread>>>,
}

/// A running shared probe: what it probes, who takes its results, its task.
type ProbeTask = (ProbeKey, Vec<Member>, JoinHandle<()>);

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
        for (_, _, t) in tasks.iter() {
            t.abort();
        }
        tasks.clear();
        self.table.lock().expect("health table").clear();
    }

    /// [`Health::stop`], and the task that writes verdicts to the kernel too (with it the
    /// notify hooks' runner, which it owns): what [`crate::node::Agent::stop`] leaves of
    /// the checker is a table nobody writes to.
    pub fn shutdown(&self) {
        self.stop();
        if let Some((_, f)) = self.flusher.lock().expect("health flusher").take() {
            f.abort();
        }
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        for (_, _, t) in self.tasks.lock().expect("health tasks").iter() {
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
        let wanted = wanted(spec);
        let tx = self.flusher(rec, events);
        // Every wanted destination under the probe it takes, in key order.
        let groups = group(wanted.iter().map(|(k, w)| (ProbeKey::of(*k, w.dest, &w.hc), (*k, w))));
        let mut tasks = self.tasks.lock().expect("health tasks");
        let mut table = self.table.lock().expect("health table");
        // A destination no longer wanted, or wanted with another check, starts afresh.
        table.retain(|k, _| {
            wanted.get(k).is_some_and(|w| {
                tasks.iter().any(|(_, m, _)| m.iter().any(|(mk, hc)| mk == k && w.hc == *hc))
            })
        });
        // A task whose probe and members are still wanted as they are keeps its schedule.
        tasks.retain(|(pk, members, t)| {
            let keep = groups.iter().any(|(k, ms)| {
                k == pk
                    && ms.len() == members.len()
                    && ms.iter().zip(members.iter()).all(|((mk, w), (k2, hc))| mk == k2 && w.hc == *hc)
            });
            if !keep {
                t.abort();
            }
            keep
        });
        for (i, (pk, ms)) in groups.into_iter().enumerate() {
            if tasks.iter().any(|(k, _, _)| *k == pk) {
                continue;
            }
            for (key, w) in &ms {
                table.entry(*key).or_insert_with(|| fresh(w, runtime.quarantined.contains(key)));
            }
            let (_, first) = ms[0];
            let svc = crate::kernel::translate::service_key(&first.service);
            // The probe's connections are counted under the first service that takes it.
            let prober = Prober::new(&first.name, &first.service, first.dest, &first.hc, rec.scripts())
                .counting(events.metrics().probe_connections(&svc));
            let latency = ms
                .iter()
                .map(|(_, w)| {
                    events.metrics().probe_histogram(&crate::kernel::translate::service_key(&w.service))
                })
                .collect();
            let members: Vec<Member> = ms.iter().map(|(k, w)| (*k, w.hc.clone())).collect();
            let Some(thread) = self.thread() else { return };
            let task = thread.spawn(run(Probing {
                members: members.clone(),
                prober,
                stagger: stagger(first.hc.interval_ms, i),
                table: self.table.clone(),
                tx: tx.clone(),
                latency,
                epoch: thread.epoch(),
            }));
            tasks.push((pk, members, task));
        }
        // A full queue drops this: a later transition settles the quorum too.
        let _ = tx.try_send(Work::Settle);
    }
}

impl Health {
    /// The sender of the task that applies verdicts, started on first use.
    fn flusher<S: System + 'static>(&self, rec: &Arc<Reconciler<S>>, events: &Events) -> Sender {
        let mut f = self.flusher.lock().expect("health flusher");
        let (tx, _) = f.get_or_insert_with(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(MAX_QUEUED);
            let notifier = Notifier::spawn(Arc::clone(rec.scripts()));
            (tx, tokio::spawn(flush(rx, self.table.clone(), rec.clone(), events.clone(), notifier)))
        });
        tx.clone()
    }
}

/// Every destination `spec` wants checked, by kernel key. Only a director checks real
/// servers (the wire refuses services elsewhere; a stored spec of before is held to the
/// same rule).
fn wanted(spec: &NodeSpec) -> BTreeMap<DestKey, Wanted> {
    let mut wanted = BTreeMap::new();
    let services =
        if spec.role == lvs_proto::spec::Role::Director { &spec.virtual_services[..] } else { &[] };
    for v in services {
        for d in &v.destinations {
            let Some(hc) = v.check_of(d) else { continue };
            let w = Wanted { service: v.key, name: v.name.clone(), dest: d.address, hc: hc.clone() };
            wanted.insert(override_key(&v.key, d.address), w);
        }
    }
    wanted
}

/// A destination's health before its first probe: as the runtime layer left it.
fn fresh(w: &Wanted, quarantined: bool) -> DestHealth {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::outcomes::Transition;
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
