//! Every rule a definition is checked against, in one table: its stable id (what
//! `Diagnostic::rule` carries and users grep for) and what it protects. `validate.rs`
//! may only report rules listed here (checked in debug builds), and the rule tests walk
//! this table and fail for any rule without a failing example.

/// One validation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, e.g. `dr-same-lan`.
    pub id: &'static str,
    /// What it refuses, in one line.
    pub summary: &'static str,
}

const fn r(id: &'static str, summary: &'static str) -> Rule {
    Rule { id, summary }
}

/// The registry, grouped by family: file shape, names and scalars, addressing, nodes and
/// VIPs, services, direct routing, health checks.
pub const RULES: &[Rule] = &[
    // File shape.
    r("toml-syntax", "the file is not valid TOML"),
    r("schema", "a key has the wrong type or a required key is missing"),
    r("unknown-key", "a key the definition does not have (a typo)"),
    r("missing-key", "a key this kind of entry needs is absent"),
    // Names and scalars.
    r("bad-name", "a name is empty, too long or not a DNS label (an interface: not a kernel name)"),
    r("duplicate-name", "two entries of one kind share a name (or two VIPs a label)"),
    r("generation-range", "the generation is not a positive integer"),
    r("bad-address", "not an IP address"),
    r("bad-cidr", "not an address/prefix"),
    r("bad-port", "a port outside 1..=65535"),
    r("bad-duration", "not a duration such as 500ms or 5m"),
    r("bad-endpoint", "an agent endpoint that is empty"),
    r("duplicate-endpoint", "two nodes with one agent endpoint"),
    r("time-source-missing", "no [time] section: clocks cannot be checked"),
    // Addressing.
    r("unknown-lan", "an interface on a LAN no [[lans]] entry defines"),
    r("address-outside-lan", "an interface address outside its LAN's subnet"),
    r("address-is-network-or-broadcast", "an interface on its LAN's network or broadcast address"),
    r(
        "family-twice",
        "two addresses (subnets, gateways, VIPs of a service) of one family where one per family is allowed",
    ),
    r("family-mixed", "a real server with no address of its service's VIP family on the directors' LAN"),
    r(
        "ipv6-prefix",
        "an IPv6 LAN outside /16..=/127, an interface off its LAN's prefix, or an IPv6 VIP that is not /128",
    ),
    r(
        "not-unicast",
        "a multicast, link-local, loopback, unspecified or IPv4-mapped address as a LAN, VIP or host address",
    ),
    r("gateway-off-lan", "a gateway on none of the node's subnets"),
    r("gateway-is-dip", "a real server routed through a director (DR replies must bypass it)"),
    r("real-server-no-gateway", "a real server without a gateway (warning)"),
    // Nodes and VIPs.
    r("unknown-role", "a role other than router, director, real_server"),
    r("no-director", "no director at all"),
    r("no-router", "no router node: its forwarding and NTP are unmanaged, verify cannot run (warning)"),
    r("vip-on-two-directors", "one VIP held by two directors without failover: ARP flaps (warning)"),
    // Director HA (VRRP).
    r("vrrp-vrid-range", "a virtual router id outside 1..=255"),
    r("vrrp-vrid-duplicate", "two VRRP instances with one virtual router id on one LAN"),
    r("vrrp-advert-range", "an advert interval that is not a multiple of 10 ms in 10ms..=40.95s"),
    r("vrrp-too-few-directors", "a VRRP instance with fewer than two directors"),
    r("vrrp-priority-range", "a VRRP priority outside 1..=254"),
    r("vrrp-priority-duplicate", "two directors of one VRRP instance with one priority"),
    r("vrrp-director-twice", "a director in two VRRP instances (or twice in one)"),
    r("vrrp-vips-differ", "directors of one VRRP instance holding different VIPs (or none)"),
    r("vrrp-not-one-lan", "directors of one VRRP instance with their VIPs on different LANs"),
    // Active-active directors ([bgp]).
    r("bgp-asn-range", "an ASN that is 0, 23456 (AS_TRANS), 4294967295 or outside 32 bits"),
    r("bgp-same-asn", "router and directors in one AS (the sessions are eBGP)"),
    r("bgp-hold-range", "a BGP hold time that is not whole seconds in 3s..=65535s"),
    r("bgp-bfd-range", "a BFD interval outside 10ms..=10s or a multiplier outside 1..=255"),
    r("bgp-no-router", "[bgp] without a router node or external routers to peer with"),
    r("bgp-external-name", "an external router named like a node or another external router"),
    r("bgp-external-address", "an external router at a node's address"),
    r("bgp-external-lan", "an external router on no LAN of the definition (or external routers on several)"),
    r("bgp-too-few-directors", "[bgp] naming no director"),
    r("bgp-director-twice", "a director listed twice in [bgp]"),
    r("bgp-and-vrrp", "a director both in [bgp] and in a VRRP instance"),
    r(
        "bgp-director-lan",
        "a [bgp] director with no IPv4 address on the router's LAN (or directors on different ones)",
    ),
    r("bgp-no-vips", "a [bgp] director holding no VIP"),
    r("bgp-vips-differ", "[bgp] directors holding different VIPs"),
    r(
        "bgp-vip-not-on-lo",
        "a [bgp] director's VIP on an interface other than lo (it would answer ARP for it)",
    ),
    r(
        "bgp-scheduler",
        "a service spread over [bgp] directors with a scheduler that is not a consistent hash (mh, sh)",
    ),
    r("bgp-service-directors", "a service not on every [bgp] director that announces its VIP"),
    r("vip-on-non-director", "VIPs declared on a node that is not a director"),
    r("vip-interface-unknown", "a VIP on an interface the director does not have"),
    r("bad-label", "a VIP label that does not start with its interface or is over 15 bytes"),
    r("vip-is-node-address", "a VIP that is also a DIP or RIP"),
    r("vip-not-held", "a service whose VIP no (named) director holds"),
    r("unknown-node", "a reference to a node that does not exist"),
    r("wrong-role", "a reference to a node of the wrong role"),
    r("unknown-address", "a real-server address that is not one of the node's"),
    // Services.
    r("unknown-protocol", "a protocol other than tcp, udp, sctp, fwmark"),
    r("fwmark-port", "a port on a fwmark service"),
    r("fwmark-with-protocol", "a fwmark on a tcp/udp/sctp service"),
    r("fwmark-zero", "fwmark 0, which the kernel reads as no mark"),
    r("fwmark-range", "a fwmark that is not 32-bit"),
    r("marks-without-fwmark", "marks on a tcp/udp/sctp service"),
    r("marks-empty", "marks = [], which would feed the service nothing"),
    r("marks-protocol", "a mark entry's protocol other than tcp, udp, sctp"),
    r("marks-range", "a mark entry's port range that is not N-M with N <= M"),
    r("marks-overlap", "two services marking the same protocol, VIP and port"),
    r(
        "marks-shadow",
        "a mark covering an address service's VIP and port (IPVS would never give it a packet)",
    ),
    r("unknown-scheduler", "a scheduler the kernel does not have"),
    r("unsupported-forwarding", "a forwarding method other than dr"),
    r("unknown-flag", "an unknown service flag"),
    r("flag-needs-sh", "an sh-only flag on another scheduler"),
    r("persistence-range", "a persistence timeout the kernel cannot hold"),
    r("bad-netmask", "a persistence netmask that is not contiguous"),
    r("duplicate-service", "two services with the same protocol, VIP and port (or mark)"),
    r("weight-range", "a weight outside 0..=65535"),
    r("all-weights-zero", "a service whose every real server has weight 0 (warning)"),
    r("ipvs-timeout-range", "an IPVS timeout that is not whole seconds the kernel can hold"),
    r("threshold-range", "connection thresholds out of range or upside down"),
    r("duplicate-real-server", "a real server twice in one service"),
    r("sorry-is-real-server", "a sorry server that is also a real server of the service"),
    // Direct routing.
    r("dr-same-lan", "a real server sharing no LAN with its director"),
    r("dr-port-mapping", "a real-server port other than the virtual port"),
    // Health checks.
    r(
        "bad-check",
        "an unknown check kind, a key another kind takes, a path without /, a status outside 100..=599, a digest that is not MD5",
    ),
    r(
        "check-override",
        "on_failure in a real server's check (it is the service's), or a check on the sorry server",
    ),
    r("check-tls-unverified", "an HTTPS check that does not verify certificates (warning)"),
    r(
        "bad-command",
        "an exec check or notify hook that is not a script name of the node's script directory and plain arguments",
    ),
    r("quorum-range", "a quorum outside 1..=real servers, or a hysteresis not below it"),
    r("check-timeout", "a check timeout not shorter than its interval"),
    r("check-interval", "a check interval under the minimum"),
    r("check-rise-fall", "rise or fall outside 1..=1000"),
    r("check-protocol", "an HTTP, HTTPS or TCP check on a UDP service"),
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}
