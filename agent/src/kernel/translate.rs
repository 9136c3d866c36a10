//! From the planner's vocabulary (`lvs_proto::spec`) to the kernel's (`lvs_ipvs`, addresses),
//! and from the kernel's back to the vocabulary of replies (`lvs_proto::reply`).
use lvs_ipvs::{DaemonState, Destination, Forward, Op, Protocol, Service, ServiceFlags, ServiceKey};
use lvs_proto::reply::{self, AddressRef, IpvsChange, RouteRef};
use lvs_proto::spec::{self, AddressSpec, RouteSpec, VirtualServiceSpec};

use crate::kernel::system::{Address, IpvsService, Route};

/// The kernel identity of a spec service.
pub fn service_key(k: &spec::ServiceKey) -> ServiceKey {
    match *k {
        spec::ServiceKey::Addr { protocol, address } => ServiceKey::Addr(
            match protocol {
                spec::Protocol::Tcp => Protocol::Tcp,
                spec::Protocol::Udp => Protocol::Udp,
                spec::Protocol::Sctp => Protocol::Sctp,
            },
            address,
        ),
        spec::ServiceKey::Fwmark { mark, ipv6 } => ServiceKey::Fwmark(mark, ipv6),
    }
}

/// The spec identity of a kernel service (the inverse of [`service_key`]).
pub fn spec_service_key(k: &ServiceKey) -> spec::ServiceKey {
    match *k {
        ServiceKey::Addr(p, address) => spec::ServiceKey::Addr {
            protocol: match p {
                Protocol::Tcp => spec::Protocol::Tcp,
                Protocol::Udp => spec::Protocol::Udp,
                Protocol::Sctp => spec::Protocol::Sctp,
            },
            address,
        },
        ServiceKey::Fwmark(mark, ipv6) => spec::ServiceKey::Fwmark { mark, ipv6 },
    }
}

/// The kernel service for a spec service.
pub fn service(v: &VirtualServiceSpec) -> Service {
    let key = service_key(&v.key);
    let mut s = Service::new(key, &v.scheduler);
    let mut flags = 0;
    for f in &v.flags {
        flags |= match f {
            spec::ServiceFlag::OnePacket => ServiceFlags::ONE_PACKET,
            spec::ServiceFlag::ShFallback => ServiceFlags::SH_FALLBACK,
            spec::ServiceFlag::ShPort => ServiceFlags::SH_PORT,
        };
    }
    if let Some(p) = v.persistence {
        s.timeout = p.timeout_s;
        s.netmask = p.netmask;
        flags |= ServiceFlags::PERSISTENT;
    }
    s.flags = ServiceFlags(flags);
    s
}

/// The kernel destination for a spec destination.
pub fn destination(d: &spec::DestinationSpec) -> Destination {
    Destination {
        addr: d.address,
        forward: match d.forwarding {
            spec::Forwarding::Route => Forward::Route,
            spec::Forwarding::Tunnel => Forward::Tunnel,
            spec::Forwarding::Masq => Forward::Masq,
        },
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
    }
}

/// The kernel address for a spec address. A label equal to the interface name is no label.
pub fn address(a: &AddressSpec) -> Address {
    Address {
        interface: a.interface.clone(),
        address: a.address,
        // The kernel keeps no label on an IPv6 address: one asked for could never be seen.
        label: a.label.clone().filter(|l| *l != a.interface && a.address.addr().is_ipv4()),
    }
}

/// The kernel route for a spec route.
pub fn route(r: &RouteSpec) -> Route {
    Route { destination: r.destination, gateway: r.gateway, device: r.device.clone() }
}

/// An address as a reply names it.
pub fn address_ref(a: &Address) -> AddressRef {
    AddressRef { interface: a.interface.clone(), address: a.address, label: a.label.clone() }
}

/// A route as a reply names it.
pub fn route_ref(r: &Route) -> RouteRef {
    RouteRef { destination: r.destination, gateway: r.gateway, device: r.device.clone() }
}

/// An IPVS operation as a reply names it.
pub fn ipvs_change(op: &Op) -> IpvsChange {
    let key = spec_service_key;
    match op {
        Op::AddService(s) => IpvsChange::AddService { service: key(&s.key), scheduler: s.scheduler.clone() },
        Op::EditService(s) => {
            IpvsChange::EditService { service: key(&s.key), scheduler: s.scheduler.clone() }
        }
        Op::DelService(k) => IpvsChange::DelService { service: key(k) },
        Op::AddDest(k, d) => {
            IpvsChange::AddDestination { service: key(k), destination: d.addr, weight: d.weight }
        }
        Op::EditDest(k, d) => {
            IpvsChange::EditDestination { service: key(k), destination: d.addr, weight: d.weight }
        }
        Op::DelDest(k, a) => IpvsChange::DelDestination { service: key(k), destination: *a },
        Op::SetTimeouts(_) => IpvsChange::SetTimeouts,
        Op::Zero(k) => IpvsChange::Zero { service: k.as_ref().map(key) },
        Op::Flush => IpvsChange::Flush,
        Op::StartDaemon(d) => IpvsChange::StartDaemon { interface: d.mcast_ifn.clone() },
        Op::StopDaemon(s) => IpvsChange::StopDaemon {
            state: match s {
                DaemonState::Master => "master",
                DaemonState::Backup => "backup",
            }
            .into(),
        },
    }
}

/// How the kernel forwards to a destination, as a reply names it.
pub fn forward(f: Forward) -> reply::Forward {
    match f {
        Forward::Route => reply::Forward::Route,
        Forward::Tunnel => reply::Forward::Tunnel,
        Forward::Masq => reply::Forward::Masq,
        Forward::Local => reply::Forward::Local,
    }
}

/// Counters as a reply carries them.
pub fn stats(s: &lvs_ipvs::Stats) -> reply::Stats {
    reply::Stats {
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

/// The IPVS table as the agent answers it: version and size, services (each with whether
/// this agent manages it) with their destinations and counters, timeouts, connections.
pub fn table(
    info: &lvs_ipvs::Info,
    timeouts: &lvs_ipvs::Timeouts,
    services: &[(IpvsService, bool)],
    connections: &[lvs_ipvs::conn::Connection],
    connections_truncated: bool,
) -> reply::IpvsTable {
    reply::IpvsTable {
        version: info.version_string(),
        conn_tab_size: info.conn_tab_size,
        services: services
            .iter()
            .map(|(s, managed)| reply::TableService {
                key: spec_service_key(&s.service.key),
                scheduler: s.service.scheduler.clone(),
                flags: s.service.flags.0,
                timeout_s: s.service.timeout,
                netmask: s.service.netmask,
                stats: stats(&s.stats),
                destinations: s
                    .destinations
                    .iter()
                    .map(|d| reply::TableDestination {
                        address: d.dest.addr,
                        forward: forward(d.dest.forward),
                        weight: d.dest.weight,
                        upper_threshold: d.dest.upper_threshold,
                        lower_threshold: d.dest.lower_threshold,
                        active_conns: d.active_conns,
                        inactive_conns: d.inactive_conns,
                        persist_conns: d.persist_conns,
                        stats: stats(&d.stats),
                    })
                    .collect(),
                managed: *managed,
            })
            .collect(),
        timeouts: reply::Timeouts { tcp: timeouts.tcp, tcp_fin: timeouts.tcp_fin, udp: timeouts.udp },
        connections: connections.iter().map(connection).collect(),
        connections_truncated,
    }
}

/// One IPVS connection entry.
pub fn connection(c: &lvs_ipvs::conn::Connection) -> reply::Connection {
    reply::Connection {
        protocol: c.protocol.clone(),
        client: c.client,
        virtual_address: c.virtual_addr,
        destination: c.destination,
        state: c.state.clone(),
        expires_s: c.expires_s,
    }
}
