//! What a spec asks of the host outside IPVS: addresses, routes and the sysctls an agent may write.
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why an address exists; decides where it goes in the apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressPurpose {
    /// The node's own address on a LAN (DIP, RIP, router leg).
    Lan,
    /// A VIP on the director, on a labelled alias; the director answers ARP for it.
    Vip,
    /// A VIP on a real server's loopback (/32, `lo:N`); never announced.
    HiddenVip,
}

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressSpec {
    /// Interface name (`eth1`, `lo`).
    pub interface: String,
    /// Address with prefix length.
    pub address: IpNet,
    /// Address label (`eth1:0`, `lo:0`), the modern form of an alias interface.
    pub label: Option<String>,
    /// Why the address exists.
    pub purpose: AddressPurpose,
}

/// Why a route exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePurpose {
    /// The default route through the router (never through the DIP, in DR).
    DefaultGateway,
    /// `route add -host VIP dev lo:0` on a real server.
    VipHost,
}

/// One route in the main table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination prefix (`0.0.0.0/0` for the default route).
    pub destination: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output device, if pinned.
    pub device: Option<String>,
    /// Why the route exists.
    pub purpose: RoutePurpose,
}

/// One kernel parameter under `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SysctlSpec {
    /// Dotted key, e.g. `net.ipv4.conf.all.arp_ignore`.
    pub key: String,
    /// Value to write.
    pub value: String,
    /// One line saying why the cluster needs it.
    pub reason: String,
}

/// Schedulers of the mainline kernel (`ip_vs_<name>.ko`), the one list the validator and
/// the agent share. `twos` came in Linux 6.2; the VM test holds this list against the
/// modules the test kernel actually ships.
pub const SCHEDULERS: &[&str] =
    &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"];

/// The shortest health-check interval anyone may ask for. Faster probing buys little (a
/// dead server is still noticed only after `fall` probes) and a spec from a stolen or buggy
/// controller must not be able to turn the director's checker into a flood.
pub const MIN_CHECK_INTERVAL_MS: u64 = 100;

/// Per-interface IPv4 sysctls an agent may be told to write (`net.ipv4.conf.<if>.<name>`):
/// the ARP behaviour of DR real servers and the reverse-path and forwarding switches that
/// go with it. Nothing outside this list and [`SysctlSpec::allowed`]'s other entries is ever
/// written, whoever signs the request: a stolen controller key must not reach `kernel.*`.
pub const IPV4_CONF_SYSCTLS: &[&str] = &[
    "arp_ignore",
    "arp_announce",
    "arp_filter",
    "rp_filter",
    "accept_local",
    "forwarding",
    "send_redirects",
];

impl SysctlSpec {
    /// Whether an agent may write `key`: `net.ipv4.ip_forward`, `net.ipv6.conf.*.forwarding`,
    /// `net.ipv4.conf.<interface>.<one of IPV4_CONF_SYSCTLS>` and the IPVS tunables
    /// `net.ipv4.vs.*`. The interface part follows the kernel's name rules (1–15 bytes, no
    /// `/`, not `.` or `..`; dots are allowed, as in VLAN names like `eth0.100`).
    pub fn allowed(key: &str) -> bool {
        let ifname_ok = |n: &str| {
            (1..=15).contains(&n.len())
                && n != "."
                && n != ".."
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
        };
        let word = |w: &str| {
            !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        // Forwarding, and ECMP hashing on L4 (the router of active-active directors).
        if matches!(
            key,
            "net.ipv4.ip_forward"
                | "net.ipv4.fib_multipath_hash_policy"
                | "net.ipv6.fib_multipath_hash_policy"
        ) {
            return true;
        }
        if let Some(rest) = key.strip_prefix("net.ipv4.vs.") {
            return word(rest);
        }
        if let Some(rest) = key.strip_prefix("net.ipv4.conf.") {
            return rest
                .rsplit_once('.')
                .is_some_and(|(i, name)| ifname_ok(i) && IPV4_CONF_SYSCTLS.contains(&name));
        }
        if let Some(rest) = key.strip_prefix("net.ipv6.conf.") {
            return rest.rsplit_once('.').is_some_and(|(i, name)| ifname_ok(i) && name == "forwarding");
        }
        false
    }

    /// Path of the key under `/proc/sys`.
    pub fn proc_path(&self) -> String {
        format!("/proc/sys/{}", self.key.replace('.', "/"))
    }
}
