//! The contract between `lvsctl` and `lvs-agent`.
//!
//! [`spec`] holds the declarative desired state of one node ([`spec::NodeSpec`]), the
//! output of the controller's planner and the input of the agent's reconciler. It is plain
//! data (serde), so the same value is printed by `lvsctl plan -o json`, persisted by the
//! agent and carried on the wire as [`pb::NodeSpec`] ([`wire`] converts, checking every
//! field on the way in).
pub mod agent_config;
pub mod files;
pub mod identity;
pub mod names;
pub mod pairing;
pub mod reply;
pub mod spec;
pub mod wire;

/// The port an agent serves `/metrics` on by convention (its `[metrics] listen`), in the
/// range Prometheus exporters use. `lvsctl metrics` scrapes it unless told otherwise.
pub const METRICS_PORT: u16 = 9643;

/// The port agents serve gRPC on by convention (every example definition uses it).
pub const AGENT_PORT: u16 = 7443;

pub use spec::NodeSpec;

/// `agent.proto` compiled: a serialized `google.protobuf.FileDescriptorSet` (tests list
/// the contract's rpcs from it; a gRPC tool can load it as it would protoc's
/// `--descriptor_set_out`).
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lvs_agent_v1_descriptor.bin"));

/// Generated gRPC types and services of `lvs.agent.v1`.
pub mod pb {
    #![allow(missing_docs, unused_qualifications, clippy::all)]
    tonic::include_proto!("lvs.agent.v1");
}

/// Round-trip a spec through its wire form (used by tests of both ends).
#[cfg(test)]
mod tests {
    use super::*;

    use spec::*;

    /// A spec with every field set.
    fn rich() -> NodeSpec {
        NodeSpec {
            cluster: "c".into(),
            node: "d".into(),
            role: Role::Director,
            generation: 7,
            addresses: vec![AddressSpec {
                interface: "eth1".into(),
                address: "198.18.0.100/32".parse().unwrap(),
                label: Some("eth1:0".into()),
                purpose: AddressPurpose::Vip,
            }],
            routes: vec![RouteSpec {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("198.18.0.1".parse().unwrap()),
                device: None,
                purpose: RoutePurpose::DefaultGateway,
            }],
            sysctls: vec![SysctlSpec {
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
                reason: "r".into(),
            }],
            virtual_services: vec![VirtualServiceSpec {
                name: "web".into(),
                key: ServiceKey::Addr {
                    protocol: Protocol::Tcp,
                    address: "198.18.0.100:80".parse().unwrap(),
                },
                scheduler: "wrr".into(),
                persistence: Some(Persistence { timeout_s: 300, netmask: 0xffff_ffff }),
                flags: vec![ServiceFlag::ShPort],
                destinations: vec![
                    DestinationSpec {
                        node: "rs1".into(),
                        address: "198.18.0.11:80".parse().unwrap(),
                        forwarding: Forwarding::Route,
                        weight: 2,
                        upper_threshold: 10,
                        lower_threshold: 1,
                        check: DestinationCheck::Own(Box::new(HealthCheckSpec {
                            probe: ProbeKind::Http {
                                path: "/health".into(),
                                expect_status: StatusSet::from_ranges(vec![(200, 204), (301, 301)]).unwrap(),
                                expect_body: None,
                                host: Some("www.example.org".into()),
                                expect_digest: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
                                tls: Some(TlsProbe {
                                    sni: Some("www.example.org".into()),
                                    verify: TlsVerify::CaFile("/etc/lvs/rs-ca.pem".into()),
                                }),
                                reuse_connection: true,
                                urls: vec![HttpUrl {
                                    path: "/deep".into(),
                                    expect_status: StatusSet::one(200),
                                    expect_body: Some("db ok".into()),
                                    expect_digest: None,
                                    host: Some("api.example.org".into()),
                                }],
                            },
                            interval_ms: 1000,
                            timeout_ms: 500,
                            rise: 1,
                            fall: 2,
                            on_failure: OnFailure::Remove,
                            connect_ip: Some("198.18.0.111".parse().unwrap()),
                            connect_port: Some(8443),
                            retry_interval_ms: Some(600),
                        })),
                    },
                    DestinationSpec {
                        node: "rs2".into(),
                        address: "198.18.0.12:80".parse().unwrap(),
                        forwarding: Forwarding::Route,
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        check: DestinationCheck::Off,
                    },
                    DestinationSpec {
                        node: "rs3".into(),
                        address: "198.18.0.13:80".parse().unwrap(),
                        forwarding: Forwarding::Route,
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        check: DestinationCheck::Own(Box::new(HealthCheckSpec {
                            probe: ProbeKind::Exec { command: vec!["check".into(), "--deep".into()] },
                            interval_ms: 1000,
                            timeout_ms: 500,
                            rise: 2,
                            fall: 3,
                            on_failure: OnFailure::Remove,
                            connect_ip: None,
                            connect_port: None,
                            retry_interval_ms: None,
                        })),
                    },
                ],
                health_check: Some(HealthCheckSpec {
                    probe: ProbeKind::Http {
                        path: "/".into(),
                        expect_status: StatusSet::one(200),
                        expect_body: Some("RS".into()),
                        host: None,
                        expect_digest: None,
                        tls: None,
                        reuse_connection: false,
                        urls: vec![],
                    },
                    interval_ms: 200,
                    timeout_ms: 100,
                    rise: 2,
                    fall: 3,
                    on_failure: OnFailure::Remove,
                    connect_ip: None,
                    connect_port: None,
                    retry_interval_ms: None,
                }),
                sorry: Some(DestinationSpec {
                    node: "sorry".into(),
                    address: "198.18.0.50:80".parse().unwrap(),
                    forwarding: Forwarding::Route,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    check: DestinationCheck::Service,
                }),
                quorum: 2,
                hysteresis: 1,
                notify: vec!["page-oncall".into(), "web".into()],
            }],
            checks: vec![
                CheckSpec::KernelIpvs { schedulers: vec!["wrr".into()] },
                CheckSpec::ClockOffset { server: "198.18.0.1".parse().unwrap(), max_offset_ms: 1000 },
                CheckSpec::NtpServing { address: "198.18.0.1".parse().unwrap() },
                CheckSpec::HttpLocal { port: 80, path: "/".into() },
                CheckSpec::GatewayIsNot { forbidden: vec!["198.18.0.2".parse().unwrap()] },
                CheckSpec::FirewallAllows { service: ServiceKey::Fwmark { mark: 3, ipv6: false } },
            ],
            ipvs_timeouts: Some(IpvsTimeouts { tcp_s: Some(900), tcp_fin_s: None, udp_s: Some(60) }),
            vrrp: Some(VrrpSpec {
                instance: "web".into(),
                interface: "eth1".into(),
                vrid: 51,
                priority: 150,
                advert_ms: 100,
                preempt: false,
                unicast_source: "198.18.0.2".parse().unwrap(),
                unicast_peers: vec!["198.18.0.3".parse().unwrap()],
                vips: vec![AddressSpec {
                    interface: "eth1".into(),
                    address: "198.18.0.100/32".parse().unwrap(),
                    label: Some("eth1:0".into()),
                    purpose: AddressPurpose::Vip,
                }],
                sync_daemon: Some(SyncDaemonSpec { interface: "eth1".into(), sync_id: 51 }),
                startup_delay_ms: 5400,
            }),
            bgp: Some(BgpSpec {
                local_asn: 4_200_000_001,
                router_id: "198.18.0.2".parse().unwrap(),
                peers: vec![BgpPeer {
                    name: "edge".into(),
                    address: "2001:db8:18::1".parse().unwrap(),
                    asn: 65000,
                    local_address: "2001:db8:18::2".parse().unwrap(),
                }],
                announce: vec!["2001:db8:18::100/128".parse().unwrap()],
                hold_s: 9,
                bfd_interval_ms: 50,
                bfd_multiplier: 5,
                install_routes: false,
            }),
            // The router's alone (the decoder refuses it on a director): its round trip is
            // `wire::arp`'s test.
            arp_watch: None,
            marks: vec![],
        }
    }

    #[test]
    fn a_rich_spec_survives_the_wire() {
        let s = rich();
        let w = pb::NodeSpec::from(&s);
        assert_eq!(NodeSpec::try_from(&w).unwrap(), s);
    }

    /// The field a spec changed by `f` is refused at, on the way in.
    fn refused_at(f: impl FnOnce(&mut pb::NodeSpec)) -> String {
        let mut w = pb::NodeSpec::from(&rich());
        f(&mut w);
        NodeSpec::try_from(&w).expect_err("refused").field
    }

    #[test]
    fn a_string_that_would_rewrite_keepalived_conf_or_load_a_module_is_refused_with_its_field() {
        let inject = "web\n}\nvrrp_script x {\n script \"/bin/sh -c id\"\n}";
        assert_eq!(refused_at(|w| w.vrrp.as_mut().unwrap().instance = inject.into()), "vrrp.instance");
        assert_eq!(
            refused_at(|w| w.vrrp.as_mut().unwrap().interface = "eth1\nnotify /x".into()),
            "vrrp.interface"
        );
        assert_eq!(
            refused_at(|w| w.vrrp.as_mut().unwrap().vips[0].label = Some("eth1:0\nnotify /x".into())),
            "vrrp.vips[0].label"
        );
        assert_eq!(
            refused_at(|w| w.vrrp.as_mut().unwrap().vips[0].interface = "eth1 dev".into()),
            "vrrp.vips[0].interface"
        );
        assert_eq!(
            refused_at(|w| w.vrrp.as_mut().unwrap().sync_daemon.as_mut().unwrap().interface = "eth1}".into()),
            "vrrp.sync_daemon.interface"
        );
        assert_eq!(refused_at(|w| w.addresses[0].label = Some("eth1:0#".into())), "addresses[0].label");
        assert_eq!(refused_at(|w| w.routes[0].device = Some("../x".into())), "routes[0].device");
        assert_eq!(
            refused_at(|w| w.virtual_services[0].scheduler = "../../../tmp/evil".into()),
            "virtual_services[0].scheduler"
        );
        assert_eq!(refused_at(|w| w.virtual_services[0].name = "web\r\n".into()), "virtual_services[0].name");
        assert_eq!(
            refused_at(|w| w.virtual_services[0].notify = vec!["/bin/sh".into(), "-c".into(), "id".into()]),
            "virtual_services[0].notify"
        );
        assert_eq!(refused_at(|w| w.node = "rs1\n".into()), "node");
        assert_eq!(refused_at(|w| w.sysctls[0].value = "1\n2".into()), "sysctls[0].value");
        assert_eq!(refused_at(|w| w.sysctls[0].reason = "\x1b[2J".into()), "sysctls[0].reason");
        let k = |w: &mut pb::NodeSpec| match &mut w.checks[0].kind {
            Some(pb::check::Kind::KernelIpvs(k)) => k.schedulers.push("evil".into()),
            _ => unreachable!(),
        };
        assert_eq!(refused_at(k), "checks[0].schedulers[1]");
        let h = |w: &mut pb::NodeSpec| match &mut w.checks[3].kind {
            Some(pb::check::Kind::HttpLocal(h)) => h.path = "/\r\nX: y".into(),
            _ => unreachable!(),
        };
        assert_eq!(refused_at(h), "checks[3].path");
        // Checks, their scripts and VRRP are a director's alone.
        assert_eq!(refused_at(|w| w.role = pb::Role::RealServer as i32), "virtual_services");
        assert_eq!(
            refused_at(|w| {
                w.role = pb::Role::Router as i32;
                w.virtual_services.clear()
            }),
            "vrrp"
        );
    }

    #[test]
    fn a_start_up_delay_past_ten_minutes_is_refused() {
        assert_eq!(
            refused_at(|w| w.vrrp.as_mut().unwrap().startup_delay_ms = 600_001),
            "vrrp.startup_delay_ms"
        );
        let mut w = pb::NodeSpec::from(&rich());
        w.vrrp.as_mut().unwrap().startup_delay_ms = 600_000;
        assert_eq!(NodeSpec::try_from(&w).unwrap().vrrp.unwrap().startup_delay_ms, 600_000);
    }

    #[test]
    fn a_state_file_from_before_the_start_up_delay_reads_as_no_delay() {
        let mut json = serde_json::to_value(rich()).unwrap();
        assert!(json["vrrp"].as_object_mut().unwrap().remove("startup_delay_ms").is_some());
        let s: NodeSpec = serde_json::from_value(json).unwrap();
        assert_eq!(s.vrrp.unwrap().startup_delay_ms, 0);
    }

    #[test]
    fn a_bad_field_is_named() {
        let mut w =
            pb::NodeSpec { node: "n".into(), role: pb::Role::RealServer as i32, ..Default::default() };
        w.sysctls.push(pb::SysctlSpec { key: "net..x".into(), value: "1".into(), reason: String::new() });
        w.addresses.push(pb::AddressSpec {
            interface: "lo".into(),
            address: "300.1.1.1/32".into(),
            ..Default::default()
        });
        let e = NodeSpec::try_from(&w).unwrap_err();
        assert_eq!(e.field, "addresses[0].address", "{e}");
        w.addresses.clear();
        let e = NodeSpec::try_from(&w).unwrap_err();
        assert_eq!(e.field, "sysctls[0].key", "{e}");
    }

    #[test]
    fn only_the_sysctls_the_planner_emits_can_be_sent() {
        use spec::SysctlSpec;
        for ok in [
            "net.ipv4.ip_forward",
            "net.ipv4.conf.all.arp_ignore",
            "net.ipv4.conf.eth0.100.arp_announce",
            "net.ipv4.conf.default.rp_filter",
            "net.ipv4.vs.conntrack",
            "net.ipv6.conf.all.forwarding",
        ] {
            assert!(SysctlSpec::allowed(ok), "{ok}");
        }
        for bad in [
            "kernel.core_pattern",
            "kernel.modprobe",
            "vm.overcommit_memory",
            "net.ipv4.conf.all.arp_ignore.x",
            "net.ipv4.conf.../arp_ignore",
            "net.ipv4.conf.eth0/../../kernel.arp_ignore",
            "net.ipv4.conf.averyveryverylongname.arp_ignore",
            "net.ipv4.vs.",
            "net.ipv4.vs.../x",
            "net.ipv4.tcp_syncookies",
            "net.core.somaxconn",
        ] {
            assert!(!SysctlSpec::allowed(bad), "{bad}");
        }
        let mut w =
            pb::NodeSpec { node: "n".into(), role: pb::Role::RealServer as i32, ..Default::default() };
        w.sysctls.push(pb::SysctlSpec {
            key: "kernel.core_pattern".into(),
            value: "|/x".into(),
            reason: String::new(),
        });
        let e = NodeSpec::try_from(&w).unwrap_err();
        assert_eq!(e.field, "sysctls[0].key", "{e}");
        assert!(e.reason.contains("not a sysctl this agent manages"), "{e}");
    }
}
