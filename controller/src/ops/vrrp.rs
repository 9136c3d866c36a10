//! Director HA across the fleet: who is master of each VRRP instance, and a planned
//! failover (the master hands over; the VRRP engines pick the next one).
use std::time::{Duration, Instant};

use lvs_proto::reply::{VrrpState, VrrpStatus};

use crate::fleet::NodeError;
use crate::model::VrrpGroup;
use crate::ops::Ctx;

/// One VRRP instance as its directors report it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceView {
    /// Instance name.
    pub instance: String,
    /// Each director: its status, or why it did not answer.
    pub directors: Vec<(String, Result<Option<VrrpStatus>, NodeError>)>,
}

impl InstanceView {
    /// The directors that say they are master.
    pub fn masters(&self) -> Vec<&str> {
        self.directors
            .iter()
            .filter(|(_, s)| matches!(s, Ok(Some(v)) if v.state == VrrpState::Master))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Every VRRP instance's directors, asked at once.
pub async fn instances(ctx: &Ctx) -> Vec<InstanceView> {
    let mut out = Vec::new();
    for g in &ctx.cluster.vrrp {
        out.push(instance(ctx, g).await);
    }
    out
}

async fn instance(ctx: &Ctx, g: &VrrpGroup) -> InstanceView {
    let names: Vec<String> = g.members.iter().map(|(n, _)| n.clone()).collect();
    let directors =
        ctx.fleet.each(&names, |n| async move { ctx.fleet.status(&n, None).await.map(|s| s.vrrp) }).await;
    InstanceView { instance: g.name.clone(), directors }
}

/// A planned failover's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failover {
    /// The VRRP instance's name in the definition.
    pub instance: String,
    /// The master before.
    pub from: String,
    /// The master after.
    pub to: String,
    /// From the call to the new master reporting MASTER.
    pub took_ms: u128,
}

/// Why a planned failover was not done.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// Nothing to hand over, or not to that director.
    #[error("{0}")]
    Refused(String),
    /// A director did not answer or refused.
    #[error("{node}: {error}")]
    Node {
        /// The director, by its name in the definition.
        node: String,
        /// How the call failed: unreachable, timed out or refused with a status.
        error: NodeError,
    },
}

/// Hand `g`'s VIPs from its master to the backup with the highest priority (which must
/// be `to`, when given), and wait until that one reports MASTER.
pub async fn failover(ctx: &Ctx, g: &VrrpGroup, to: Option<&str>) -> Result<Failover, FailoverError> {
    let view = instance(ctx, g).await;
    let masters = view.masters();
    let [from] = masters[..] else {
        return Err(FailoverError::Refused(format!(
            "VRRP instance {} has {} master(s) ({}): fix that first (lvsctl status)",
            g.name,
            masters.len(),
            masters.join(", ")
        )));
    };
    let from = from.to_string();
    // VRRP gives the VIPs to the live backup with the highest priority.
    let next = g
        .members
        .iter()
        .filter(|(n, _)| *n != from)
        .filter(|(n, _)| {
            view.directors
                .iter()
                .any(|(d, s)| d == n && matches!(s, Ok(Some(v)) if v.state == VrrpState::Backup))
        })
        .max_by_key(|(_, p)| *p)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| {
            FailoverError::Refused(format!("VRRP instance {}: no backup ready to take over", g.name))
        })?;
    if let Some(to) = to {
        if to == from {
            return Err(FailoverError::Refused(format!("{to} is master of {} already", g.name)));
        }
        if to != next {
            return Err(FailoverError::Refused(format!(
                "the backup with the highest priority takes over ({next}), not {to}: change the priorities in the definition to prefer {to}"
            )));
        }
    }
    let t0 = Instant::now();
    let call = ctx.fleet.hand_over(&from);
    let wait = async {
        loop {
            if let Ok(s) = ctx.fleet.status(&next, None).await
                && s.vrrp.is_some_and(|v| v.state == VrrpState::Master)
            {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (called, took) = tokio::join!(call, tokio::time::timeout(Duration::from_secs(10), wait));
    called.map_err(|error| FailoverError::Node { node: from.clone(), error })?;
    let took =
        took.map_err(|_| FailoverError::Refused(format!("{next} did not become master within 10 s")))?;
    Ok(Failover { instance: g.name.clone(), from, to: next, took_ms: took.as_millis() })
}
