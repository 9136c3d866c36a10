//! `vrrp_instance` blocks (one file per director) as `[[vrrp]]` instances, and the
//! top-level options that belong to no service.
use std::net::IpAddr;

use super::checks;
use super::conf::Stmt;
use super::skeleton::{Note, Vrrp};

fn note(notes: &mut Vec<Note>, file: &str, s: &Stmt, why: impl Into<String>) {
    notes.push(Note { file: file.to_string(), line: s.line, text: s.text(), why: why.into() });
}

/// One director's view of a VRRP instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The instance.
    pub vrrp: Vrrp,
    /// Its priority on this director.
    pub priority: u8,
}

/// A `vrrp_instance` block of director `director`'s file.
pub fn instance(v: &Stmt, file: &str, sync_for: &[String], notes: &mut Vec<Note>) -> Option<Instance> {
    // Instance names are DNS labels here (`VI_1` becomes `vi-1`).
    let written = v.arg(0).unwrap_or("vi");
    let name = super::skeleton::label(written, "vi");
    let mut out = Vrrp {
        name: name.clone(),
        vrid: 0,
        advert_ms: 1000,
        preempt: true,
        directors: Vec::new(),
        vips: Vec::new(),
        interface: None,
        sync_daemon: sync_for.iter().any(|s| s == written),
    };
    let mut priority = 100u8;
    for s in v.children() {
        match (s.key(), s.arg(0)) {
            ("virtual_router_id", Some(id)) => out.vrid = id.parse().unwrap_or(0),
            ("priority", Some(p)) => priority = p.parse().unwrap_or(100),
            ("advert_int", Some(a)) => {
                out.advert_ms = checks::seconds(Some(a)).map_or(1000, |s| (s * 1000.0).round() as u64);
            }
            ("nopreempt", _) => out.preempt = false,
            ("interface", Some(i)) => out.interface = Some(i.to_string()),
            ("lvs_sync_daemon_interface", Some(_)) => out.sync_daemon = true,
            ("virtual_ipaddress", _) => {
                for a in s.children() {
                    match a.key().split('/').next().and_then(|ip| ip.parse::<IpAddr>().ok()) {
                        Some(ip) => out.vips.push(ip),
                        None => note(notes, file, a, "not an address: skipped"),
                    }
                    if a.words.len() > 1 {
                        note(
                            notes,
                            file,
                            a,
                            "the VIP goes on the director's LAN interface as /32; dev, label and scope are not mapped",
                        );
                    }
                }
            }
            ("state", _) => {
                note(notes, file, s, "the initial state is not set: the priorities elect the master")
            }
            ("authentication", _) => note(
                notes,
                file,
                s,
                "VRRP authentication is not mapped (RFC 3768 dropped it; keepalived's AH is not interoperable): keep VRRP on a trusted LAN",
            ),
            _ => note(notes, file, s, "not mapped"),
        }
    }
    if out.vrid == 0 {
        note(notes, file, v, "no virtual_router_id: the instance is not imported");
        return None;
    }
    Some(Instance { vrrp: out, priority })
}

/// The instances named by `lvs_sync_daemon IFACE INSTANCE` in global_defs (keepalived 2).
pub fn sync_daemon_instances(stmts: &[Stmt]) -> Vec<String> {
    stmts
        .iter()
        .filter(|s| s.key() == "global_defs")
        .flat_map(|g| g.children())
        .filter(|s| s.key() == "lvs_sync_daemon")
        .filter_map(|s| s.arg(1).map(str::to_string))
        .collect()
}

/// Merge each director's view of the instances: one `[[vrrp]]` per virtual router id
/// every director has, with each director's priority.
pub fn merge(per_director: Vec<(String, Vec<Instance>)>, notes: &mut Vec<Note>, file: &str) -> Vec<Vrrp> {
    let Some((_, first)) = per_director.first() else { return Vec::new() };
    let mut out = Vec::new();
    for i in first {
        let mut v = i.vrrp.clone();
        for (director, instances) in &per_director {
            match instances.iter().find(|x| x.vrrp.vrid == v.vrid) {
                Some(x) => v.directors.push((director.clone(), x.priority)),
                None => notes.push(Note {
                    file: file.to_string(),
                    line: 0,
                    text: format!("vrrp_instance {} (virtual_router_id {})", v.name, v.vrid),
                    why: format!("director {director}'s file has no such instance: it is left out of it"),
                }),
            }
        }
        if v.directors.len() < 2 {
            notes.push(Note {
                file: file.to_string(),
                line: 0,
                text: format!("vrrp_instance {} (virtual_router_id {})", v.name, v.vrid),
                why: "one director's file: import both directors' keepalived.conf (with --director for each) to share the VIPs over VRRP".into(),
            });
            continue;
        }
        out.push(v);
    }
    out
}

/// What global_defs and other top-level blocks hold, none of it mapped.
pub fn global(s: &Stmt, file: &str, notes: &mut Vec<Note>) {
    match s.key() {
        "global_defs" => {
            for g in s.children() {
                let why = match g.key() {
                    "router_id" => "used as the cluster's name (unless --name)",
                    "lvs_sync_daemon" => "sync_daemon of its VRRP instance",
                    k if k.starts_with("notification_email") || k.starts_with("smtp") => {
                        "mail alerts are not sent: follow `lvsctl events`, or a notify hook"
                    }
                    _ => "not mapped",
                };
                note(notes, file, g, why);
            }
        }
        "include" => note(
            notes,
            file,
            s,
            "includes are not followed: import the included file's blocks by passing it too",
        ),
        "vrrp_script"
        | "vrrp_sync_group"
        | "static_ipaddress"
        | "static_routes"
        | "static_rules"
        | "virtual_server_group" => note(notes, file, s, "not mapped"),
        _ => note(notes, file, s, "not mapped"),
    }
}
