//! [`MarkRule`]s to and from the wire. What reaches the director's nftables table is checked
//! here first: every value becomes a typed one (an address, ports, a mark, a protocol) and
//! the comment is a DNS label, so nothing a peer sends is ever spliced into the script as
//! text; each rule's mark must be one of the spec's firewall-mark services of its family
//! (a rule that marks for no service would only divert traffic); every list is bounded.
use std::collections::BTreeSet;

use super::fields::{WireError, err, parse, shaped};
use crate::spec::{
    MAX_MARK_PORTS, MAX_MARK_RULES, MarkRule, PortRange, Protocol, ServiceKey, VirtualServiceSpec,
    normalized_ports,
};
use crate::{names, pb};

impl From<&MarkRule> for pb::MarkRule {
    fn from(r: &MarkRule) -> Self {
        pb::MarkRule {
            service: r.service.clone(),
            address: r.address.to_string(),
            protocol: match r.protocol {
                Protocol::Tcp => pb::Protocol::Tcp,
                Protocol::Udp => pb::Protocol::Udp,
                Protocol::Sctp => pb::Protocol::Sctp,
            } as i32,
            ports: r
                .ports
                .iter()
                .map(|p| pb::PortRange { first: p.first.into(), last: p.last.into() })
                .collect(),
            mark: r.mark,
        }
    }
}

fn port_range(f: &str, p: &pb::PortRange) -> Result<PortRange, WireError> {
    let port = |field: &str, v: u32| match u16::try_from(v) {
        Ok(v) if v > 0 => Ok(v),
        _ => err(format!("{f}.{field}"), format!("{v} is not a port (1..=65535)")),
    };
    let (first, last) = (port("first", p.first)?, port("last", p.last)?);
    if last < first {
        return err(format!("{f}.last"), format!("{last} is below first {first}"));
    }
    Ok(PortRange { first, last })
}

/// The wire's marking rules as domain ones, or the first field that is wrong. `services`
/// are the spec's own, already checked: a mark must key one of them in the rule's family.
pub(super) fn marks_from(
    rules: &[pb::MarkRule],
    services: &[VirtualServiceSpec],
) -> Result<Vec<MarkRule>, WireError> {
    if rules.len() > MAX_MARK_RULES {
        return err("marks", format!("{} entries: at most {MAX_MARK_RULES}", rules.len()));
    }
    let keyed: BTreeSet<(u32, bool)> = services
        .iter()
        .filter_map(|v| match v.key {
            ServiceKey::Fwmark { mark, ipv6 } => Some((mark, ipv6)),
            ServiceKey::Addr { .. } => None,
        })
        .collect();
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let f = format!("marks[{i}]");
        let rule = mark_rule(&f, r)?;
        if !keyed.contains(&(rule.mark, rule.address.is_ipv6())) {
            return err(
                format!("{f}.mark"),
                format!("no firewall-mark service {} of {}'s family in this spec", rule.mark, rule.address),
            );
        }
        out.push(rule);
    }
    Ok(out)
}

/// One wire rule as a domain one (ports normalized), or the first field that is wrong.
pub(crate) fn mark_rule(f: &str, r: &pb::MarkRule) -> Result<MarkRule, WireError> {
    let service = shaped(&format!("{f}.service"), &r.service, names::dns_label_problem)?;
    let address: std::net::IpAddr = parse(&format!("{f}.address"), &r.address)?;
    let protocol = match pb::Protocol::try_from(r.protocol) {
        Ok(pb::Protocol::Tcp) => Protocol::Tcp,
        Ok(pb::Protocol::Udp) => Protocol::Udp,
        Ok(pb::Protocol::Sctp) => Protocol::Sctp,
        _ => return err(format!("{f}.protocol"), format!("unknown protocol {}", r.protocol)),
    };
    if r.ports.len() > MAX_MARK_PORTS {
        return err(format!("{f}.ports"), format!("{} entries: at most {MAX_MARK_PORTS}", r.ports.len()));
    }
    let ports = r
        .ports
        .iter()
        .enumerate()
        .map(|(j, p)| port_range(&format!("{f}.ports[{j}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    if r.mark == 0 {
        return err(format!("{f}.mark"), "mark 0 is no mark");
    }
    Ok(MarkRule { service, address, protocol, ports: normalized_ports(&ports), mark: r.mark })
}

/// A status's marking counters on the wire.
pub(crate) fn counts_to(counts: &[crate::reply::MarkCount]) -> Vec<pb::MarkCount> {
    counts
        .iter()
        .map(|m| pb::MarkCount { rule: Some((&m.rule).into()), packets: m.packets, bytes: m.bytes })
        .collect()
}

/// A status's marking counters from the wire: bounded, each rule checked.
pub(crate) fn counts_from(counts: &[pb::MarkCount]) -> Result<Vec<crate::reply::MarkCount>, WireError> {
    if counts.len() > MAX_MARK_RULES {
        return err("marks", format!("{} entries: at most {MAX_MARK_RULES}", counts.len()));
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let f = format!("marks[{i}].rule");
            let rule = mark_rule(
                &f,
                m.rule.as_ref().ok_or_else(|| WireError { field: f.clone(), reason: "missing".into() })?,
            )?;
            Ok(crate::reply::MarkCount { rule, packets: m.packets, bytes: m.bytes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> VirtualServiceSpec {
        VirtualServiceSpec {
            key: ServiceKey::Fwmark { mark: 7, ipv6: false },
            scheduler: "rr".into(),
            persistence: None,
            flags: vec![],
            destinations: vec![],
            health_check: None,
            sorry: None,
            quorum: 1,
            hysteresis: 0,
            notify: vec![],
            name: "web".into(),
        }
    }

    fn good() -> pb::MarkRule {
        pb::MarkRule {
            service: "web".into(),
            address: "198.18.0.100".into(),
            protocol: pb::Protocol::Tcp as i32,
            ports: vec![pb::PortRange { first: 80, last: 80 }, pb::PortRange { first: 443, last: 443 }],
            mark: 7,
        }
    }

    #[test]
    fn a_rule_survives_the_round_trip() {
        let d = marks_from(&[good()], &[service()]).unwrap();
        assert_eq!(pb::MarkRule::from(&d[0]), good());
    }

    #[test]
    fn each_spoiled_field_is_refused_by_name() {
        type Spoil = Box<dyn Fn(&mut pb::MarkRule)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("marks[0].service", Box::new(|r| r.service = "web\"; flush ruleset".into())),
            ("marks[0].address", Box::new(|r| r.address = "198.18.0.100 } ; {".into())),
            ("marks[0].protocol", Box::new(|r| r.protocol = 42)),
            ("marks[0].ports", Box::new(|r| r.ports = vec![r.ports[0]; MAX_MARK_PORTS + 1])),
            ("marks[0].ports[0].first", Box::new(|r| r.ports[0].first = 0)),
            ("marks[0].ports[1].last", Box::new(|r| r.ports[1].last = 70_000)),
            ("marks[0].ports[1].last", Box::new(|r| r.ports[1].last = 400)),
            ("marks[0].mark", Box::new(|r| r.mark = 8)),
            // Mark 7 keys an IPv4 service only: an IPv6 VIP may not use it.
            ("marks[0].mark", Box::new(|r| r.address = "2001:db8::100".into())),
        ];
        for (field, spoil) in cases {
            let mut r = good();
            spoil(&mut r);
            let e = marks_from(&[r], &[service()]).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
        let e = marks_from(&vec![good(); MAX_MARK_RULES + 1], &[service()]).unwrap_err();
        assert_eq!(e.field, "marks");
    }
}
