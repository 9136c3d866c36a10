//! The IPVS table to and from the wire.

use super::changes::each;
use crate::pb;
use crate::reply::{Connection, Forward, IpvsTable, Stats, TableDestination, TableService, Timeouts};
use crate::wire::fields::{WireError, err, parse, required, service_key};

// ------------------------------------------------------------------ the IPVS table

impl From<&Stats> for pb::Stats {
    fn from(s: &Stats) -> Self {
        pb::Stats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

impl From<&pb::Stats> for Stats {
    fn from(s: &pb::Stats) -> Self {
        Stats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

impl From<Forward> for pb::Forwarding {
    fn from(f: Forward) -> Self {
        match f {
            Forward::Route => pb::Forwarding::Route,
            Forward::Tunnel => pb::Forwarding::Tunnel,
            Forward::Masq => pb::Forwarding::Masq,
            Forward::Local => pb::Forwarding::Local,
        }
    }
}

impl From<&IpvsTable> for pb::IpvsTableResponse {
    fn from(t: &IpvsTable) -> Self {
        pb::IpvsTableResponse {
            version: t.version.clone(),
            conn_tab_size: t.conn_tab_size,
            services: t
                .services
                .iter()
                .map(|s| pb::IpvsService {
                    key: Some((&s.key).into()),
                    scheduler: s.scheduler.clone(),
                    flags: s.flags,
                    timeout_s: s.timeout_s,
                    netmask: s.netmask,
                    stats: Some((&s.stats).into()),
                    destinations: s
                        .destinations
                        .iter()
                        .map(|d| pb::IpvsDestination {
                            address: d.address.to_string(),
                            forward: pb::Forwarding::from(d.forward) as i32,
                            weight: d.weight,
                            upper_threshold: d.upper_threshold,
                            lower_threshold: d.lower_threshold,
                            active_conns: d.active_conns,
                            inactive_conns: d.inactive_conns,
                            persist_conns: d.persist_conns,
                            stats: Some((&d.stats).into()),
                        })
                        .collect(),
                    managed: s.managed,
                })
                .collect(),
            timeouts: Some(pb::Timeouts {
                tcp: t.timeouts.tcp,
                tcp_fin: t.timeouts.tcp_fin,
                udp: t.timeouts.udp,
            }),
            connections: t.connections.iter().map(Into::into).collect(),
            connections_truncated: t.connections_truncated,
        }
    }
}

impl From<&Connection> for pb::Connection {
    fn from(c: &Connection) -> Self {
        pb::Connection {
            protocol: c.protocol.clone(),
            client: c.client.to_string(),
            virtual_address: c.virtual_address.to_string(),
            destination: c.destination.to_string(),
            state: c.state.clone(),
            expires_s: c.expires_s,
        }
    }
}

pub(super) fn table_destination(f: &str, d: &pb::IpvsDestination) -> Result<TableDestination, WireError> {
    Ok(TableDestination {
        address: parse(&format!("{f}.address"), &d.address)?,
        forward: match pb::Forwarding::try_from(d.forward) {
            Ok(pb::Forwarding::Route) => Forward::Route,
            Ok(pb::Forwarding::Tunnel) => Forward::Tunnel,
            Ok(pb::Forwarding::Masq) => Forward::Masq,
            Ok(pb::Forwarding::Local) => Forward::Local,
            _ => return err(format!("{f}.forward"), format!("unknown forwarding method {}", d.forward)),
        },
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        active_conns: d.active_conns,
        inactive_conns: d.inactive_conns,
        persist_conns: d.persist_conns,
        stats: d.stats.as_ref().map(Stats::from).unwrap_or_default(),
    })
}

/// A wire IPVS table as a domain table.
pub fn ipvs_table(f: &str, t: &pb::IpvsTableResponse) -> Result<IpvsTable, WireError> {
    Ok(IpvsTable {
        version: t.version.clone(),
        conn_tab_size: t.conn_tab_size,
        services: each(&format!("{f}.services"), &t.services, |g, s| {
            Ok(TableService {
                key: service_key(&format!("{g}.key"), required(&format!("{g}.key"), &s.key)?)?,
                scheduler: s.scheduler.clone(),
                flags: s.flags,
                timeout_s: s.timeout_s,
                netmask: s.netmask,
                stats: s.stats.as_ref().map(Stats::from).unwrap_or_default(),
                destinations: each(&format!("{g}.destinations"), &s.destinations, table_destination)?,
                managed: s.managed,
            })
        })?,
        timeouts: t
            .timeouts
            .as_ref()
            .map(|x| Timeouts { tcp: x.tcp, tcp_fin: x.tcp_fin, udp: x.udp })
            .unwrap_or_default(),
        connections: each(&format!("{f}.connections"), &t.connections, |g, c| {
            Ok(Connection {
                protocol: c.protocol.clone(),
                client: parse(&format!("{g}.client"), &c.client)?,
                virtual_address: parse(&format!("{g}.virtual_address"), &c.virtual_address)?,
                destination: parse(&format!("{g}.destination"), &c.destination)?,
                state: c.state.clone(),
                expires_s: c.expires_s,
            })
        })?,
        connections_truncated: t.connections_truncated,
    })
}

impl TryFrom<&pb::IpvsTableResponse> for IpvsTable {
    type Error = WireError;

    fn try_from(t: &pb::IpvsTableResponse) -> Result<Self, WireError> {
        ipvs_table("table", t)
    }
}
