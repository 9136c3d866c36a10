//! `lvsctl ipvs list|save|restore`: the directors' tables in `ipvsadm` vocabulary, and the
//! way in for users migrating from hand-written `ipvsadm -S` dumps.
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use lvs_proto::reply::{IpvsTable, Stats, TableService};
use lvs_proto::spec::{Role, ServiceKey};
use serde::Serialize;

use super::{CmdError, Ctx, Exit, exit, json};
use crate::fleet::NodeError;
use crate::ops::tables;

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

/// `TCP  198.18.0.100:80` as `ipvsadm -L -n` starts a service line.
fn service_head(s: &TableService) -> String {
    match s.key {
        ServiceKey::Addr { protocol, address } => format!("{:<4} {address}", protocol.as_str()),
        // ipvsadm pads the word as for a protocol: `FWM  6 IPv6`.
        ServiceKey::Fwmark { mark, ipv6 } => format!("FWM  {mark}{}", if ipv6 { " IPv6" } else { "" }),
    }
}

/// ` persistent 60 mask 64` as ipvsadm prints it after the scheduler: an IPv4 mask dotted,
/// an IPv6 one as its prefix length, each only when it is not the host mask.
fn persistence_flags(svc: &TableService) -> String {
    let mut flags = String::new();
    if svc.flags & crate::ipvsadm::F_PERSISTENT != 0 {
        let _ = write!(flags, " persistent {}", svc.timeout_s);
        let ipv6 = match svc.key {
            ServiceKey::Addr { address, .. } => address.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => ipv6,
        };
        if ipv6 && svc.netmask != 128 {
            let _ = write!(flags, " mask {}", svc.netmask);
        } else if !ipv6 && svc.netmask != 0 && svc.netmask != u32::MAX {
            let _ = write!(flags, " mask {}", std::net::Ipv4Addr::from(svc.netmask));
        }
    }
    flags
}

/// One director's table in `ipvsadm -L -n` form.
pub fn render_list(t: &IpvsTable, view: View) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "IP Virtual Server version {} (size={})", t.version, t.conn_tab_size);
    match view {
        View::Timeout => {
            let to = t.timeouts;
            let _ = writeln!(s, "Timeout (tcp tcpfin udp): {} {} {}", to.tcp, to.tcp_fin, to.udp);
            return s;
        }
        View::Connections => {
            connections(&mut s, t);
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
    let nums = |st: &Stats, rate: bool| {
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
                let flags = persistence_flags(svc);
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
                        d.address.to_string(),
                        d.forward.as_str(),
                        d.weight,
                        d.active_conns,
                        d.inactive_conns
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "  -> {:<29}{}",
                        d.address.to_string(),
                        nums(&d.stats, view == View::Rate)
                    );
                }
            }
        }
    }
    s
}

/// `ipvsadm -L -n -c`: the connection entries.
fn connections(s: &mut String, t: &IpvsTable) {
    let _ = writeln!(*s, "IPVS connection entries");
    let _ = writeln!(*s, "pro expire state       source                 virtual                destination");
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
    if t.connections_truncated {
        let _ = writeln!(
            s,
            "… more: the agent returns the first {} entries (the table is larger)",
            t.connections.len()
        );
    }
}

/// One director's table in `ipvsadm -S -n` form.
pub fn render_save(t: &IpvsTable) -> String {
    crate::ipvsadm::render(&crate::ipvsadm::from_table(t))
}

/// One director's table, or why there is none, as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct NodeTable<'a> {
    /// The director's name in the definition.
    pub node: &'a str,
    /// Its table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<&'a IpvsTable>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a NodeError>,
}

/// Which services and directors `ipvs list` shows (all by default).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this service (`-t`, `-u`, `-f`).
    pub service: Option<ServiceKey>,
    /// Only these directors (`--node`).
    pub directors: Vec<String>,
}

/// `lvsctl ipvs list` and `lvsctl ipvs save`.
pub async fn list(
    ctx: &Ctx,
    view: View,
    save: bool,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let directors = ctx.nodes_with(Role::Director);
    if let Some(n) = filter.directors.iter().find(|n| !directors.contains(n)) {
        return Err(CmdError::Usage(format!("`{n}` is not a director of {}", ctx.file.display())));
    }
    let mut res = tables::tables(ctx, view == View::Connections).await;
    res.retain(|(n, _)| filter.directors.is_empty() || filter.directors.contains(n));
    if let Some(k) = filter.service {
        for t in res.iter_mut().filter_map(|(_, r)| r.as_mut().ok()) {
            t.services.retain(|s| s.key == k);
            t.connections
                .retain(|c| matches!(k, ServiceKey::Addr { address, .. } if c.virtual_address == address));
        }
    }
    let ok = res.iter().all(|(_, r)| r.is_ok());
    if ctx.json {
        let v: Vec<NodeTable> = res
            .iter()
            .map(|(node, r)| NodeTable { node, table: r.as_ref().ok(), error: r.as_ref().err() })
            .collect();
        json(out, &v)?;
        return Ok(exit(ok, Exit::NodeFailed));
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
    Ok(exit(ok, Exit::NodeFailed))
}

/// `lvsctl ipvs clear`: every director withdraws the IPVS services it manages (services
/// it did not create stay) until the next `lvsctl apply`.
pub async fn clear(
    ctx: &Ctx,
    yes: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let directors = ctx.nodes_with(Role::Director);
    if !yes {
        let q = format!(
            "withdraw the managed IPVS services on {}? traffic to their VIPs stops until `lvsctl apply`",
            directors.join(", ")
        );
        match super::confirm(&q) {
            super::Confirmed::Yes => {}
            super::Confirmed::Declined => {
                super::say(ctx, out, err, "ipvs clear: declined, nothing was changed")?;
                return Ok(Exit::NotConfirmed.into());
            }
            super::Confirmed::NoTerminal => {
                super::say(
                    ctx,
                    out,
                    err,
                    "ipvs clear: needs confirmation and stdin is not a terminal: pass --yes",
                )?;
                return Ok(Exit::NotConfirmed.into());
            }
        }
    }
    let res = tables::clear_all(ctx).await;
    let ok = res.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.converged));
    if ctx.json {
        json(out, &super::apply::reports_view(&res))?;
    } else {
        for (n, r) in &res {
            super::apply::print_report(out, n, r, "cleared", true)?;
        }
    }
    Ok(exit(ok, Exit::NodeFailed))
}

/// `ipvsadm -S` text as `[[services]]` of a definition (see [`crate::ipvsadm::to_definition`]).
pub fn restore(cluster: Option<&crate::model::Cluster>, text: &str) -> Result<String, String> {
    crate::ipvsadm::to_definition(cluster, text)
}
