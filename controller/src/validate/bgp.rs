//! `[bgp]`: active-active directors behind ECMP. The rules keep out what would make the
//! router spread flows over directors that cannot carry them alike: a scheduler that is
//! not a consistent hash (a flow moved to another director would land on another real
//! server), directors the router cannot reach as a next hop, a director also in VRRP (one
//! VIP announced and ARP-claimed at once), directors holding different VIPs, and numbers
//! BGP or BFD refuse.
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use lvs_proto::spec::{Role, asn_problem};

use super::{Validator, dns_label_problem};
use crate::definition::BgpDef;
use crate::diagnostics::KeyPath;
use crate::model::{BgpGroup, BgpRouter, ExternalRouter, Lan, Node, Service};

/// Hold time when the definition gives none: BFD finds a dead director first; the hold
/// timer is the backstop when BFD itself is blocked.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(3);
/// BFD interval when the definition gives none: with 3 missed, a director is out in 0.3 s.
pub const DEFAULT_BFD_INTERVAL: Duration = Duration::from_millis(100);
/// Where the router side sits: a LAN and its address there.
type Point = (String, IpAddr);

/// Schedulers that pick the same real server for a flow on every director.
pub const CONSISTENT_SCHEDULERS: &[&str] = &["mh", "sh"];

impl Validator {
    // Long on purpose: one rule after another over the [bgp] block, in the order a reader
    // checks it (numbers, the router, each director, then the services on their VIPs).
    pub(super) fn bgp(
        &mut self,
        b: &BgpDef,
        nodes: &[Node],
        lans: &[Lan],
        services: &[Service],
    ) -> Option<BgpGroup> {
        let path = KeyPath::root().key("bgp");
        let router_asn = self.asn(b.router_asn, path.key("router_asn"));
        let director_asn = self.asn(b.director_asn, path.key("director_asn"));
        if router_asn.is_some() && router_asn == director_asn {
            self.err(
                "bgp-same-asn",
                path.key("director_asn"),
                format!("router and directors share ASN {}: the sessions are eBGP", b.router_asn),
                "give the directors an ASN of their own, e.g. router_asn = 65000, director_asn = 65001",
            );
        }
        let hold = match &b.hold {
            Some(h) => self.duration(h, path.key("hold"))?,
            None => DEFAULT_HOLD,
        };
        if hold.subsec_nanos() != 0 || !(3..=65_535).contains(&hold.as_secs()) {
            self.err(
                "bgp-hold-range",
                path.key("hold"),
                format!("hold time {hold:?} is not whole seconds in 3s..=65535s"),
                "e.g. hold = \"3s\" (BFD finds a dead director long before)",
            );
        }
        let bfd = b.bfd.as_ref();
        let bfd_interval = match bfd.and_then(|x| x.interval.as_ref()) {
            Some(i) => self.duration(i, path.key("bfd").key("interval"))?,
            None => DEFAULT_BFD_INTERVAL,
        };
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&bfd_interval)
            || bfd_interval.subsec_nanos() % 1_000_000 != 0
        {
            self.err(
                "bgp-bfd-range",
                path.key("bfd").key("interval"),
                format!("BFD interval {bfd_interval:?} is not whole milliseconds in 10ms..=10s"),
                "e.g. bfd = { interval = \"100ms\", multiplier = 3 } (down in 0.3 s)",
            );
        }
        let multiplier = bfd.and_then(|x| x.multiplier).unwrap_or(3);
        let bfd_multiplier = u8::try_from(multiplier).ok().filter(|m| *m >= 1);
        if bfd_multiplier.is_none() {
            self.err(
                "bgp-bfd-range",
                path.key("bfd").key("multiplier"),
                format!("BFD multiplier {multiplier} is outside 1..=255"),
                "e.g. multiplier = 3",
            );
        }
        let (router, points) = self.bgp_router(b, nodes, lans, &path)?;
        if b.directors.is_empty() {
            self.err(
                "bgp-too-few-directors",
                path.key("directors"),
                "[bgp] names no director",
                "list the directors that announce the VIPs, e.g. directors = [\"lb1\", \"lb2\", \"lb3\"]",
            );
        }
        let mut directors = Vec::new();
        let mut lans: BTreeSet<String> = BTreeSet::new();
        let mut vip_sets: Vec<(String, BTreeSet<String>)> = Vec::new();
        for (i, name) in b.directors.iter().enumerate() {
            let p = path.key("directors").index(i);
            let Some(node) = nodes.iter().find(|n| &n.name == name) else {
                self.err("unknown-node", p, format!("no node `{name}`"), "name a director of [[nodes]]");
                continue;
            };
            if node.role != Role::Director {
                self.err(
                    "wrong-role",
                    p,
                    format!("{name} is a {}, not a director", node.role.as_str()),
                    "only directors announce VIPs",
                );
                continue;
            }
            if directors.contains(name) {
                self.err(
                    "bgp-director-twice",
                    p,
                    format!("{name} is listed twice"),
                    "list each director once",
                );
                continue;
            }
            // The instances as written: one whose VIPs sit on lo is no valid instance at all.
            if let Some(i) = self.vrrp_members.iter().position(|g| g.contains(name)) {
                self.err(
                    "bgp-and-vrrp",
                    p.clone(),
                    format!(
                        "{name} is in VRRP instance vrrp[{i}] and in [bgp]: its VIPs cannot be claimed by ARP and announced as ECMP next hops at once"
                    ),
                    "choose one: VRRP (one director carries the traffic) or [bgp] (all of them do)",
                );
            }
            // The router reaches a director by its BGP next hop: its address on a LAN they share.
            let shared = points.iter().find(|(lan, a)| a.is_ipv4() && node.on_lan_like(lan, *a).is_some());
            match shared {
                Some((lan, _)) => {
                    lans.insert(lan.clone());
                }
                None => self.err(
                    "bgp-director-lan",
                    p.clone(),
                    format!("{name} has no IPv4 address on a LAN of router {}", router_name(&router)),
                    "plug the director into the router's cluster LAN: the router's ECMP next hops are on-link",
                ),
            }
            if node.vips.is_empty() {
                self.err(
                    "bgp-no-vips",
                    p.clone(),
                    format!("{name} holds no VIP: it would announce nothing"),
                    "list the VIPs in its vips, on lo: vips = [{ address = \"<vip>/32\", interface = \"lo\" }]",
                );
            }
            vip_sets.push((name.clone(), node.vips.iter().map(|v| v.address.to_string()).collect()));
            directors.push(name.clone());
        }
        if let Some((first, set)) = vip_sets.first()
            && let Some((other, s)) = vip_sets.iter().find(|(_, s)| s != set)
        {
            self.err(
                "bgp-vips-differ",
                path.key("directors"),
                format!(
                    "the [bgp] directors must hold the same VIPs: {first} holds {set:?}, {other} holds {s:?}"
                ),
                "list the same vips on every director: the router spreads each VIP's flows over all of them",
            );
        }
        if lans.len() > 1 {
            self.err(
                "bgp-director-lan",
                path.key("directors"),
                format!("the [bgp] directors meet the router on LANs {lans:?}"),
                "put every director on one LAN of the router",
            );
        }
        self.ecmp_services(&directors, services);
        Some(BgpGroup {
            router,
            router_asn: router_asn?,
            director_asn: director_asn?,
            directors,
            lan: lans.into_iter().next()?,
            hold,
            bfd_interval,
            bfd_multiplier: bfd_multiplier?,
        })
    }

    /// Whom the directors peer with, and where it sits: (LAN, address) pairs the directors'
    /// next hops must share. External routers replace the router node when given.
    fn bgp_router(
        &mut self,
        b: &BgpDef,
        nodes: &[Node],
        lans: &[Lan],
        path: &KeyPath,
    ) -> Option<(BgpRouter, Vec<Point>)> {
        if !b.external_routers.is_empty() {
            let (routers, points) = self.external_routers(b, nodes, lans, path)?;
            return Some((BgpRouter::External(routers), points));
        }
        let Some(router) = nodes.iter().find(|n| n.role == Role::Router) else {
            self.err(
                "bgp-no-router",
                path.clone(),
                "[bgp] needs a router to peer with the directors, and the definition has none",
                "add the router to [[nodes]] with role = \"router\", or name network gear in [bgp] external_routers",
            );
            return None;
        };
        let points = router.interfaces.iter().map(|i| (i.lan.clone(), i.address.addr())).collect();
        Some((BgpRouter::Node(router.name.clone()), points))
    }

    /// `[bgp] external_routers`: named once, each on a LAN of the definition and no node's
    /// address (the directors reach it on-link, as they would the router node).
    fn external_routers(
        &mut self,
        b: &BgpDef,
        nodes: &[Node],
        lans: &[Lan],
        path: &KeyPath,
    ) -> Option<(Vec<ExternalRouter>, Vec<Point>)> {
        let mut routers: Vec<ExternalRouter> = Vec::new();
        let mut points = Vec::new();
        let errors = self.diags.len();
        for (i, r) in b.external_routers.iter().enumerate() {
            let p = path.key("external_routers").index(i);
            if let Some(problem) = dns_label_problem(&r.name) {
                self.err(
                    "bad-name",
                    p.key("name"),
                    format!("external router name {problem}"),
                    "use lowercase letters, digits and `-`, e.g. tor1",
                );
            } else if nodes.iter().any(|n| n.name == r.name) || routers.iter().any(|x| x.name == r.name) {
                self.err(
                    "bgp-external-name",
                    p.key("name"),
                    format!(
                        "external router name {} is already a node's or another external router's",
                        r.name
                    ),
                    "give each external router a name of its own: it names the directors' sessions",
                );
            }
            let Some(address) = self.ip(&r.address, p.key("address")) else { continue };
            if let Some(n) = nodes.iter().find(|n| n.interfaces.iter().any(|i| i.address.addr() == address)) {
                self.err(
                    "bgp-external-address",
                    p.key("address"),
                    format!(
                        "{address} is node {}'s address: an external router is no node of the definition",
                        n.name
                    ),
                    "give the router's own address on the directors' LAN",
                );
            }
            match lans.iter().find(|l| l.cidrs.iter().any(|c| c.contains(&address))) {
                Some(l) => points.push((l.name.clone(), address)),
                None => self.err(
                    "bgp-external-lan",
                    p.key("address"),
                    format!("external router {} ({address}) is on no LAN of the definition", r.name),
                    "add the LAN the directors share with it to [[lans]]: its ECMP next hops are on-link",
                ),
            }
            routers.push(ExternalRouter { name: r.name.clone(), address });
        }
        let on: BTreeSet<&str> = points.iter().map(|(l, _): &Point| l.as_str()).collect();
        if on.len() > 1 {
            self.err(
                "bgp-external-lan",
                path.key("external_routers"),
                format!("the external routers are on LANs {on:?}"),
                "peer with routers on one LAN, the one every director is on",
            );
        }
        (self.diags.len() == errors).then_some((routers, points))
    }

    fn asn(&mut self, asn: i64, path: KeyPath) -> Option<u32> {
        let why = match u32::try_from(asn) {
            Ok(a) => match asn_problem(a) {
                None => return Some(a),
                Some(why) => why,
            },
            Err(_) => format!("ASN {asn} is outside 1..=4294967294"),
        };
        self.err("bgp-asn-range", path, why, "use a private ASN: 64512..=65534, or 4200000000..=4294967294");
        None
    }

    /// Every service on an ECMP director: a consistent scheduler, on every ECMP director.
    fn ecmp_services(&mut self, directors: &[String], services: &[Service]) {
        for (i, s) in services.iter().enumerate() {
            if !s.directors.iter().any(|d| directors.contains(d)) {
                continue;
            }
            let p = KeyPath::root().key("services").index(i);
            if !CONSISTENT_SCHEDULERS.contains(&s.scheduler.as_str()) {
                self.err(
                    "bgp-scheduler",
                    p.key("scheduler"),
                    format!(
                        "service {} is spread over [bgp] directors with scheduler {}: a flow the router moves to another director would land on another real server",
                        s.name, s.scheduler
                    ),
                    "use scheduler = \"mh\" (Maglev hashing; with flags = [\"mh-fallback\", \"mh-port\"])",
                );
            }
            let missing: Vec<&String> = directors.iter().filter(|d| !s.directors.contains(d)).collect();
            if !missing.is_empty() {
                self.err(
                    "bgp-service-directors",
                    p.key("directors"),
                    format!(
                        "service {} is not on {missing:?}, which announce its VIP {}: the router sends them its flows",
                        s.name, s.vip
                    ),
                    "run the service on every [bgp] director (leave its directors key out)",
                );
            }
        }
    }
}

/// How diagnostics name the router side.
fn router_name(r: &BgpRouter) -> String {
    match r {
        BgpRouter::Node(n) => n.clone(),
        BgpRouter::External(rs) => rs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
    }
}
