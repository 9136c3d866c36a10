//! A director's marking rules: which packets its firewall-mark services take. IPVS groups
//! ports (80 and 443 of one client to one real server) only by a mark the firewall sets;
//! the agent keeps those rules in an nftables table of its own, so that a `fwmark` service
//! works from the definition alone.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::Protocol;

/// Most marking rules in one spec.
pub const MAX_MARK_RULES: usize = 1024;
/// Most port ranges in one rule.
pub const MAX_MARK_PORTS: usize = 64;

/// Inclusive destination ports `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// The lowest port (at least 1).
    pub first: u16,
    /// The highest port (not below `first`).
    pub last: u16,
}

impl std::fmt::Display for PortRange {
    /// `80`, or `8000-8099`, as nft and the definition write them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Sorted, overlapping and adjacent ranges merged: the one form two sets of ports are
/// compared in (nft prints a set in its own order and may join neighbours).
pub fn normalized_ports(ports: &[PortRange]) -> Vec<PortRange> {
    let mut v = ports.to_vec();
    v.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if u32::from(r.first) <= u32::from(last.last) + 1 => last.last = last.last.max(r.last),
            _ => out.push(r),
        }
    }
    out
}

/// One rule: packets to `address` of `protocol` on one of `ports` get `mark`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MarkRule {
    /// The service it feeds (the rule's comment in nftables).
    pub service: String,
    /// The VIP.
    pub address: IpAddr,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// Destination ports, normalized ([`normalized_ports`]); empty: every port.
    pub ports: Vec<PortRange>,
    /// The mark (never 0).
    pub mark: u32,
}

impl std::fmt::Display for MarkRule {
    /// `TCP 198.18.0.100 ports 80,443 → mark 7 (web)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.protocol.as_str(), self.address)?;
        if self.ports.is_empty() {
            f.write_str(" every port")?;
        } else {
            let ports: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
            write!(
                f,
                " port{} {}",
                if ports.len() == 1 && self.ports[0].first == self.ports[0].last { "" } else { "s" },
                ports.join(",")
            )?;
        }
        write!(f, " → mark {} ({})", self.mark, self.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_compared_sorted_and_merged() {
        let r = |first, last| PortRange { first, last };
        assert_eq!(
            normalized_ports(&[r(443, 443), r(80, 80), r(81, 90), r(85, 100)]),
            vec![r(80, 100), r(443, 443)]
        );
        assert_eq!(normalized_ports(&[r(65535, 65535), r(65534, 65534)]), vec![r(65534, 65535)]);
        assert_eq!(r(8000, 8099).to_string(), "8000-8099");
    }
}
