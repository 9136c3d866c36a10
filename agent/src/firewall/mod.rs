//! The firewall check that can fail (issue 31): the node's nftables ruleset (iptables-nft
//! rules included: they live there too), read with `nft -j`, decided for one service.
//!
//! - [`read`]: `nft -j list ruleset`, bounded in time and size.
//! - [`ruleset`]: `nft -j list ruleset` decoded once into chains and rules whose matches
//!   are the few this question needs (addresses, protocol, ports, interfaces); anything
//!   else is kept as "unknown", never guessed at.
//! - [`walk`]: pure: a packet of the service through every base chain of the hooks it
//!   crosses, in priority order, following jumps; the rule that drops it, or "cannot tell".
//!
//! The user's rules are only read, never changed.
pub mod read;
pub mod ruleset;
pub mod walk;
