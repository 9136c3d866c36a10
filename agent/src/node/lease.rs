//! A controller's reservation of a generation between its plan and its apply, so that
//! two admins never interleave their changes on one node.
use std::time::{Duration, Instant};

use lvs_proto::NodeSpec;

use super::agent::Agent;
use super::agent::Lease;
use super::error::AgentError;
use crate::kernel::system::System;
use lvs_proto::reply::Report;

impl<S: System + 'static> Agent<S> {
    pub(super) fn lease(
        &self,
        spec: &NodeSpec,
        id: &str,
        ttl: Duration,
        reserve: bool,
    ) -> Result<(), AgentError> {
        check_lease_id(id)?;
        let now = Instant::now();
        let mut l = self.lease.lock().expect("lease");
        if let Some(cur) = l.as_ref().filter(|c| c.expires > now && c.id != id) {
            return Err(AgentError::Leased(format!(
                "conflict: another controller is applying generation {} to {} (lease {} expires in {} s); \
                 wait for it to finish, then re-run",
                cur.generation,
                self.node,
                &cur.id[..cur.id.len().min(8)],
                (cur.expires - now).as_secs() + 1
            )));
        }
        if reserve && !id.is_empty() {
            *l = if ttl.is_zero() {
                None
            } else {
                Some(Lease { id: id.to_string(), generation: spec.generation, expires: now + ttl })
            };
        }
        Ok(())
    }

    /// Give up the reservation `id` holds, if it still holds one (the `Release` call, and
    /// the end of every apply). Whether it held one.
    pub fn release(&self, id: &str) -> Result<bool, AgentError> {
        check_lease_id(id)?;
        let mut l = self.lease.lock().expect("lease");
        let held = !id.is_empty() && l.as_ref().is_some_and(|c| c.id == id && c.expires > Instant::now());
        if l.as_ref().is_some_and(|c| c.id == id) {
            *l = None;
        }
        Ok(held)
    }

    /// Diff `spec` against the node; with a lease id, reserve the generation for `ttl`
    /// (a zero `ttl` releases the caller's reservation).
    /// Without a lease id it is a read (`lvsctl plan`) and never refused for someone
    /// else's reservation: only a plan that reserves can conflict with one. `adopt`: see
    /// [`Agent::apply`].
    pub async fn plan(
        &self,
        spec: &NodeSpec,
        lease: &str,
        ttl: Duration,
        adopt: bool,
    ) -> Result<Report, AgentError> {
        check_lease_id(lease)?;
        let r = self.rec.plan(spec, adopt).await?;
        if !lease.is_empty() {
            self.lease(spec, lease, ttl, true)?;
        }
        Ok(r)
    }
}

/// Longest lease id accepted: ours are 16 hex digits.
const MAX_LEASE_ID: usize = 64;

/// A lease id is what the controller's generator makes: short, printable ASCII. Anything
/// else is refused before it is stored or sliced for a message.
fn check_lease_id(id: &str) -> Result<(), AgentError> {
    if id.len() > MAX_LEASE_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(AgentError::Invalid(format!(
            "lease id must be at most {MAX_LEASE_ID} ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}
