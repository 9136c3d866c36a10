//! Every rule a definition must satisfy, checked once, all findings collected.
//!
//! Rules come from the seed article's list of DR properties (same segment, no port
//! mapping, gateway not the DIP, ...) and from what the kernel accepts (weights are
//! 16-bit, fwmark 0 means "no mark", schedulers by name). Each rule has a stable name
//! (`Diagnostic::rule`) so tests and users can refer to it.
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use lvs_proto::spec::{
    HealthCheckSpec, OnFailure, Persistence, ProbeKind, Protocol, Role, ServiceFlag, ServiceKey,
};

use crate::definition::{CheckDef, Definition, NodeDef, PersistenceDef, RealServerDef, ServiceDef};
use crate::diagnostics::{Diagnostic, KeyPath};
use crate::model::{Cluster, Interface, Lan, Node, RealServer, Service, TimeSource, Vip};

pub use lvs_proto::spec::SCHEDULERS;

/// The kernel keeps a persistence timeout as `seconds × HZ` in 32 bits; with HZ up to
/// 1000 this is the largest value that cannot overflow.
pub const MAX_PERSISTENCE_S: u64 = u32::MAX as u64 / 1000;

/// Longest name of a cluster, LAN, node or service: one DNS label.
pub const MAX_NAME: usize = 63;

/// Why `name` is not a DNS label (lowercase letters, digits and `-`, not at either end,
/// 1..=63 bytes); `None` when it is one. Shown quoted with control characters escaped and
/// long names cut, so the message itself stays readable.
pub fn dns_label_problem(name: &str) -> Option<String> {
    let shown = || {
        let cut: String = name.chars().take(40).collect::<String>().escape_debug().to_string();
        if name.chars().count() > 40 { format!("`{cut}…`") } else { format!("`{cut}`") }
    };
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!("{} is {} bytes long (at most {MAX_NAME})", shown(), name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!(
            "{} contains {:?}: only lowercase letters, digits and `-` are allowed",
            shown(),
            c
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("{} starts or ends with `-`", shown()));
    }
    None
}

/// Why `name` cannot be a Linux interface name (1..=15 bytes, no `/`, `:`, whitespace or
/// control characters, not `.` or `..`); `None` when it can.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    let shown: String = name.chars().take(20).collect::<String>().escape_debug().to_string();
    if name.len() > 15 {
        return Some(format!("`{shown}` is longer than the kernel's 15 bytes"));
    }
    if name == "." || name == ".." || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':') {
        return Some(format!("`{shown}` is not a valid interface name (no `/`, `:` or spaces)"));
    }
    None
}

/// Validate a definition. Returns the cluster and its warnings, or every finding.
pub fn validate(def: &Definition) -> Result<(Cluster, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut v = Validator::default();
    let cluster = v.cluster(def);
    if v.diags.iter().any(|d| d.severity == crate::diagnostics::Severity::Error) {
        return Err(v.diags);
    }
    match cluster {
        Some(c) => Ok((c, v.diags)),
        None => Err(v.diags),
    }
}

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
}

impl Validator {
    fn err(&mut self, rule: &'static str, path: KeyPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.diags.push(Diagnostic::error(rule, path, msg, fix));
    }

    fn warn(&mut self, rule: &'static str, path: KeyPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.diags.push(Diagnostic::warning(rule, path, msg, fix));
    }

    fn cluster(&mut self, def: &Definition) -> Option<Cluster> {
        let root = KeyPath::root();
        let generation = match u64::try_from(def.cluster.generation) {
            Ok(g) if g >= 1 => g,
            _ => {
                self.err(
                    "generation-range",
                    root.key("cluster").key("generation"),
                    format!("generation {} is not a positive integer", def.cluster.generation),
                    "use 1 for a new cluster and increase it with every change",
                );
                1
            }
        };
        if let Some(problem) = dns_label_problem(&def.cluster.name) {
            self.err(
                "bad-name",
                root.key("cluster").key("name"),
                format!("cluster name {problem}"),
                "use lowercase letters, digits and `-` (at most 63), e.g. web-prod",
            );
        }
        let time = self.time(def);
        let lans = self.lans(def);
        let nodes = self.nodes(def, &lans);
        self.endpoints(def);
        let services = self.services(def, &nodes);
        Some(Cluster { name: def.cluster.name.clone(), generation, time: time?, lans, nodes, services })
    }

    fn time(&mut self, def: &Definition) -> Option<TimeSource> {
        let Some(t) = &def.time else {
            self.err(
                "time-source-missing",
                KeyPath::root(),
                "no [time] section: directors and real servers must agree within 1 s (the article's first step)",
                "add [time] with ntp_server = \"<router address>\"",
            );
            return None;
        };
        let path = KeyPath::root().key("time");
        let server = self.ip(&t.ntp_server, path.key("ntp_server"));
        let max_offset = match &t.max_offset {
            None => Some(Duration::from_secs(1)),
            Some(s) => self.duration(s, path.key("max_offset")),
        };
        Some(TimeSource { ntp_server: server?, max_offset: max_offset? })
    }

    fn lans(&mut self, def: &Definition) -> Vec<Lan> {
        let base = KeyPath::root().key("lans");
        self.unique_names(def.lans.iter().map(|l| l.name.as_str()), &base, "LAN");
        def.lans
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let cidr = self.cidr(&l.cidr, base.index(i).key("cidr"))?;
                Some(Lan { name: l.name.clone(), cidr: cidr.trunc() })
            })
            .collect()
    }

    fn nodes(&mut self, def: &Definition, lans: &[Lan]) -> Vec<Node> {
        let base = KeyPath::root().key("nodes");
        self.unique_names(def.nodes.iter().map(|n| n.name.as_str()), &base, "node");
        let nodes: Vec<Node> =
            def.nodes.iter().enumerate().filter_map(|(i, n)| self.node(n, base.index(i), lans)).collect();
        if !def.nodes.iter().any(|n| n.role == "director") {
            self.err(
                "no-director",
                base.clone(),
                "no node has role = \"director\": nothing would hold the VIP or the IPVS table",
                "add a node with role = \"director\"",
            );
        }
        self.addresses_across_nodes(def, &nodes);
        nodes
    }

    fn node(&mut self, n: &NodeDef, path: KeyPath, lans: &[Lan]) -> Option<Node> {
        let role = match n.role.as_str() {
            "router" => Some(Role::Router),
            "director" => Some(Role::Director),
            "real_server" => Some(Role::RealServer),
            other => {
                self.err(
                    "unknown-role",
                    path.key("role"),
                    format!("unknown role `{other}`"),
                    "use router, director or real_server",
                );
                None
            }
        };
        let ipath = path.key("interfaces");
        self.unique_names(n.interfaces.iter().map(|i| i.name.as_str()), &ipath, "interface");
        let mut interfaces = Vec::new();
        for (i, itf) in n.interfaces.iter().enumerate() {
            let p = ipath.index(i);
            let address = self.cidr(&itf.address, p.key("address"));
            let lan = lans.iter().find(|l| l.name == itf.lan);
            if lan.is_none() {
                self.err(
                    "unknown-lan",
                    p.key("lan"),
                    format!(
                        "interface {} names LAN `{}`, which no [[lans]] entry defines",
                        itf.name, itf.lan
                    ),
                    "add a [[lans]] entry with that name and its cidr, or correct the name",
                );
            }
            if let (Some(a), Some(l)) = (address, lan)
                && !l.cidr.contains(&a.addr())
            {
                self.err(
                    "address-outside-lan",
                    p.key("address"),
                    format!("{} is not inside LAN {} ({})", a.addr(), l.name, l.cidr),
                    "use an address of the LAN's subnet or plug the interface into the right LAN",
                );
            }
            if let (Some(a), Some(l)) = (address, lan)
                && let IpNet::V4(net) = l.cidr
                && net.prefix_len() < 31
                && let IpAddr::V4(ip) = a.addr()
                && (ip == net.network() || ip == net.broadcast())
            {
                let which = if ip == net.network() { "network" } else { "broadcast" };
                self.err(
                    "address-is-network-or-broadcast",
                    p.key("address"),
                    format!("{ip} is the {which} address of LAN {} ({}); no host can use it", l.name, l.cidr),
                    "use a host address of the LAN, between its network and broadcast addresses",
                );
            }
            if let Some(address) = address {
                interfaces.push(Interface { name: itf.name.clone(), lan: itf.lan.clone(), address });
            }
        }
        let gateway = n.gateway.as_ref().and_then(|g| self.ip(g, path.key("gateway")));
        if let Some(gw) = gateway
            && !interfaces.iter().any(|i| i.address.contains(&gw))
        {
            self.err(
                "gateway-off-lan",
                path.key("gateway"),
                format!("gateway {gw} of {} is on none of its interfaces' subnets", n.name),
                "a next hop must be directly reachable: use the router's address on this node's LAN",
            );
        }
        if role == Some(Role::RealServer) && n.gateway.is_none() {
            self.warn(
                "real-server-no-gateway",
                path.clone(),
                format!(
                    "real server {} has no gateway: its replies to clients off the LAN have no route",
                    n.name
                ),
                "set gateway to the router's address on the cluster LAN (never the DIP)",
            );
        }
        let mut vips = Vec::new();
        let vpath = path.key("vips");
        if !n.vips.is_empty() && role.is_some_and(|r| r != Role::Director) {
            self.err(
                "vip-on-non-director",
                vpath.clone(),
                format!("{} is a {} but declares vips; only directors hold VIP aliases", n.name, n.role),
                "move the vips to a director; real servers get the VIP on lo:0 from the services they serve",
            );
        }
        let mut labels = HashSet::new();
        for (i, vd) in n.vips.iter().enumerate() {
            let p = vpath.index(i);
            let Some(address) = self.cidr(&vd.address, p.key("address")) else {
                continue;
            };
            if !interfaces.iter().any(|itf| itf.name == vd.interface) {
                self.err(
                    "vip-interface-unknown",
                    p.key("interface"),
                    format!(
                        "VIP {} is put on {}, which {} has no entry for in interfaces",
                        address, vd.interface, n.name
                    ),
                    "put the VIP on the interface of the LAN the real servers share",
                );
            }
            let label = vd.label.clone().unwrap_or_else(|| format!("{}:{}", vd.interface, i));
            if !label.starts_with(vd.interface.as_str()) || label.len() > 15 {
                self.err(
                    "bad-label",
                    p.key("label"),
                    format!(
                        "label `{label}` must start with the interface name and be at most 15 characters"
                    ),
                    format!("use {}:N", vd.interface),
                );
            }
            if !labels.insert(label.clone()) {
                self.err(
                    "duplicate-name",
                    p.key("label"),
                    format!("label `{label}` is used twice"),
                    "give each VIP its own label",
                );
            }
            vips.push(Vip { address, interface: vd.interface.clone(), label });
        }
        if n.agent.trim().is_empty() {
            self.err(
                "bad-endpoint",
                path.key("agent"),
                "agent endpoint is empty",
                "use host:port, e.g. 192.168.40.11:7443",
            );
        }
        Some(Node { name: n.name.clone(), role: role?, agent: n.agent.clone(), interfaces, gateway, vips })
    }

    /// Rules that compare addresses of different nodes.
    fn addresses_across_nodes(&mut self, def: &Definition, nodes: &[Node]) {
        let node_addrs: HashMap<IpAddr, &str> = nodes
            .iter()
            .flat_map(|n| n.interfaces.iter().map(move |i| (i.address.addr(), n.name.as_str())))
            .collect();
        let director_addrs: HashSet<IpAddr> = nodes
            .iter()
            .filter(|n| n.role == Role::Director)
            .flat_map(|n| {
                n.interfaces.iter().map(|i| i.address.addr()).chain(n.vips.iter().map(|v| v.address.addr()))
            })
            .collect();
        for n in nodes {
            let Some(di) = def.nodes.iter().position(|d| d.name == n.name) else {
                continue;
            };
            let path = KeyPath::root().key("nodes").index(di);
            if n.role == Role::RealServer
                && let Some(gw) = n.gateway.filter(|g| director_addrs.contains(g))
            {
                self.err(
                        "gateway-is-dip",
                        path.key("gateway"),
                        format!("real server {}'s gateway {gw} is a director address; in DR replies must bypass the director", n.name),
                        "set the gateway to the router (the article: 192.168.40.254), never the DIP",
                    );
            }
            for (vi, vip) in n.vips.iter().enumerate() {
                if let Some(owner) = node_addrs.get(&vip.address.addr()) {
                    self.err(
                        "vip-is-node-address",
                        path.key("vips").index(vi).key("address"),
                        format!("VIP {} is also the address of node {owner}", vip.address.addr()),
                        "the VIP must be an address of its own, distinct from every DIP and RIP",
                    );
                }
            }
        }
    }

    fn endpoints(&mut self, def: &Definition) {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (i, n) in def.nodes.iter().enumerate() {
            let key = n.agent.trim().to_ascii_lowercase();
            let path = KeyPath::root().key("nodes").index(i).key("agent");
            match key.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                Some((h, Ok(p))) if !h.is_empty() && p != 0 => {}
                _ if key.is_empty() => continue,
                _ => {
                    self.err(
                        "bad-endpoint",
                        path.clone(),
                        format!("agent endpoint `{}` is not host:port", n.agent),
                        "use host:port with a port in 1..=65535, e.g. 192.168.40.11:7443",
                    );
                    continue;
                }
            }
            if let Some(first) = seen.insert(key, &n.name) {
                self.err(
                    "duplicate-endpoint",
                    path,
                    format!("nodes {first} and {} have the same agent endpoint {}", n.name, n.agent),
                    "every node runs its own agent: give each its own address:port",
                );
            }
        }
    }

    fn services(&mut self, def: &Definition, nodes: &[Node]) -> Vec<Service> {
        let base = KeyPath::root().key("services");
        self.unique_names(def.services.iter().map(|s| s.name.as_str()), &base, "service");
        let mut keys: HashMap<ServiceKey, &str> = HashMap::new();
        let mut out = Vec::new();
        for (i, s) in def.services.iter().enumerate() {
            let path = base.index(i);
            let Some(svc) = self.service(s, &path, nodes) else {
                continue;
            };
            if let Some(first) = keys.insert(svc.key, &s.name) {
                self.err(
                    "duplicate-service",
                    path.clone(),
                    format!("services {first} and {} are the same virtual service ({})", s.name, svc.key),
                    "merge them: one virtual service per protocol, VIP and port (or fwmark)",
                );
            }
            out.push(svc);
        }
        out
    }

    fn service(&mut self, s: &ServiceDef, path: &KeyPath, nodes: &[Node]) -> Option<Service> {
        let vip = match &s.vip {
            Some(v) => self.ip(v, path.key("vip")),
            None => {
                self.err(
                    "missing-key",
                    path.clone(),
                    format!("service {} has no vip", s.name),
                    "add vip = \"<address>\"",
                );
                None
            }
        };
        if let Some(owner) = vip.and_then(|v| {
            nodes.iter().find(|n| n.interfaces.iter().any(|i| i.address.addr() == v)).map(|n| n.name.clone())
        }) {
            self.err(
                "vip-is-node-address",
                path.key("vip"),
                format!(
                    "VIP {} of service {} is also the address of node {owner}",
                    vip.unwrap_or(IpAddr::from([0; 4])),
                    s.name
                ),
                "the VIP must be an address of its own, distinct from every DIP and RIP",
            );
        }
        let port = match (s.protocol.as_str(), s.port) {
            ("fwmark", Some(_)) => {
                self.err(
                    "fwmark-port",
                    path.key("port"),
                    "a fwmark service has no port",
                    "remove port; the firewall mark selects the traffic",
                );
                None
            }
            ("fwmark", None) => None,
            (_, None) => {
                self.err(
                    "missing-key",
                    path.clone(),
                    format!("service {} has no port", s.name),
                    "add port = 80 (or the service's port)",
                );
                None
            }
            (_, Some(p)) => self.port(p, path.key("port")),
        };
        let key = match s.protocol.as_str() {
            "tcp" | "udp" | "sctp" => {
                let protocol = match s.protocol.as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                if s.fwmark.is_some() {
                    self.err(
                        "fwmark-with-protocol",
                        path.key("fwmark"),
                        "fwmark is only for protocol = \"fwmark\"",
                        "remove fwmark or set protocol = \"fwmark\"",
                    );
                }
                match (vip, port) {
                    (Some(v), Some(p)) => Some(ServiceKey::Addr { protocol, address: SocketAddr::new(v, p) }),
                    _ => None,
                }
            }
            "fwmark" => match s.fwmark {
                None => {
                    self.err(
                        "missing-key",
                        path.clone(),
                        "protocol = \"fwmark\" needs fwmark = N",
                        "add fwmark = 1 (the mark your firewall sets)",
                    );
                    None
                }
                Some(0) => {
                    self.err(
                        "fwmark-zero",
                        path.key("fwmark"),
                        "fwmark 0 means \"no mark\" to the kernel",
                        "use a mark in 1..=4294967295",
                    );
                    None
                }
                Some(m) => match u32::try_from(m) {
                    Ok(mark) => vip.map(|v| ServiceKey::Fwmark { mark, ipv6: v.is_ipv6() }),
                    Err(_) => {
                        self.err(
                            "fwmark-range",
                            path.key("fwmark"),
                            format!("fwmark {m} is not a 32-bit mark"),
                            "use a mark in 1..=4294967295",
                        );
                        None
                    }
                },
            },
            other => {
                self.err(
                    "unknown-protocol",
                    path.key("protocol"),
                    format!("unknown protocol `{other}`"),
                    "use tcp, udp, sctp or fwmark",
                );
                None
            }
        };
        if !SCHEDULERS.contains(&s.scheduler.as_str()) {
            self.err(
                "unknown-scheduler",
                path.key("scheduler"),
                format!("unknown scheduler `{}`", s.scheduler),
                format!("use one of: {}", SCHEDULERS.join(" ")),
            );
        }
        if s.forwarding != "dr" {
            self.err(
                "unsupported-forwarding",
                path.key("forwarding"),
                format!("forwarding `{}`: this tool plans direct-routing clusters only", s.forwarding),
                "use forwarding = \"dr\"",
            );
        }
        let flags = self.flags(s, path);
        let persistence =
            s.persistence.as_ref().and_then(|p| self.persistence(p, &path.key("persistence"), vip));
        let check = s.check.as_ref().and_then(|c| self.check(c, &path.key("check")));
        if s.protocol == "udp"
            && let Some(c) = &s.check
        {
            self.err(
                "check-protocol",
                path.key("check").key("kind"),
                format!("a {} check cannot probe UDP service {}: it would test a TCP port nothing listens on", c.kind, s.name),
                "remove check (UDP destinations are then not health-checked) or check a TCP service of the same servers",
            );
        }
        let directors = self.holding_directors(s, path, vip, nodes);
        let (real_servers, sorry) = self.real_servers(s, path, port, &directors, nodes);
        Some(Service {
            name: s.name.clone(),
            key: key?,
            vip: vip?,
            scheduler: s.scheduler.clone(),
            persistence,
            flags,
            directors,
            check,
            real_servers,
            sorry,
        })
    }

    fn flags(&mut self, s: &ServiceDef, path: &KeyPath) -> Vec<ServiceFlag> {
        let mut flags = Vec::new();
        for (i, f) in s.flags.iter().enumerate() {
            let flag = match f.as_str() {
                "one-packet" => ServiceFlag::OnePacket,
                "sh-fallback" => ServiceFlag::ShFallback,
                "sh-port" => ServiceFlag::ShPort,
                other => {
                    self.err(
                        "unknown-flag",
                        path.key("flags").index(i),
                        format!("unknown flag `{other}`"),
                        "use one-packet, sh-fallback or sh-port",
                    );
                    continue;
                }
            };
            if matches!(flag, ServiceFlag::ShFallback | ServiceFlag::ShPort)
                && !matches!(s.scheduler.as_str(), "sh" | "mh")
            {
                self.err(
                    "flag-needs-sh",
                    path.key("flags").index(i),
                    format!("flag {f} only means something to the sh and mh schedulers, not {}", s.scheduler),
                    "remove the flag or use scheduler = \"sh\"",
                );
            }
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
        flags
    }

    fn persistence(
        &mut self,
        p: &PersistenceDef,
        path: &KeyPath,
        vip: Option<IpAddr>,
    ) -> Option<Persistence> {
        let timeout = self.duration(&p.timeout, path.key("timeout"))?;
        let secs = timeout.as_secs();
        if secs == 0 || secs > MAX_PERSISTENCE_S || timeout.subsec_nanos() != 0 {
            self.err(
                "persistence-range",
                path.key("timeout"),
                format!("persistence timeout {} is outside 1s..={MAX_PERSISTENCE_S}s", p.timeout),
                "use whole seconds, e.g. \"300s\" (ipvsadm's default)",
            );
            return None;
        }
        let v6 = vip.is_some_and(|v| v.is_ipv6());
        let netmask = match &p.netmask {
            None if v6 => 128,
            None => u32::MAX,
            Some(m) => match (m.parse::<std::net::Ipv4Addr>(), m.parse::<u8>()) {
                (Ok(mask), _)
                    if !v6 && u32::from(mask).leading_ones() + u32::from(mask).trailing_zeros() == 32 =>
                {
                    u32::from(mask)
                }
                (_, Ok(plen)) if v6 && plen <= 128 => u32::from(plen),
                (_, Ok(plen)) if !v6 && plen <= 32 => u32::MAX.checked_shl(32 - u32::from(plen)).unwrap_or(0),
                _ => {
                    self.err(
                        "bad-netmask",
                        path.key("netmask"),
                        format!("`{m}` is not a contiguous netmask or prefix length"),
                        "use e.g. \"255.255.255.0\" or \"24\" (IPv6: a prefix length)",
                    );
                    return None;
                }
            },
        };
        Some(Persistence { timeout_s: secs as u32, netmask })
    }

    fn check(&mut self, c: &CheckDef, path: &KeyPath) -> Option<HealthCheckSpec> {
        let probe = match c.kind.as_str() {
            "http" => {
                let p = c.path.clone().unwrap_or_else(|| "/".into());
                if !p.starts_with('/') {
                    self.err(
                        "bad-check",
                        path.key("path"),
                        format!("HTTP path `{p}` must start with /"),
                        "use e.g. \"/\" or \"/healthz\"",
                    );
                }
                let status = c.expect_status.unwrap_or(200);
                if !(100..=599).contains(&status) {
                    self.err(
                        "bad-check",
                        path.key("expect_status"),
                        format!("{status} is not an HTTP status"),
                        "use 100..=599, usually 200",
                    );
                }
                ProbeKind::Http {
                    path: p,
                    expect_status: status.clamp(100, 599) as u16,
                    expect_body: c.expect_body.clone(),
                    host: c.host.clone(),
                }
            }
            "tcp" => ProbeKind::Tcp,
            other => {
                self.err(
                    "bad-check",
                    path.key("kind"),
                    format!("unknown check kind `{other}`"),
                    "use http or tcp",
                );
                return None;
            }
        };
        let interval = match &c.interval {
            Some(s) => self.duration(s, path.key("interval"))?,
            None => Duration::from_secs(2),
        };
        let timeout = match &c.timeout {
            Some(s) => self.duration(s, path.key("timeout"))?,
            None => Duration::from_secs(1).min(interval / 2),
        };
        if interval < Duration::from_millis(lvs_proto::spec::MIN_CHECK_INTERVAL_MS) {
            self.err(
                "check-interval",
                path.key("interval"),
                format!(
                    "interval {interval:?} is below the minimum of {} ms",
                    lvs_proto::spec::MIN_CHECK_INTERVAL_MS
                ),
                "probe at most ten times a second; fall × interval is how fast a failure is seen",
            );
        }
        if timeout >= interval || timeout.is_zero() {
            self.err(
                "check-timeout",
                path.key("timeout"),
                format!("timeout {timeout:?} must be positive and shorter than the interval {interval:?}"),
                "a probe must finish before the next one starts: lower timeout or raise interval",
            );
        }
        let mut count = |v: Option<i64>, default: i64, key: &str| match v.unwrap_or(default) {
            n @ 1..=1000 => n as u32,
            n => {
                self.err(
                    "check-rise-fall",
                    path.key(key),
                    format!("{key} = {n}: must be 1..=1000 (checks in a row)"),
                    format!("use e.g. {key} = {default}"),
                );
                1
            }
        };
        let rise = count(c.rise, 2, "rise");
        let fall = count(c.fall, 3, "fall");
        let on_failure = match c.on_failure.as_deref().unwrap_or("weight0") {
            "weight0" => OnFailure::Weight0,
            "remove" => OnFailure::Remove,
            other => {
                self.err(
                    "bad-check",
                    path.key("on_failure"),
                    format!("unknown on_failure `{other}`"),
                    "use weight0 (connections finish) or remove",
                );
                OnFailure::Weight0
            }
        };
        Some(HealthCheckSpec {
            probe,
            interval_ms: interval.as_millis() as u64,
            timeout_ms: timeout.as_millis() as u64,
            rise,
            fall,
            on_failure,
        })
    }

    fn holding_directors(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        vip: Option<IpAddr>,
        nodes: &[Node],
    ) -> Vec<String> {
        let holds = |n: &Node| vip.is_some_and(|v| n.vips.iter().any(|x| x.address.addr() == v));
        let mut out = Vec::new();
        match &s.directors {
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    let p = path.key("directors").index(i);
                    match nodes.iter().find(|n| &n.name == name) {
                        None => self.err(
                            "unknown-node",
                            p,
                            format!("no node named `{name}`"),
                            "name a node of role director",
                        ),
                        Some(n) if n.role != Role::Director => self.err(
                            "wrong-role",
                            p,
                            format!("{name} is a {}, not a director", n.role),
                            "name a node of role director",
                        ),
                        Some(n) if vip.is_some() && !holds(n) => self.err(
                            "vip-not-held",
                            p,
                            format!(
                                "director {name} does not hold VIP {} of service {}",
                                vip.unwrap_or(IpAddr::from([0; 4])),
                                s.name
                            ),
                            "add the VIP to that director's vips",
                        ),
                        Some(n) => out.push(n.name.clone()),
                    }
                }
            }
            None => out.extend(
                nodes.iter().filter(|n| n.role == Role::Director && holds(n)).map(|n| n.name.clone()),
            ),
        }
        if out.is_empty() && vip.is_some() && s.directors.is_none() {
            self.err(
                "vip-not-held",
                path.key("vip"),
                format!(
                    "no director holds VIP {} of service {}",
                    vip.unwrap_or(IpAddr::from([0; 4])),
                    s.name
                ),
                "add it to a director's vips, e.g. vips = [{ address = \"<vip>/32\", interface = \"eth1\" }]",
            );
        }
        out
    }

    fn real_servers(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        port: Option<u16>,
        directors: &[String],
        nodes: &[Node],
    ) -> (Vec<RealServer>, Option<RealServer>) {
        let mut seen: HashMap<IpAddr, String> = HashMap::new();
        let mut out = Vec::new();
        for (i, r) in s.real_servers.iter().enumerate() {
            let p = path.key("real_servers").index(i);
            let Some(rs) = self.real_server(s, r, &p, port, directors, nodes) else { continue };
            if let Some(first) = seen.insert(rs.address.ip(), rs.node.clone()) {
                self.err(
                    "duplicate-real-server",
                    p.clone(),
                    format!(
                        "{} ({}) appears twice in service {} (first as {first})",
                        rs.node,
                        rs.address.ip(),
                        s.name
                    ),
                    "list each real server once per service",
                );
                continue;
            }
            out.push(rs);
        }
        let mut sorry = None;
        if let Some(r) = &s.sorry_server {
            let p = path.key("sorry_server");
            sorry = self.real_server(s, r, &p, port, directors, nodes);
            if let Some(rs) = sorry.as_ref().filter(|rs| seen.contains_key(&rs.address.ip())) {
                self.err(
                    "sorry-is-real-server",
                    p.key("node"),
                    format!("{} is already a real server of service {}", rs.node, s.name),
                    "the sorry server stands in when every real server is down: name another node",
                );
            }
        }
        (out, sorry)
    }

    /// One real server (or sorry server) against the rules of DR; `None` after an error.
    fn real_server(
        &mut self,
        s: &ServiceDef,
        r: &RealServerDef,
        p: &KeyPath,
        port: Option<u16>,
        directors: &[String],
        nodes: &[Node],
    ) -> Option<RealServer> {
        let dir_lans: HashSet<&str> = nodes
            .iter()
            .filter(|n| directors.contains(&n.name))
            .flat_map(|n| n.interfaces.iter().map(|i| i.lan.as_str()))
            .collect();
        let Some(node) = nodes.iter().find(|n| n.name == r.node) else {
            self.err(
                "unknown-node",
                p.key("node"),
                format!("no node named `{}`", r.node),
                "name a node of role real_server",
            );
            return None;
        };
        if node.role != Role::RealServer {
            self.err(
                "wrong-role",
                p.key("node"),
                format!("{} is a {}, not a real_server", node.name, node.role),
                "name a node of role real_server",
            );
            return None;
        }
        let rport = match r.port {
            Some(rp) => {
                let rp = self.port(rp, p.key("port"));
                if let (Some(rp), Some(vp)) = (rp, port)
                    && rp != vp
                {
                    self.err(
                            "dr-port-mapping",
                            p.key("port"),
                            format!("real server port {rp} differs from the virtual port {vp}; DR forwards frames unchanged and cannot map ports"),
                            format!("run the service on port {vp} on {} (or remove port)", node.name),
                        );
                }
                rp
            }
            None => port,
        };
        let itf = match &r.address {
            Some(a) => {
                let ip = self.ip(a, p.key("address"))?;
                match node.interfaces.iter().find(|i| i.address.addr() == ip) {
                    Some(itf) => Some(itf),
                    None => {
                        self.err(
                            "unknown-address",
                            p.key("address"),
                            format!("{ip} is not an address of {}", node.name),
                            "use one of the node's interface addresses",
                        );
                        return None;
                    }
                }
            }
            None => node.interfaces.iter().find(|i| dir_lans.contains(i.lan.as_str())),
        };
        let itf = match itf {
            Some(itf) if dir_lans.contains(itf.lan.as_str()) => itf,
            _ if directors.is_empty() => return None,
            _ => {
                self.err(
                    "dr-same-lan",
                    p.key("node"),
                    format!("real server {} shares no LAN with the director(s) {} of service {}; DR needs one segment with no router between", node.name, directors.join(", "), s.name),
                    "give the real server an interface on the director's LAN",
                );
                return None;
            }
        };
        let weight = match r.weight.unwrap_or(1) {
            w @ 0..=65535 => w as u32,
            w => {
                self.err(
                    "weight-range",
                    p.key("weight"),
                    format!("weight {w} is outside 0..=65535"),
                    "use 0..=65535; 0 keeps the server but sends it no new connections",
                );
                0
            }
        };
        let mut threshold = |v: Option<i64>, key: &str| match u32::try_from(v.unwrap_or(0)) {
            Ok(t) => t,
            Err(_) => {
                self.err(
                    "threshold-range",
                    p.key(key),
                    format!("{key} {} is outside 0..=4294967295", v.unwrap_or(0)),
                    "use 0 for no threshold",
                );
                0
            }
        };
        let upper = threshold(r.upper_threshold, "upper_threshold");
        let lower = threshold(r.lower_threshold, "lower_threshold");
        if upper > 0 && lower > upper {
            self.err(
                "threshold-range",
                p.key("lower_threshold"),
                format!("lower_threshold {lower} is above upper_threshold {upper}"),
                "the server is re-enabled below the lower threshold: keep it under the upper one",
            );
        }
        let rport = rport.or(port).unwrap_or(0);
        Some(RealServer {
            node: node.name.clone(),
            address: SocketAddr::new(itf.address.addr(), rport),
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
        })
    }

    /// Names become file names (`pki issue` writes `agent-<node>.pem`), DNS names in
    /// certificates and labels in every report: a DNS label is the one shape safe for all.
    /// Interfaces follow the kernel's rules instead ([`ifname_problem`]).
    fn unique_names<'n>(&mut self, names: impl Iterator<Item = &'n str>, base: &KeyPath, what: &str) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            let problem = if what == "interface" { ifname_problem(name) } else { dns_label_problem(name) };
            if let Some(problem) = problem {
                let fix = if what == "interface" {
                    "use the kernel's interface name, e.g. eth0, ens3 or eth0.100"
                } else {
                    "use lowercase letters, digits and `-` (at most 63), e.g. rs1 or web-80"
                };
                self.err("bad-name", base.index(i).key("name"), format!("{what} name {problem}"), fix);
            } else if !seen.insert(name) {
                self.err(
                    "duplicate-name",
                    base.index(i).key("name"),
                    format!("{what} name `{name}` is used twice"),
                    format!("give every {what} a unique name"),
                );
            }
        }
    }

    fn ip(&mut self, s: &str, path: KeyPath) -> Option<IpAddr> {
        match s.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    "bad-address",
                    path,
                    format!("`{s}` is not an IP address"),
                    "write an address such as 192.168.40.11 (no prefix here)",
                );
                None
            }
        }
    }

    fn cidr(&mut self, s: &str, path: KeyPath) -> Option<IpNet> {
        match s.parse::<IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    "bad-cidr",
                    path,
                    format!("`{s}` is not an address with a prefix length"),
                    "write address/prefix, e.g. 192.168.40.11/24",
                );
                None
            }
        }
    }

    fn port(&mut self, p: i64, path: KeyPath) -> Option<u16> {
        match u16::try_from(p) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                self.err(
                    "bad-port",
                    path,
                    format!("port {p} is outside 1..=65535"),
                    "use a TCP/UDP port number, e.g. 80",
                );
                None
            }
        }
    }

    fn duration(&mut self, s: &str, path: KeyPath) -> Option<Duration> {
        match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    "bad-duration",
                    path,
                    format!("`{s}` is not a duration ({e})"),
                    "write e.g. \"1s\", \"500ms\" or \"5m\"",
                );
                None
            }
        }
    }
}
