//! `nft -j list ruleset`, decoded once. Only what decides a service's traffic is kept as
//! such: base chains (family, hook, priority, policy), and per rule its matches on
//! addresses, protocol, ports and interfaces and its verdict. Every other expression is
//! [`Cond::Unknown`] with its name, so the walk can say "cannot tell" instead of guessing.
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

/// Most rules read (a ruleset larger than this is reported as too large to decide).
pub const MAX_RULES: usize = 20_000;

/// The ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Every chain.
    pub chains: Vec<Chain>,
    /// Every rule, in chain order.
    pub rules: Vec<Rule>,
}

/// A chain; a base chain has a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `ip`, `ip6`, `inet`, `bridge`, `arp`, `netdev`.
    pub family: String,
    /// Its table.
    pub table: String,
    /// Its name.
    pub name: String,
    /// `prerouting`, `input`, `output`, `postrouting`, `forward`; `None`: a regular chain.
    pub hook: Option<String>,
    /// Priority (lower first).
    pub prio: i64,
    /// The policy's verdict is drop.
    pub policy_drop: bool,
}

/// Which packet field a match reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Destination address (of `ip` or `ip6`).
    Daddr(u8),
    /// Source address.
    Saddr(u8),
    /// The layer 4 protocol (`meta l4proto`, `ip protocol`, `ip6 nexthdr`).
    L4proto,
    /// Destination port, of a protocol (`tcp`, `udp`, `sctp`; `th`: any).
    Dport(String),
    /// Source port.
    Sport(String),
    /// Input interface name.
    Iif,
    /// Output interface name.
    Oif,
    /// The packet family (`meta nfproto`).
    Nfproto,
}

/// A value a match compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An address or prefix.
    Net(IpNet),
    /// A number (port, protocol number).
    Num(u64),
    /// A port range.
    Range(u64, u64),
    /// A name (`tcp`, an interface, `ipv4`).
    Name(String),
    /// Any of these.
    Set(Vec<Val>),
    /// Something else (a named set, a map): not decided here.
    Other,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// `field op value`, `op` being `==` (`in` too) when `eq`, `!=` otherwise.
    Match {
        /// The field read.
        field: Field,
        /// Equality (or membership) rather than its negation.
        eq: bool,
        /// Compared with.
        value: Val,
    },
    /// Any other expression that may stop a packet from matching (by its name).
    Unknown(String),
}

/// What a rule does to a packet that matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing final (a counter, a log, a mark): the next rule.
    Continue,
    /// Accepted by this chain.
    Accept,
    /// Dropped (`drop`, `reject`).
    Drop,
    /// Back to the calling chain.
    Return,
    /// Into a regular chain, and back.
    Jump(String),
    /// Into a regular chain, without coming back.
    Goto(String),
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its table's family.
    pub family: String,
    /// Its table.
    pub table: String,
    /// Its chain.
    pub chain: String,
    /// Its handle (`nft -a list ruleset`).
    pub handle: u64,
    /// Its conditions, all of which must hold.
    pub conds: Vec<Cond>,
    /// Its verdict.
    pub verdict: Verdict,
    /// The mark it sets (`meta mark set N`), if it does.
    pub sets_mark: Option<u64>,
    /// Its counter's packets and bytes, if it has one.
    pub counter: Option<(u64, u64)>,
    /// Its comment.
    pub comment: Option<String>,
    /// The other expressions that neither stop a packet nor decide its fate (`log`, a
    /// `mangle` of another field, …), by name: a marking rule of the agent's has none.
    pub extras: Vec<String>,
}

/// What one rule's expressions say.
#[derive(Default)]
struct Body {
    conds: Vec<Cond>,
    verdict: Option<Verdict>,
    sets_mark: Option<u64>,
    counter: Option<(u64, u64)>,
    extras: Vec<String>,
}

fn field(left: &Value) -> Option<Field> {
    if let Some(p) = left.get("payload") {
        let proto = p.get("protocol")?.as_str()?;
        let f = p.get("field")?.as_str()?;
        return Some(match (proto, f) {
            ("ip", "daddr") => Field::Daddr(4),
            ("ip6", "daddr") => Field::Daddr(6),
            ("ip", "saddr") => Field::Saddr(4),
            ("ip6", "saddr") => Field::Saddr(6),
            ("ip", "protocol") | ("ip6", "nexthdr") => Field::L4proto,
            (p, "dport") => Field::Dport(p.to_string()),
            (p, "sport") => Field::Sport(p.to_string()),
            _ => return None,
        });
    }
    let meta = left.get("meta")?.get("key")?.as_str()?;
    Some(match meta {
        "l4proto" => Field::L4proto,
        "iifname" | "iif" => Field::Iif,
        "oifname" | "oif" => Field::Oif,
        "nfproto" => Field::Nfproto,
        _ => return None,
    })
}

fn val(v: &Value) -> Val {
    match v {
        Value::Number(n) => n.as_u64().map_or(Val::Other, Val::Num),
        Value::String(s) => match s.parse::<IpAddr>() {
            Ok(a) => Val::Net(IpNet::from(a)),
            Err(_) if s.starts_with('@') => Val::Other,
            Err(_) => Val::Name(s.clone()),
        },
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let net = p.get("addr").and_then(Value::as_str).and_then(|a| a.parse::<IpAddr>().ok());
                let len = p.get("len").and_then(Value::as_u64);
                return match (net, len) {
                    (Some(a), Some(l)) => IpNet::new(a, l as u8).map_or(Val::Other, Val::Net),
                    _ => Val::Other,
                };
            }
            if let Some(Value::Array(r)) = o.get("range")
                && let [Value::Number(a), Value::Number(b)] = &r[..]
            {
                return Val::Range(a.as_u64().unwrap_or(0), b.as_u64().unwrap_or(0));
            }
            if let Some(Value::Array(s)) = o.get("set") {
                return Val::Set(s.iter().map(val).collect());
            }
            Val::Other
        }
        Value::Array(s) => Val::Set(s.iter().map(val).collect()),
        _ => Val::Other,
    }
}

/// The conditions, verdict and effects of one rule's expressions.
fn rule_body(exprs: &[Value]) -> Body {
    let mut b = Body::default();
    let (conds, verdict) = (&mut b.conds, &mut b.verdict);
    for e in exprs {
        let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else { continue };
        match kind.as_str() {
            "match" => {
                let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
                let f = body.get("left").and_then(field);
                let eq = match op {
                    "==" | "in" => Some(true),
                    "!=" => Some(false),
                    _ => None,
                };
                match (f, eq) {
                    (Some(field), Some(eq)) => conds.push(Cond::Match {
                        field,
                        eq,
                        value: body.get("right").map_or(Val::Other, val),
                    }),
                    _ => conds.push(Cond::Unknown(format!(
                        "match {}",
                        body.get("left").map_or_else(String::new, |l| l.to_string())
                    ))),
                }
            }
            "accept" => *verdict = Some(Verdict::Accept),
            "drop" | "reject" => *verdict = Some(Verdict::Drop),
            "return" => *verdict = Some(Verdict::Return),
            "jump" | "goto" => {
                let target = body.get("target").and_then(Value::as_str).unwrap_or_default().to_string();
                *verdict = Some(if kind == "jump" { Verdict::Jump(target) } else { Verdict::Goto(target) });
            }
            // What never stops a packet from matching, nor decides its fate.
            "counter" => {
                let n = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
                b.counter = Some((n("packets"), n("bytes")));
            }
            "mangle"
                if body.pointer("/key/meta/key").and_then(Value::as_str) == Some("mark")
                    && body.get("value").is_some_and(Value::is_u64)
                    && b.sets_mark.is_none() =>
            {
                b.sets_mark = body.get("value").and_then(Value::as_u64);
            }
            "log" | "comment" | "mangle" | "limit" | "quota" | "notrack" | "ct count" => {
                b.extras.push(kind.clone())
            }
            other => conds.push(Cond::Unknown(other.to_string())),
        }
    }
    b
}

/// Decode `nft -j list ruleset`; an error says what is malformed.
pub fn decode(json: &str) -> Result<Ruleset, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft -j: {e}"))?;
    let items = v.get("nftables").and_then(Value::as_array).ok_or("nft -j: no `nftables` list")?;
    let mut r = Ruleset::default();
    for item in items {
        if let Some(c) = item.get("chain") {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            r.chains.push(Chain {
                family: s("family"),
                table: s("table"),
                name: s("name"),
                hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                prio: c.get("prio").and_then(Value::as_i64).unwrap_or(0),
                policy_drop: c.get("policy").and_then(Value::as_str) == Some("drop"),
            });
        } else if let Some(x) = item.get("rule") {
            if r.rules.len() >= MAX_RULES {
                return Err(format!("over {MAX_RULES} rules: too many to decide"));
            }
            let s = |k: &str| x.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let b = rule_body(x.get("expr").and_then(Value::as_array).map_or(&[][..], Vec::as_slice));
            r.rules.push(Rule {
                family: s("family"),
                table: s("table"),
                chain: s("chain"),
                handle: x.get("handle").and_then(Value::as_u64).unwrap_or(0),
                conds: b.conds,
                verdict: b.verdict.unwrap_or(Verdict::Continue),
                sets_mark: b.sets_mark,
                counter: b.counter,
                comment: x.get("comment").and_then(Value::as_str).map(str::to_string),
                extras: b.extras,
            });
        }
    }
    Ok(r)
}
