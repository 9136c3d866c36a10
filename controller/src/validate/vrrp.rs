//! `[[vrrp]]`: directors sharing their VIPs through VRRP (director HA). The rules keep
//! what keepalived users trip over out of the definition: a VRID twice on a LAN (two
//! instances fighting over one virtual MAC), equal priorities (the tie goes to the higher
//! address, not to the admin's intent), directors on different LANs (adverts never meet),
//! and members that would hold different VIPs after a failover.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lvs_proto::spec::Role;

use super::{Validator, dns_label_problem};
use crate::definition::Definition;
use crate::diagnostics::KeyPath;
use crate::model::{Lan, Node, VrrpGroup};

/// Advert interval when the definition gives none (keepalived's default).
pub const DEFAULT_ADVERT: Duration = Duration::from_secs(1);

impl Validator {
    /// Every `[[vrrp]]` instance, checked.
    pub(super) fn vrrp(&mut self, def: &Definition, nodes: &[Node], lans: &[Lan]) -> Vec<VrrpGroup> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<String, KeyPath> = BTreeMap::new();
        for (i, g) in def.vrrp.iter().enumerate() {
            let path = KeyPath::root().key("vrrp").index(i);
            if let Some(group) = self.vrrp_group(g, &path, nodes, lans, &mut seen) {
                out.push(group);
            }
        }
        let mut vrids: BTreeMap<(String, u8), String> = BTreeMap::new();
        for (i, g) in out.iter().enumerate() {
            if let Some(other) = vrids.insert((g.lan.clone(), g.vrid), g.name.clone()) {
                self.err(
                    "vrrp-vrid-duplicate",
                    KeyPath::root().key("vrrp").index(i).key("vrid"),
                    format!("VRRP instances {other} and {} both use vrid {} on LAN {}", g.name, g.vrid, g.lan),
                    "give each instance on a LAN its own vrid (keepalived's users trip on this after a copy-paste)",
                );
            }
        }
        out
    }

    // Long on purpose: one rule after another over one instance, in the order a reader
    // checks a [[vrrp]] block.
    fn vrrp_group(
        &mut self,
        g: &crate::definition::VrrpDef,
        path: &KeyPath,
        nodes: &[Node],
        lans: &[Lan],
        seen: &mut BTreeMap<String, KeyPath>,
    ) -> Option<VrrpGroup> {
        let vrid = u8::try_from(g.vrid).ok().filter(|v| *v >= 1);
        if vrid.is_none() {
            self.err(
                "vrrp-vrid-range",
                path.key("vrid"),
                format!("vrid {} is outside 1..=255", g.vrid),
                "pick a virtual router id in 1..=255, unique on the LAN",
            );
        }
        let name = g.name.clone().unwrap_or_else(|| format!("vi-{}", g.vrid));
        if let Some(p) = dns_label_problem(&name) {
            self.err("bad-name", path.key("name"), format!("VRRP instance name {p}"), "e.g. name = \"web\"");
        }
        let advert = match &g.advert {
            Some(a) => self.duration(a, path.key("advert"))?,
            None => DEFAULT_ADVERT,
        };
        let ms = advert.as_millis();
        if advert.subsec_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&ms) {
            self.err(
                "vrrp-advert-range",
                path.key("advert"),
                format!("advert {advert:?} is not a multiple of 10 ms in 10ms..=40.95s (VRRPv3)"),
                "e.g. advert = \"100ms\" (failover in about 0.4 s) or \"1s\" (about 3.5 s)",
            );
        }
        if g.directors.len() < 2 {
            self.err(
                "vrrp-too-few-directors",
                path.key("directors"),
                format!("VRRP instance {name} has {} director(s): failover needs two", g.directors.len()),
                "list at least two directors, e.g. directors = [{ node = \"d1\", priority = 150 }, { node = \"d2\", priority = 100 }]",
            );
        }
        let mut members = Vec::new();
        let mut priorities: BTreeMap<u8, String> = BTreeMap::new();
        let mut vip_sets: Vec<(String, BTreeSet<String>)> = Vec::new();
        let mut lan_of: BTreeSet<String> = BTreeSet::new();
        for (j, m) in g.directors.iter().enumerate() {
            let mp = path.key("directors").index(j);
            let Some(node) = nodes.iter().find(|n| n.name == m.node) else {
                self.err(
                    "unknown-node",
                    mp.key("node"),
                    format!("no node `{}`", m.node),
                    "name a director of [[nodes]]",
                );
                continue;
            };
            if node.role != Role::Director {
                self.err(
                    "wrong-role",
                    mp.key("node"),
                    format!("{} is a {}, not a director", node.name, node.role.as_str()),
                    "only directors take part in VRRP",
                );
                continue;
            }
            if let Some(first) = seen.insert(node.name.clone(), mp.key("node")) {
                self.err(
                    "vrrp-director-twice",
                    mp.key("node"),
                    format!("{} is in VRRP already (at {first})", node.name),
                    "a director takes part in one VRRP instance: put all its VIPs in that one",
                );
            }
            let priority = u8::try_from(m.priority).ok().filter(|p| (1..=254).contains(p));
            let Some(priority) = priority else {
                self.err(
                    "vrrp-priority-range",
                    mp.key("priority"),
                    format!("priority {} is outside 1..=254", m.priority),
                    "1..=254 (255 is the address owner's, which a VIP shared by directors never is)",
                );
                continue;
            };
            if let Some(other) = priorities.insert(priority, node.name.clone()) {
                self.err(
                    "vrrp-priority-duplicate",
                    mp.key("priority"),
                    format!("{other} and {} both have priority {priority}", node.name),
                    "give each director its own priority: the highest is the preferred master",
                );
            }
            vip_sets.push((node.name.clone(), node.vips.iter().map(|v| v.address.to_string()).collect()));
            for v in &node.vips {
                if let Some(i) = node.interfaces.iter().find(|i| i.name == v.interface) {
                    lan_of.insert(i.lan.clone());
                }
            }
            members.push((node.name.clone(), priority));
        }
        if let Some((first, set)) = vip_sets.first() {
            let differs = vip_sets.iter().find(|(_, s)| s != set);
            if set.is_empty() || differs.is_some() {
                let other = differs.map_or(String::new(), |(n, s)| format!(", {n} holds {s:?}"));
                self.err(
                    "vrrp-vips-differ",
                    path.key("directors"),
                    format!("the directors of VRRP instance {name} must hold the same VIPs: {first} holds {set:?}{other}"),
                    "list the same vips on every director of the instance",
                );
            }
        }
        if lan_of.len() > 1 {
            self.err(
                "vrrp-not-one-lan",
                path.key("directors"),
                format!("the VIPs of VRRP instance {name} are on LANs {lan_of:?}: adverts of one never reach the other"),
                "put every director's VIPs on interfaces of the same LAN",
            );
        }
        let lan = lan_of.into_iter().next().filter(|l| lans.iter().any(|x| &x.name == l))?;
        Some(VrrpGroup {
            name,
            vrid: vrid?,
            advert,
            preempt: g.preempt,
            sync_daemon: g.sync_daemon.unwrap_or(true),
            members,
            lan,
        })
    }
}
