//! observe → diff → apply → observe → report, with the rules that make it safe:
//! the spec is for this node, its generation is not older than the last accepted one,
//! everything it names exists before the first change, and ownership is recorded before
//! acting so a crash mid-apply never orphans what the agent created.
use std::sync::Arc;

use lvs_proto::NodeSpec;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::error::ReconcileError;
use super::ownership::claim;
use super::ownership::reclaim;
use super::ownership::release;
use super::preflight::preflight;
use super::report::report;
use crate::kernel::observe::{self, Observed};
use crate::kernel::system::System;
use crate::kernel::translate;
use crate::reconcile::action::{Action, Plan};
use crate::reconcile::apply;
use crate::reconcile::diff;
use crate::reconcile::state::{self, State, Store, StoreError};
use lvs_proto::reply::Outcome;
use lvs_proto::reply::Report;

/// The reconciler of one node. All mutations go through one lock: applies never interleave.
pub struct Reconciler<S> {
    node: String,
    sys: Arc<S>,
    store: Store,
    lock: Mutex<()>,
    /// The node's script policy: a spec naming a script it cannot run is refused whole.
    scripts: Arc<crate::health::scripts::Scripts>,
}

impl<S: System> Reconciler<S> {
    /// A reconciler for `node`, persisting under `store`, with the default script policy.
    pub fn new(node: impl Into<String>, sys: Arc<S>, store: Store) -> Self {
        Self::with_scripts(node, sys, store, Arc::default())
    }

    /// [`Reconciler::new`] with the script directory and user `scripts`.
    pub fn with_scripts(
        node: impl Into<String>,
        sys: Arc<S>,
        store: Store,
        scripts: Arc<crate::health::scripts::Scripts>,
    ) -> Self {
        Self { node: node.into(), sys, store, lock: Mutex::new(()), scripts }
    }

    /// The node's script policy (checks and hooks run by it).
    pub fn scripts(&self) -> &Arc<crate::health::scripts::Scripts> {
        &self.scripts
    }

    /// The kernel boundary.
    pub fn system(&self) -> &S {
        &self.sys
    }

    /// The state store (its recovery note).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the reconciler can take its lock within `within`: false means an apply or
    /// live change has been stuck that long (every kernel call has its own deadline, so a
    /// healthy one never is) and the agent should be restarted by its watchdog.
    pub async fn responsive(&self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, self.lock.lock()).await.is_ok()
    }

    /// The persisted state.
    pub fn state(&self) -> Result<State, StoreError> {
        self.store.load()
    }

    fn check(&self, spec: &NodeSpec, st: &State) -> Result<(), ReconcileError> {
        if spec.node != self.node {
            return Err(ReconcileError::WrongNode { me: self.node.clone(), got: spec.node.clone() });
        }
        if spec.generation < st.generation {
            return Err(ReconcileError::Stale { stored: st.generation, got: spec.generation });
        }
        if spec.generation == st.generation
            && !st.fingerprint.is_empty()
            && st.fingerprint != state::fingerprint(spec)
        {
            return Err(ReconcileError::Conflict {
                generation: st.generation,
                stored: st.fingerprint.clone(),
            });
        }
        Ok(())
    }

    async fn diff(&self, spec: &NodeSpec, st: &State) -> Result<(Observed, Plan), ReconcileError> {
        let marks = !spec.marks.is_empty() || st.owned.mark_table;
        let observed = observe::observe(&*self.sys, spec, !st.owned.services.is_empty(), marks).await?;
        preflight(spec, &observed, &self.scripts)?;
        let plan = diff::diff(spec, &observed, &st.owned, &st.runtime);
        if !plan.conflicts.is_empty() {
            return Err(ReconcileError::Preflight(plan.conflicts));
        }
        Ok((observed, plan))
    }

    /// The spec's IPVS services that exist in the kernel but were not created by this agent
    /// (another tool's, e.g. keepalived's during a migration): adopted only when asked.
    async fn foreign_spec_services(
        &self,
        spec: &NodeSpec,
        st: &State,
    ) -> Result<Vec<lvs_proto::spec::ServiceKey>, ReconcileError> {
        let table = self.sys.ipvs().await?.unwrap_or_default();
        Ok(spec
            .virtual_services
            .iter()
            .map(|v| v.key)
            .filter(|k| !st.owned.services.contains(k))
            .filter(|k| table.iter().any(|s| s.service.key == translate::service_key(k)))
            .collect())
    }

    /// Whether `spec` has marks and a marking table stands that this agent did not make
    /// (its state was lost, or someone made one of that name): adopted only when asked.
    async fn foreign_mark_table(&self, spec: &NodeSpec, st: &State) -> Result<bool, ReconcileError> {
        if spec.marks.is_empty() || st.owned.mark_table {
            return Ok(false);
        }
        Ok(self.sys.mark_table().await?.is_some())
    }

    /// What applying `spec` would change; changes nothing. With `adopt`, IPVS services the
    /// spec names that another tool created count as this agent's (as the apply would make them).
    pub async fn plan(&self, spec: &NodeSpec, adopt: bool) -> Result<Report, ReconcileError> {
        let mut st = self.store.load()?;
        self.check(spec, &st)?;
        if adopt {
            st.owned.services.extend(self.foreign_spec_services(spec, &st).await?);
            st.owned.mark_table |= self.foreign_mark_table(spec, &st).await?;
        }
        let (_, plan) = self.diff(spec, &st).await?;
        Ok(report(spec, &plan, vec![Outcome::NotAttempted; plan.actions.len()], Vec::new()))
    }

    /// Make the node match `spec`. An admin's apply re-asserts the definition, so it also
    /// lifts an `ipvs clear`. With `adopt`, IPVS services the spec names that another tool
    /// created become this agent's (recorded before any change) and are made to match;
    /// without it they are a conflict and nothing is changed.
    pub async fn apply(&self, spec: &NodeSpec, adopt: bool) -> Result<Report, ReconcileError> {
        let _guard = self.lock.lock().await;
        let mut st = self.store.load()?;
        if st.runtime.ipvs_cleared {
            self.check(spec, &st)?;
            st.runtime.ipvs_cleared = false;
            self.store.save(&st)?;
        }
        if adopt {
            self.check(spec, &st)?;
            let adopted = self.foreign_spec_services(spec, &st).await?;
            if !adopted.is_empty() {
                info!(node = %self.node, services = ?adopted, "adopting IPVS services another tool created");
                st.owned.services.extend(adopted);
                self.store.save(&st)?;
            }
            if self.foreign_mark_table(spec, &st).await? {
                info!(node = %self.node, table = crate::marks::TABLE, "adopting a marking table this agent did not make");
                st.owned.mark_table = true;
                self.store.save(&st)?;
            }
        }
        self.apply_locked(spec).await
    }

    /// Change the runtime layer (admin weights, quarantine, a clear) of the accepted spec
    /// with `f` and make the IPVS table follow — under the apply lock, so a live change
    /// never interleaves with an apply.
    ///
    /// Only the IPVS part of the node is touched: a drain or a quarantine must reach the
    /// kernel even when something unrelated (a gateway, a VIP) cannot be applied right now.
    /// The change is recorded only if the kernel shows it afterwards; otherwise the runtime
    /// layer is put back as it was and the error says what the kernel still differs in.
    pub async fn update_runtime<T>(
        &self,
        f: impl FnOnce(&NodeSpec, &mut state::Runtime) -> Result<T, ReconcileError>,
    ) -> Result<(T, Report), ReconcileError> {
        let _guard = self.lock.lock().await;
        let mut st = self.store.load()?;
        let spec = st.spec.clone().ok_or(ReconcileError::NoSpec)?;
        let before = st.runtime.clone();
        let t = f(&spec, &mut st.runtime)?;
        if st.runtime == before {
            return Ok((t, report(&spec, &Plan::default(), Vec::new(), Vec::new())));
        }
        // IPVS only: the marking table is not the runtime layer's.
        let observed = observe::observe(&*self.sys, &spec, true, false).await?;
        if observed.ipvs.is_none() {
            return Err(ReconcileError::NotInForce("this kernel has no IPVS (load ip_vs)".into()));
        }
        let plan = ipvs_only(diff::diff(&spec, &observed, &st.owned, &st.runtime));
        for a in &plan.actions {
            claim(&mut st, &spec, a);
        }
        self.store.save(&st)?;
        let outcomes = apply::apply(&*self.sys, &plan.actions).await;
        for (a, o) in plan.actions.iter().zip(&outcomes) {
            if *o == Outcome::Applied {
                release(&mut st, a);
                reclaim(&mut st, &spec, a);
            }
        }
        let observed = observe::observe(&*self.sys, &spec, true, false).await?;
        let after = ipvs_only(diff::diff(&spec, &observed, &st.owned, &st.runtime));
        let drift = after.actions;
        if !drift.is_empty() {
            st.runtime = before;
            self.store.save(&st)?;
            let failed: Vec<String> = plan
                .actions
                .iter()
                .zip(&outcomes)
                .filter_map(|(a, o)| match o {
                    Outcome::Failed(e) => Some(format!("{a}: {e}")),
                    _ => None,
                })
                .collect();
            let drift: Vec<String> = drift.iter().map(ToString::to_string).collect();
            warn!(node = %self.node, ?drift, ?failed, "live IPVS change not in force; not recorded");
            return Err(ReconcileError::NotInForce(format!(
                "the kernel does not show it ({}); failed: {}",
                drift.join("; "),
                if failed.is_empty() { "nothing reported".into() } else { failed.join("; ") }
            )));
        }
        self.store.save(&st)?;
        Ok((t, report(&spec, &plan, outcomes, drift)))
    }

    async fn apply_locked(&self, spec: &NodeSpec) -> Result<Report, ReconcileError> {
        let mut st = self.store.load()?;
        self.check(spec, &st)?;
        let (_, plan) = self.diff(spec, &st).await?;
        // Accept the spec and claim what we are about to create *before* touching the
        // kernel: after a crash, the restart re-applies it and still knows what it owns.
        st.generation = spec.generation;
        st.fingerprint = state::fingerprint(spec);
        st.spec = Some(spec.clone());
        for a in &plan.actions {
            claim(&mut st, spec, a);
        }
        self.store.save(&st)?;
        let outcomes = apply::apply(&*self.sys, &plan.actions).await;
        for (a, o) in plan.actions.iter().zip(&outcomes) {
            if *o == Outcome::Applied {
                release(&mut st, a);
                reclaim(&mut st, spec, a);
            }
        }
        self.store.save(&st)?;
        // Observe again: what still differs is reported, not hidden.
        let (_, after) = self.diff(spec, &st).await?;
        let r = report(spec, &plan, outcomes, after.actions);
        let applied = r.applied();
        if r.converged {
            info!(node = %self.node, generation = spec.generation, actions = applied, "applied");
        } else {
            warn!(node = %self.node, generation = spec.generation, applied, drift = r.drift_after.len(), "apply incomplete");
        }
        Ok(r)
    }

    /// Take this node out of the cluster: remove exactly what the agent owns (its IPVS
    /// services, addresses and routes), put the sysctls it changed back to the values it
    /// found, and forget the spec, so nothing is healed or re-applied any more. The
    /// generation is kept: only a newer one (the node added back) is accepted later.
    /// What could not be undone stays owned and is reported; a second decommission retries it.
    pub async fn decommission(&self) -> Result<Report, ReconcileError> {
        let _guard = self.lock.lock().await;
        let mut st = self.store.load()?;
        // A decommission cut short (a change failed) forgot the spec but still owns what it
        // could not undo: running it again finishes the job.
        let owns = !(st.owned.addresses.is_empty()
            && st.owned.routes.is_empty()
            && st.owned.services.is_empty()
            && st.owned.sysctls.is_empty()
            && st.owned.sync_daemons.is_empty()
            && !st.owned.mark_table);
        let spec = match st.spec.clone() {
            Some(spec) => spec,
            None if owns => NodeSpec {
                cluster: String::new(),
                node: self.node.clone(),
                role: lvs_proto::spec::Role::RealServer, // (unused: an empty spec diffs the same for every role)
                generation: st.generation,
                addresses: Vec::new(),
                routes: Vec::new(),
                sysctls: Vec::new(),
                virtual_services: Vec::new(),
                checks: Vec::new(),
                ipvs_timeouts: None,
                vrrp: None,
                bgp: None,
                arp_watch: None,
                marks: vec![],
            },
            None => return Err(ReconcileError::NoSpec),
        };
        let nothing = NodeSpec {
            addresses: Vec::new(),
            routes: Vec::new(),
            sysctls: Vec::new(),
            virtual_services: Vec::new(),
            checks: Vec::new(),
            ipvs_timeouts: None,
            vrrp: None,
            bgp: None,
            marks: Vec::new(),
            ..spec.clone()
        };
        let observed = observe::observe(
            &*self.sys,
            &nothing,
            !st.owned.services.is_empty() || !st.owned.sync_daemons.is_empty(),
            st.owned.mark_table,
        )
        .await?;
        let mut plan = diff::diff(&nothing, &observed, &st.owned, &state::Runtime::default());
        for (key, before) in &st.owned.sysctls {
            let now = self.sys.sysctl(key).await?.unwrap_or_default();
            if now.trim() != before.trim() {
                plan.actions.push(Action::SetSysctl {
                    key: key.clone(),
                    from: now.trim().into(),
                    to: before.clone(),
                });
            }
        }
        let outcomes = apply::apply(&*self.sys, &plan.actions).await;
        for (a, o) in plan.actions.iter().zip(&outcomes) {
            if *o == Outcome::Applied {
                release(&mut st, a);
                if let Action::SetSysctl { key, .. } = a {
                    st.owned.sysctls.remove(key);
                }
            }
        }
        st.spec = None;
        st.fingerprint.clear();
        st.runtime = state::Runtime::default();
        self.store.save(&st)?;
        let r = report(&spec, &plan, outcomes, Vec::new());
        info!(node = %self.node, removed = r.applied(), left = r.actions.len() - r.applied(), "decommissioned");
        Ok(r)
    }

    /// Re-apply the stored spec (at start: addresses and IPVS rules do not survive a reboot).
    pub async fn reapply_stored(&self) -> Result<Option<Report>, ReconcileError> {
        let st = self.store.load()?;
        let Some(spec) = st.spec else { return Ok(None) };
        // Not an admin's apply: the runtime layer (drains, quarantine, a clear) stays.
        let _guard = self.lock.lock().await;
        self.apply_locked(&spec).await.map(Some)
    }

    /// Observed drift from the stored spec: its generation and the plan an apply would
    /// carry out now (`None` before any spec was accepted).
    pub async fn drift(&self) -> Result<Option<(u64, Plan)>, ReconcileError> {
        let st = self.store.load()?;
        let Some(spec) = st.spec.clone() else { return Ok(None) };
        let (_, plan) = self.diff(&spec, &st).await?;
        Ok(Some((spec.generation, plan)))
    }
}

/// The IPVS part of a plan: what the runtime layer (weights, quarantine, clear) changes.
fn ipvs_only(mut plan: Plan) -> Plan {
    plan.actions.retain(|a| matches!(a, Action::Ipvs(_)));
    plan.conflicts.clear();
    plan
}
