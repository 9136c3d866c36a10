//! Conversions between the domain spec ([`crate::spec`]) and its wire form ([`crate::pb`]).
//!
//! Domain → wire cannot fail. Wire → domain checks every field and names the one that is
//! wrong, so an agent answers a malformed request with `INVALID_ARGUMENT` and a reason
//! instead of guessing.
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

mod arp;
mod bgp;
mod fields;
mod health;
mod marks;
mod reply;
pub use fields::{WireError, service_key};
use fields::{err, parse, required, shaped, shaped_with};
pub use reply::{change, ipvs_table};

use crate::spec::{
    AddressPurpose, AddressSpec, CheckSpec, DestinationCheck, DestinationSpec, Forwarding, IpvsTimeouts,
    NodeSpec, Persistence, Protocol, Role, RoutePurpose, RouteSpec, ServiceFlag, ServiceKey, SyncDaemonSpec,
    SysctlSpec, VirtualServiceSpec, VrrpSpec,
};
use crate::{names, pb};

// ------------------------------------------------------------------ domain → wire

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Router => pb::Role::Router,
            Role::Director => pb::Role::Director,
            Role::RealServer => pb::Role::RealServer,
        }
    }
}

impl From<&ServiceKey> for pb::ServiceKey {
    fn from(k: &ServiceKey) -> Self {
        let kind = match *k {
            ServiceKey::Addr { protocol, address } => pb::service_key::Kind::Addr(pb::AddrKey {
                protocol: match protocol {
                    Protocol::Tcp => pb::Protocol::Tcp,
                    Protocol::Udp => pb::Protocol::Udp,
                    Protocol::Sctp => pb::Protocol::Sctp,
                } as i32,
                address: address.to_string(),
            }),
            ServiceKey::Fwmark { mark, ipv6 } => pb::service_key::Kind::Fwmark(pb::FwmarkKey { mark, ipv6 }),
        };
        pb::ServiceKey { kind: Some(kind) }
    }
}

impl From<&NodeSpec> for pb::NodeSpec {
    fn from(s: &NodeSpec) -> Self {
        pb::NodeSpec {
            cluster: s.cluster.clone(),
            node: s.node.clone(),
            role: pb::Role::from(s.role) as i32,
            generation: s.generation,
            addresses: s.addresses.iter().map(address_to_pb).collect(),
            routes: s
                .routes
                .iter()
                .map(|r| pb::RouteSpec {
                    destination: r.destination.to_string(),
                    gateway: r.gateway.map(|g| g.to_string()),
                    device: r.device.clone(),
                    purpose: match r.purpose {
                        RoutePurpose::DefaultGateway => pb::RoutePurpose::DefaultGateway,
                        RoutePurpose::VipHost => pb::RoutePurpose::VipHost,
                    } as i32,
                })
                .collect(),
            sysctls: s
                .sysctls
                .iter()
                .map(|x| pb::SysctlSpec {
                    key: x.key.clone(),
                    value: x.value.clone(),
                    reason: x.reason.clone(),
                })
                .collect(),
            virtual_services: s.virtual_services.iter().map(virtual_service).collect(),
            checks: s.checks.iter().map(check).collect(),
            ipvs_timeouts: s.ipvs_timeouts.map(|t| pb::IpvsTimeouts {
                tcp_s: t.tcp_s.unwrap_or(0),
                tcp_fin_s: t.tcp_fin_s.unwrap_or(0),
                udp_s: t.udp_s.unwrap_or(0),
            }),
            vrrp: s.vrrp.as_ref().map(|v| pb::VrrpSpec {
                instance: v.instance.clone(),
                interface: v.interface.clone(),
                vrid: v.vrid.into(),
                priority: v.priority.into(),
                advert_ms: v.advert_ms,
                preempt: v.preempt,
                unicast_source: v.unicast_source.to_string(),
                unicast_peers: v.unicast_peers.iter().map(ToString::to_string).collect(),
                vips: v.vips.iter().map(address_to_pb).collect(),
                sync_daemon: v
                    .sync_daemon
                    .as_ref()
                    .map(|d| pb::SyncDaemonSpec { interface: d.interface.clone(), sync_id: d.sync_id }),
                startup_delay_ms: v.startup_delay_ms,
            }),
            bgp: s.bgp.as_ref().map(Into::into),
            arp_watch: s.arp_watch.as_ref().map(Into::into),
            marks: s.marks.iter().map(Into::into).collect(),
        }
    }
}

fn address_to_pb(a: &AddressSpec) -> pb::AddressSpec {
    pb::AddressSpec {
        interface: a.interface.clone(),
        address: a.address.to_string(),
        label: a.label.clone(),
        purpose: match a.purpose {
            AddressPurpose::Lan => pb::AddressPurpose::Lan,
            AddressPurpose::Vip => pb::AddressPurpose::Vip,
            AddressPurpose::HiddenVip => pb::AddressPurpose::HiddenVip,
        } as i32,
    }
}

fn address_from_pb(f: &str, a: &pb::AddressSpec) -> Result<AddressSpec, WireError> {
    Ok(AddressSpec {
        interface: shaped(&format!("{f}.interface"), &a.interface, names::ifname_problem)?,
        address: parse::<IpNet>(&format!("{f}.address"), &a.address)?,
        label: a
            .label
            .as_deref()
            .map(|l| shaped(&format!("{f}.label"), l, names::label_problem))
            .transpose()?,
        purpose: match pb::AddressPurpose::try_from(a.purpose) {
            Ok(pb::AddressPurpose::Lan) => AddressPurpose::Lan,
            Ok(pb::AddressPurpose::Vip) => AddressPurpose::Vip,
            Ok(pb::AddressPurpose::HiddenVip) => AddressPurpose::HiddenVip,
            _ => return err(format!("{f}.purpose"), "unknown purpose"),
        },
    })
}

/// The longest start-up delay a spec may ask of a VRRP engine (10 min): past that, a typo.
const MAX_STARTUP_DELAY_MS: u32 = 600_000;

fn vrrp_from(v: &pb::VrrpSpec) -> Result<VrrpSpec, WireError> {
    let byte = |f: &str, x: u32, lo: u32, hi: u32| {
        if (lo..=hi).contains(&x) { Ok(x as u8) } else { err(f, format!("{x} outside {lo}..={hi}")) }
    };
    if !(10..=40_950).contains(&v.advert_ms) || !v.advert_ms.is_multiple_of(10) {
        return err("vrrp.advert_ms", format!("{} is not a multiple of 10 in 10..=40950", v.advert_ms));
    }
    if v.startup_delay_ms > MAX_STARTUP_DELAY_MS {
        return err(
            "vrrp.startup_delay_ms",
            format!("{} is over {MAX_STARTUP_DELAY_MS}", v.startup_delay_ms),
        );
    }
    Ok(VrrpSpec {
        instance: shaped("vrrp.instance", &v.instance, names::dns_label_problem)?,
        interface: shaped("vrrp.interface", &v.interface, names::ifname_problem)?,
        vrid: byte("vrrp.vrid", v.vrid, 1, 255)?,
        priority: byte("vrrp.priority", v.priority, 1, 254)?,
        advert_ms: v.advert_ms,
        preempt: v.preempt,
        unicast_source: parse("vrrp.unicast_source", &v.unicast_source)?,
        unicast_peers: v
            .unicast_peers
            .iter()
            .enumerate()
            .map(|(i, p)| parse(&format!("vrrp.unicast_peers[{i}]"), p))
            .collect::<Result<_, _>>()?,
        vips: v
            .vips
            .iter()
            .enumerate()
            .map(|(i, a)| address_from_pb(&format!("vrrp.vips[{i}]"), a))
            .collect::<Result<_, _>>()?,
        sync_daemon: v
            .sync_daemon
            .as_ref()
            .map(|d| {
                Ok(SyncDaemonSpec {
                    interface: shaped("vrrp.sync_daemon.interface", &d.interface, names::ifname_problem)?,
                    sync_id: d.sync_id,
                })
            })
            .transpose()?,
        startup_delay_ms: v.startup_delay_ms,
    })
}

fn virtual_service(v: &VirtualServiceSpec) -> pb::VirtualService {
    pb::VirtualService {
        name: v.name.clone(),
        key: Some((&v.key).into()),
        scheduler: v.scheduler.clone(),
        persistence: v.persistence.map(|p| pb::Persistence { timeout_s: p.timeout_s, netmask: p.netmask }),
        flags: v.flags.iter().map(|f| f.as_str().to_string()).collect(),
        destinations: v.destinations.iter().map(destination).collect(),
        sorry: v.sorry.as_ref().map(destination),
        health_check: v.health_check.as_ref().map(health::to_pb),
        quorum: v.quorum,
        hysteresis: v.hysteresis,
        notify: v.notify.clone(),
    }
}

fn destination(d: &DestinationSpec) -> pb::DestinationSpec {
    pb::DestinationSpec {
        node: d.node.clone(),
        address: d.address.to_string(),
        forwarding: match d.forwarding {
            Forwarding::Route => pb::Forwarding::Route,
            Forwarding::Tunnel => pb::Forwarding::Tunnel,
            Forwarding::Masq => pb::Forwarding::Masq,
        } as i32,
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        health_check: match &d.check {
            DestinationCheck::Own(h) => Some(health::to_pb(h)),
            _ => None,
        },
        unchecked: d.check == DestinationCheck::Off,
    }
}

fn check(c: &CheckSpec) -> pb::Check {
    use pb::check::Kind;
    let kind = match c {
        CheckSpec::KernelIpvs { schedulers } => {
            Kind::KernelIpvs(pb::KernelIpvsCheck { schedulers: schedulers.clone() })
        }
        CheckSpec::ClockOffset { server, max_offset_ms } => Kind::ClockOffset(pb::ClockOffsetCheck {
            server: server.to_string(),
            max_offset_ms: *max_offset_ms,
        }),
        CheckSpec::NtpServing { address } => {
            Kind::NtpServing(pb::NtpServingCheck { address: address.to_string() })
        }
        CheckSpec::HttpLocal { port, path } => {
            Kind::HttpLocal(pb::HttpLocalCheck { port: u32::from(*port), path: path.clone() })
        }
        CheckSpec::GatewayIsNot { forbidden } => Kind::GatewayIsNot(pb::GatewayIsNotCheck {
            forbidden: forbidden.iter().map(ToString::to_string).collect(),
        }),
        CheckSpec::FirewallAllows { service } => {
            Kind::FirewallAllows(pb::FirewallAllowsCheck { service: Some(service.into()) })
        }
    };
    pb::Check { kind: Some(kind) }
}

// ------------------------------------------------------------------ wire → domain

impl TryFrom<&pb::NodeSpec> for NodeSpec {
    type Error = WireError;

    // Long on purpose: one checked conversion per field of the message, in its order, so a
    // new field is seen missing here at a glance.
    fn try_from(s: &pb::NodeSpec) -> Result<Self, WireError> {
        let role = match pb::Role::try_from(s.role) {
            Ok(pb::Role::Router) => Role::Router,
            Ok(pb::Role::Director) => Role::Director,
            Ok(pb::Role::RealServer) => Role::RealServer,
            _ => return err("role", format!("unknown role {}", s.role)),
        };
        shaped("node", &s.node, names::dns_label_problem)?;
        // Only a director programs IPVS, probes real servers and runs VRRP: a router or a
        // real server told to would run checks (and their scripts) it has no business with.
        if role != Role::Director {
            if !s.virtual_services.is_empty() {
                return err("virtual_services", format!("a {role} has none (directors only)"));
            }
            if s.vrrp.is_some() {
                return err("vrrp", format!("a {role} runs no VRRP (directors only)"));
            }
        }
        // BGP is the directors' and the router's; a real server runs no routing daemon.
        if role != Role::Router && s.arp_watch.is_some() {
            return err("arp_watch", "only the router watches ARP for the VIPs");
        }
        if role != Role::Director && !s.marks.is_empty() {
            return err("marks", format!("a {role} marks no packets (directors only)"));
        }
        if role == Role::RealServer && s.bgp.is_some() {
            return err("bgp", "a real_server runs no BGP (directors and the router only)");
        }
        if !s.cluster.is_empty() {
            shaped("cluster", &s.cluster, names::dns_label_problem)?;
        }
        let addresses = s
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| address_from_pb(&format!("addresses[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let routes = s
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let f = format!("routes[{i}]");
                Ok(RouteSpec {
                    destination: parse(&format!("{f}.destination"), &r.destination)?,
                    gateway: r
                        .gateway
                        .as_deref()
                        .map(|g| parse::<IpAddr>(&format!("{f}.gateway"), g))
                        .transpose()?,
                    device: r
                        .device
                        .as_deref()
                        .map(|d| shaped(&format!("{f}.device"), d, names::ifname_problem))
                        .transpose()?,
                    purpose: match pb::RoutePurpose::try_from(r.purpose) {
                        Ok(pb::RoutePurpose::DefaultGateway) => RoutePurpose::DefaultGateway,
                        Ok(pb::RoutePurpose::VipHost) => RoutePurpose::VipHost,
                        _ => return err(format!("{f}.purpose"), "unknown purpose"),
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        let sysctls = s
            .sysctls
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let key = nonempty(&format!("sysctls[{i}].key"), &x.key)?;
                // A key is a path under /proc/sys: only the few the planner emits are ever
                // written (see SysctlSpec::allowed), whoever signed the request.
                if !SysctlSpec::allowed(&key) {
                    return err(
                        format!("sysctls[{i}].key"),
                        format!("`{key}` is not a sysctl this agent manages (net.ipv4.ip_forward, net.ipv4.conf.<if>.arp_*|rp_filter|…, net.ipv4.vs.*)"),
                    );
                }
                Ok(SysctlSpec {
                    key,
                    value: shaped(&format!("sysctls[{i}].value"), &x.value, |v| names::text_problem(v, 64))?,
                    reason: shaped(&format!("sysctls[{i}].reason"), &x.reason, |v| names::text_problem(v, 512))?,
                })
            })
            .collect::<Result<_, _>>()?;
        let virtual_services = s
            .virtual_services
            .iter()
            .enumerate()
            .map(|(i, v)| virtual_service_from(&format!("virtual_services[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        let checks = s
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| check_from(&format!("checks[{i}]"), c))
            .collect::<Result<_, _>>()?;
        let marks = marks::marks_from(&s.marks, &virtual_services)?;
        Ok(NodeSpec {
            cluster: s.cluster.clone(),
            node: s.node.clone(),
            role,
            generation: s.generation,
            addresses,
            routes,
            sysctls,
            virtual_services,
            checks,
            // 0 on the wire is "leave it": the kernel's own meaning of 0 in IPVS_CMD_SET_CONFIG.
            ipvs_timeouts: s.ipvs_timeouts.map(|t| {
                let some = |v: u32| (v > 0).then_some(v);
                IpvsTimeouts { tcp_s: some(t.tcp_s), tcp_fin_s: some(t.tcp_fin_s), udp_s: some(t.udp_s) }
            }),
            vrrp: s.vrrp.as_ref().map(vrrp_from).transpose()?,
            bgp: s.bgp.as_ref().map(bgp::bgp_from).transpose()?,
            arp_watch: s.arp_watch.as_ref().map(arp::arp_watch_from).transpose()?,
            marks,
        })
    }
}

fn nonempty(field: &str, s: &str) -> Result<String, WireError> {
    if s.is_empty() { err(field, "empty") } else { Ok(s.to_string()) }
}

fn virtual_service_from(f: &str, v: &pb::VirtualService) -> Result<VirtualServiceSpec, WireError> {
    let key = service_key(&format!("{f}.key"), required(&format!("{f}.key"), &v.key)?)?;
    let flags = v
        .flags
        .iter()
        .map(|x| match x.as_str() {
            "one-packet" => Ok(ServiceFlag::OnePacket),
            "sh-fallback" => Ok(ServiceFlag::ShFallback),
            "sh-port" => Ok(ServiceFlag::ShPort),
            other => err(format!("{f}.flags"), format!("unknown flag `{other}`")),
        })
        .collect::<Result<_, _>>()?;
    let destinations = v
        .destinations
        .iter()
        .enumerate()
        .map(|(j, d)| destination_from(&format!("{f}.destinations[{j}]"), d))
        .collect::<Result<_, _>>()?;
    let sorry = v.sorry.as_ref().map(|d| destination_from(&format!("{f}.sorry"), d)).transpose()?;
    let health_check =
        v.health_check.as_ref().map(|h| health::from_pb(&format!("{f}.health_check"), h)).transpose()?;
    if !v.notify.is_empty() {
        shaped_with(&format!("{f}.notify"), &v.notify, |c: &Vec<String>| names::command_problem(c))?;
    }
    let persistence = v.persistence.map(|p| Persistence { timeout_s: p.timeout_s, netmask: p.netmask });
    Ok(VirtualServiceSpec {
        name: shaped(&format!("{f}.name"), &v.name, names::dns_label_problem)?,
        key,
        scheduler: shaped(&format!("{f}.scheduler"), &v.scheduler, names::scheduler_problem)?,
        persistence,
        flags,
        destinations,
        health_check,
        sorry,
        quorum: v.quorum.max(1),
        hysteresis: v.hysteresis,
        notify: v.notify.clone(),
    })
}

fn destination_from(g: &str, d: &pb::DestinationSpec) -> Result<DestinationSpec, WireError> {
    if d.weight > 65535 {
        return err(format!("{g}.weight"), format!("{} is outside 0..=65535", d.weight));
    }
    if !d.node.is_empty() {
        shaped(&format!("{g}.node"), &d.node, names::dns_label_problem)?;
    }
    Ok(DestinationSpec {
        node: d.node.clone(),
        address: parse::<SocketAddr>(&format!("{g}.address"), &d.address)?,
        forwarding: match pb::Forwarding::try_from(d.forwarding) {
            Ok(pb::Forwarding::Route) => Forwarding::Route,
            Ok(pb::Forwarding::Tunnel) => Forwarding::Tunnel,
            Ok(pb::Forwarding::Masq) => Forwarding::Masq,
            _ => return err(format!("{g}.forwarding"), "unknown forwarding method"),
        },
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        check: match (&d.health_check, d.unchecked) {
            (Some(_), true) => return err(g, "both a check of its own and unchecked"),
            (Some(h), false) => {
                DestinationCheck::Own(Box::new(health::from_pb(&format!("{g}.health_check"), h)?))
            }
            (None, true) => DestinationCheck::Off,
            (None, false) => DestinationCheck::Service,
        },
    })
}

fn check_from(f: &str, c: &pb::Check) -> Result<CheckSpec, WireError> {
    use pb::check::Kind;
    Ok(match required(f, &c.kind)? {
        Kind::KernelIpvs(k) => CheckSpec::KernelIpvs {
            schedulers: k
                .schedulers
                .iter()
                .enumerate()
                .map(|(i, x)| shaped(&format!("{f}.schedulers[{i}]"), x, names::scheduler_problem))
                .collect::<Result<_, _>>()?,
        },
        Kind::ClockOffset(k) => CheckSpec::ClockOffset {
            server: parse(&format!("{f}.server"), &k.server)?,
            max_offset_ms: k.max_offset_ms,
        },
        Kind::NtpServing(k) => CheckSpec::NtpServing { address: parse(&format!("{f}.address"), &k.address)? },
        Kind::HttpLocal(k) => CheckSpec::HttpLocal {
            port: u16::try_from(k.port)
                .map_err(|_| WireError { field: format!("{f}.port"), reason: "not a port".into() })?,
            path: shaped(&format!("{f}.path"), &k.path, names::http_path_problem)?,
        },
        Kind::GatewayIsNot(k) => CheckSpec::GatewayIsNot {
            forbidden: k
                .forbidden
                .iter()
                .map(|x| parse(&format!("{f}.forbidden"), x))
                .collect::<Result<_, _>>()?,
        },
        Kind::FirewallAllows(k) => CheckSpec::FirewallAllows {
            service: service_key(&format!("{f}.service"), required(&format!("{f}.service"), &k.service)?)?,
        },
    })
}
