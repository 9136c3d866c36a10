//! A service's packet through the ruleset, as netfilter would take it: every base chain of
//! the hooks it crosses (the packet's family and `inet`), in priority order, each rule in
//! turn, following jumps and gotos. A drop in any base chain drops the packet; an accept
//! ends only its own chain. A rule whose match depends on what is not known here (the
//! client's address, the interface) and drops is a drop for some clients; one whose match
//! this walk cannot read ([`Cond::Unknown`]) makes the answer "cannot tell", never "ok".
use std::net::IpAddr;

use super::ruleset::{Chain, Cond, Field, Rule, Ruleset, Val, Verdict};

/// Deepest chain nesting followed.
const MAX_DEPTH: usize = 16;

/// A packet of the service, as far as the node knows it.
#[derive(Debug, Clone)]
pub struct Packet {
    /// IPv6.
    pub v6: bool,
    /// Its source address, when it is known (a reply's: the VIP).
    pub saddr: Option<IpAddr>,
    /// Its destination address, when it is known (a request's: the VIP).
    pub daddr: Option<IpAddr>,
    /// `tcp`, `udp` or `sctp`.
    pub proto: &'static str,
    /// Its source port, when known.
    pub sport: Option<u16>,
    /// Its destination port, when known.
    pub dport: Option<u16>,
}

/// Where in the ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// `family table`.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle; `None`: the chain's policy.
    pub handle: Option<u64>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.handle {
            Some(h) => write!(f, "table {} chain {} handle {h}", self.table, self.chain),
            None => write!(f, "table {} chain {} (its policy)", self.table, self.chain),
        }
    }
}

/// What the ruleset does to the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No rule drops it; this many base chains were walked.
    Passes(usize),
    /// Dropped (or rejected) there; `Some(why)`: only for some packets (why).
    Dropped(Place, Option<String>),
    /// A rule that could drop it reads what this walk cannot.
    CannotTell(Place, String),
}

enum Tri {
    Yes,
    No,
    /// Might match: (why, whether the why is a match this walk cannot read).
    Maybe(String, bool),
}

fn port_in(port: u16, v: &Val) -> Option<bool> {
    let p = u64::from(port);
    match v {
        Val::Num(n) => Some(*n == p),
        Val::Range(a, b) => Some((*a..=*b).contains(&p)),
        Val::Set(s) => s.iter().try_fold(false, |any, x| Some(any || port_in(port, x)?)),
        _ => None,
    }
}

fn addr_in(a: IpAddr, v: &Val) -> Option<bool> {
    match v {
        Val::Net(n) => Some(n.contains(&a)),
        Val::Set(s) => s.iter().try_fold(false, |any, x| Some(any || addr_in(a, x)?)),
        _ => None,
    }
}

fn proto_is(proto: &str, v: &Val) -> Option<bool> {
    let number = match proto {
        "tcp" => 6,
        "udp" => 17,
        _ => 132,
    };
    match v {
        Val::Name(n) => Some(n == proto),
        Val::Num(n) => Some(*n == number),
        Val::Set(s) => s.iter().try_fold(false, |any, x| Some(any || proto_is(proto, x)?)),
        _ => None,
    }
}

fn cond(c: &Cond, p: &Packet) -> Tri {
    let (field, eq, value) = match c {
        Cond::Unknown(what) => return Tri::Maybe(format!("`{what}`"), true),
        Cond::Match { field, eq, value } => (field, *eq, value),
    };
    let family = |f: u8| (f == 6) == p.v6;
    let known = |x: Option<bool>, what: &str| match x {
        Some(true) => Tri::Yes,
        Some(false) => Tri::No,
        None => Tri::Maybe(format!("a match on {what} against a named set or map"), true),
    };
    let t = match field {
        Field::Daddr(f) | Field::Saddr(f) if !family(*f) => return Tri::No,
        Field::Daddr(_) => match p.daddr {
            Some(a) => known(addr_in(a, value), "the destination"),
            None => Tri::Maybe("depends on the destination address".into(), false),
        },
        Field::Saddr(_) => match p.saddr {
            Some(a) => known(addr_in(a, value), "the source"),
            None => Tri::Maybe("depends on the client's address".into(), false),
        },
        Field::L4proto => known(proto_is(p.proto, value), "the protocol"),
        Field::Dport(proto) | Field::Sport(proto) if proto != "th" && proto != p.proto => return Tri::No,
        Field::Dport(_) => match p.dport {
            Some(port) => known(port_in(port, value), "the port"),
            None => Tri::Maybe("depends on the port".into(), false),
        },
        Field::Sport(_) => match p.sport {
            Some(port) => known(port_in(port, value), "the port"),
            None => Tri::Maybe("depends on the client's port".into(), false),
        },
        Field::Iif | Field::Oif => Tri::Maybe("depends on the interface".into(), false),
        Field::Nfproto => match value {
            Val::Name(n) => known(Some((n == "ipv6") == p.v6), "the family"),
            _ => known(None, "the family"),
        },
    };
    match (t, eq) {
        (Tri::Yes, false) => Tri::No,
        (Tri::No, false) => Tri::Yes,
        (t, _) => t,
    }
}

fn rule_matches(r: &Rule, p: &Packet) -> Tri {
    let mut out = Tri::Yes;
    for c in &r.conds {
        match cond(c, p) {
            Tri::No => return Tri::No,
            Tri::Maybe(why, unknown) => {
                // An unreadable condition outweighs a client-dependent one.
                if !matches!(out, Tri::Maybe(_, true)) {
                    out = Tri::Maybe(why, unknown);
                }
            }
            Tri::Yes => {}
        }
    }
    out
}

enum End {
    Accept,
    Return,
    Drop(Place),
    CannotTell(Place, String),
}

struct Walk<'a> {
    rs: &'a Ruleset,
    p: &'a Packet,
    /// The first drop that applies to some packets only.
    some: Option<(Place, String)>,
}

impl Walk<'_> {
    fn chain(&mut self, family: &str, table: &str, name: &str, depth: usize) -> End {
        let here =
            |h: Option<u64>| Place { table: format!("{family} {table}"), chain: name.to_string(), handle: h };
        if depth > MAX_DEPTH {
            return End::CannotTell(here(None), format!("chains nested deeper than {MAX_DEPTH}"));
        }
        let rules =
            self.rs.rules.iter().filter(|r| r.family == family && r.table == table && r.chain == name);
        for r in rules {
            let place = here(Some(r.handle));
            let m = rule_matches(r, self.p);
            if matches!(m, Tri::No) || r.verdict == Verdict::Continue {
                continue;
            }
            let sure = matches!(m, Tri::Yes);
            let end = match &r.verdict {
                Verdict::Accept => End::Accept,
                Verdict::Drop => End::Drop(place.clone()),
                Verdict::Return => End::Return,
                Verdict::Jump(c) | Verdict::Goto(c) => match self.chain(family, table, c, depth + 1) {
                    End::Return if matches!(r.verdict, Verdict::Jump(_)) => continue,
                    end => end,
                },
                Verdict::Continue => continue,
            };
            if sure {
                return end;
            }
            // Only some packets take this rule: a drop there is a drop for them; the rest go on.
            let Tri::Maybe(why, unknown) = m else { continue };
            match end {
                End::Drop(at) if unknown => {
                    return End::CannotTell(at, format!("it drops by {why}, which this check cannot read"));
                }
                End::Drop(at) if self.some.is_none() => self.some = Some((at, why)),
                End::CannotTell(at, why) => return End::CannotTell(at, why),
                _ => {}
            }
        }
        End::Return
    }
}

/// The packet `p` through the base chains of `hooks` (each with the highest priority that
/// still sees it: IPVS takes a director's VIP traffic at input priority 98).
pub fn decide(rs: &Ruleset, p: &Packet, hooks: &[(&str, Option<i64>)]) -> Outcome {
    let fam = if p.v6 { "ip6" } else { "ip" };
    let mut walk = Walk { rs, p, some: None };
    let mut walked = 0;
    for (hook, max_prio) in hooks {
        let mut base: Vec<&Chain> = rs
            .chains
            .iter()
            .filter(|c| c.hook.as_deref() == Some(*hook) && (c.family == fam || c.family == "inet"))
            .filter(|c| max_prio.is_none_or(|m| c.prio <= m))
            .collect();
        base.sort_by_key(|c| c.prio);
        for c in base {
            walked += 1;
            match walk.chain(&c.family, &c.table, &c.name, 0) {
                End::Accept => {}
                End::Drop(at) => return Outcome::Dropped(at, None),
                End::CannotTell(at, why) => return Outcome::CannotTell(at, why),
                End::Return if c.policy_drop => {
                    let at = Place {
                        table: format!("{} {}", c.family, c.table),
                        chain: c.name.clone(),
                        handle: None,
                    };
                    return Outcome::Dropped(at, None);
                }
                End::Return => {}
            }
        }
    }
    match walk.some {
        Some((at, why)) => Outcome::Dropped(at, Some(why)),
        None => Outcome::Passes(walked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ruleset `nft -j list ruleset` printed (Debian 12's nft 1.0.6), made from:
    /// ```text
    /// table inet userfw {
    ///   set blocked { type ipv4_addr; elements = { 198.18.9.9 } }
    ///   chain input { type filter hook input priority 0; policy accept;
    ///     ct state established,related accept                      # handle 4
    ///     ip daddr 198.18.0.100 tcp dport { 80, 443 } drop           # handle 6
    ///     ip saddr @blocked drop                                     # handle 7
    ///     iifname "eth9" ip6 daddr 2001:db8::100 udp dport 53 reject # handle 8
    ///     tcp dport 8000-8099 counter jump web                       # handle 9
    ///   }
    ///   chain web { ip saddr 198.18.5.0/24 drop; return }
    /// }
    /// table ip filter { chain INPUT { type filter hook input priority 0; policy drop;
    ///   tcp dport 22 accept } }
    /// ```
    const RULESET: &str = include_str!("../../tests/fixtures/nft-ruleset.json");

    fn tcp(daddr: &str, dport: u16) -> Packet {
        let a: IpAddr = daddr.parse().unwrap();
        Packet { v6: a.is_ipv6(), saddr: None, daddr: Some(a), proto: "tcp", sport: None, dport: Some(dport) }
    }

    const INPUT: &[(&str, Option<i64>)] = &[("prerouting", None), ("input", None)];

    #[test]
    fn the_rule_that_drops_a_service_is_named() {
        let rs = super::super::ruleset::decode(RULESET).unwrap();
        let at =
            |table: &str, chain: &str, handle| Place { table: table.into(), chain: chain.into(), handle };
        assert_eq!(
            decide(&rs, &tcp("198.18.0.100", 443), INPUT),
            Outcome::Dropped(at("inet userfw", "input", Some(6)), None)
        );
        // Another port of that VIP passes the inet table (but for the named set's clients),
        // then meets the ip table's policy: only port 22 is accepted there.
        assert_eq!(
            decide(&rs, &tcp("198.18.0.100", 25), INPUT),
            Outcome::Dropped(at("ip filter", "INPUT", None), None)
        );
        // Port 22 passes both tables, except for the named set's clients (a drop for some).
        match decide(&rs, &tcp("198.18.0.100", 22), INPUT) {
            Outcome::Dropped(p, Some(why)) => {
                assert_eq!((p.handle, why.as_str()), (Some(7), "depends on the client's address"));
            }
            other => panic!("{other:?}"),
        }
        // A port the jump covers: through the regular chain and back, then the ip policy.
        assert_eq!(
            decide(&rs, &tcp("198.18.0.100", 8080), INPUT),
            Outcome::Dropped(at("ip filter", "INPUT", None), None)
        );
        // IPv6: the ip table does not see it; the reject needs UDP 53 on eth9.
        let mut udp6 = tcp("2001:db8::100", 53);
        udp6.proto = "udp";
        match decide(&rs, &udp6, INPUT) {
            Outcome::Dropped(p, Some(why)) => {
                assert_eq!((p.handle, why.as_str()), (Some(8), "depends on the interface"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&rs, &tcp("2001:db8::100", 80), INPUT), Outcome::Passes(1));
    }

    #[test]
    fn what_the_walk_cannot_read_is_cannot_tell_and_an_empty_ruleset_passes() {
        let mut rs = super::super::ruleset::decode(RULESET).unwrap();
        // The daddr of handle 6 compared with a named set instead: unreadable, and it drops.
        for r in &mut rs.rules {
            if r.handle == 6 {
                r.conds[0] = Cond::Match { field: Field::Daddr(4), eq: true, value: Val::Other };
            }
        }
        assert!(
            matches!(decide(&rs, &tcp("198.18.0.100", 80), INPUT), Outcome::CannotTell(p, _) if p.handle == Some(6))
        );
        let empty = super::super::ruleset::decode(r#"{"nftables": [{"metainfo": {}}]}"#).unwrap();
        assert_eq!(decide(&empty, &tcp("198.18.0.100", 80), INPUT), Outcome::Passes(0));
        // IPVS takes a director's VIP traffic at input priority 98: a chain after it never sees it.
        let mut late = super::super::ruleset::decode(RULESET).unwrap();
        late.chains.iter_mut().for_each(|c| c.prio = 200);
        assert_eq!(
            decide(&late, &tcp("198.18.0.100", 80), &[("prerouting", None), ("input", Some(98))]),
            Outcome::Passes(0)
        );
    }
}
