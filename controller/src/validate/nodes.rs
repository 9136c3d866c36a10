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
                let cidr = self.cidr(&l.cidr, base.index(i).key("cidr"))?;
                Some(Lan { name: l.name.clone(), cidr: cidr.trunc() })
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
        let gateway = self.gateway(n, &path, role, &interfaces);
        let vips = self.vips(n, &path, role, &interfaces);
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
        let mut interfaces = Vec::new();
        for (i, itf) in n.interfaces.iter().enumerate() {
            if let Some(address) = self.interface(itf, &ipath.index(i), lans) {
                interfaces.push(Interface { name: itf.name.clone(), lan: itf.lan.clone(), address });
            }
        }
        interfaces
    }

    /// One interface's address, checked against its LAN.
    fn interface(&mut self, itf: &InterfaceDef, p: &KeyPath, lans: &[Lan]) -> Option<IpNet> {
        let address = self.cidr(&itf.address, p.key("address"));
        let lan = lans.iter().find(|l| l.name == itf.lan);
        if lan.is_none() {
            self.err(
                "unknown-lan",
                p.key("lan"),
                format!("interface {} names LAN `{}`, which no [[lans]] entry defines", itf.name, itf.lan),
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
        address
    }

    fn gateway(
        &mut self,
        n: &NodeDef,
        path: &KeyPath,
        role: Option<Role>,
        interfaces: &[Interface],
    ) -> Option<IpAddr> {
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
        gateway
    }

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
                && let Some(gw) = n.gateway.filter(|g| director_addrs.contains(g))
            {
                // Name this definition's router address on the real server's LAN, if it has one.
                let router = nodes.iter().filter(|r| r.role == Role::Router).find_map(|r| {
                    r.interfaces
                        .iter()
                        .find(|ri| n.interfaces.iter().any(|i| i.lan == ri.lan))
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
