//! `virtual_server` blocks as services: address, scheduler, persistence, real servers with
//! their weights and checks, sorry server, quorum.
use std::net::IpAddr;

use toml::Value;

use super::checks::{self, Context};
use super::conf::Stmt;
use super::skeleton::{Note, Pairs, RealServer, Service};

/// keepalived's default `delay_loop`, seconds.
const DEFAULT_DELAY_LOOP_S: f64 = 60.0;

fn note(notes: &mut Vec<Note>, file: &str, s: &Stmt, why: impl Into<String>) {
    notes.push(Note { file: file.to_string(), line: s.line, text: s.text(), why: why.into() });
}

/// A `virtual_server` block; `None` (noted in `global`) for one that cannot become a
/// service (a `group`).
pub fn virtual_server(vs: &Stmt, file: &str, global: &mut Vec<Note>) -> Option<Service> {
    let mut svc = Service {
        file: file.to_string(),
        scheduler: "rr".into(),
        protocol: "tcp".into(),
        ..Service::default()
    };
    match (vs.arg(0), vs.arg(1)) {
        (Some("fwmark"), Some(m)) => {
            svc.protocol = "fwmark".into();
            svc.fwmark = m.parse().ok();
            svc.name = format!("fwmark-{m}");
        }
        (Some("group"), _) | (None, _) => {
            note(global, file, vs, "virtual_server_group services are not mapped: list one service per VIP");
            return None;
        }
        (Some(ip), port) => {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                note(global, file, vs, "not an address: skipped");
                return None;
            };
            svc.vip = Some(ip);
            svc.port = port.and_then(|p| p.parse().ok());
            let dashed = ip.to_string().replace(['.', ':'], "-");
            svc.name = format!("vs-{dashed}-{}", svc.port.unwrap_or(0));
        }
    }
    let delay_loop =
        checks::seconds(find(vs, "delay_loop").and_then(|s| s.arg(0))).unwrap_or(DEFAULT_DELAY_LOOP_S);
    let ctx = Context {
        file,
        delay_loop_s: delay_loop,
        virtualhost: find(vs, "virtualhost").and_then(|s| s.arg(0)),
    };
    let mut notes = Vec::new();
    for s in vs.children() {
        settings(&mut svc, s, &ctx, &mut notes);
    }
    quorum(&mut svc, vs, file, &mut notes);
    svc.notes.extend(notes);
    Some(svc)
}

fn find<'a>(vs: &'a Stmt, key: &str) -> Option<&'a Stmt> {
    vs.children().iter().find(|s| s.key() == key)
}

/// One statement of a virtual_server.
fn settings(svc: &mut Service, s: &Stmt, ctx: &Context, notes: &mut Vec<Note>) {
    let file = ctx.file;
    match (s.key(), s.arg(0)) {
        ("lb_algo" | "lvs_sched", Some(a)) => svc.scheduler = a.to_string(),
        ("lb_kind" | "lvs_method", Some(k)) if k.eq_ignore_ascii_case("DR") => {}
        ("lb_kind" | "lvs_method", Some(_)) => note(
            notes,
            file,
            s,
            "this tool runs direct routing only: imported as DR (the real servers hold the VIP hidden on lo, the director only forwards frames)",
        ),
        ("protocol", Some(p)) if svc.protocol != "fwmark" => svc.protocol = p.to_ascii_lowercase(),
        ("persistence_timeout", Some(t)) => {
            let keep = svc.persistence.take().and_then(|p| p.1);
            svc.persistence = Some((t.parse().unwrap_or(300), keep));
        }
        ("persistence_granularity", Some(m)) => {
            let (t, _) = svc.persistence.take().unwrap_or((300, None));
            svc.persistence = Some((t, Some(m.to_string())));
        }
        ("ops", None) => svc.flags.push("one-packet".into()),
        ("sh-port" | "sh-fallback", None) => svc.flags.push(s.key().to_string()),
        ("sorry_server", Some(ip)) => {
            svc.sorry = ip.parse().ok();
            if s.arg(1)
                .is_some_and(|p| s.arg(1) != svc.port.map(|v| v.to_string()).as_deref() && !p.is_empty())
            {
                note(notes, file, s, "DR cannot map ports: the sorry server serves the virtual port");
            }
        }
        ("real_server", Some(_)) => {
            if let Some(rs) = real_server(s, svc.port, ctx, notes) {
                svc.real_servers.push(rs);
            }
        }
        ("delay_loop" | "virtualhost" | "quorum" | "hysteresis", _) => {}
        ("quorum_up" | "quorum_down", _) => note(
            notes,
            file,
            s,
            "one notify hook per service runs on every transition with LVS_EVENT=down|up|quorum-lost|quorum-regained: set notify to a script that dispatches on it",
        ),
        ("alpha", _) => note(
            notes,
            file,
            s,
            "checks start with real servers in service (keepalived's alpha starts them down)",
        ),
        ("omega" | "ha_suspend" | "sorry_server_inhibit" | "sorry_server_lvs_method", _) => {
            note(notes, file, s, "not mapped")
        }
        _ => note(notes, file, s, "not mapped"),
    }
}

/// One `real_server` block: address, weight, thresholds, its checker.
fn real_server(s: &Stmt, vport: Option<u16>, ctx: &Context, notes: &mut Vec<Note>) -> Option<RealServer> {
    let file = ctx.file;
    let Some(ip) = s.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) else {
        note(notes, file, s, "not an address: skipped");
        return None;
    };
    if let (Some(p), Some(v)) = (s.arg(1).and_then(|p| p.parse::<u16>().ok()), vport)
        && p != v
    {
        note(
            notes,
            file,
            s,
            format!("DR cannot map ports: real server {ip} must serve on the virtual port {v}, not {p}"),
        );
    }
    let mut rs = RealServer { ip, weight: 1, check: None, inhibit: false, upper: None, lower: None };
    let mut checkers = 0;
    for c in s.children() {
        match (c.key(), c.arg(0)) {
            ("weight", Some(w)) => rs.weight = w.parse().unwrap_or(1),
            ("inhibit_on_failure", _) => rs.inhibit = true,
            ("uthreshold", Some(v)) => rs.upper = v.parse().ok(),
            ("lthreshold", Some(v)) => rs.lower = v.parse().ok(),
            ("notify_up" | "notify_down", _) => note(
                notes,
                file,
                c,
                "one notify hook per service runs on every transition with LVS_EVENT=down|up and LVS_RS_ADDRESS: set notify to a script that dispatches on them",
            ),
            (k, _) if k.ends_with("_CHECK") || k.ends_with("_GET") => {
                checkers += 1;
                if checkers > 1 {
                    note(notes, file, c, "a real server has one check: only its first checker is imported");
                } else {
                    rs.check = checks::checker(c, ctx, notes);
                }
            }
            _ => note(notes, file, c, "not mapped"),
        }
    }
    Some(rs)
}

/// keepalived's quorum is a sum of weights; ours counts real servers.
fn quorum(svc: &mut Service, vs: &Stmt, file: &str, notes: &mut Vec<Note>) {
    let n = svc.real_servers.len() as u32;
    let Some(q) = find(vs, "quorum") else { return };
    let sum_q: u32 = q.arg(0).and_then(|v| v.parse().ok()).unwrap_or(1);
    let sum_h: u32 = find(vs, "hysteresis").and_then(|s| s.arg(0)).and_then(|v| v.parse().ok()).unwrap_or(0);
    let weights: Vec<u32> = svc.real_servers.iter().map(|r| r.weight.max(1)).collect();
    let mean = (weights.iter().sum::<u32>() as f64 / weights.len().max(1) as f64).max(1.0);
    let count = ((sum_q as f64 / mean).ceil() as u32).clamp(1, n.max(1));
    let hyst = ((sum_h as f64 / mean).round() as u32).min(count - 1);
    svc.quorum = Some(count);
    svc.hysteresis = (hyst > 0).then_some(hyst);
    let equal = weights.windows(2).all(|w| w[0] == w[1]);
    let how = if equal { "" } else { " (weights differ: approximated with their mean)" };
    note(
        notes,
        file,
        q,
        format!(
            "keepalived sums weights ({sum_q}, hysteresis {sum_h}); here quorum = {count} real servers, hysteresis = {hyst}{how}"
        ),
    );
}

/// The service's check (the one most of its real servers have) and each real server's
/// difference from it (`kind = "none"` for one without a checker).
pub fn shared_check(svc: &Service) -> (Option<Pairs>, Vec<Option<Pairs>>) {
    let mut counts: Vec<(&Pairs, usize)> = Vec::new();
    for c in svc.real_servers.iter().filter_map(|r| r.check.as_ref()) {
        match counts.iter_mut().find(|(p, _)| *p == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    // The most common; on a tie the first real server's (as the file lists them).
    let best = counts.iter().fold(None::<&(&Pairs, usize)>, |b, c| match b {
        Some(b) if b.1 >= c.1 => Some(b),
        _ => Some(c),
    });
    let Some(base) = best.map(|(p, _)| (*p).clone()) else {
        return (None, vec![None; svc.real_servers.len()]);
    };
    let overrides = svc
        .real_servers
        .iter()
        .map(|r| match &r.check {
            None => Some(vec![("kind", Value::String("none".into()))]),
            Some(c) if *c == base => None,
            Some(c) => Some(difference(&base, c)),
        })
        .collect();
    (Some(base), overrides)
}

/// The keys of `own` that differ from `base`; when the kind differs, every key of `own`
/// (an override of another kind keeps only the service's timing).
fn difference(base: &Pairs, own: &Pairs) -> Pairs {
    let kind = |p: &Pairs| p.iter().find(|(k, _)| *k == "kind").map(|(_, v)| v.clone());
    if kind(base) != kind(own) {
        return own.clone();
    }
    own.iter()
        .filter(|(k, v)| base.iter().find(|(bk, _)| bk == k).map(|(_, bv)| bv) != Some(v))
        .cloned()
        .collect()
}
