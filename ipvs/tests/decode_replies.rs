//! Decoding real kernel replies, captured in the VM (Debian 6.1) by the `capture_replies`
//! kernel test: a GET_SERVICE dump entry (TCP 198.18.0.100:80 wrr, persistent 300 s),
//! a GET_DEST entry (198.18.0.11:80, DR, weight 2), GET_INFO and GET_CONFIG replies.
use lvs_ipvs::wire::{self, IpvsMessage};
use lvs_ipvs::{Forward, Protocol, ServiceFlags, ServiceKey};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

fn fixture(name: &str) -> IpvsMessage {
    let hex =
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}.hex", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let hex = hex.trim();
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let msg = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&bytes).unwrap();
    match msg.payload {
        NetlinkPayload::InnerMessage(m) => m.payload,
        other => panic!("{other:?}"),
    }
}

#[test]
fn service_dump_entry() {
    let m = fixture("service");
    assert_eq!(m.cmd, lvs_ipvs::consts::CMD_NEW_SERVICE);
    let e = wire::decode_service(&m).unwrap();
    assert_eq!(e.service.key, ServiceKey::Addr(Protocol::Tcp, "198.18.0.100:80".parse().unwrap()));
    assert_eq!(e.service.scheduler, "wrr");
    assert_eq!(e.service.timeout, 300);
    assert_eq!(e.service.netmask, u32::MAX);
    assert_ne!(e.service.flags.0 & ServiceFlags::PERSISTENT, 0);
    assert_eq!(e.service.pe_name, None);
    assert_eq!(e.stats, Default::default());
}

#[test]
fn destination_dump_entry() {
    let m = fixture("dest");
    assert_eq!(m.cmd, lvs_ipvs::consts::CMD_NEW_DEST);
    let e = wire::decode_dest(&m, false).unwrap();
    assert_eq!(e.dest.addr, "198.18.0.11:80".parse().unwrap());
    assert_eq!(e.dest.forward, Forward::Route);
    assert_eq!((e.dest.weight, e.dest.upper_threshold, e.dest.lower_threshold), (2, 0, 0));
    assert_eq!((e.active_conns, e.inactive_conns, e.persist_conns), (0, 0, 0));
}

#[test]
fn info_and_config_replies() {
    let info = wire::decode_info(&fixture("info")).unwrap();
    assert_eq!(info.version_string(), "1.2.1");
    assert_eq!(info.conn_tab_size, 4096);
    let t = wire::decode_timeouts(&fixture("config")).unwrap();
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (900, 120, 300));
}

#[test]
fn truncated_reply_is_an_error_not_a_panic() {
    let m = fixture("service");
    let wire::Attr::Bytes(k, v) = &m.attrs[0] else { panic!() };
    let cut = IpvsMessage { cmd: m.cmd, attrs: vec![wire::Attr::Bytes(*k, v[..10].to_vec())] };
    assert!(wire::decode_service(&cut).is_err());
}
