//! From a validated cluster to the desired state of every node. Pure: no I/O.
use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_proto::spec::{
    AddressPurpose, AddressSpec, CheckSpec, DestinationCheck, DestinationSpec, Forwarding, MarkRule,
    NodeSpec, ProbeKind, Protocol, Role, RoutePurpose, RouteSpec, ServiceKey, SyncDaemonSpec, SysctlSpec,
    VirtualServiceSpec, VrrpSpec,
};

use crate::model::{Cluster, Node, RealServer, Service};

mod arp_watch;
mod bgp;

/// Kernel parameters, by role, and why each exists.
///
/// Real servers hold the VIP on `lo`; without these they would answer ARP for it and
/// the router would send clients straight to them, bypassing the director (the seed
/// article weighs static ARP, arptables and these sysctls, and picks these).
/// `{if}` stands for `all` and for each interface that carries a RIP.
const REAL_SERVER_SYSCTLS: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.conf.{if}.arp_ignore",
        "1",
        "answer ARP only for addresses of the receiving interface; the VIP sits on lo, so it is never answered",
    ),
    (
        "net.ipv4.conf.{if}.arp_announce",
        "2",
        "source ARP requests from the interface's own address (the RIP), never from the VIP",
    ),
];

/// The router forwards between the client side and the cluster LAN.
const ROUTER_SYSCTLS: &[(&str, &str, &str)] = &[(
    "net.ipv4.ip_forward",
    "1",
    "route between the client side and the cluster LAN (the article's step 4)",
)];

/// A router with an IPv6 leg forwards IPv6 as well. Setting `all` switches every
/// interface to router behaviour (no SLAAC from router adverts on its own legs), which is
/// what a router wants.
const ROUTER_SYSCTLS_V6: &[(&str, &str, &str)] =
    &[("net.ipv6.conf.all.forwarding", "1", "route IPv6 between the client side and the cluster LAN")];

/// Directors that sync connections to each other (a `[[vrrp]]` instance with its sync
/// daemon): when a connection is sent to the other director. The kernel's default
/// (`sync_threshold` 3 50, no refresh) syncs a connection at its 3rd incoming packet, so
/// one whose handshake (SYN, ACK) went through the old master and whose request reaches
/// the new one is unknown there: its packets are dropped until the client gives up. A VM
/// capture of a planned failover under load showed exactly that (issue 14). With packet
/// counting off and a refresh period, the kernel syncs on every state change instead,
/// from the ESTABLISHED ACK on (about two messages per short connection instead of one).
const SYNC_SYSCTLS: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.vs.sync_threshold",
        "3 0",
        "period 0: no packet-count syncs; with sync_refresh_period set, every state change is synced, the first at the handshake's ACK",
    ),
    (
        "net.ipv4.vs.sync_refresh_period",
        "10",
        "a connection's state is synced when it changes and refreshed at most every 10 s while it does not",
    ),
];

/// A VRRP director's LAN interface, IPv4: after a planned hand-over the old master keeps
/// its VIPs on `lo` for a few seconds, to forward the packets the new master passes it of
/// connections whose handshake began here (`agent/src/ha/straddle.rs`). Hidden there as a
/// real server hides its VIP: never answered in ARP, never the source of an ARP request.
const VRRP_SYSCTLS: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.conf.{if}.arp_ignore",
        "1",
        "answer ARP only for addresses of this interface: the master's VIPs, never the ones an old master keeps on lo after a hand-over",
    ),
    (
        "net.ipv4.conf.{if}.arp_announce",
        "2",
        "source ARP requests from the interface's own address (the DIP), never from a VIP",
    ),
];

/// What happens to the connections of a real server taken out, on every director. The
/// values are right on every kernel this tool runs on, because the director keeps IPVS
/// conntrack off (`net.ipv4.vs.conntrack` 0, the default; the rules below say where a
/// kernel differs). kube-proxy's history is NAT with conntrack on.
const DRAIN_SYSCTLS: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.vs.conn_reuse_mode",
        "1",
        "a SYN reusing the ports of a finished connection is scheduled afresh, so it never lands on a drained server; the 1 s stall kube-proxy met with it on kernels before 5.9 needs IPVS conntrack on, which a DR director keeps off",
    ),
    (
        "net.ipv4.vs.expire_nodest_conn",
        "1",
        "a connection whose real server was removed (not drained) is expired at its next packet, so its client is reset at once instead of its packets vanishing until the 900 s timeout (from kernel 5.9 on the removal expires them all in the background)",
    ),
];

/// Directors with a persistent service: a drain must move returning clients too.
const PERSISTENCE_DRAIN_SYSCTLS: &[(&str, &str, &str)] = &[(
    "net.ipv4.vs.expire_quiescent_template",
    "1",
    "a persistent client whose template points at a drained (weight 0) server is scheduled afresh at its next connection; otherwise the drained server keeps every client that returns within the persistence timeout",
)];

/// Plan every node, in definition order.
pub fn plan(cluster: &Cluster) -> Vec<NodeSpec> {
    cluster.nodes.iter().map(|n| plan_node(cluster, n)).collect()
}

/// Plan one node.
pub fn plan_node(cluster: &Cluster, node: &Node) -> NodeSpec {
    let mut spec = NodeSpec {
        cluster: cluster.name.clone(),
        node: node.name.clone(),
        role: node.role,
        generation: cluster.generation,
        addresses: node
            .interfaces
            .iter()
            .map(|i| AddressSpec {
                interface: i.name.clone(),
                address: i.address,
                label: None,
                purpose: AddressPurpose::Lan,
            })
            .collect(),
        routes: node
            .gateways
            .iter()
            .map(|&gw| RouteSpec {
                destination: default_net(gw),
                gateway: Some(gw),
                device: None,
                purpose: RoutePurpose::DefaultGateway,
            })
            .collect(),
        sysctls: Vec::new(),
        virtual_services: Vec::new(),
        checks: Vec::new(),
        ipvs_timeouts: None,
        vrrp: None,
        bgp: None,
        arp_watch: None,
        marks: Vec::new(),
    };
    spec.arp_watch = arp_watch::plan(cluster, node);
    match node.role {
        Role::Router => plan_router(cluster, node, &mut spec),
        Role::Director => plan_director(cluster, node, &mut spec),
        Role::RealServer => plan_real_server(cluster, node, &mut spec),
    }
    spec
}

fn plan_router(cluster: &Cluster, node: &Node, spec: &mut NodeSpec) {
    spec.sysctls.extend(table(ROUTER_SYSCTLS, &["all"]));
    if node.interfaces.iter().any(|i| i.address.addr().is_ipv6()) {
        spec.sysctls.extend(table(ROUTER_SYSCTLS_V6, &[]));
    }
    if node.interfaces.iter().any(|i| i.address.addr() == cluster.time.ntp_server) {
        spec.checks.push(CheckSpec::NtpServing { address: cluster.time.ntp_server });
    }
    for rows in bgp::plan_router(cluster, node, spec) {
        spec.sysctls.extend(table(rows, &[]));
    }
}

fn plan_director(cluster: &Cluster, node: &Node, spec: &mut NodeSpec) {
    let vips: Vec<AddressSpec> = node
        .vips
        .iter()
        .map(|v| AddressSpec {
            interface: v.interface.clone(),
            address: v.address,
            label: label_for(v.address.addr(), &v.label),
            purpose: AddressPurpose::Vip,
        })
        .collect();
    let ecmp = match bgp::plan_director(cluster, node, &vips, spec) {
        Some(ifaces) => {
            let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
            spec.sysctls.extend(table(bgp::ECMP_DIRECTOR_SYSCTLS, &ifaces));
            true
        }
        None => false,
    };
    match vrrp(cluster, node, &vips).filter(|_| !ecmp) {
        // Shared VIPs are the VRRP engine's to add and remove, on the master only.
        Some(v) => {
            if v.vips.iter().any(|a| a.address.addr().is_ipv4()) {
                spec.sysctls.extend(table(VRRP_SYSCTLS, &[&v.interface]));
            }
            if v.sync_daemon.is_some() {
                spec.sysctls.extend(table(SYNC_SYSCTLS, &[]));
            }
            spec.vrrp = Some(v);
        }
        None if ecmp => {}
        None => spec.addresses.extend(vips),
    }
    spec.ipvs_timeouts = cluster.ipvs_timeouts;
    let mine: Vec<&Service> = cluster.services.iter().filter(|s| s.directors.contains(&node.name)).collect();
    spec.virtual_services = mine.iter().map(|s| virtual_service(s)).collect();
    spec.marks = mine.iter().flat_map(|s| marks(s)).collect();
    if !mine.is_empty() {
        spec.sysctls.extend(table(DRAIN_SYSCTLS, &[]));
        if mine.iter().any(|s| s.persistence.is_some()) {
            spec.sysctls.extend(table(PERSISTENCE_DRAIN_SYSCTLS, &[]));
        }
    }
    let schedulers: BTreeSet<String> = mine.iter().map(|s| s.scheduler.clone()).collect();
    spec.checks.push(CheckSpec::KernelIpvs { schedulers: schedulers.into_iter().collect() });
    spec.checks.push(clock(cluster));
    spec.checks.extend(mine.iter().map(|s| CheckSpec::FirewallAllows { service: s.key }));
}

/// The marking rules of a fwmark service: one per protocol, to its VIP.
fn marks(s: &Service) -> impl Iterator<Item = MarkRule> + '_ {
    let mark = match s.key {
        ServiceKey::Fwmark { mark, .. } => mark,
        ServiceKey::Addr { .. } => 0,
    };
    s.marks.iter().filter(move |_| mark != 0).map(move |m| MarkRule {
        service: s.name.clone(),
        address: s.vip,
        protocol: m.protocol,
        ports: m.ports.clone(),
        mark,
    })
}

/// `node`'s part in its VRRP instance, if it has one: unicast adverts from its address
/// on the instance's LAN to the other directors' addresses there.
fn vrrp(cluster: &Cluster, node: &Node, vips: &[AddressSpec]) -> Option<VrrpSpec> {
    let g = cluster.vrrp_of(&node.name)?;
    let on_lan = |n: &Node| n.on_lan(&g.lan).map(|i| (i.name.clone(), i.address.addr()));
    let (interface, source) = on_lan(node)?;
    let priority = g.members.iter().find(|(n, _)| *n == node.name)?.1;
    let highest = g.members.iter().map(|(_, p)| *p).max().unwrap_or(priority);
    let peers = g
        .members
        .iter()
        .filter(|(n, _)| *n != node.name)
        .filter_map(|(n, _)| cluster.nodes.iter().find(|x| &x.name == n).and_then(on_lan))
        .map(|(_, a)| a)
        .collect();
    Some(VrrpSpec {
        instance: g.name.clone(),
        interface: interface.clone(),
        vrid: g.vrid,
        priority,
        advert_ms: g.advert.as_millis() as u32,
        preempt: g.preempt,
        unicast_source: source,
        unicast_peers: peers,
        vips: vips.to_vec(),
        sync_daemon: g.sync_daemon.then(|| SyncDaemonSpec { interface, sync_id: g.vrid.into() }),
        startup_delay_ms: if priority == highest { 0 } else { startup_delay_ms(g.advert) },
    })
}

/// How long a director below the instance's highest priority waits after its agent
/// first starts the engine: long enough for the highest to start (directors applied or
/// booted together start within a few seconds of each other) and win its election (the
/// master-down timer, about 3 adverts). Without preemption the first master keeps the
/// VIPs, so otherwise whichever engine started first would win. The cost: a lower
/// priority that starts alone becomes master this much later (while its agent restarts,
/// the VIPs it holds stay up: the engine runs with `--dont-release-vrrp`).
fn startup_delay_ms(advert: std::time::Duration) -> u32 {
    5_000 + 4 * advert.as_millis() as u32
}

fn plan_real_server(cluster: &Cluster, node: &Node, spec: &mut NodeSpec) {
    let mine: Vec<&Service> =
        cluster.services.iter().filter(|s| s.serving().any(|r| r.node == node.name)).collect();
    // ARP rules on `all` and on every interface that carries a RIP of an IPv4 service.
    // IPv6 needs none: Linux answers a neighbour solicitation only for an address of the
    // interface it arrives on (`ndisc_recv_ns` looks the target up strictly on that
    // device), and sources its own solicitations from that interface's address, so a
    // VIP on `lo` is never announced (the VM test reads the router's neighbour table).
    let mut ifaces: Vec<&str> = vec!["all"];
    for s in mine.iter().filter(|s| s.vip.is_ipv4()) {
        for r in s.serving().filter(|r| r.node == node.name) {
            if let Some(i) = node.interfaces.iter().find(|i| i.address.addr() == r.address.ip())
                && !ifaces.contains(&i.name.as_str())
            {
                ifaces.push(&i.name);
            }
        }
    }
    if mine.iter().any(|s| s.vip.is_ipv4()) {
        spec.sysctls.extend(table(REAL_SERVER_SYSCTLS, &ifaces));
    }
    let mut vips: Vec<IpAddr> = Vec::new();
    for s in &mine {
        if !vips.contains(&s.vip) {
            vips.push(s.vip);
        }
    }
    for (n, vip) in vips.iter().filter(|v| v.is_ipv4()).chain(vips.iter().filter(|v| v.is_ipv6())).enumerate()
    {
        let host = IpNet::from(*vip);
        spec.addresses.push(AddressSpec {
            interface: "lo".into(),
            address: host,
            label: label_for(*vip, &format!("lo:{n}")),
            purpose: AddressPurpose::HiddenVip,
        });
        spec.routes.push(RouteSpec {
            destination: host,
            gateway: None,
            device: Some("lo".into()),
            purpose: RoutePurpose::VipHost,
        });
    }
    spec.checks.push(clock(cluster));
    let forbidden: BTreeSet<IpAddr> = cluster
        .nodes
        .iter()
        .filter(|n| n.role == Role::Director)
        .flat_map(|d| {
            d.interfaces.iter().map(|i| i.address.addr()).chain(d.vips.iter().map(|v| v.address.addr()))
        })
        .collect();
    spec.checks.push(CheckSpec::GatewayIsNot { forbidden: forbidden.into_iter().collect() });
    // Requests to the VIP on lo and the replies from it, against the node's own firewall (a
    // firewall-mark service has no port to check: its ports are in the marking rules).
    spec.checks.extend(
        mine.iter()
            .filter(|s| matches!(s.key, ServiceKey::Addr { .. }))
            .map(|s| CheckSpec::FirewallAllows { service: s.key }),
    );
    let mut ports = BTreeSet::new();
    for s in &mine {
        let tcp = matches!(s.key, ServiceKey::Addr { protocol: Protocol::Tcp, .. });
        let path = match s.check.as_ref().map(|c| &c.probe) {
            Some(ProbeKind::Http { path, .. }) => Some(path.clone()),
            Some(ProbeKind::Tcp | ProbeKind::Exec { .. }) => None,
            None => tcp.then(|| "/".to_string()),
        };
        if let (Some(port), Some(path)) = (s.port(), path)
            && ports.insert(port)
        {
            spec.checks.push(CheckSpec::HttpLocal { port, path });
        }
    }
}

fn virtual_service(s: &Service) -> VirtualServiceSpec {
    VirtualServiceSpec {
        name: s.name.clone(),
        key: s.key,
        scheduler: s.scheduler.clone(),
        persistence: s.persistence,
        flags: s.flags.clone(),
        destinations: s.real_servers.iter().map(destination).collect(),
        health_check: s.check.clone(),
        sorry: s
            .sorry
            .as_ref()
            .map(|r| DestinationSpec { check: DestinationCheck::Service, ..destination(r) }),
        quorum: s.quorum,
        hysteresis: s.hysteresis,
        notify: s.notify.clone(),
    }
}

fn destination(r: &RealServer) -> DestinationSpec {
    DestinationSpec {
        node: r.node.clone(),
        address: r.address,
        forwarding: Forwarding::Route,
        weight: r.weight,
        upper_threshold: r.upper_threshold,
        lower_threshold: r.lower_threshold,
        check: r.check.clone(),
    }
}

fn clock(cluster: &Cluster) -> CheckSpec {
    CheckSpec::ClockOffset {
        server: cluster.time.ntp_server,
        max_offset_ms: cluster.time.max_offset.as_millis() as u64,
    }
}

fn table(rows: &[(&str, &str, &str)], ifaces: &[&str]) -> Vec<SysctlSpec> {
    let mut out = Vec::new();
    for (key, value, reason) in rows {
        if key.contains("{if}") {
            out.extend(ifaces.iter().map(|i| SysctlSpec {
                key: key.replace("{if}", i),
                value: (*value).into(),
                reason: (*reason).into(),
            }));
        } else {
            out.push(SysctlSpec { key: (*key).into(), value: (*value).into(), reason: (*reason).into() });
        }
    }
    out
}

/// An address label for IPv4 only: the kernel keeps no labels on IPv6 addresses (an
/// agent would see its label missing and re-add the address forever).
fn label_for(ip: IpAddr, label: &str) -> Option<String> {
    ip.is_ipv4().then(|| label.to_string())
}

fn default_net(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("literal"),
        IpAddr::V6(_) => "::/0".parse().expect("literal"),
    }
}
