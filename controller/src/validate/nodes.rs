//! Addressing and nodes: the time source, LANs, interfaces, gateways, VIPs and agent
//! endpoints, lowered to the model.
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use lvs_proto::spec::Role;

use super::Validator;
use crate::definition::{Definition, InterfaceDef, NodeDef};
use crate::diagnostics::KeyPath;
use crate::model::{Interface, Lan, Node, TimeSource, Vip};

impl Validator {
    pub(super) fn time(&mut self, def: &Definition) -> Option<TimeSource> {
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

    pub(super) fn lans(&mut self, def: &Definition) -> Vec<Lan> {
        let base = KeyPath::root().key("lans");
        self.unique_names(def.lans.iter().map(|l| l.name.as_str()), &base, "LAN");
        def.lans
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let mut cidrs: Vec<IpNet> = Vec::new();
                for (k, text) in l.cidr.items() {
                    let p = at(base.index(i).key("cidr"), k);
                    let Some(c) = self.cidr(text, p.clone()) else { continue };
                    if cidrs.iter().any(|x| x.addr().is_ipv6() == c.addr().is_ipv6()) {
                        self.err(
                            "family-twice",
                            p,
                            format!("LAN {} has two {} subnets", l.name, family(c.addr())),
                            "give a LAN at most one subnet per family (one IPv4, one IPv6)",
                        );
                        continue;
                    }
                    if let IpNet::V6(n) = c
                        && !(16..=127).contains(&n.prefix_len())
                    {
                        self.err(
                            "ipv6-prefix",
                            p,
                            format!("IPv6 subnet {c} of LAN {} has a /{} prefix", l.name, n.prefix_len()),
                            "use a LAN prefix between /16 and /127 (a /64 is usual)",
                        );
                        continue;
                    }
                    if let Some(why) = not_unicast(c.addr()) {
                        self.err(
                            "not-unicast",
                            p,
                            format!("subnet {c} of LAN {} is {why}", l.name),
                            "use a global or unique-local unicast subnet",
                        );
                        continue;
                    }
                    cidrs.push(c.trunc());
                }
                (!cidrs.is_empty()).then(|| Lan { name: l.name.clone(), cidrs })
            })
            .collect()
    }

    pub(super) fn nodes(&mut self, def: &Definition, lans: &[Lan]) -> Vec<Node> {
        let base = KeyPath::root().key("nodes");
        self.unique_names(def.nodes.iter().map(|n| n.name.as_str()), &base, "node");
        let nodes: Vec<Node> =
            def.nodes.iter().enumerate().filter_map(|(i, n)| self.node(n, base.index(i), lans)).collect();
        if !def.nodes.is_empty() && !def.nodes.iter().any(|n| n.role == "router") {
            self.warn(
                "no-router",
                base.clone(),
                "no node has role = \"router\": its forwarding and NTP are not managed, and \
                 `lvsctl verify` has no router agent to send requests from",
                "add the router as a node with role = \"router\" (it usually serves NTP too)",
            );
        }
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

    pub(super) fn node(&mut self, n: &NodeDef, path: KeyPath, lans: &[Lan]) -> Option<Node> {
        let role = self.role(n, &path);
        let interfaces = self.interfaces(n, &path, lans);
        let gateways = self.gateways(n, &path, role, &interfaces);
        let vips = self.vips(n, &path, role, &interfaces);
        if n.agent.trim().is_empty() {
            self.err(
                "bad-endpoint",
                path.key("agent"),
                "agent endpoint is empty",
                "use host:port, e.g. 192.168.40.11:7443",
            );
        }
        Some(Node { name: n.name.clone(), role: role?, agent: n.agent.clone(), interfaces, gateways, vips })
    }

    fn role(&mut self, n: &NodeDef, path: &KeyPath) -> Option<Role> {
        match n.role.as_str() {
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
        }
    }

    fn interfaces(&mut self, n: &NodeDef, path: &KeyPath, lans: &[Lan]) -> Vec<Interface> {
        let ipath = path.key("interfaces");
        self.unique_names(n.interfaces.iter().map(|i| i.name.as_str()), &ipath, "interface");
        let mut interfaces: Vec<Interface> = Vec::new();
        for (i, itf) in n.interfaces.iter().enumerate() {
            if !lans.iter().any(|l| l.name == itf.lan) {
                self.err(
                    "unknown-lan",
                    ipath.index(i).key("lan"),
                    format!(
                        "interface {} names LAN `{}`, which no [[lans]] entry defines",
                        itf.name, itf.lan
                    ),
                    "add a [[lans]] entry with that name and its cidr, or correct the name",
                );
            }
            let mut mine: Vec<Interface> = Vec::new();
            for (k, text) in itf.address.items() {
                let p = at(ipath.index(i).key("address"), k);
                let Some(address) = self.interface(itf, text, &p, lans) else { continue };
                if mine.iter().any(|x| x.address.addr().is_ipv6() == address.addr().is_ipv6()) {
                    self.err(
                        "family-twice",
                        p,
                        format!("interface {} has two {} addresses", itf.name, family(address.addr())),
                        "give an interface at most one address per family (one IPv4, one IPv6)",
                    );
                    continue;
                }
                mine.push(Interface { name: itf.name.clone(), lan: itf.lan.clone(), address });
            }
            // IPv4 first: the node's "address on the LAN" stays its IPv4 one where it has both.
            mine.sort_by_key(|x| x.address.addr().is_ipv6());
            interfaces.extend(mine);
        }
        interfaces
    }

    /// One interface address, checked against its LAN.
    fn interface(&mut self, itf: &InterfaceDef, text: &str, p: &KeyPath, lans: &[Lan]) -> Option<IpNet> {
        let a = self.cidr(text, p.clone())?;
        if let Some(why) = not_unicast(a.addr()) {
            self.err(
                "not-unicast",
                p.clone(),
                format!("{} is {why}; an interface address must be unicast", a.addr()),
                "use a global or unique-local unicast address of the LAN",
            );
            return None;
        }
        let l = lans.iter().find(|l| l.name == itf.lan)?;
        let Some(net) = l.cidr_for(a.addr()) else {
            self.err(
                "address-outside-lan",
                p.clone(),
                format!(
                    "{} is {} but LAN {} has no {} subnet",
                    a.addr(),
                    family(a.addr()),
                    l.name,
                    family(a.addr())
                ),
                format!(
                    "add the LAN's {} subnet to its cidr, or plug the interface into the right LAN",
                    family(a.addr())
                ),
            );
            return None;
        };
        if !net.contains(&a.addr()) {
            self.err(
                "address-outside-lan",
                p.clone(),
                format!("{} is not inside LAN {} ({})", a.addr(), l.name, net),
                "use an address of the LAN's subnet or plug the interface into the right LAN",
            );
        }
        if let IpNet::V6(n) = net
            && a.prefix_len() != n.prefix_len()
        {
            self.err(
                "ipv6-prefix",
                p.clone(),
                format!("{a} has a /{} prefix but LAN {} is {net}", a.prefix_len(), l.name),
                format!("write the LAN's prefix length: {}/{}", a.addr(), n.prefix_len()),
            );
        }
        if let IpNet::V4(net) = net
            && net.prefix_len() < 31
            && let IpAddr::V4(ip) = a.addr()
            && (ip == net.network() || ip == net.broadcast())
        {
            let which = if ip == net.network() { "network" } else { "broadcast" };
            self.err(
                "address-is-network-or-broadcast",
                p.clone(),
                format!("{ip} is the {which} address of LAN {} ({}); no host can use it", l.name, net),
                "use a host address of the LAN, between its network and broadcast addresses",
            );
        }
        if let IpNet::V6(net) = net
            && a.addr() == IpAddr::V6(net.network())
        {
            self.err(
                "address-is-network-or-broadcast",
                p.clone(),
                format!(
                    "{} is the subnet-router anycast address of LAN {} ({net}); no host can use it",
                    a.addr(),
                    l.name
                ),
                "use a host address of the LAN other than its all-zero one",
            );
        }
        Some(a)
    }

    fn gateways(
        &mut self,
        n: &NodeDef,
        path: &KeyPath,
        role: Option<Role>,
        interfaces: &[Interface],
    ) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for (k, text) in n.gateway.as_ref().map(|g| g.items()).unwrap_or_default() {
            let p = at(path.key("gateway"), k);
            let Some(gw) = self.ip(text, p.clone()) else { continue };
            if out.iter().any(|x| x.is_ipv6() == gw.is_ipv6()) {
                self.err(
                    "family-twice",
                    p,
                    format!("{} has two {} gateways", n.name, family(gw)),
                    "give a node at most one gateway per family",
                );
                continue;
            }
            if !interfaces.iter().any(|i| i.address.contains(&gw)) {
                self.err(
                    "gateway-off-lan",
                    p,
                    format!("gateway {gw} of {} is on none of its interfaces' subnets", n.name),
                    "a next hop must be directly reachable: use the router's address on this node's LAN",
                );
            }
            out.push(gw);
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
        if role == Some(Role::RealServer) && !out.is_empty() {
            for i in interfaces {
                let fam = i.address.addr().is_ipv6();
                if !out.iter().any(|g| g.is_ipv6() == fam) {
                    self.warn(
                        "real-server-no-gateway",
                        path.key("gateway"),
                        format!(
                            "real server {} has an {} address ({}) but no {} gateway: its replies to {} clients off the LAN have no route",
                            n.name,
                            family(i.address.addr()),
                            i.address,
                            family(i.address.addr()),
                            family(i.address.addr())
                        ),
                        "list the router's address of that family too, e.g. gateway = [\"198.18.0.1\", \"2001:db8:18::1\"]",
                    );
                    break;
                }
            }
        }
        out
    }

    // Long on purpose: one rule after another over each VIP of a node, in the order a
    // reader checks a vips entry.
    fn vips(
        &mut self,
        n: &NodeDef,
        path: &KeyPath,
        role: Option<Role>,
        interfaces: &[Interface],
    ) -> Vec<Vip> {
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
            if let Some(why) = not_unicast(address.addr()) {
                self.err(
                    "not-unicast",
                    p.key("address"),
                    format!("VIP {} is {why}", address.addr()),
                    "a VIP is a unicast address clients can route to",
                );
                continue;
            }
            // An IPv6 VIP is one address, /128: the agent adds it without duplicate address
            // detection and deprecated (never a source address), as keepalived does; any
            // shorter prefix would also make the director claim an on-link range.
            if address.addr().is_ipv6() && address.prefix_len() != 128 {
                self.err(
                    "ipv6-prefix",
                    p.key("address"),
                    format!("IPv6 VIP {address} has a /{} prefix", address.prefix_len()),
                    format!("write {}/128", address.addr()),
                );
            }
            let ecmp = self.ecmp_members.contains(&n.name);
            if ecmp && vd.interface != "lo" {
                self.err(
                    "bgp-vip-not-on-lo",
                    p.key("interface"),
                    format!(
                        "{} is a [bgp] director, but VIP {address} is put on {}: answered in ARP there, it would pull every flow to this one director",
                        n.name, vd.interface
                    ),
                    "hold it on lo: interface = \"lo\" (the router reaches each director by its BGP next hop)",
                );
            } else if ecmp {
                // On lo, hidden: nothing more to check about the interface.
            } else if !interfaces.iter().any(|itf| itf.name == vd.interface) {
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
            if label.split_once(':').is_none_or(|(dev, _)| dev != vd.interface)
                || lvs_proto::names::label_problem(&label).is_some()
            {
                self.err(
                    "bad-label",
                    p.key("label"),
                    format!(
                        "label {} must be the interface name, `:` and a suffix of letters, digits, `_`, `.` or `-`, at most 15 characters",
                        lvs_proto::names::shown(&label)
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
        vips
    }

    /// Rules that compare addresses of different nodes.
    pub(super) fn addresses_across_nodes(&mut self, def: &Definition, nodes: &[Node]) {
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
                && let Some(gw) = n.gateways.iter().copied().find(|g| director_addrs.contains(g))
            {
                // Name this definition's router address on the real server's LAN, if it has one.
                let router = nodes.iter().filter(|r| r.role == Role::Router).find_map(|r| {
                    r.interfaces
                        .iter()
                        .find(|ri| {
                            ri.address.addr().is_ipv6() == gw.is_ipv6()
                                && n.interfaces.iter().any(|i| i.lan == ri.lan)
                        })
                        .map(|ri| ri.address.addr())
                });
                let fix = match router {
                    Some(r) => format!(
                        "set the gateway to the router's address on this LAN, {r}; never a director's"
                    ),
                    None => {
                        "set the gateway to the router's address on this LAN; never a director's".to_string()
                    }
                };
                self.err(
                    "gateway-is-dip",
                    path.key("gateway"),
                    format!("real server {}'s gateway {gw} is a director address; in DR replies must bypass the director", n.name),
                    fix,
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

    pub(super) fn endpoints(&mut self, def: &Definition) {
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
}

/// A key path, indexed when the key held a list.
pub(super) fn at(p: KeyPath, k: Option<usize>) -> KeyPath {
    match k {
        Some(i) => p.index(i),
        None => p,
    }
}

/// `IPv4` or `IPv6`, for messages.
pub(super) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() { "IPv6" } else { "IPv4" }
}

/// Why `ip` cannot be a host's, a VIP or a RIP: unspecified, loopback, multicast, IPv6
/// link-local or an IPv4-mapped IPv6 address (each would be answered, routed or scoped
/// differently from a unicast address on the LAN). `None` for an ordinary unicast address.
pub(super) fn not_unicast(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_loopback() => Some("a loopback address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            Some("an IPv6 link-local address (fe80::/10)")
        }
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Some("an IPv4-mapped IPv6 address"),
        _ => None,
    }
}
