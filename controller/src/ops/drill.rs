//! A failover drill: a planned hand-over of a VRRP instance and back, under synthetic
//! requests through the VIP that the router's agent sends open loop, as clients would. The
//! result is what a client saw (requests, failures, slowest answer, longest time without
//! one) and how long each hand-over took; the router's agent keeps the requests' side as
//! metrics (`lvs_drill_*`) and an event, so a drill run from a timer leaves a trace.
use std::net::SocketAddr;
use std::time::Duration;

use lvs_proto::spec::{ProbeKind, Protocol, Role, ServiceKey};

use super::vrrp::{self, Failover, FailoverError};
use crate::fleet::{NodeError, Probe};
use crate::model::VrrpGroup;
use crate::ops::Ctx;

/// Each request's deadline: a request whose SYN met the hand-over and was lost waits for
/// its retransmission (1 s) and fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// What a drill saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    /// The VRRP instance.
    pub instance: String,
    /// Where the requests went.
    pub target: String,
    /// The node that sent them.
    pub from: String,
    /// Requests sent.
    pub requests: u32,
    /// Requests answered.
    pub answered: u32,
    /// Requests that failed.
    pub failed: u32,
    /// The slowest answer, ms.
    pub slowest_ms: u64,
    /// The longest time without an answer, ms (the outage a client saw).
    pub longest_gap_ms: u64,
    /// Distinct errors of the failed requests, the first few.
    pub errors: Vec<String>,
    /// The hand-over.
    pub there: Failover,
    /// And back.
    pub back: Failover,
}

impl DrillReport {
    /// No request failed and every hand-over happened.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.answered == self.requests && self.requests > 0
    }
}

/// Why a drill did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The definition has nothing to drill with.
    #[error("{0}")]
    Refused(String),
    /// A hand-over was refused or failed.
    #[error("hand-over: {0}")]
    Failover(#[from] FailoverError),
    /// The router's agent did not send the requests.
    #[error("{node}: requests through the VIP: {error}")]
    Probe {
        /// The router.
        node: String,
        /// How the call failed.
        error: NodeError,
    },
}

/// The HTTP target of instance `g`: the first TCP service on one of its VIPs, and its
/// check's path.
fn target(ctx: &Ctx, g: &VrrpGroup) -> Option<(SocketAddr, String)> {
    let vips: Vec<std::net::IpAddr> = ctx
        .cluster
        .nodes
        .iter()
        .filter(|n| g.members.iter().any(|(m, _)| *m == n.name))
        .flat_map(|n| n.vips.iter().map(|v| v.address.addr()))
        .collect();
    ctx.cluster.services.iter().find_map(|s| match s.key {
        ServiceKey::Addr { protocol: Protocol::Tcp, address } if vips.contains(&address.ip()) => {
            let path = match s.check.as_ref().map(|c| &c.probe) {
                Some(ProbeKind::Http { path, .. }) => path.clone(),
                _ => "/".into(),
            };
            Some((address, path))
        }
        _ => None,
    })
}

/// Run a drill of `g` for `duration`, a request every `every`: the hand-over a quarter of
/// the way in, and back (to the backup then with the highest priority) at five eighths.
pub async fn failover(
    ctx: &Ctx,
    g: &VrrpGroup,
    duration: Duration,
    every: Duration,
) -> Result<DrillReport, DrillError> {
    let router = ctx.cluster.nodes.iter().find(|n| n.role == Role::Router).ok_or_else(|| {
        DrillError::Refused(
            "the drill's requests come from the router's agent, and the definition has no router".into(),
        )
    })?;
    let (address, path) = target(ctx, g).ok_or_else(|| {
        DrillError::Refused(format!("VRRP instance {} has no TCP service on its VIPs", g.name))
    })?;
    let probe = Probe {
        target: address,
        path,
        host: None,
        count: (duration.as_millis() / every.as_millis().max(1)) as u32 + 1,
        concurrency: 64,
        timeout: REQUEST_TIMEOUT,
        interval: Some(every),
        duration: Some(duration),
        drill: Some(g.name.clone()),
    };
    let requests = ctx.fleet.probe(&router.name, &probe, ctx.fleet.deadline + duration + REQUEST_TIMEOUT);
    let hand_overs = async {
        tokio::time::sleep(duration / 4).await;
        let there = vrrp::failover(ctx, g, None).await?;
        tokio::time::sleep(
            (duration * 5 / 8).saturating_sub(duration / 4 + Duration::from_millis(there.took_ms as u64)),
        )
        .await;
        let back = vrrp::failover(ctx, g, None).await?;
        Ok::<_, FailoverError>((there, back))
    };
    let (tally, hand_overs) = tokio::join!(requests, hand_overs);
    let (there, back) = hand_overs?;
    let tally = tally.map_err(|error| DrillError::Probe { node: router.name.clone(), error })?;
    Ok(DrillReport {
        instance: g.name.clone(),
        target: address.to_string(),
        from: router.name.clone(),
        requests: tally.sent,
        answered: tally.answered,
        failed: tally.failed,
        slowest_ms: tally.slowest_ms,
        longest_gap_ms: tally.longest_gap_ms,
        errors: tally.errors,
        there,
        back,
    })
}
