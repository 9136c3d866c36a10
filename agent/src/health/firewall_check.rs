//! "No firewall rule drops the service": the node's nftables ruleset (iptables-nft rules
//! included) read and walked for the service's packets ([`crate::firewall`]). On a director,
//! requests to the VIP, through prerouting and the input chains before IPVS (priority 98
//! and lower). On a real server, requests to the VIP (on `lo`, arriving on the LAN) through
//! prerouting and input, and its replies from the VIP through output and postrouting. The
//! result names the rule (table, chain, handle); what cannot be decided is "cannot tell",
//! never ok. The rules are read, never changed.
use lvs_proto::reply::CheckResult;
use lvs_proto::spec::{Protocol, Role, ServiceKey};

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

/// The check for `service` on a node of `role`.
pub async fn firewall<S: System>(sys: &S, service: &ServiceKey, role: Role) -> CheckResult {
    let name = format!("no firewall rule drops {service}");
    let ServiceKey::Addr { protocol, address } = service else {
        return out(
            &name,
            false,
            true,
            "cannot tell: a firewall-mark service's ports are in its marking rules".into(),
        );
    };
    let rs = match ruleset(sys).await {
        Ok(rs) => rs,
        Err((passed, detail)) => return out(&name, passed, !passed, detail),
    };
    let proto = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    let (vip, port) = (address.ip(), address.port());
    let request =
        Packet { v6: vip.is_ipv6(), saddr: None, daddr: Some(vip), proto, sport: None, dport: Some(port) };
    let mut walks: Vec<(&str, Packet, Hooks)> = Vec::new();
    match role {
        Role::Director => {
            walks.push(("requests to", request, vec![("prerouting", None), ("input", Some(IPVS_LOCAL_IN))]))
        }
        _ => {
            walks.push(("requests to", request, vec![("prerouting", None), ("input", None)]));
            let reply = Packet {
                v6: vip.is_ipv6(),
                saddr: Some(vip),
                daddr: None,
                proto,
                sport: Some(port),
                dport: None,
            };
            walks.push(("replies from", reply, vec![("output", None), ("postrouting", None)]));
        }
    }
    let mut chains = 0;
    for (what, p, hooks) in &walks {
        match decide(&rs, p, hooks) {
            Outcome::Passes(n) => chains += n,
            Outcome::Dropped(at, None) => {
                return out(&name, false, false, format!("{at} drops {what} {service}"));
            }
            Outcome::Dropped(at, Some(why)) => {
                return out(
                    &name,
                    false,
                    false,
                    format!("{at} drops {what} {service} for some packets ({why})"),
                );
            }
            Outcome::CannotTell(at, why) => {
                return out(&name, false, true, format!("cannot tell: {at}: {why}"));
            }
        }
    }
    out(&name, true, false, format!("no rule drops it ({chains} base chain(s) walked)"))
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
        let r = firewall(&sys, &web(80), Role::RealServer).await;
        assert!(!r.ok && !r.unknown, "{r:?}");
        assert_eq!(r.detail, "table inet userfw chain input handle 6 drops requests to TCP 198.18.0.100:80");
        // A director's input chains at priority 0 come before IPVS: the same rule drops it.
        let r = firewall(&sys, &web(80), Role::Director).await;
        assert!(r.detail.starts_with("table inet userfw chain input handle 6 drops"), "{r:?}");
        // A firewall-mark service cannot be decided here; neither can a failed read.
        let r = firewall(&sys, &ServiceKey::Fwmark { mark: 7, ipv6: false }, Role::Director).await;
        assert!(!r.ok && r.unknown, "{r:?}");
        *sys.fail_on.lock().unwrap() = Some("read the nftables ruleset".into());
        let r = firewall(&sys, &web(80), Role::Director).await;
        assert!(!r.ok && r.unknown && r.detail.starts_with("cannot tell: "), "{r:?}");
    }

    #[tokio::test]
    async fn an_empty_ruleset_passes_and_a_reply_rule_is_found_on_a_real_server() {
        let sys = FakeSystem::new(&["eth0"], false);
        *sys.nft.lock().unwrap() = Some(r#"{"nftables": [{"metainfo": {}}]}"#.into());
        let r = firewall(&sys, &web(80), Role::RealServer).await;
        assert!(r.ok && !r.unknown, "{r:?}");
        // Replies from the VIP's port dropped on their way out.
        let out = r#"{"nftables": [
          {"chain": {"family": "inet", "table": "t", "name": "out", "hook": "output", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "inet", "table": "t", "chain": "out", "handle": 3, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "sport"}}, "right": 80}},
            {"drop": null}]}}]}"#;
        *sys.nft.lock().unwrap() = Some(out.into());
        let r = firewall(&sys, &web(80), Role::RealServer).await;
        assert_eq!(
            r.detail, "table inet t chain out handle 3 drops replies from TCP 198.18.0.100:80",
            "{r:?}"
        );
        // A director sends no replies: the output chain is not its business.
        assert!(firewall(&sys, &web(80), Role::Director).await.ok);
    }
}
