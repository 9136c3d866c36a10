//! A fwmark service's `marks`: what its directors mark for it, in their own nftables table.
//! Each entry is a protocol and ports; two services may not mark the same packets (the last
//! rule would win, silently), and a mark may not cover an address service's VIP and port
//! (IPVS looks a packet's mark up first: the address service would never see a packet).
use lvs_proto::spec::{PortRange, Protocol, ServiceKey, normalized_ports};

use super::Validator;
use crate::definition::{Definition, MarkDef, PortDef, ServiceDef};
use crate::diagnostics::KeyPath;
use crate::model::{Marking, Service};

impl Validator {
    /// The markings of `s` (at `path`), checked; empty when it has none.
    pub(super) fn marks(&mut self, s: &ServiceDef, path: &KeyPath) -> Vec<Marking> {
        let Some(defs) = &s.marks else { return Vec::new() };
        let at = path.key("marks");
        if s.protocol != "fwmark" {
            self.err(
                "marks-without-fwmark",
                at,
                format!(
                    "service {} is a {} service: only a fwmark service is fed by marks",
                    s.name, s.protocol
                ),
                "set protocol = \"fwmark\" and fwmark = N, or remove marks",
            );
            return Vec::new();
        }
        if defs.is_empty() {
            self.err(
                "marks-empty",
                at,
                format!("marks of service {} is empty: no packet would reach it", s.name),
                "list what it takes, e.g. marks = [{ protocol = \"tcp\", ports = [80, 443] }], or remove marks",
            );
            return Vec::new();
        }
        let mut out: Vec<Marking> = Vec::new();
        for (i, m) in defs.iter().enumerate() {
            let Some(marking) = self.marking(m, &at.index(i)) else { continue };
            // Two entries of one protocol are one rule.
            match out.iter_mut().find(|o| o.protocol == marking.protocol) {
                Some(o) if o.ports.is_empty() || marking.ports.is_empty() => o.ports.clear(),
                Some(o) => o.ports = normalized_ports(&[o.ports.clone(), marking.ports].concat()),
                None => out.push(marking),
            }
        }
        out
    }

    fn marking(&mut self, m: &MarkDef, path: &KeyPath) -> Option<Marking> {
        let protocol = match m.protocol.as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            other => {
                self.err(
                    "marks-protocol",
                    path.key("protocol"),
                    format!("protocol `{other}` cannot be marked by port"),
                    "use tcp, udp or sctp",
                );
                None
            }
        };
        let mut ports = Vec::new();
        let mut ok = true;
        for (j, p) in m.ports.iter().enumerate() {
            match self.port_range(p, path.key("ports").index(j)) {
                Some(r) => ports.push(r),
                None => ok = false,
            }
        }
        (ok && protocol.is_some())
            .then(|| Marking { protocol: protocol.unwrap_or(Protocol::Tcp), ports: normalized_ports(&ports) })
    }

    fn port_range(&mut self, p: &PortDef, path: KeyPath) -> Option<PortRange> {
        match p {
            PortDef::Number(n) => self.port(*n, path).map(|p| PortRange { first: p, last: p }),
            PortDef::Range(text) => {
                let (a, b) = text.split_once('-').unwrap_or((text, text));
                let (a, b) = (a.trim().parse::<i64>(), b.trim().parse::<i64>());
                let (Ok(a), Ok(b)) = (a, b) else {
                    self.err(
                        "marks-range",
                        path,
                        format!("`{text}` is not a port or a range of ports"),
                        "write 80 or \"8000-8099\"",
                    );
                    return None;
                };
                let (first, last) = (self.port(a, path.clone())?, self.port(b, path.clone())?);
                if last < first {
                    self.err(
                        "marks-range",
                        path,
                        format!("range `{text}` ends below where it starts"),
                        format!("write \"{last}-{first}\""),
                    );
                    return None;
                }
                Some(PortRange { first, last })
            }
        }
    }

    /// No two services mark the same packets, and no mark covers an address service.
    pub(super) fn marks_overlap(&mut self, def: &Definition, services: &[Service]) {
        let base = KeyPath::root().key("services");
        let at = |name: &str| {
            let i = def.services.iter().position(|s| s.name == name).unwrap_or(0);
            base.index(i).key("marks")
        };
        let covers = |m: &Marking, port: u16| {
            m.ports.is_empty() || m.ports.iter().any(|r| (r.first..=r.last).contains(&port))
        };
        let overlap = |a: &Marking, b: &Marking| {
            a.protocol == b.protocol
                && (a.ports.is_empty()
                    || b.ports.is_empty()
                    || a.ports.iter().any(|x| b.ports.iter().any(|y| x.first <= y.last && y.first <= x.last)))
        };
        for (i, s) in services.iter().enumerate() {
            for m in &s.marks {
                for other in services[i + 1..].iter().filter(|o| o.vip == s.vip && o.name != s.name) {
                    if other.marks.iter().any(|o| overlap(m, o)) {
                        self.err(
                            "marks-overlap",
                            at(&other.name),
                            format!(
                                "services {} and {} both mark {} packets to {}: the last rule would win",
                                s.name,
                                other.name,
                                m.protocol.as_str(),
                                s.vip
                            ),
                            "give each port to one service",
                        );
                    }
                }
                for addr in services.iter().filter(|o| o.vip == s.vip) {
                    if let ServiceKey::Addr { protocol, address } = addr.key
                        && protocol == m.protocol
                        && covers(m, address.port())
                    {
                        self.err(
                            "marks-shadow",
                            at(&s.name),
                            format!(
                                "service {} marks {} {}: service {} would never see a packet (IPVS looks the mark up first)",
                                s.name,
                                protocol.as_str(),
                                address,
                                addr.name
                            ),
                            format!("leave port {} out of the marks, or fold service {} into {}", address.port(), addr.name, s.name),
                        );
                    }
                }
            }
        }
    }
}
