//! Exact bytes of every request kind, against a TLV builder written independently of the
//! library from `include/uapi/linux/ip_vs.h` and the kernel's attribute policies.
use lvs_ipvs::wire::{self, Op};
use lvs_ipvs::{Daemon, DaemonState, Destination, Forward, Protocol, Service, ServiceKey, Timeouts};

/// One attribute: u16 length (header + value), u16 type, value, padded to 4.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    v.extend(kind.to_ne_bytes());
    v.extend(value);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn u16n(v: u16) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn u32n(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn addr16(o: &[u8]) -> Vec<u8> {
    let mut a = o.to_vec();
    a.resize(16, 0);
    a
}

/// Whole datagram: nlmsghdr + genlmsghdr + attrs.
fn datagram(family: u16, flags: u16, seq: u32, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut v = (len as u32).to_ne_bytes().to_vec();
    v.extend(family.to_ne_bytes());
    v.extend(flags.to_ne_bytes());
    v.extend(seq.to_ne_bytes());
    v.extend(0u32.to_ne_bytes());
    v.extend([cmd, 1, 0, 0]);
    v.extend(attrs);
    v
}

fn tcp_vip() -> ServiceKey {
    ServiceKey::Addr(Protocol::Tcp, "198.18.0.100:80".parse().unwrap())
}

fn svc_key_bytes() -> Vec<u8> {
    cat(&[
        nla(1, &u16n(2)),                    // AF_INET
        nla(2, &u16n(6)),                    // IPPROTO_TCP
        nla(3, &addr16(&[198, 18, 0, 100])), // nf_inet_addr
        nla(4, &80u16.to_be_bytes()),        // port, network order
    ])
}

fn emit(op: &Op) -> Vec<u8> {
    // family 0x20, REQUEST|ACK, seq 7: what the client sends for a change.
    wire::frame(op.message(), 0x20, 0x1 | 0x4, 7)
}

#[test]
fn add_service_rr() {
    let svc = Service::new(tcp_vip(), "rr");
    let attrs = nla(
        1,
        &cat(&[
            svc_key_bytes(),
            nla(6, b"rr\0"),
            nla(7, &cat(&[u32n(0), u32n(u32::MAX)])), // struct ip_vs_flags { flags, mask }
            nla(8, &u32n(0)),
            nla(9, &[255, 255, 255, 255]),
        ]),
    );
    assert_eq!(emit(&Op::AddService(svc)), datagram(0x20, 5, 7, 1, &attrs));
}

#[test]
fn edit_service_persistent_wrr_with_netmask() {
    let mut svc = Service::new(tcp_vip(), "wrr");
    svc.timeout = 300;
    svc.netmask = 0xffff_ff00;
    let attrs = nla(
        1,
        &cat(&[
            svc_key_bytes(),
            nla(6, b"wrr\0"),
            nla(7, &cat(&[u32n(1), u32n(u32::MAX)])), // PERSISTENT follows the timeout
            nla(8, &u32n(300)),
            nla(9, &[255, 255, 255, 0]), // IPv4 netmask in network order
        ]),
    );
    assert_eq!(emit(&Op::EditService(svc)), datagram(0x20, 5, 7, 2, &attrs));
}

#[test]
fn fwmark_ipv6_service_and_delete() {
    let key = ServiceKey::Fwmark(7, true);
    let mut svc = Service::new(key, "sh");
    svc.flags.0 = lvs_ipvs::ServiceFlags::SH_PORT;
    let key_bytes = cat(&[nla(1, &u16n(10)), nla(5, &u32n(7))]);
    let attrs = nla(
        1,
        &cat(&[
            key_bytes.clone(),
            nla(6, b"sh\0"),
            nla(7, &cat(&[u32n(0x10), u32n(u32::MAX)])),
            nla(8, &u32n(0)),
            nla(9, &u32n(128)), // IPv6: a prefix length, host order
        ]),
    );
    assert_eq!(emit(&Op::AddService(svc)), datagram(0x20, 5, 7, 1, &attrs));
    assert_eq!(emit(&Op::DelService(key)), datagram(0x20, 5, 7, 3, &nla(1, &key_bytes)));
}

fn dest_bytes(weight: u32, fwd: u32) -> Vec<u8> {
    nla(
        2,
        &cat(&[
            nla(1, &addr16(&[198, 18, 0, 11])),
            nla(2, &80u16.to_be_bytes()),
            nla(11, &u16n(2)),
            nla(3, &u32n(fwd)),
            nla(4, &u32n(weight)),
            nla(5, &u32n(100)),
            nla(6, &u32n(10)),
        ]),
    )
}

#[test]
fn add_edit_delete_destination() {
    let mut d = Destination::route("198.18.0.11:80".parse().unwrap(), 2);
    d.upper_threshold = 100;
    d.lower_threshold = 10;
    let svc = nla(1, &svc_key_bytes());
    assert_eq!(
        emit(&Op::AddDest(tcp_vip(), d)),
        datagram(0x20, 5, 7, 5, &cat(&[svc.clone(), dest_bytes(2, 3)]))
    );
    d.forward = Forward::Tunnel;
    d.weight = 0;
    assert_eq!(
        emit(&Op::EditDest(tcp_vip(), d)),
        datagram(0x20, 5, 7, 6, &cat(&[svc.clone(), dest_bytes(0, 2)]))
    );
    let del =
        nla(2, &cat(&[nla(1, &addr16(&[198, 18, 0, 11])), nla(2, &80u16.to_be_bytes()), nla(11, &u16n(2))]));
    assert_eq!(emit(&Op::DelDest(tcp_vip(), d.addr)), datagram(0x20, 5, 7, 7, &cat(&[svc, del])));
}

#[test]
fn timeouts_zero_flush() {
    let t = Timeouts { tcp: 900, tcp_fin: 120, udp: 300 };
    let attrs = cat(&[nla(4, &u32n(900)), nla(5, &u32n(120)), nla(6, &u32n(300))]);
    assert_eq!(emit(&Op::SetTimeouts(t)), datagram(0x20, 5, 7, 12, &attrs));
    assert_eq!(emit(&Op::Zero(None)), datagram(0x20, 5, 7, 16, &[]));
    assert_eq!(emit(&Op::Zero(Some(tcp_vip()))), datagram(0x20, 5, 7, 16, &nla(1, &svc_key_bytes())));
    assert_eq!(emit(&Op::Flush), datagram(0x20, 5, 7, 17, &[]));
}

#[test]
fn sync_daemon_start_stop() {
    let mut d = Daemon::new(DaemonState::Master, "eth1", 9);
    d.mcast_ttl = Some(2);
    let attrs = nla(3, &cat(&[nla(1, &u32n(1)), nla(2, b"eth1\0"), nla(3, &u32n(9)), nla(8, &[2])]));
    assert_eq!(emit(&Op::StartDaemon(d)), datagram(0x20, 5, 7, 9, &attrs));
    let attrs = nla(3, &nla(1, &u32n(2)));
    assert_eq!(emit(&Op::StopDaemon(DaemonState::Backup)), datagram(0x20, 5, 7, 10, &attrs));
}

#[test]
fn queries() {
    // REQUEST|DUMP = 0x301
    assert_eq!(wire::frame(wire::get_services(), 0x20, 0x301, 1), datagram(0x20, 0x301, 1, 4, &[]));
    assert_eq!(
        wire::frame(wire::get_dests(&tcp_vip()), 0x20, 0x301, 2),
        datagram(0x20, 0x301, 2, 8, &nla(1, &svc_key_bytes()))
    );
    assert_eq!(wire::frame(wire::get_info(), 0x20, 5, 3), datagram(0x20, 5, 3, 15, &[]));
    assert_eq!(wire::frame(wire::get_config(), 0x20, 5, 4), datagram(0x20, 5, 4, 13, &[]));
    assert_eq!(wire::frame(wire::get_daemons(), 0x20, 0x301, 5), datagram(0x20, 0x301, 5, 11, &[]));
}
