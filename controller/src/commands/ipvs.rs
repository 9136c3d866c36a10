//! `lvsctl ipvs list|save|restore`: the directors' tables in `ipvsadm` vocabulary, and the
//! way in for users migrating from hand-written `ipvsadm -S` dumps.
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use lvs_proto::pb;
use lvs_proto::spec::Role;

use super::{CmdError, Ctx, EXIT_NODE_FAILED, exit, json};
use crate::render::key_text;

/// What `list` shows besides the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Weights and connection counts (`ipvsadm -L -n`).
    #[default]
    Table,
    /// Counters (`--stats`).
    Stats,
    /// Rates (`--rate`).
    Rate,
    /// Timeouts (`--timeout`).
    Timeout,
    /// Connections (`-c`).
    Connections,
}

/// Fetch every director's table.
pub async fn tables(
    ctx: &Ctx,
    connections: bool,
) -> Vec<(String, Result<pb::IpvsTable, crate::fleet::NodeError>)> {
    ctx.fleet
        .each(&ctx.nodes_with(Role::Director), |_, mut c| async move {
            c.ipvs_table(pb::IpvsTableRequest { connections }).await
        })
        .await
}

/// `TCP  198.18.0.100:80` as `ipvsadm -L -n` starts a service line.
fn service_head(s: &pb::IpvsService) -> String {
    let k = s.key.as_ref().map(key_text).unwrap_or_default();
    match k.split_once(' ') {
        Some((p, a)) => format!("{p:<4} {a}"),
        None => k,
    }
}

/// The table in `ipvsadm`'s order: services and destinations sorted by address (the
/// kernel dumps newest first).
pub fn sorted(t: &pb::IpvsTable) -> pb::IpvsTable {
    let addr = |a: &str| a.parse::<SocketAddr>().ok();
    let mut t = t.clone();
    t.services.sort_by_key(|s| {
        s.key.as_ref().map(key_text).map(|k| {
            let (p, a) = k.split_once(' ').unwrap_or(("", ""));
            (p.to_string(), addr(a))
        })
    });
    for s in &mut t.services {
        s.destinations.sort_by_key(|d| addr(&d.address));
    }
    t
}

/// One director's table in `ipvsadm -L -n` form.
pub fn render_list(t: &pb::IpvsTable, view: View) -> String {
    let t = &sorted(t);
    let mut s = String::new();
    let _ = writeln!(s, "IP Virtual Server version {} (size={})", t.version, t.conn_tab_size);
    match view {
        View::Timeout => {
            let to = t.timeouts.unwrap_or_default();
            let _ = writeln!(s, "Timeout (tcp tcpfin udp): {} {} {}", to.tcp, to.tcp_fin, to.udp);
            return s;
        }
        View::Connections => {
            let _ = writeln!(s, "IPVS connection entries");
            let _ = writeln!(
                s,
                "pro expire state       source                 virtual                destination"
            );
            for c in &t.connections {
                let _ = writeln!(
                    s,
                    "{:<3} {:02}:{:02}  {:<11} {:<22} {:<22} {}",
                    c.protocol,
                    c.expires_s / 60,
                    c.expires_s % 60,
                    c.state,
                    c.client,
                    c.virtual_address,
                    c.destination
                );
            }
            return s;
        }
        View::Table => {
            let _ = writeln!(s, "Prot LocalAddress:Port Scheduler Flags");
            let _ = writeln!(s, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
        }
        View::Stats => {
            let _ =
                writeln!(s, "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
            let _ = writeln!(s, "  -> RemoteAddress:Port");
        }
        View::Rate => {
            let _ =
                writeln!(s, "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS");
            let _ = writeln!(s, "  -> RemoteAddress:Port");
        }
    }
    let nums = |st: &Option<pb::Stats>, rate: bool| {
        let st = st.unwrap_or_default();
        if rate {
            format!("{:>8} {:>8} {:>8} {:>8} {:>8}", st.cps, st.inpps, st.outpps, st.inbps, st.outbps)
        } else {
            format!("{:>8} {:>8} {:>8} {:>8} {:>8}", st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes)
        }
    };
    for svc in &t.services {
        let head = service_head(svc);
        match view {
            View::Table => {
                let mut flags = String::new();
                if svc.flags & crate::ipvsadm::F_PERSISTENT != 0 {
                    let _ = write!(flags, " persistent {}", svc.timeout_s);
                    if svc.netmask != 0 && svc.netmask != u32::MAX {
                        let _ = write!(flags, " mask {}", std::net::Ipv4Addr::from(svc.netmask));
                    }
                }
                let _ = writeln!(s, "{head} {}{flags}", svc.scheduler);
            }
            View::Stats | View::Rate => {
                let _ = writeln!(s, "{head:<33}{}", nums(&svc.stats, view == View::Rate));
            }
            _ => {}
        }
        for d in &svc.destinations {
            match view {
                View::Table => {
                    let _ = writeln!(
                        s,
                        "  -> {:<28} {:<7} {:<6} {:<10} {}",
                        d.address, d.forwarding, d.weight, d.active_conns, d.inactive_conns
                    );
                }
                _ => {
                    let _ = writeln!(s, "  -> {:<29}{}", d.address, nums(&d.stats, view == View::Rate));
                }
            }
        }
    }
    s
}

/// One director's table in `ipvsadm -S -n` form.
pub fn render_save(t: &pb::IpvsTable) -> String {
    crate::ipvsadm::render(&crate::ipvsadm::from_table(&sorted(t)))
}

/// A table as JSON.
pub fn table_json(t: &pb::IpvsTable) -> serde_json::Value {
    let stats = |s: &Option<pb::Stats>| {
        let s = s.unwrap_or_default();
        serde_json::json!({"conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts, "inbytes": s.inbytes,
            "outbytes": s.outbytes, "cps": s.cps, "inpps": s.inpps, "outpps": s.outpps, "inbps": s.inbps, "outbps": s.outbps})
    };
    let to = t.timeouts.unwrap_or_default();
    serde_json::json!({
        "version": t.version,
        "conn_tab_size": t.conn_tab_size,
        "timeouts": {"tcp": to.tcp, "tcp_fin": to.tcp_fin, "udp": to.udp},
        "services": t.services.iter().map(|s| serde_json::json!({
            "service": s.key.as_ref().map(key_text), "scheduler": s.scheduler, "flags": s.flags,
            "timeout_s": s.timeout_s, "netmask": s.netmask, "managed": s.managed, "stats": stats(&s.stats),
            "destinations": s.destinations.iter().map(|d| serde_json::json!({
                "address": d.address, "forwarding": d.forwarding, "weight": d.weight,
                "upper_threshold": d.upper_threshold, "lower_threshold": d.lower_threshold,
                "active_conns": d.active_conns, "inactive_conns": d.inactive_conns,
                "persist_conns": d.persist_conns, "stats": stats(&d.stats),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "connections": t.connections.iter().map(|c| serde_json::json!({
            "protocol": c.protocol, "client": c.client, "virtual": c.virtual_address,
            "destination": c.destination, "state": c.state, "expires_s": c.expires_s,
        })).collect::<Vec<_>>(),
    })
}

/// `lvsctl ipvs list` and `lvsctl ipvs save`.
pub async fn list(ctx: &Ctx, view: View, save: bool, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let res = tables(ctx, view == View::Connections).await;
    let ok = res.iter().all(|(_, r)| r.is_ok());
    if ctx.json {
        let v: Vec<serde_json::Value> = res
            .iter()
            .map(|(n, r)| match r {
                Ok(t) => serde_json::json!({"node": n, "table": table_json(t)}),
                Err(e) => serde_json::json!({"node": n, "error": e}),
            })
            .collect();
        json(out, &serde_json::Value::Array(v))?;
        return Ok(exit(ok, EXIT_NODE_FAILED));
    }
    let many = res.len() > 1;
    for (n, r) in &res {
        match r {
            Ok(t) => {
                if many {
                    writeln!(out, "# {n}")?;
                }
                write!(out, "{}", if save { render_save(t) } else { render_list(t, view) })?;
            }
            Err(e) => writeln!(out, "# {n}: FAILED {e}")?,
        }
    }
    Ok(exit(ok, EXIT_NODE_FAILED))
}

/// `lvsctl ipvs clear`: every director withdraws the IPVS services it manages (services
/// it did not create stay) until the next `lvsctl apply`.
pub async fn clear(ctx: &Ctx, yes: bool, out: &mut dyn Write) -> Result<ExitCode, CmdError> {
    let directors = ctx.nodes_with(Role::Director);
    if !yes
        && !super::confirm(&format!(
            "withdraw the managed IPVS services on {}? traffic to their VIPs stops until `lvsctl apply`",
            directors.join(", ")
        ))
    {
        writeln!(out, "ipvs clear: cancelled, nothing was changed")?;
        return Ok(ExitCode::from(1));
    }
    let res = ctx
        .fleet
        .each(&directors, |_, mut c| async move { c.clear_ipvs(pb::ClearIpvsRequest {}).await })
        .await;
    let ok = res.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.converged));
    if ctx.json {
        json(
            out,
            &serde_json::Value::Array(res.iter().map(|(n, r)| super::apply::report_json(n, r)).collect()),
        )?;
    } else {
        for (n, r) in &res {
            super::apply::print_report(out, n, r, "cleared", true)?;
        }
    }
    Ok(exit(ok, EXIT_NODE_FAILED))
}

/// `ipvsadm -S` text as `[[services]]` of a definition (see [`crate::ipvsadm::to_definition`]).
pub fn restore(cluster: Option<&crate::model::Cluster>, text: &str) -> Result<String, String> {
    crate::ipvsadm::to_definition(cluster, text)
}
