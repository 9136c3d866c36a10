//! Services: protocol, VIP and port or mark, scheduler, flags, persistence, and which
//! directors hold them.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use lvs_proto::spec::{Persistence, Protocol, Role, ServiceFlag, ServiceKey};

use super::{MAX_PERSISTENCE_S, SCHEDULERS, Validator};
use crate::definition::{Definition, PersistenceDef, ServiceDef};
use crate::diagnostics::KeyPath;
use crate::model::{Node, Service};

impl Validator {
    pub(super) fn services(&mut self, def: &Definition, nodes: &[Node]) -> Vec<Service> {
        let base = KeyPath::root().key("services");
        self.unique_names(def.services.iter().map(|s| s.name.as_str()), &base, "service");
        let mut keys: HashMap<ServiceKey, &str> = HashMap::new();
        let mut out = Vec::new();
        for (i, s) in def.services.iter().enumerate() {
            let path = base.index(i);
            // A dual-stack service is one IPVS service per family, the same real servers.
            for (vip_path, vip) in self.service_vips(s, &path, nodes) {
                let Some(svc) = self.service(s, &path, &vip_path, vip, nodes) else {
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
        }
        self.marks_overlap(def, &out);
        out
    }

    /// One family's virtual service of `s`, for `vip` (at `vip_path`).
    pub(super) fn service(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        vip_path: &KeyPath,
        vip: Option<IpAddr>,
        nodes: &[Node],
    ) -> Option<Service> {
        let port = self.service_port(s, path);
        let key = self.service_key(s, path, vip, port);
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
        let check = self.service_check(s.check.as_ref(), path);
        if s.protocol == "udp"
            && let Some(c) = &s.check
            && let Some(kind @ ("http" | "https" | "tcp")) = c.kind.as_deref()
        {
            self.err(
                "check-protocol",
                path.key("check").key("kind"),
                format!("a {kind} check cannot probe UDP service {}: it would test a TCP port nothing listens on", s.name),
                "use an exec check that speaks the service's protocol, or check a TCP service of the same servers",
            );
        }
        let directors = self.holding_directors(s, path, vip_path, vip, nodes);
        let (real_servers, sorry) =
            self.real_servers(s, path, super::dr::Serving { port, vip, directors: &directors }, nodes);
        if !real_servers.is_empty() && real_servers.iter().all(|r| r.weight == 0) {
            self.warn(
                "all-weights-zero",
                path.key("real_servers"),
                format!("every real server of service {} has weight 0: it accepts no new connection", s.name),
                "give at least one real server a weight above 0 (0 is for draining one server)",
            );
        }
        let (quorum, hysteresis) = self.quorum(s, path, real_servers.len());
        let notify =
            s.notify.as_deref().and_then(|n| self.command(Some(n), &path.key("notify"))).unwrap_or_default();
        let marks = self.marks(s, path);
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
            quorum,
            hysteresis,
            notify,
            marks,
        })
    }

    /// Quorum and hysteresis: the service is degraded below `quorum - hysteresis` real
    /// servers in service and healthy again from `quorum + hysteresis`.
    fn quorum(&mut self, s: &ServiceDef, path: &KeyPath, servers: usize) -> (u32, u32) {
        let quorum = s.quorum.unwrap_or(1);
        let hysteresis = s.hysteresis.unwrap_or(0);
        let servers = servers as i64;
        if !(1..=servers.max(1)).contains(&quorum) {
            self.err(
                "quorum-range",
                path.key("quorum"),
                format!("quorum {quorum} of service {}: it has {servers} real server(s)", s.name),
                "use 1..=the number of real servers (the service is degraded below it)",
            );
        } else if !(0..quorum).contains(&hysteresis) {
            self.err(
                "quorum-range",
                path.key("hysteresis"),
                format!("hysteresis {hysteresis} with quorum {quorum}: it must be 0..quorum"),
                "the service is degraded below quorum - hysteresis and healthy from quorum + hysteresis",
            );
        }
        (quorum.clamp(1, u32::MAX as i64) as u32, hysteresis.clamp(0, u32::MAX as i64) as u32)
    }

    /// The VIPs, one per family, each with its key path: present, addresses, unicast, and
    /// no node's own address. A missing or bad VIP yields one `None` entry, so the rest of
    /// the service is still checked.
    fn service_vips(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        nodes: &[Node],
    ) -> Vec<(KeyPath, Option<IpAddr>)> {
        let Some(list) = &s.vip else {
            self.err(
                "missing-key",
                path.clone(),
                format!("service {} has no vip", s.name),
                "add vip = \"<address>\"",
            );
            return vec![(path.key("vip"), None)];
        };
        let mut out: Vec<(KeyPath, Option<IpAddr>)> = Vec::new();
        for (k, text) in list.items() {
            let p = super::nodes::at(path.key("vip"), k);
            let Some(vip) = self.ip(text, p.clone()) else { continue };
            if let Some(why) = super::nodes::not_unicast(vip) {
                self.err(
                    "not-unicast",
                    p,
                    format!("VIP {vip} of service {} is {why}", s.name),
                    "a VIP is a unicast address clients can route to",
                );
                continue;
            }
            if out.iter().any(|(_, v)| v.is_some_and(|v| v.is_ipv6() == vip.is_ipv6())) {
                self.err(
                    "family-twice",
                    p,
                    format!("service {} lists two {} VIPs", s.name, super::nodes::family(vip)),
                    "a dual-stack service has one VIP per family; make another service for another VIP",
                );
                continue;
            }
            if let Some(owner) = nodes
                .iter()
                .find(|n| n.interfaces.iter().any(|i| i.address.addr() == vip))
                .map(|n| n.name.clone())
            {
                self.err(
                    "vip-is-node-address",
                    p.clone(),
                    format!("VIP {vip} of service {} is also the address of node {owner}", s.name),
                    "the VIP must be an address of its own, distinct from every DIP and RIP",
                );
            }
            out.push((p, Some(vip)));
        }
        if out.is_empty() {
            out.push((path.key("vip"), None));
        }
        out
    }

    /// The port: present exactly when the protocol has ports.
    fn service_port(&mut self, s: &ServiceDef, path: &KeyPath) -> Option<u16> {
        match (s.protocol.as_str(), s.port) {
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
        }
    }

    /// The kernel identity: protocol, VIP and port, or a firewall mark.
    fn service_key(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        vip: Option<IpAddr>,
        port: Option<u16>,
    ) -> Option<ServiceKey> {
        match s.protocol.as_str() {
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
        }
    }

    pub(super) fn flags(&mut self, s: &ServiceDef, path: &KeyPath) -> Vec<ServiceFlag> {
        let mut flags = Vec::new();
        for (i, f) in s.flags.iter().enumerate() {
            let flag = match f.as_str() {
                "one-packet" => ServiceFlag::OnePacket,
                // mh reads the same two bits as sh; ipvsadm names them after the scheduler.
                "sh-fallback" | "mh-fallback" => ServiceFlag::ShFallback,
                "sh-port" | "mh-port" => ServiceFlag::ShPort,
                other => {
                    self.err(
                        "unknown-flag",
                        path.key("flags").index(i),
                        format!("unknown flag `{other}`"),
                        "use one-packet, sh-fallback, sh-port, mh-fallback or mh-port",
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

    pub(super) fn persistence(
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

    pub(super) fn holding_directors(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        vip_path: &KeyPath,
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
        let shared_by_vrrp = self.vrrp_members.iter().any(|g| out.iter().all(|n| g.contains(n)))
            || out.iter().all(|n| self.ecmp_members.contains(n));
        if out.len() > 1 && !shared_by_vrrp {
            self.warn(
                "vip-on-two-directors",
                vip_path.clone(),
                format!(
                    "directors {} all hold VIP {} of service {}: without a failover protocol each answers ARP \
                     for it and the LAN's traffic flaps between them",
                    out.join(", "),
                    vip.unwrap_or(IpAddr::from([0; 4])),
                    s.name
                ),
                "share it through VRRP ([[vrrp]] with these directors) or ECMP ([bgp] directors), or keep it on one director",
            );
        }
        if out.is_empty() && vip.is_some() && s.directors.is_none() {
            self.err(
                "vip-not-held",
                vip_path.clone(),
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
}
