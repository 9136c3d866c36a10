//! `lvsctl verify`: the router's agent sends N requests to every VIP; the directors'
//! per-destination counters before and after give the distribution, compared with what
//! the scheduler promises (rr: equal; wrr: by weight); and the DR property is checked:
//! the director saw the requests (in-packets) and carried no replies (out-packets 0).
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_proto::reply::as_text;
use lvs_proto::spec::{ProbeKind, Protocol, Role, ServiceKey, VirtualServiceSpec};
use serde::Serialize;

use super::{CmdError, Ctx, Exit, exit, json};
use crate::fleet::Probe;
use crate::ops::tables;

/// Deadline of one request of the router's probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of one service and its destinations.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    inpkts: u64,
    outpkts: u64,
    conns: BTreeMap<String, (u64, u32)>, // dest -> (conns, weight)
}

async fn counters(ctx: &Ctx, key: &ServiceKey) -> Result<Counters, CmdError> {
    let mut c = Counters::default();
    for (d, t) in tables::tables(ctx, false).await {
        let t = t.map_err(|e| CmdError::Usage(format!("{d}: {e}")))?;
        for s in t.services.iter().filter(|s| s.key == *key) {
            c.inpkts += s.stats.inpkts;
            c.outpkts += s.stats.outpkts;
            for x in &s.destinations {
                let e = c.conns.entry(x.address.to_string()).or_default();
                e.0 += x.stats.conns;
                e.1 = x.weight;
            }
        }
    }
    Ok(c)
}

/// Expected share of `n` requests per destination for `scheduler`, or `None` when the
/// scheduler promises no fixed distribution.
pub fn expected(scheduler: &str, n: u64, weights: &BTreeMap<String, u32>) -> Option<BTreeMap<String, f64>> {
    let live: Vec<(&String, u32)> = weights.iter().filter(|(_, w)| **w > 0).map(|(a, w)| (a, *w)).collect();
    if live.is_empty() {
        return None;
    }
    let total: u32 = live.iter().fold(0u32, |t, (_, w)| t.saturating_add(*w));
    let share = |w: u32| match scheduler {
        "rr" => n as f64 / live.len() as f64,
        "wrr" => n as f64 * f64::from(w) / f64::from(total),
        _ => f64::NAN,
    };
    if !matches!(scheduler, "rr" | "wrr") {
        return None;
    }
    Some(weights.iter().map(|(a, w)| (a.clone(), if *w == 0 { 0.0 } else { share(*w) })).collect())
}

/// What verify found for one virtual service.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// The service.
    #[serde(serialize_with = "as_text")]
    pub service: ServiceKey,
    /// Its scheduler.
    pub scheduler: String,
    /// The router that sent the requests.
    #[serde(skip)]
    pub router: String,
    /// The router's tally.
    #[serde(flatten)]
    pub probe: lvs_proto::reply::ProbeTally,
    /// New connections per destination during the probe.
    pub per_destination: BTreeMap<String, u64>,
    /// Destination weights.
    #[serde(skip)]
    pub weights: BTreeMap<String, u32>,
    /// What the scheduler promises, when it promises a distribution.
    pub expected: Option<BTreeMap<String, f64>>,
    /// The distribution is within one request of the promise.
    pub distribution_ok: bool,
    /// Packets the directors saw from clients.
    pub director_inpkts: u64,
    /// Packets the directors carried back (0 in DR).
    pub director_outpkts: u64,
    /// Requests passed the director, replies bypassed it.
    pub direct_routing_ok: bool,
}

impl Verdict {
    /// Every request answered, distribution and DR as promised.
    pub fn ok(&self) -> bool {
        self.distribution_ok
            && self.direct_routing_ok
            && self.probe.answered == self.probe.sent
            && self.probe.sent > 0
    }
}

/// Probe `v` from `router` and compare the directors' counters before and after.
async fn check_service(
    ctx: &Ctx,
    router: &str,
    v: &VirtualServiceSpec,
    requests: u32,
) -> Result<Verdict, CmdError> {
    let ServiceKey::Addr { address, .. } = v.key else {
        return Err(CmdError::Usage(format!("verify: {} is not an address service", v.key)));
    };
    let path = match v.health_check.as_ref().map(|h| &h.probe) {
        Some(ProbeKind::Http { path, .. }) => path.clone(),
        _ => "/".into(),
    };
    let before = counters(ctx, &v.key).await?;
    let req = Probe {
        target: address,
        path,
        host: None,
        count: requests,
        concurrency: 1,
        timeout: PROBE_TIMEOUT,
        interval: None,
        duration: None,
        drill: None,
    };
    // Sequential requests, each within PROBE_TIMEOUT: the call's own deadline.
    let deadline = ctx.fleet.deadline + PROBE_TIMEOUT * requests;
    let probe = ctx
        .fleet
        .probe(router, &req, deadline)
        .await
        .map_err(|e| CmdError::Usage(format!("verify: {router}: {e}")))?;
    // IPVS folds per-CPU counters into what it reports on a ~2 s timer, one counter set
    // after another (a destination's can show a request its service's does not show yet):
    // wait until both the connections and the service's in-packets have moved.
    let start = Instant::now();
    let mut after = counters(ctx, &v.key).await?;
    let delta = |a: &Counters| -> u64 {
        // Saturating: counters come from agents, and a lying one must not panic lvsctl.
        a.conns
            .iter()
            .map(|(k, (c, _))| c - before.conns.get(k).map_or(0, |x| x.0).min(*c))
            .fold(0u64, u64::saturating_add)
    };
    let settled = |a: &Counters| {
        delta(a) >= u64::from(probe.answered) && (probe.answered == 0 || a.inpkts > before.inpkts)
    };
    while !settled(&after) && start.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = counters(ctx, &v.key).await?;
    }
    let per: BTreeMap<String, u64> = after
        .conns
        .iter()
        .map(|(k, (c, _))| (k.clone(), c.saturating_sub(before.conns.get(k).map_or(0, |x| x.0))))
        .collect();
    let weights: BTreeMap<String, u32> = after.conns.iter().map(|(k, (_, w))| (k.clone(), *w)).collect();
    let exp = expected(&v.scheduler, per.values().sum(), &weights);
    let distribution_ok = exp
        .as_ref()
        .is_none_or(|e| e.iter().all(|(k, x)| (per.get(k).copied().unwrap_or(0) as f64 - x).abs() <= 1.0));
    let inpkts = after.inpkts.saturating_sub(before.inpkts);
    let outpkts = after.outpkts.saturating_sub(before.outpkts);
    Ok(Verdict {
        service: v.key,
        scheduler: v.scheduler.clone(),
        router: router.to_string(),
        probe,
        per_destination: per,
        weights,
        expected: exp,
        distribution_ok,
        director_inpkts: inpkts,
        director_outpkts: outpkts,
        direct_routing_ok: inpkts > 0 && outpkts == 0,
    })
}

fn print_verdict(out: &mut dyn Write, v: &Verdict) -> std::io::Result<()> {
    let p = &v.probe;
    writeln!(
        out,
        "{} {} — {} request(s) from {}: {} answered, {} failed",
        v.service, v.scheduler, p.sent, v.router, p.answered, p.failed
    )?;
    for e in &p.errors {
        writeln!(out, "  error: {e}")?;
    }
    if !p.sequence.is_empty() {
        writeln!(out, "  answers in order: {}", p.sequence.join(" "))?;
    }
    for (k, n) in &v.per_destination {
        let e = v
            .expected
            .as_ref()
            .and_then(|e| e.get(k))
            .map(|x| format!(" (expected {x:.1})"))
            .unwrap_or_default();
        writeln!(out, "  -> {k:<22} weight {:<5} got {n}{e}", v.weights.get(k).copied().unwrap_or(0))?;
    }
    let dist = if v.expected.is_none() {
        "not checked for this scheduler"
    } else if v.distribution_ok {
        "as the scheduler promises"
    } else {
        "NOT as the scheduler promises"
    };
    writeln!(out, "  distribution: {dist}")?;
    let dr = if v.direct_routing_ok {
        "requests passed the director, replies bypassed it"
    } else {
        "FAILED (replies seen by the director, or no traffic)"
    };
    writeln!(
        out,
        "  direct routing: director in-packets +{}, out-packets +{}: {dr}",
        v.director_inpkts, v.director_outpkts
    )
}

/// What verify found, as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct VerifyView {
    /// Every service passed, and every VRRP instance has exactly one master.
    pub ok: bool,
    /// Per service.
    pub services: Vec<Verdict>,
    /// Per VRRP instance: its master(s) (exactly one is right).
    pub vrrp: Vec<VrrpVerdict>,
}

/// One VRRP instance's check: exactly one director holds its VIPs.
#[derive(Debug, serde::Serialize)]
pub struct VrrpVerdict {
    /// The VRRP instance's name in the definition.
    pub instance: String,
    /// Directors that say they are master.
    pub masters: Vec<String>,
    /// Directors that did not answer.
    pub unreachable: Vec<String>,
    /// Exactly one master.
    pub ok: bool,
}

async fn vrrp_verdicts(ctx: &Ctx) -> Vec<VrrpVerdict> {
    crate::ops::vrrp::instances(ctx)
        .await
        .into_iter()
        .map(|i| {
            let masters: Vec<String> = i.masters().into_iter().map(String::from).collect();
            let unreachable =
                i.directors.iter().filter(|(_, s)| s.is_err()).map(|(n, _)| n.clone()).collect();
            VrrpVerdict { ok: masters.len() == 1, instance: i.instance, masters, unreachable }
        })
        .collect()
}

/// Run it.
pub async fn verify(ctx: &Ctx, requests: u32, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let router =
        ctx.nodes_with(Role::Router).into_iter().next().ok_or_else(|| {
            CmdError::Usage("verify needs a router node: its agent sends the requests".into())
        })?;
    let mut services: Vec<&VirtualServiceSpec> = ctx
        .nodes_with(Role::Director)
        .iter()
        .filter_map(|d| ctx.spec(d))
        .flat_map(|s| s.virtual_services.iter())
        .filter(|v| matches!(v.key, ServiceKey::Addr { protocol: Protocol::Tcp, .. }))
        .collect();
    // Directors sharing a VIP (VRRP) carry the same service: probe it once (the counters
    // are summed over every director).
    let mut seen = std::collections::BTreeSet::new();
    services.retain(|v| seen.insert(v.key));
    if services.is_empty() {
        return Err(CmdError::Usage("verify: no TCP virtual service to probe".into()));
    }
    let mut verdicts = Vec::new();
    for v in services {
        let verdict = check_service(ctx, &router, v, requests).await?;
        if !ctx.json {
            print_verdict(out, &verdict)?;
        }
        verdicts.push(verdict);
    }
    let vrrp = vrrp_verdicts(ctx).await;
    if !ctx.json {
        for v in &vrrp {
            let verdict = if v.ok { "exactly one master" } else { "NOT exactly one master" };
            writeln!(out, "vrrp {}: master(s) [{}]: {verdict}", v.instance, v.masters.join(", "))?;
            for u in &v.unreachable {
                writeln!(out, "  {u}: unreachable")?;
            }
        }
    }
    let ok = verdicts.iter().all(Verdict::ok) && vrrp.iter().all(|v| v.ok);
    if ctx.json {
        json(out, &VerifyView { ok, services: verdicts, vrrp })?;
    } else {
        writeln!(out, "verify: {}", if ok { "PASS" } else { "FAIL" })?;
    }
    Ok(exit(ok, Exit::Unhealthy))
}
