//! The `nft -f` scripts that load and remove the marking table. Every value in them is a
//! typed one from a checked spec (an address, port numbers, a mark, a protocol keyword,
//! a service name that is a DNS label): nothing is spliced in as free text.
use std::fmt::Write as _;

use lvs_proto::spec::{MarkRule, Protocol};

use super::{CHAIN, PRIORITY, TABLE};

fn keyword(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// One rule's line.
fn rule_line(r: &MarkRule) -> String {
    let family = if r.address.is_ipv6() { "ip6" } else { "ip" };
    let proto = keyword(r.protocol);
    let ports: Vec<String> = r.ports.iter().map(ToString::to_string).collect();
    let what = match ports.len() {
        0 => format!("meta l4proto {proto}"),
        1 => format!("{proto} dport {}", ports[0]),
        _ => format!("{proto} dport {{ {} }}", ports.join(", ")),
    };
    format!("{family} daddr {} {what} counter meta mark set {} comment \"{}\"", r.address, r.mark, r.service)
}

/// The script that makes the table hold exactly `rules`, whatever was there: `table … {}`
/// then `delete` removes any earlier one in the same transaction as the new one is made.
pub fn load(rules: &[MarkRule]) -> String {
    let mut s = format!("table {TABLE} {{}}\ndelete table {TABLE}\ntable {TABLE} {{\n  chain {CHAIN} {{\n");
    let _ = writeln!(s, "    type filter hook prerouting priority {PRIORITY}; policy accept;");
    for r in rules {
        let _ = writeln!(s, "    {}", rule_line(r));
    }
    s.push_str("  }\n}\n");
    s
}

/// The script that removes the table, whether or not it is there.
pub fn removal() -> String {
    format!("table {TABLE} {{}}\ndelete table {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_proto::spec::PortRange;

    #[test]
    fn each_rule_is_one_line_of_typed_values() {
        let r = |address: &str, protocol, ports: Vec<PortRange>| MarkRule {
            service: "web".into(),
            address: address.parse().unwrap(),
            protocol,
            ports,
            mark: 7,
        };
        let p = |first, last| PortRange { first, last };
        let s = load(&[
            r("198.18.0.100", Protocol::Tcp, vec![p(80, 80), p(443, 443)]),
            r("2001:db8::100", Protocol::Udp, vec![p(8000, 8099)]),
            r("198.18.0.100", Protocol::Sctp, vec![]),
        ]);
        assert!(s.starts_with("table inet lvs_dr {}\ndelete table inet lvs_dr\n"), "{s}");
        assert!(s.contains("type filter hook prerouting priority -150; policy accept;"), "{s}");
        for line in [
            "ip daddr 198.18.0.100 tcp dport { 80, 443 } counter meta mark set 7 comment \"web\"",
            "ip6 daddr 2001:db8::100 udp dport 8000-8099 counter meta mark set 7 comment \"web\"",
            "ip daddr 198.18.0.100 meta l4proto sctp counter meta mark set 7 comment \"web\"",
        ] {
            assert!(s.contains(line), "`{line}` in:\n{s}");
        }
        assert_eq!(removal(), "table inet lvs_dr {}\ndelete table inet lvs_dr\n");
    }
}
