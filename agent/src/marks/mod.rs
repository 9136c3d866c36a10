//! The director's marking table: the nftables rules that feed its firewall-mark services.
//!
//! IPVS groups several ports into one service (80 and 443 of a client to one real server)
//! only by a mark the firewall sets on the packets; the definition's `marks` say which, and
//! this agent keeps exactly those rules in a table of its own, `inet lvs_dr`, one chain
//! `marks` in the prerouting hook at the mangle priority (-150, before routing decides the
//! packet is local and long before IPVS looks at it in input). No other table is read for
//! it or changed.
//!
//! - [`script`] renders the wanted rules as one `nft -f` script that replaces the table
//!   whole, in one kernel transaction: there is never a moment with half the rules.
//! - [`decode`] turns `nft -j list table inet lvs_dr` into the rules found (with their
//!   counters) and whatever else stands there, so the reconciler diffs them like addresses.
//! - [`program`] runs `nft`, bounded in time and size.
//!
//! Why `nft` and not netlink from Rust: see `docs/architecture.md`, "The marking table".
pub mod decode;
pub mod program;
pub mod script;

use lvs_proto::spec::MarkRule;

/// The table's family and name, as nft writes them.
pub const TABLE: &str = "inet lvs_dr";
/// Its one chain.
pub const CHAIN: &str = "marks";
/// The chain's priority: mangle, where marks are set before the routing decision.
pub const PRIORITY: i64 = -150;

/// One rule of ours, as found, with what it has counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRule {
    /// The rule.
    pub rule: MarkRule,
    /// Packets it marked since it was loaded.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The table as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkTable {
    /// The rules of the shape the agent writes, in chain order.
    pub rules: Vec<FoundRule>,
    /// Everything else in it (another chain, a rule of another shape, a changed hook),
    /// described: any of it means the table is not as the agent left it.
    pub strange: Vec<String>,
}

impl MarkTable {
    /// The rules found, sorted, for comparing with a spec's.
    pub fn sorted_rules(&self) -> Vec<MarkRule> {
        let mut v: Vec<MarkRule> = self.rules.iter().map(|r| r.rule.clone()).collect();
        v.sort();
        v
    }

    /// How it differs from `wanted` (sorted), in words; `None`: it is exactly that.
    pub fn differs_from(&self, wanted: &[MarkRule]) -> Option<String> {
        if let Some(s) = self.strange.first() {
            let more = self.strange.len() - 1;
            return Some(if more == 0 { s.clone() } else { format!("{s} (and {more} more)") });
        }
        let found = self.sorted_rules();
        if found == wanted {
            return None;
        }
        let missing: Vec<String> =
            wanted.iter().filter(|w| !found.contains(w)).map(ToString::to_string).collect();
        let extra: Vec<String> =
            found.iter().filter(|f| !wanted.contains(f)).map(ToString::to_string).collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join("; ")));
        }
        if !extra.is_empty() {
            parts.push(format!("not wanted {}", extra.join("; ")));
        }
        if parts.is_empty() {
            parts.push("a rule twice".into());
        }
        Some(parts.join("; "))
    }
}
