//! Replies ([`crate::reply`]) to and from the wire. The agent encodes with `From`; the
//! controller decodes with `TryFrom` once, at its fleet boundary, and a reply with a field
//! it cannot read is named (`actions[3].change.ipvs.destination: ...`), never guessed.
mod arp;
mod bgp;
mod changes;
mod events;
mod report;
mod small;
mod status;
mod table;

pub use changes::*;
pub use table::*;

#[cfg(test)]
mod tests {
    use crate::pb;
    use crate::reply::*;
    use crate::spec::{Protocol, ServiceKey};
    use std::net::SocketAddr;

    fn key() -> ServiceKey {
        ServiceKey::Addr { protocol: Protocol::Tcp, address: "198.18.0.100:80".parse().unwrap() }
    }

    fn every_change() -> Vec<Change> {
        let k = key();
        let d: SocketAddr = "198.18.0.11:80".parse().unwrap();
        let route = RouteRef {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("198.18.0.1".parse().unwrap()),
            device: Some("eth0".into()),
        };
        let addr = AddressRef {
            interface: "lo".into(),
            address: "198.18.0.100/32".parse().unwrap(),
            label: Some("lo:0".into()),
        };
        vec![
            Change::AddAddress(addr.clone()),
            Change::DelAddress(AddressRef { label: None, ..addr }),
            Change::AddRoute { route: route.clone(), replace: true },
            Change::DelRoute(RouteRef { gateway: None, ..route }),
            Change::SetSysctl {
                key: "net.ipv4.conf.all.arp_ignore".into(),
                from: "0".into(),
                to: "1".into(),
            },
            Change::Ipvs(IpvsChange::AddService { service: k, scheduler: "wrr".into() }),
            Change::Ipvs(IpvsChange::EditService { service: k, scheduler: "rr".into() }),
            Change::Ipvs(IpvsChange::DelService { service: ServiceKey::Fwmark { mark: 7, ipv6: true } }),
            Change::Ipvs(IpvsChange::AddDestination { service: k, destination: d, weight: 3 }),
            Change::Ipvs(IpvsChange::EditDestination { service: k, destination: d, weight: 0 }),
            Change::Ipvs(IpvsChange::DelDestination { service: k, destination: d }),
            Change::Ipvs(IpvsChange::SetTimeouts),
            Change::Ipvs(IpvsChange::Zero { service: Some(k) }),
            Change::Ipvs(IpvsChange::Zero { service: None }),
            Change::Ipvs(IpvsChange::Flush),
            Change::Ipvs(IpvsChange::StartDaemon { interface: "eth1".into() }),
            Change::Ipvs(IpvsChange::StopDaemon { state: "backup".into() }),
        ]
    }

    #[test]
    fn a_report_with_every_change_and_outcome_survives_the_wire() {
        let failure =
            Failure { kind: FailureKind::Exists, message: "add service: already exists".into(), errno: 17 };
        let changes = every_change();
        let r = Report {
            node: "director".into(),
            generation: 4,
            actions: changes
                .iter()
                .enumerate()
                .map(|(i, c)| ActionResult {
                    change: c.clone(),
                    outcome: match i % 3 {
                        0 => Outcome::Applied,
                        1 => Outcome::Failed(failure.clone()),
                        _ => Outcome::NotAttempted,
                    },
                })
                .collect(),
            foreign: vec!["IPVS service UDP 198.18.0.9:53".into()],
            drift_after: changes.clone(),
            converged: false,
            revocation_number: 3,
        };
        assert_eq!(Report::try_from(&pb::Report::from(&r)).unwrap(), r);
        let e = Event {
            unix_ms: 1,
            node: "rs1".into(),
            kind: EventKind::Drift,
            message: "m".into(),
            generation: 4,
            changes,
            failure: Some(failure),
            by: "admin:alice".into(),
        };
        assert_eq!(Event::try_from(&pb::Event::from(&e)).unwrap(), e);
    }

    #[test]
    fn a_status_with_a_table_survives_the_wire() {
        let d: SocketAddr = "198.18.0.11:80".parse().unwrap();
        let s = NodeStatus {
            facts: Facts { node: "director".into(), ipvs: true, cpus: 2, ..Default::default() },
            generation: 3,
            has_spec: true,
            drift: vec![Change::Ipvs(IpvsChange::Flush)],
            foreign: vec![],
            checks: vec![CheckResult {
                unknown: false,
                check: "kernel has IPVS".into(),
                ok: true,
                detail: "1.2.1".into(),
            }],
            ipvs: Some(IpvsTable {
                version: "1.2.1".into(),
                conn_tab_size: 4096,
                services: vec![TableService {
                    key: key(),
                    scheduler: "wrr".into(),
                    flags: 2,
                    timeout_s: 0,
                    netmask: u32::MAX,
                    stats: Stats { conns: 5, inpkts: 9, ..Default::default() },
                    destinations: vec![TableDestination {
                        address: d,
                        forward: Forward::Local,
                        weight: 2,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        active_conns: 1,
                        inactive_conns: 2,
                        persist_conns: 0,
                        stats: Stats::default(),
                    }],
                    managed: true,
                }],
                timeouts: Timeouts { tcp: 900, tcp_fin: 120, udp: 300 },
                connections: vec![Connection {
                    protocol: "TCP".into(),
                    client: "198.19.0.10:40000".parse().unwrap(),
                    virtual_address: "198.18.0.100:80".parse().unwrap(),
                    destination: d,
                    state: "ESTABLISHED".into(),
                    expires_s: 899,
                }],
                connections_truncated: true,
            }),
            clock: Clock { offset_ms: Some(-3), rtt_ms: Some(1), error: None },
            health: vec![DestinationHealth {
                service: key(),
                destination: d,
                up: true,
                quarantined: false,
                successes: 3,
                failures: 0,
                transitions: 1,
                probes: 9,
                last_error: String::new(),
            }],
            overrides: vec![WeightOverride { service: key(), destination: d, weight: 0 }],
            certificate: Some(CertificateInfo { serial: "0a1b".into(), not_after_unix: 1_900_000_000 }),
            vrrp: Some(VrrpStatus {
                instance: "web".into(),
                state: VrrpState::Master,
                priority: 150,
                since_unix_ms: 5,
                transitions: 2,
                error: None,
            }),
            sync_daemons: vec![SyncDaemon { state: "master".into(), interface: "eth1".into(), sync_id: 51 }],
            bgp: Some(BgpStatus {
                sessions: vec![BgpSession {
                    peer: "router".into(),
                    address: "198.18.0.1".into(),
                    state: "Active (Socket: No route to host)".into(),
                    up: false,
                    since_unix_ms: 1_796_437_865_000,
                    routes_received: 0,
                    routes_sent: 0,
                }],
                announcements: vec![BgpAnnouncement {
                    prefix: "198.18.0.100/32".into(),
                    announced: false,
                    reason: "below quorum".into(),
                }],
                error: Some("bird exited".into()),
                drained: true,
            }),
            arp_watch: Some(ArpWatchStatus {
                vips: vec![VipArp {
                    address: "198.18.0.100".into(),
                    answers: vec![
                        ArpAnswer { mac: "02:00:00:00:00:02".into(), node: Some("director".into()) },
                        ArpAnswer { mac: "02:00:00:00:00:99".into(), node: None },
                    ],
                    leak: Some("an unknown host (02:00:00:00:00:99) answers ARP for it".into()),
                    holders: vec!["director".into()],
                }],
                rounds: 12,
                last_round_unix_ms: 1_796_437_865_000,
                error: Some("eth9: no such interface".into()),
            }),
            marks: vec![MarkCount {
                rule: crate::spec::MarkRule {
                    service: "web".into(),
                    address: "198.18.0.100".parse().unwrap(),
                    protocol: Protocol::Tcp,
                    ports: vec![
                        crate::spec::PortRange { first: 80, last: 80 },
                        crate::spec::PortRange { first: 443, last: 443 },
                    ],
                    mark: 7,
                },
                packets: 12,
                bytes: 720,
            }],
            services: vec![ServiceHealth {
                service: key(),
                name: "web".into(),
                in_service: 1,
                total: 2,
                quorum: 2,
                degraded: true,
            }],
        };
        assert_eq!(NodeStatus::try_from(&pb::StatusResponse::from(&s)).unwrap(), s);
    }

    #[test]
    fn an_unreadable_reply_names_its_field() {
        let mut w = pb::Report::from(&Report {
            actions: vec![ActionResult {
                change: Change::Ipvs(IpvsChange::DelService { service: key() }),
                outcome: Outcome::Applied,
            }],
            ..Default::default()
        });
        w.actions[0].change.as_mut().unwrap().kind = None;
        assert_eq!(Report::try_from(&w).unwrap_err().field, "actions[0].change");
        let mut w = pb::Report::from(&Report {
            actions: vec![ActionResult {
                change: Change::Ipvs(IpvsChange::DelService { service: key() }),
                outcome: Outcome::Applied,
            }],
            ..Default::default()
        });
        w.actions[0].outcome = pb::Outcome::Failed as i32; // failed, but no failure given
        assert_eq!(Report::try_from(&w).unwrap_err().field, "actions[0].failure");
        let mut t = pb::IpvsTableResponse::from(&IpvsTable::default());
        t.connections.push(pb::Connection { client: "nope".into(), ..Default::default() });
        assert_eq!(IpvsTable::try_from(&t).unwrap_err().field, "table.connections[0].client");
    }

    #[test]
    fn a_change_reads_as_it_always_has() {
        let words: Vec<String> = every_change().iter().map(ToString::to_string).collect();
        assert_eq!(words[0], "add address 198.18.0.100/32 on lo label lo:0");
        assert_eq!(words[2], "replace route 0.0.0.0/0 via 198.18.0.1 dev eth0");
        assert_eq!(words[4], "set net.ipv4.conf.all.arp_ignore = 1 (was 0)");
        assert_eq!(words[8], "ipvs: add destination 198.18.0.11:80 to TCP 198.18.0.100:80");
    }
}
