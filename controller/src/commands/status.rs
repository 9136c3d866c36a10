//! `lvsctl status`: the whole fleet in one table, and every director's services with
//! their destinations. Exits non-zero when any node is unreachable, behind, drifting,
//! failing a check, or has a quarantined destination or a service below its quorum.
use std::io::Write;
use std::process::ExitCode;

use lvs_proto::reply::NodeStatus;
use serde::Serialize;

use super::{CmdError, Ctx, Exit, json};
use crate::fleet::NodeError;
use crate::ops::NodeResult;

/// What is wrong with one node's status, in words (empty: healthy).
pub fn problems(ctx: &Ctx, s: &NodeStatus) -> Vec<String> {
    let mut p = Vec::new();
    if !s.has_spec {
        p.push("no spec applied".into());
    } else if s.generation != ctx.cluster.generation {
        p.push(format!("generation {} (definition: {})", s.generation, ctx.cluster.generation));
    }
    p.extend(s.drift.iter().map(|d| format!("drift: {d}")));
    p.extend(
        s.checks
            .iter()
            .filter(|c| !c.ok && !c.unknown)
            .map(|c| format!("check failed: {}: {}", c.check, c.detail)),
    );
    p.extend(
        s.health
            .iter()
            .filter(|h| h.quarantined)
            .map(|h| format!("quarantined: {} ({})", h.destination, h.last_error)),
    );
    p.extend(s.services.iter().filter(|q| q.degraded).map(|q| {
        format!(
            "service {} ({}) below quorum: {} of {} real server(s) in service, quorum {}",
            q.name, q.service, q.in_service, q.total, q.quorum
        )
    }));
    if let Some(e) = s.vrrp.as_ref().and_then(|v| v.error.as_ref()) {
        p.push(format!("VRRP engine: {e}"));
    }
    if let Some(b) = &s.bgp {
        if let Some(e) = &b.error {
            p.push(format!("routing daemon: {e}"));
        }
        p.extend(
            b.sessions
                .iter()
                .filter(|x| !x.up)
                .map(|x| format!("BGP session with {} ({}) is down: {}", x.peer, x.address, x.state)),
        );
        // A drained director withdraws on purpose: a warning, not a problem.
        if !b.drained {
            p.extend(
                b.announcements
                    .iter()
                    .filter(|a| !a.announced)
                    .map(|a| format!("{} withdrawn: {}", a.prefix, a.reason)),
            );
        }
    }
    // A leak is traffic going where it should not (the alert is critical): a problem, not a
    // warning.
    if let Some(a) = &s.arp_watch {
        p.extend(
            a.leaks().map(|v| format!("VIP {} ARP leak: {}", v.address, v.leak.as_deref().unwrap_or(""))),
        );
    }
    p
}

/// The HA column: the VRRP state, or the BGP sessions up and the VIPs announced.
fn ha(s: &NodeStatus) -> String {
    if let Some(v) = &s.vrrp {
        return format!("{} {}", v.state.as_str(), v.priority);
    }
    match &s.bgp {
        Some(b) => {
            let up = b.sessions.iter().filter(|x| x.up).count();
            let mut t = format!("bgp {up}/{} up", b.sessions.len());
            if !b.announcements.is_empty() {
                t.push_str(&format!(", {}/{} announced", b.announced().count(), b.announcements.len()));
            }
            if b.drained {
                t.push_str(", drained");
            }
            t
        }
        None => "-".into(),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What needs doing soon but is not wrong yet (the exit status stays 0): a certificate
/// expiring within [`crate::pki::EXPIRY_WARNING_DAYS`].
pub fn warnings(node: &str, s: &NodeStatus) -> Vec<String> {
    let mut w = Vec::new();
    if s.bgp.as_ref().is_some_and(|b| b.drained) {
        w.push(format!("drained: announces no VIP (`lvsctl director enable {node}` brings it back)"));
    }
    // A check that could not decide (a firewall rule it cannot read) is no failure, and no
    // pass either.
    w.extend(s.checks.iter().filter(|c| c.unknown).map(|c| format!("check {}: {}", c.check, c.detail)));
    if let Some(e) = s.arp_watch.as_ref().and_then(|a| a.error.as_ref()) {
        w.push(format!("ARP watch cannot ask: {e}"));
    }
    if let Some(c) = &s.certificate {
        let left = c.days_left(now_unix());
        if left < crate::pki::EXPIRY_WARNING_DAYS {
            w.push(format!(
                "certificate {} expires in {left} day(s): run `lvsctl pki rotate {node}`",
                c.serial
            ));
        }
    }
    w
}

fn cert(s: &NodeStatus) -> String {
    s.certificate.as_ref().map_or("-".into(), |c| format!("{}d", c.days_left(now_unix())))
}

fn clock(s: &NodeStatus) -> String {
    match (s.clock.offset_ms, &s.clock.error) {
        (Some(o), _) => format!("{o:+}ms"),
        (None, None) => "-".into(),
        (None, Some(_)) => "error".into(),
    }
}

/// One node as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct NodeView<'a> {
    /// The node's name in the definition.
    pub node: &'a str,
    /// It answered.
    pub reachable: bool,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a NodeError>,
    /// What it said.
    #[serde(flatten)]
    pub status: Option<&'a NodeStatus>,
    /// What is wrong, in words.
    pub problems: Vec<String>,
    /// What needs doing soon (an expiring certificate).
    pub warnings: Vec<String>,
}

/// The fleet as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct FleetView<'a> {
    /// The definition's cluster name.
    pub cluster: &'a str,
    /// The definition's generation.
    pub generation: u64,
    /// Nothing unreachable, nothing wrong.
    pub healthy: bool,
    /// Every node.
    pub nodes: Vec<NodeView<'a>>,
}

/// The fleet as `-o json` prints it.
pub fn view<'a>(ctx: &'a Ctx, res: &'a [NodeResult<NodeStatus>]) -> FleetView<'a> {
    let nodes: Vec<NodeView> = res
        .iter()
        .map(|(node, r)| NodeView {
            node,
            reachable: r.is_ok(),
            error: r.as_ref().err(),
            status: r.as_ref().ok(),
            problems: r.as_ref().map(|s| problems(ctx, s)).unwrap_or_default(),
            warnings: r.as_ref().map(|s| warnings(node, s)).unwrap_or_default(),
        })
        .collect();
    let healthy = nodes.iter().all(|n| n.reachable && n.problems.is_empty());
    FleetView { cluster: &ctx.cluster.name, generation: ctx.cluster.generation, healthy, nodes }
}

/// The status of `nodes` (every node when empty), in definition order.
pub async fn statuses(ctx: &Ctx, nodes: &[String]) -> Vec<NodeResult<NodeStatus>> {
    let mut names = ctx.fleet.names();
    names.retain(|n| nodes.is_empty() || nodes.contains(n));
    ctx.fleet.each(&names, |n| async move { ctx.fleet.status(&n, None).await }).await
}

/// Run it on `nodes` (every node when empty).
pub async fn status(ctx: &Ctx, nodes: &[String], out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    known(ctx, nodes)?;
    let res = statuses(ctx, nodes).await;
    if ctx.json {
        json(out, &view(ctx, &res))?;
    } else {
        write!(out, "{}", render(ctx, &res))?;
    }
    Ok(verdict(ctx, &res))
}

fn known(ctx: &Ctx, nodes: &[String]) -> Result<(), CmdError> {
    match nodes.iter().find(|n| !ctx.fleet.names().contains(n)) {
        Some(n) => Err(CmdError::Usage(format!("no node `{n}` in {}", ctx.file.display()))),
        None => Ok(()),
    }
}

/// Unreachable beats unhealthy beats healthy.
fn verdict(ctx: &Ctx, res: &[NodeResult<NodeStatus>]) -> ExitCode {
    let unreachable = res.iter().any(|(_, r)| r.is_err());
    let unhealthy = res.iter().any(|(_, r)| r.as_ref().is_ok_and(|s| !problems(ctx, s).is_empty()));
    if unreachable {
        Exit::NodeFailed.into()
    } else if unhealthy {
        Exit::Unhealthy.into()
    } else {
        ExitCode::SUCCESS
    }
}

/// How `status --watch` refreshes.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// Between the start of one refresh and the start of the next.
    pub every: std::time::Duration,
    /// Stop after this many refreshes (none: until interrupted).
    pub count: Option<u32>,
    /// Clear the terminal before each refresh (the output is a terminal).
    pub clear: bool,
}

/// `status --watch`: the fleet view again every `w.every`, for an admin without
/// Prometheus. With `-o json`, one compact JSON document per line and refresh. The exit
/// status is the last refresh's.
pub async fn watch(ctx: &Ctx, nodes: &[String], w: Watch, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    known(ctx, nodes)?;
    let mut tick = tokio::time::interval(w.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done = 0u32;
    loop {
        tick.tick().await;
        let res = statuses(ctx, nodes).await;
        if ctx.json {
            serde_json::to_writer(&mut *out, &view(ctx, &res)).map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else {
            if w.clear {
                write!(out, "\x1b[H\x1b[2J")?;
            }
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            writeln!(out, "every {}: lvsctl status    {now}\n", humantime::format_duration(w.every))?;
            write!(out, "{}", render(ctx, &res))?;
        }
        out.flush()?;
        done += 1;
        if w.count.is_some_and(|c| done >= c) {
            return Ok(verdict(ctx, &res));
        }
    }
}

/// What runs beside a director's IPVS table: its sync daemons, and the marking table
/// feeding its fwmark services with what each rule marked.
fn beside_the_table(out: &mut String, s: &NodeStatus) {
    if !s.sync_daemons.is_empty() {
        let d: Vec<String> = s
            .sync_daemons
            .iter()
            .map(|d| format!("{} on {} id {}", d.state, d.interface, d.sync_id))
            .collect();
        out.push_str(&format!("  sync daemons: {}\n", d.join(", ")));
    }
    // The marking table feeding the fwmark services, with what each rule marked.
    for m in &s.marks {
        out.push_str(&format!("  nft inet lvs_dr: {}: {} packets marked\n", m.rule, m.packets));
    }
}

/// The text view: the node table, each director's services, then every problem.
pub fn render(ctx: &Ctx, res: &[NodeResult<NodeStatus>]) -> String {
    let mut out = crate::table::render(
        &["NODE", "ROLE", "AGENT", "GEN", "KERNEL", "IPVS", "CLOCK", "DRIFT", "CHECKS", "CERT", "HA"],
        &res.iter().map(|(n, r)| node_row(ctx, n, r)).collect::<Vec<_>>(),
        &[3, 6, 7, 8, 9],
    );
    for (n, r) in res {
        let Ok(s) = r else { continue };
        if let Some(t) = &s.ipvs {
            out.push_str(&format!("\n{n}: IPVS {} ({} services)\n", t.version, t.services.len()));
            beside_the_table(&mut out, s);
            for svc in &t.services {
                let foreign = if svc.managed { "" } else { "  (foreign)" };
                let quorum = match s.services.iter().find(|q| q.service == svc.key) {
                    Some(q) if q.degraded => {
                        format!("  DEGRADED {}/{} (quorum {})", q.in_service, q.total, q.quorum)
                    }
                    Some(q) => format!("  {}/{} in service", q.in_service, q.total),
                    None => String::new(),
                };
                out.push_str(&format!("  {} {}{foreign}{quorum}\n", svc.key, svc.scheduler));
                for d in &svc.destinations {
                    let health = match s.health_of(&svc.key, d.address) {
                        Some(h) if h.quarantined => "QUARANTINED",
                        Some(h) if !h.checked() => "checking",
                        Some(h) if h.up => "up",
                        Some(_) => "failing",
                        None => "-",
                    };
                    out.push_str(&format!(
                        "    -> {:<22} {:<6} weight {:<5} active {:<5} inactive {:<5} health {health}\n",
                        d.address.to_string(),
                        d.forward.as_str(),
                        d.weight,
                        d.active_conns,
                        d.inactive_conns
                    ));
                }
            }
        }
    }
    let problems: Vec<String> = res
        .iter()
        .flat_map(|(n, r)| match r {
            Err(e) => vec![format!("{n}: {e}\n")],
            Ok(s) => problems(ctx, s).into_iter().map(|p| format!("{n}: {p}\n")).collect(),
        })
        .collect();
    let healthy = problems.is_empty();
    let warned: Vec<String> = res
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|s| (n, s)))
        .flat_map(|(n, s)| warnings(n, s).into_iter().map(move |w| format!("warning: {n}: {w}\n")))
        .collect();
    if !warned.is_empty() {
        out.push('\n');
        out.extend(warned);
    }
    if !healthy {
        out.push('\n');
        out.extend(problems);
    } else {
        out.push_str(&format!(
            "\nfleet healthy: {} node(s) at generation {}\n",
            res.len(),
            ctx.cluster.generation
        ));
    }
    out
}

fn node_row(ctx: &Ctx, n: &str, r: &Result<NodeStatus, NodeError>) -> Vec<String> {
    let role = ctx.cluster.nodes.iter().find(|x| x.name == n).map(|x| x.role.as_str()).unwrap_or("?");
    match r {
        // The reason is long: it is listed under the table.
        Err(_) => {
            [n, role, "UNREACHABLE"].into_iter().map(String::from).chain(vec![String::new(); 8]).collect()
        }
        Ok(s) => {
            let f = &s.facts;
            let ok = s.checks.iter().filter(|c| c.ok).count();
            vec![
                n.into(),
                role.into(),
                format!("ok {}", f.agent_version),
                s.generation.to_string(),
                truncate(&f.kernel, 18),
                if f.ipvs { f.ipvs_version.clone() } else { "-".into() },
                clock(s),
                s.drift.len().to_string(),
                format!("{ok}/{}", s.checks.len()),
                cert(s),
                ha(s),
            ]
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(['…']).collect() }
}
