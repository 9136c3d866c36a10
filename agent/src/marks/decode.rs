//! `nft -j list table inet lvs_dr`, decoded once into the rules of the agent's shape and
//! whatever else stands in the table. The JSON is read by [`crate::firewall::ruleset`]
//! (the one nft decoder of the agent); here its rules are held to the exact shape
//! [`super::script`] writes: a destination address, a protocol or its ports, a counter,
//! `meta mark set`, a comment naming the service. Anything else is strange, and a strange
//! table is reloaded whole.
use lvs_proto::names::dns_label_problem;
use lvs_proto::spec::{MarkRule, PortRange, Protocol, normalized_ports};

use super::{CHAIN, FoundRule, MarkTable, PRIORITY};
use crate::firewall::ruleset::{self, Cond, Field, Rule, Val, Verdict};

/// The table in `json`: its rules and anything strange. An error says what is malformed.
pub fn decode(json: &str) -> Result<MarkTable, String> {
    let set = ruleset::decode(json)?;
    let mut t = MarkTable::default();
    let ours = |family: &str, table: &str| family == "inet" && table == "lvs_dr";
    for c in set.chains.iter().filter(|c| ours(&c.family, &c.table)) {
        let right = c.name == CHAIN && c.hook.as_deref() == Some("prerouting") && c.prio == PRIORITY;
        if !right || c.policy_drop {
            t.strange.push(format!(
                "chain {} ({} priority {}{})",
                c.name,
                c.hook.as_deref().unwrap_or("no hook"),
                c.prio,
                if c.policy_drop { ", policy drop" } else { "" }
            ));
        }
    }
    for r in set.rules.iter().filter(|r| ours(&r.family, &r.table)) {
        match (r.chain == CHAIN).then(|| marking(r)).flatten() {
            Some(rule) => {
                let (packets, bytes) = r.counter.unwrap_or_default();
                t.rules.push(FoundRule { rule, packets, bytes });
            }
            None => {
                t.strange.push(format!("rule handle {} in chain {} is not a marking rule", r.handle, r.chain))
            }
        }
    }
    Ok(t)
}

fn protocol(name: &str) -> Option<Protocol> {
    match name {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn port_range(v: &Val) -> Option<PortRange> {
    let port = |n: u64| u16::try_from(n).ok().filter(|p| *p > 0);
    match *v {
        Val::Num(n) => port(n).map(|p| PortRange { first: p, last: p }),
        Val::Range(a, b) => Some(PortRange { first: port(a)?, last: port(b)? }).filter(|r| r.first <= r.last),
        _ => None,
    }
}

fn ports(v: &Val) -> Option<Vec<PortRange>> {
    match v {
        Val::Set(items) => items.iter().map(port_range).collect(),
        one => port_range(one).map(|r| vec![r]),
    }
}

/// `r` as a marking rule of the agent's shape, or `None`.
fn marking(r: &Rule) -> Option<MarkRule> {
    let mut address = None;
    let mut proto = None;
    let mut port_list = Vec::new();
    for c in &r.conds {
        let Cond::Match { field, eq: true, value } = c else { return None };
        match (field, value) {
            (Field::Daddr(_), Val::Net(n)) if address.is_none() && n.prefix_len() == n.max_prefix_len() => {
                address = Some(n.addr());
            }
            (Field::Dport(p), v) if proto.is_none() => {
                proto = Some(protocol(p)?);
                port_list = ports(v)?;
            }
            (Field::L4proto, Val::Name(p)) if proto.is_none() => proto = Some(protocol(p)?),
            // `ip daddr` in an inet table implies the family; nft may show it.
            (Field::Nfproto, Val::Name(_)) => {}
            _ => return None,
        }
    }
    let mark = u32::try_from(r.sets_mark?).ok().filter(|m| *m > 0)?;
    let service = r.comment.clone().filter(|c| dns_label_problem(c).is_none())?;
    let ok = r.verdict == Verdict::Continue && r.extras.is_empty() && r.counter.is_some();
    ok.then_some(MarkRule {
        service,
        address: address?,
        protocol: proto?,
        ports: normalized_ports(&port_list),
        mark,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What nft 1.0.6 prints for a table [`super::super::script::load`] wrote, with one
    /// rule added by hand after it.
    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "lvs_dr", "handle": 3}},
      {"chain": {"family": "inet", "table": "lvs_dr", "name": "marks", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}},
      {"rule": {"family": "inet", "table": "lvs_dr", "chain": "marks", "handle": 2, "comment": "web", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.0.100"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}},
        {"counter": {"packets": 12, "bytes": 720}},
        {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}}]}},
      {"rule": {"family": "inet", "table": "lvs_dr", "chain": "marks", "handle": 3, "comment": "dns", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:db8::53"}},
        {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
        {"counter": {"packets": 0, "bytes": 0}},
        {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 9}}]}},
      {"rule": {"family": "inet", "table": "lvs_dr", "chain": "marks", "handle": 4, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.0.100"}},
        {"drop": null}]}}
    ]}"#;

    #[test]
    fn the_agents_rules_are_read_back_and_anything_else_is_strange() {
        let t = decode(LISTED).unwrap();
        assert_eq!(t.rules.len(), 2, "{t:#?}");
        let web = &t.rules[0];
        assert_eq!(web.rule.to_string(), "TCP 198.18.0.100 ports 80,443 → mark 7 (web)");
        assert_eq!((web.packets, web.bytes), (12, 720));
        assert_eq!(t.rules[1].rule.to_string(), "UDP 2001:db8::53 every port → mark 9 (dns)");
        assert_eq!(t.strange, vec!["rule handle 4 in chain marks is not a marking rule".to_string()]);
        let wanted = t.sorted_rules();
        assert_eq!(
            t.differs_from(&wanted).as_deref(),
            Some("rule handle 4 in chain marks is not a marking rule")
        );
        let clean = MarkTable { strange: vec![], ..t.clone() };
        assert_eq!(clean.differs_from(&wanted), None);
        let fewer: Vec<MarkRule> = wanted.iter().filter(|r| r.mark == 7).cloned().collect();
        let d = clean.differs_from(&fewer).unwrap();
        assert!(d.starts_with("not wanted ") && d.contains("mark 9"), "{d}");
    }

    #[test]
    fn a_changed_hook_or_priority_is_strange() {
        let moved = LISTED.replace("\"prio\": -150", "\"prio\": 0");
        assert_eq!(decode(&moved).unwrap().strange[0], "chain marks (prerouting priority 0)");
        let dropping = LISTED.replace("\"policy\": \"accept\"", "\"policy\": \"drop\"");
        assert!(decode(&dropping).unwrap().strange[0].contains("policy drop"));
    }
}
