//! Direct routing: every real server shares a LAN with its director, keeps the virtual
//! port, and is listed once; the sorry server is checked like a real server.
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use lvs_proto::spec::Role;

use super::Validator;
use crate::definition::{RealServerDef, ServiceDef};
use crate::diagnostics::KeyPath;
use crate::model::{Interface, Node, RealServer};

/// What one family's virtual service asks of its real servers: its port, its VIP (whose
/// family the RIP must have) and the directors holding it.
#[derive(Clone, Copy)]
pub(super) struct Serving<'a> {
    /// The virtual port (`None` for fwmark services).
    pub port: Option<u16>,
    /// The VIP, when it parsed.
    pub vip: Option<IpAddr>,
    /// Directors holding the service.
    pub directors: &'a [String],
}

impl Validator {
    pub(super) fn real_servers(
        &mut self,
        s: &ServiceDef,
        path: &KeyPath,
        to: Serving<'_>,
        nodes: &[Node],
    ) -> (Vec<RealServer>, Option<RealServer>) {
        let mut seen: HashMap<IpAddr, String> = HashMap::new();
        let mut out = Vec::new();
        for (i, r) in s.real_servers.iter().enumerate() {
            let p = path.key("real_servers").index(i);
            let Some(rs) = self.real_server(s, r, &p, to, nodes) else { continue };
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
            sorry = self.real_server(s, r, &p, to, nodes);
            if r.check.is_some() {
                self.err(
                    "check-override",
                    p.key("check"),
                    "the sorry server is not health-checked",
                    "remove check from sorry_server: it stands in only while the service is below quorum",
                );
            }
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
    pub(super) fn real_server(
        &mut self,
        s: &ServiceDef,
        r: &RealServerDef,
        p: &KeyPath,
        to: Serving<'_>,
        nodes: &[Node],
    ) -> Option<RealServer> {
        let port = to.port;
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
        let rport = self.real_server_port(r, p, port, node);
        let itf = self.real_server_interface(s, r, p, to, nodes, node)?;
        let (weight, upper, lower) = self.real_server_weights(r, p);
        let rport = rport.or(port).unwrap_or(0);
        let check = self.destination_check(s.check.as_ref(), r, p);
        Some(RealServer {
            node: node.name.clone(),
            address: SocketAddr::new(itf.address.addr(), rport),
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
            check,
        })
    }

    /// The real server's port: DR forwards frames unchanged, so it is the virtual port.
    fn real_server_port(
        &mut self,
        r: &RealServerDef,
        p: &KeyPath,
        port: Option<u16>,
        node: &Node,
    ) -> Option<u16> {
        match r.port {
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
        }
    }

    /// The interface address the directors reach the real server on: one on a director's
    /// LAN, of the VIP's family (DR forwards the client's packet unchanged, so the RIP is
    /// of the family the VIP is).
    fn real_server_interface<'n>(
        &mut self,
        s: &ServiceDef,
        r: &RealServerDef,
        p: &KeyPath,
        to: Serving<'_>,
        nodes: &[Node],
        node: &'n Node,
    ) -> Option<&'n Interface> {
        let (vip, directors) = (to.vip, to.directors);
        let dir_lans: HashSet<&str> = nodes
            .iter()
            .filter(|n| directors.contains(&n.name))
            .flat_map(|n| n.interfaces.iter().map(|i| i.lan.as_str()))
            .collect();
        let same_family = |i: &Interface| vip.is_none_or(|v| v.is_ipv6() == i.address.addr().is_ipv6());
        let itf = match &r.address {
            Some(a) => {
                let ip = self.ip(a, p.key("address"))?;
                match node.interfaces.iter().find(|i| i.address.addr() == ip) {
                    Some(itf) if !same_family(itf) => {
                        let v = vip.unwrap_or(ip);
                        self.err(
                            "family-mixed",
                            p.key("address"),
                            format!(
                                "real server address {ip} is {} but VIP {v} of service {} is {}; DR forwards the client's packet unchanged",
                                super::nodes::family(ip),
                                s.name,
                                super::nodes::family(v)
                            ),
                            format!("use {}'s {} address, or leave address out", node.name, super::nodes::family(v)),
                        );
                        return None;
                    }
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
            None => node.interfaces.iter().find(|i| dir_lans.contains(i.lan.as_str()) && same_family(i)),
        };
        match itf {
            Some(itf) if dir_lans.contains(itf.lan.as_str()) => Some(itf),
            _ if directors.is_empty() => None,
            None if let Some(v) = vip
                && node.interfaces.iter().any(|i| dir_lans.contains(i.lan.as_str())) =>
            {
                self.no_address_of_family(s, p, node, v);
                None
            }
            _ => {
                self.err(
                    "dr-same-lan",
                    p.key("node"),
                    format!("real server {} shares no LAN with the director(s) {} of service {}; DR needs one segment with no router between", node.name, directors.join(", "), s.name),
                    "give the real server an interface on the director's LAN",
                );
                None
            }
        }
    }

    /// `family-mixed`: the real server is on the directors' LAN, but not in `vip`'s family.
    fn no_address_of_family(&mut self, s: &ServiceDef, p: &KeyPath, node: &Node, vip: IpAddr) {
        let family = super::nodes::family(vip);
        self.err(
            "family-mixed",
            p.key("node"),
            format!(
                "real server {} has no {family} address on the directors' LAN, and VIP {vip} of service {} is {family}",
                node.name, s.name
            ),
            format!(
                "give {} an {family} address on that LAN (address = [\"<IPv4>/<len>\", \"<IPv6>/<len>\"]), or serve this VIP from other real servers",
                node.name
            ),
        );
    }

    /// Weight and connection thresholds, each in the kernel's range.
    fn real_server_weights(&mut self, r: &RealServerDef, p: &KeyPath) -> (u32, u32, u32) {
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
        (weight, upper, lower)
    }
}
