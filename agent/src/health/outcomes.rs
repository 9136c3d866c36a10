//! What a probe's result does: each destination's health record, the transitions the flush task applies through the reconciler (quarantine, restore, the quorum's sorry server) and reports as events and notify hooks.
use crate::health::notify::{Note, Notifier};
use crate::kernel::system::System;
use crate::reconcile::reconciler::Reconciler;
use crate::reconcile::state::{DestKey, Runtime};
use crate::telemetry::events::Events;
use lvs_proto::NodeSpec;
use lvs_proto::reply::EventKind;
use lvs_proto::spec::{HealthCheckSpec, ServiceKey, VirtualServiceSpec};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// As `status` answers it.
    pub fn to_reply(&self) -> lvs_proto::reply::DestinationHealth {
        lvs_proto::reply::DestinationHealth {
            service: self.service,
            destination: self.dest,
            up: self.up,
            quarantined: self.quarantined,
            successes: self.successes,
            failures: self.failures,
            transitions: self.transitions,
            probes: self.probes,
            last_error: self.last_error.clone(),
        }
    }

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

pub(crate) type Table = Arc<Mutex<BTreeMap<DestKey, DestHealth>>>;

/// A decision of a probe task: quarantine (`true`) or restore the destination.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub(crate) key: DestKey,
    pub(crate) quarantine: bool,
    pub(crate) why: String,
}

/// What the flusher is asked to do.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Put a probe task's decision in force.
    Transition(Transition),
    /// The spec changed (servers added or removed, a new quorum): settle every service
    /// against its quorum, as a transition would, and publish what changed.
    Settle,
}

pub(crate) type Sender = tokio::sync::mpsc::Sender<Work>;

/// Transitions waiting for the flusher. Each destination's task re-decides on every probe
/// until its transition is in force, so a full queue loses nothing: the decision is
/// simply made again one interval later.
pub(crate) const MAX_QUEUED: usize = 4096;

/// Apply queued transitions, everything queued at once as one runtime change, then
/// publish them and run the services' hooks.
pub(crate) async fn flush<S: System + 'static>(
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
pub(crate) struct Announcement {
    message: String,
    hook: Option<Note>,
}

/// The hook run of `v` for `event`, with the variables every run has.
pub(crate) fn hook(
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
pub(crate) fn destination_note(spec: &NodeSpec, x: &Transition) -> Option<Announcement> {
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
pub(crate) fn quorum_note(v: &VirtualServiceSpec, rt: &Runtime, lost: bool) -> Announcement {
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
