//! "No firewall rule drops the service": the node's nftables ruleset (iptables-nft rules
//! included) read and walked for the service's packets ([`crate::firewall`]). On a director,
//! requests to the VIP, through prerouting and the input chains before IPVS (priority 98
//! and lower). On a real server, requests to the VIP (on `lo`, arriving on the LAN) through
//! prerouting and input, and its replies from the VIP through output and postrouting. The
//! result names the rule (table, chain, handle); what cannot be decided is "cannot tell",
//! never ok. The rules are read, never changed.
use lvs_proto::reply::CheckResult;
use std::net::IpAddr;

use lvs_proto::spec::{MarkRule, Protocol, Role, ServiceKey};

use crate::firewall::ruleset::Ruleset;
use crate::firewall::walk::{Outcome, Packet, decide};
use crate::kernel::system::System;

/// IPVS takes a director's VIP requests at LOCAL_IN priority 99 (`NF_IP_PRI_NAT_SRC - 1`):
/// an input chain at 99 or after never sees them (the hand-over bounce sits at 110).
const IPVS_LOCAL_IN: i64 = 98;

/// Hooks a packet crosses, each with the highest priority of a chain that still sees it.
type Hooks = Vec<(&'static str, Option<i64>)>;

fn out(check: &str, ok: bool, unknown: bool, detail: String) -> CheckResult {
    CheckResult { check: check.to_string(), ok: ok && !unknown, unknown, detail }
}

/// Most ports of a firewall-mark service walked one by one; past it, one walk stands for
/// every port (a port match then counts as "for some packets").
const MAX_PORTS_WALKED: usize = 1024;

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// One kind of request the service takes: its words, VIP, protocol and port (`None`: any).
struct Target {
    label: String,
    vip: IpAddr,
    proto: &'static str,
    port: Option<u16>,
}

/// What `service` takes. A firewall-mark service takes what its marking rules (`marks`,
/// the director's own) mark; without them the ports are in rules of the user's: `None`.
fn targets(service: &ServiceKey, marks: &[MarkRule]) -> Option<Vec<Target>> {
    let (mark, ipv6) = match *service {
        ServiceKey::Addr { protocol, address } => {
            let (proto, label) = (proto_word(protocol), service.to_string());
            return Some(vec![Target { label, vip: address.ip(), proto, port: Some(address.port()) }]);
        }
        ServiceKey::Fwmark { mark, ipv6 } => (mark, ipv6),
    };
    let mut out = Vec::new();
    for r in marks.iter().filter(|r| r.mark == mark && r.address.is_ipv6() == ipv6) {
        let (proto, vip) = (proto_word(r.protocol), r.address);
        let count: usize = r.ports.iter().map(|p| usize::from(p.last - p.first) + 1).sum();
        let at = |port: Option<u16>| {
            let sock = port
                .map_or_else(|| format!("{vip} any port"), |p| std::net::SocketAddr::new(vip, p).to_string());
            Target { label: format!("{} {sock} (mark {mark})", r.protocol.as_str()), vip, proto, port }
        };
        if r.ports.is_empty() || out.len() + count > MAX_PORTS_WALKED {
            out.push(at(None));
        } else {
            out.extend(r.ports.iter().flat_map(|p| p.first..=p.last).map(|p| at(Some(p))));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The check for `service` on a node of `role`; `marks` are the node's marking rules.
pub async fn firewall<S: System>(
    sys: &S,
    service: &ServiceKey,
    role: Role,
    marks: &[MarkRule],
) -> CheckResult {
    let name = format!("no firewall rule drops {service}");
    let Some(targets) = targets(service, marks) else {
        return out(
            &name,
            false,
            true,
            "cannot tell: the ports of this firewall-mark service are in marking rules of your own (no `marks`)"
                .into(),
        );
    };
    let rs = match ruleset(sys).await {
        Ok(rs) => rs,
        Err((passed, detail)) => return out(&name, passed, !passed, detail),
    };
    let mut chains = 0;
    for t in &targets {
        match walk(&rs, t, role) {
            Ok(n) => chains += n,
            Err((unknown, detail)) => return out(&name, false, unknown, detail),
        }
    }
    let what =
        if targets.len() > 1 { format!(" for {} kinds of request", targets.len()) } else { String::new() };
    out(&name, true, false, format!("no rule drops it{what} ({chains} base chain(s) walked)"))
}

/// The base chains `t`'s requests (and a real server's replies) cross without a drop, or
/// (whether it is "cannot tell", the words).
fn walk(rs: &Ruleset, t: &Target, role: Role) -> Result<usize, (bool, String)> {
    let v6 = t.vip.is_ipv6();
    let request = Packet { v6, saddr: None, daddr: Some(t.vip), proto: t.proto, sport: None, dport: t.port };
    let mut walks: Vec<(&str, Packet, Hooks)> = Vec::new();
    match role {
        Role::Director => {
            walks.push(("requests to", request, vec![("prerouting", None), ("input", Some(IPVS_LOCAL_IN))]))
        }
        _ => {
            walks.push(("requests to", request, vec![("prerouting", None), ("input", None)]));
            let reply =
                Packet { v6, saddr: Some(t.vip), daddr: None, proto: t.proto, sport: t.port, dport: None };
            walks.push(("replies from", reply, vec![("output", None), ("postrouting", None)]));
        }
    }
    let mut chains = 0;
    for (what, p, hooks) in &walks {
        let label = &t.label;
        match decide(rs, p, hooks) {
            Outcome::Passes(n) => chains += n,
            Outcome::Dropped(at, None) => return Err((false, format!("{at} drops {what} {label}"))),
            Outcome::Dropped(at, Some(why)) => {
                return Err((false, format!("{at} drops {what} {label} for some packets ({why})")));
            }
            Outcome::CannotTell(at, why) => return Err((true, format!("cannot tell: {at}: {why}"))),
        }
    }
    Ok(chains)
}

/// The node's ruleset, or the check's answer without one: (passed, detail), where not
/// passed means "cannot tell".
async fn ruleset<S: System>(sys: &S) -> Result<Ruleset, (bool, String)> {
    // Tables of the legacy iptables are not in the nftables ruleset.
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names").unwrap_or_default();
    if !legacy.trim().is_empty() {
        let t = legacy.split_whitespace().collect::<Vec<_>>().join(", ");
        return Err((
            false,
            format!("cannot tell: legacy iptables tables are loaded ({t}); this check reads nftables"),
        ));
    }
    let json = match sys.nft_ruleset().await {
        Ok(Some(j)) => j,
        Ok(None) if std::path::Path::new("/proc/net/netfilter/nf_tables").exists() => {
            return Err((
                false,
                "cannot tell: nftables is loaded but nft is not installed to read it".into(),
            ));
        }
        Ok(None) => return Err((true, "no firewall loaded".into())),
        Err(e) => return Err((false, format!("cannot tell: {e}"))),
    };
    crate::firewall::ruleset::decode(&json).map_err(|e| (false, format!("cannot tell: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::FakeSystem;

    fn web(port: u16) -> ServiceKey {
        ServiceKey::Addr { protocol: Protocol::Tcp, address: format!("198.18.0.100:{port}").parse().unwrap() }
    }

    #[tokio::test]
    async fn the_users_drop_rule_is_named_and_nothing_else_fails() {
        let sys = FakeSystem::new(&["eth1"], true);
        *sys.nft.lock().unwrap() = Some(include_str!("../../tests/fixtures/nft-ruleset.json").into());
        let r = firewall(&sys, &web(80), Role::RealServer, &[]).await;
        assert!(!r.ok && !r.unknown, "{r:?}");
        assert_eq!(r.detail, "table inet userfw chain input handle 6 drops requests to TCP 198.18.0.100:80");
        // A director's input chains at priority 0 come before IPVS: the same rule drops it.
        let r = firewall(&sys, &web(80), Role::Director, &[]).await;
        assert!(r.detail.starts_with("table inet userfw chain input handle 6 drops"), "{r:?}");
        // A firewall-mark service cannot be decided here; neither can a failed read.
        let r = firewall(&sys, &ServiceKey::Fwmark { mark: 7, ipv6: false }, Role::Director, &[]).await;
        assert!(!r.ok && r.unknown, "{r:?}");
        *sys.fail_on.lock().unwrap() = Some("read the nftables ruleset".into());
        let r = firewall(&sys, &web(80), Role::Director, &[]).await;
        assert!(!r.ok && r.unknown && r.detail.starts_with("cannot tell: "), "{r:?}");
    }

    #[tokio::test]
    async fn an_empty_ruleset_passes_and_a_reply_rule_is_found_on_a_real_server() {
        let sys = FakeSystem::new(&["eth0"], false);
        *sys.nft.lock().unwrap() = Some(r#"{"nftables": [{"metainfo": {}}]}"#.into());
        let r = firewall(&sys, &web(80), Role::RealServer, &[]).await;
        assert!(r.ok && !r.unknown, "{r:?}");
        // Replies from the VIP's port dropped on their way out.
        let out = r#"{"nftables": [
          {"chain": {"family": "inet", "table": "t", "name": "out", "hook": "output", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "inet", "table": "t", "chain": "out", "handle": 3, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "sport"}}, "right": 80}},
            {"drop": null}]}}]}"#;
        *sys.nft.lock().unwrap() = Some(out.into());
        let r = firewall(&sys, &web(80), Role::RealServer, &[]).await;
        assert_eq!(
            r.detail, "table inet t chain out handle 3 drops replies from TCP 198.18.0.100:80",
            "{r:?}"
        );
        // A director sends no replies: the output chain is not its business.
        assert!(firewall(&sys, &web(80), Role::Director, &[]).await.ok);
    }

    #[tokio::test]
    async fn a_fwmark_service_is_walked_port_by_port_through_its_marks() {
        let sys = FakeSystem::new(&["eth1"], true);
        *sys.nft.lock().unwrap() = Some(include_str!("../../tests/fixtures/nft-ruleset.json").into());
        let fwm = ServiceKey::Fwmark { mark: 7, ipv6: false };
        let rule = |ports: &[(u16, u16)]| MarkRule {
            service: "web".into(),
            address: "198.18.0.100".parse().unwrap(),
            protocol: Protocol::Tcp,
            ports: ports.iter().map(|&(first, last)| lvs_proto::spec::PortRange { first, last }).collect(),
            mark: 7,
        };
        // Port 80 is among the marked ones: the user's rule that drops it is named (79, one
        // below, would meet the fixture's iptables policy drop first).
        let r = firewall(&sys, &fwm, Role::Director, &[rule(&[(80, 80), (443, 443)])]).await;
        assert_eq!(
            (r.ok, r.unknown, r.detail.as_str()),
            (
                false,
                false,
                "table inet userfw chain input handle 6 drops requests to TCP 198.18.0.100:80 (mark 7)"
            )
        );
        // A mark of another family, or no marks at all: the ports are not known here.
        let mut v6 = rule(&[(80, 80)]);
        v6.address = "2001:db8::100".parse().unwrap();
        let r = firewall(&sys, &fwm, Role::Director, &[v6]).await;
        assert!(r.unknown && r.detail.contains("no `marks`"), "{r:?}");
    }
}
