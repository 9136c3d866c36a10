//! Encoding requests and decoding replies of the IPVS generic-netlink family.
//!
//! Attribute layouts follow the kernel (`net/netfilter/ipvs/ip_vs_ctl.c`): addresses are
//! 16-byte `nf_inet_addr`, ports are big-endian, an IPv4 netmask is big-endian while an
//! IPv6 one is a plain prefix length, strings are NUL-terminated, and nested attributes
//! carry no `NLA_F_NESTED` flag (the kernel's own replies do not either).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{DecodeError, Emitable, Nla, NlasIterator, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::consts::*;
use crate::types::{
    Daemon, DaemonState, Destination, DestinationEntry, Forward, Info, Protocol, Service, ServiceEntry,
    ServiceFlags, ServiceKey, Stats, Timeouts,
};

/// One netlink attribute to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// `u8`.
    U8(u16, u8),
    /// `u16`, host order.
    U16(u16, u16),
    /// `u16`, network order.
    Be16(u16, u16),
    /// `u32`, host order.
    U32(u16, u32),
    /// Raw bytes.
    Bytes(u16, Vec<u8>),
    /// NUL-terminated string.
    Str(u16, String),
    /// Nested attributes.
    Nested(u16, Vec<Attr>),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::U8(..) => 1,
            Attr::U16(..) | Attr::Be16(..) => 2,
            Attr::U32(..) => 4,
            Attr::Bytes(_, b) => b.len(),
            Attr::Str(_, s) => s.len() + 1,
            Attr::Nested(_, v) => v.iter().map(Emitable::buffer_len).sum(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::U8(k, _)
            | Attr::U16(k, _)
            | Attr::Be16(k, _)
            | Attr::U32(k, _)
            | Attr::Bytes(k, _)
            | Attr::Str(k, _)
            | Attr::Nested(k, _) => *k,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Attr::U8(_, v) => buf[0] = *v,
            Attr::U16(_, v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            Attr::Be16(_, v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            Attr::U32(_, v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Attr::Bytes(_, b) => buf[..b.len()].copy_from_slice(b),
            Attr::Str(_, s) => {
                buf[..s.len()].copy_from_slice(s.as_bytes());
                buf[s.len()] = 0;
            }
            Attr::Nested(_, v) => v.as_slice().emit(buf),
        }
    }
}

/// A message of the IPVS family: a command and its attributes.
///
/// Replies are parsed into [`Attr::Bytes`] at the top level; the `decode_*` functions
/// interpret them, because the meaning of an attribute number depends on the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// `IPVS_CMD_*`.
    pub cmd: u8,
    /// The message's attributes in wire order, nested ones decoded.
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buf: &mut [u8]) {
        self.attrs.as_slice().emit(buf)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = raw_attrs(buf)?.into_iter().map(|(k, v)| Attr::Bytes(k, v.to_vec())).collect();
        Ok(Self { cmd: header.cmd, attrs })
    }
}

fn raw_attrs(buf: &[u8]) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    NlasIterator::new(buf).map(|nla| nla.map(|n| (n.kind() & NLA_TYPE_MASK, n.into_inner_value()))).collect()
}

const NLA_TYPE_MASK: u16 = netlink_packet_core::NLA_TYPE_MASK;

trait IntoInnerValue<'a> {
    fn into_inner_value(self) -> &'a [u8];
}

impl<'a> IntoInnerValue<'a> for netlink_packet_core::NlaBuffer<&'a [u8]> {
    fn into_inner_value(self) -> &'a [u8] {
        let len = self.value_length();
        &self.into_inner()[netlink_packet_core::NLA_HEADER_SIZE..netlink_packet_core::NLA_HEADER_SIZE + len]
    }
}

// ---------------------------------------------------------------- requests

/// A whole request datagram: `nlmsghdr` (type = the resolved family id), `genlmsghdr`
/// and the attributes. The port id is left 0 for the kernel to fill in.
pub fn frame(msg: IpvsMessage, family: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut genl = netlink_packet_generic::GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family);
    serialize(genl, flags, seq)
}

/// One netlink message around `inner` as bytes: `flags` and `seq` in the header, the
/// length filled in. The client only sends what this module encodes.
pub(crate) fn serialize<T>(inner: T, flags: u16, seq: u32) -> Vec<u8>
where
    T: netlink_packet_core::NetlinkSerializable + std::fmt::Debug,
{
    let mut header = netlink_packet_core::NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = netlink_packet_core::NetlinkMessage::new(
        header,
        netlink_packet_core::NetlinkPayload::InnerMessage(inner),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

fn inet_addr(ip: IpAddr) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    match ip {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b.copy_from_slice(&v6.octets()),
    }
    b
}

fn af(v6: bool) -> u16 {
    if v6 { AF_INET6 } else { AF_INET }
}

/// The attributes that identify a service.
pub fn service_key_attrs(key: &ServiceKey) -> Vec<Attr> {
    match key {
        ServiceKey::Addr(proto, addr) => vec![
            Attr::U16(SVC_ATTR_AF, af(addr.is_ipv6())),
            Attr::U16(SVC_ATTR_PROTOCOL, proto.number()),
            Attr::Bytes(SVC_ATTR_ADDR, inet_addr(addr.ip())),
            Attr::Be16(SVC_ATTR_PORT, addr.port()),
        ],
        ServiceKey::Fwmark(mark, v6) => {
            vec![Attr::U16(SVC_ATTR_AF, af(*v6)), Attr::U32(SVC_ATTR_FWMARK, *mark)]
        }
    }
}

/// Every attribute of a service, as add and edit need them (the kernel requires
/// scheduler, flags, timeout and netmask together).
pub fn service_attrs(s: &Service) -> Vec<Attr> {
    let mut a = service_key_attrs(&s.key);
    a.push(Attr::Str(SVC_ATTR_SCHED_NAME, s.scheduler.clone()));
    if let Some(pe) = &s.pe_name {
        a.push(Attr::Str(SVC_ATTR_PE_NAME, pe.clone()));
    }
    let mut flags = s.flags.settable();
    if s.timeout > 0 {
        flags |= SVC_F_PERSISTENT;
    }
    let mut fl = Vec::with_capacity(8);
    fl.extend_from_slice(&flags.to_ne_bytes());
    fl.extend_from_slice(&u32::MAX.to_ne_bytes());
    a.push(Attr::Bytes(SVC_ATTR_FLAGS, fl));
    a.push(Attr::U32(SVC_ATTR_TIMEOUT, s.timeout));
    let netmask = if s.key.is_ipv6() { s.netmask.to_ne_bytes() } else { s.netmask.to_be_bytes() };
    a.push(Attr::Bytes(SVC_ATTR_NETMASK, netmask.to_vec()));
    a
}

fn dest_key_attrs(addr: SocketAddr) -> Vec<Attr> {
    vec![
        Attr::Bytes(DEST_ATTR_ADDR, inet_addr(addr.ip())),
        Attr::Be16(DEST_ATTR_PORT, addr.port()),
        Attr::U16(DEST_ATTR_ADDR_FAMILY, af(addr.is_ipv6())),
    ]
}

fn dest_attrs(d: &Destination) -> Vec<Attr> {
    let mut a = dest_key_attrs(d.addr);
    a.push(Attr::U32(DEST_ATTR_FWD_METHOD, d.forward.flag()));
    a.push(Attr::U32(DEST_ATTR_WEIGHT, d.weight));
    a.push(Attr::U32(DEST_ATTR_U_THRESH, d.upper_threshold));
    a.push(Attr::U32(DEST_ATTR_L_THRESH, d.lower_threshold));
    a
}

/// One change to the IPVS table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `ipvsadm -A`.
    AddService(Service),
    /// `ipvsadm -E`.
    EditService(Service),
    /// `ipvsadm -D`.
    DelService(ServiceKey),
    /// `ipvsadm -a`.
    AddDest(ServiceKey, Destination),
    /// `ipvsadm -e`.
    EditDest(ServiceKey, Destination),
    /// `ipvsadm -d`.
    DelDest(ServiceKey, SocketAddr),
    /// `ipvsadm --set`.
    SetTimeouts(Timeouts),
    /// `ipvsadm -Z` (one service or all).
    Zero(Option<ServiceKey>),
    /// `ipvsadm -C`.
    Flush,
    /// `ipvsadm --start-daemon`.
    StartDaemon(Daemon),
    /// `ipvsadm --stop-daemon`.
    StopDaemon(DaemonState),
}

impl Op {
    /// The request message.
    pub fn message(&self) -> IpvsMessage {
        let svc = |attrs| Attr::Nested(CMD_ATTR_SERVICE, attrs);
        let (cmd, attrs) = match self {
            Op::AddService(s) => (CMD_NEW_SERVICE, vec![svc(service_attrs(s))]),
            Op::EditService(s) => (CMD_SET_SERVICE, vec![svc(service_attrs(s))]),
            Op::DelService(k) => (CMD_DEL_SERVICE, vec![svc(service_key_attrs(k))]),
            Op::AddDest(k, d) => {
                (CMD_NEW_DEST, vec![svc(service_key_attrs(k)), Attr::Nested(CMD_ATTR_DEST, dest_attrs(d))])
            }
            Op::EditDest(k, d) => {
                (CMD_SET_DEST, vec![svc(service_key_attrs(k)), Attr::Nested(CMD_ATTR_DEST, dest_attrs(d))])
            }
            Op::DelDest(k, a) => (
                CMD_DEL_DEST,
                vec![svc(service_key_attrs(k)), Attr::Nested(CMD_ATTR_DEST, dest_key_attrs(*a))],
            ),
            Op::SetTimeouts(t) => (
                CMD_SET_CONFIG,
                vec![
                    Attr::U32(CMD_ATTR_TIMEOUT_TCP, t.tcp),
                    Attr::U32(CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin),
                    Attr::U32(CMD_ATTR_TIMEOUT_UDP, t.udp),
                ],
            ),
            Op::Zero(None) => (CMD_ZERO, vec![]),
            Op::Zero(Some(k)) => (CMD_ZERO, vec![svc(service_key_attrs(k))]),
            Op::Flush => (CMD_FLUSH, vec![]),
            Op::StartDaemon(d) => (CMD_NEW_DAEMON, vec![Attr::Nested(CMD_ATTR_DAEMON, daemon_attrs(d))]),
            Op::StopDaemon(s) => (
                CMD_DEL_DAEMON,
                vec![Attr::Nested(CMD_ATTR_DAEMON, vec![Attr::U32(DAEMON_ATTR_STATE, state_value(*s))])],
            ),
        };
        IpvsMessage { cmd, attrs }
    }

    /// A short description for errors and logs.
    pub fn describe(&self) -> String {
        match self {
            Op::AddService(s) => format!("add service {}", s.key),
            Op::EditService(s) => format!("edit service {}", s.key),
            Op::DelService(k) => format!("delete service {k}"),
            Op::AddDest(k, d) => format!("add destination {} to {k}", d.addr),
            Op::EditDest(k, d) => format!("edit destination {} of {k}", d.addr),
            Op::DelDest(k, a) => format!("delete destination {a} from {k}"),
            Op::SetTimeouts(_) => "set timeouts".into(),
            Op::Zero(Some(k)) => format!("zero counters of {k}"),
            Op::Zero(None) => "zero all counters".into(),
            Op::Flush => "flush the IPVS table".into(),
            Op::StartDaemon(d) => format!("start sync daemon on {}", d.mcast_ifn),
            Op::StopDaemon(s) => format!("stop {s:?} sync daemon"),
        }
    }
}

fn state_value(s: DaemonState) -> u32 {
    match s {
        DaemonState::Master => STATE_MASTER,
        DaemonState::Backup => STATE_BACKUP,
    }
}

fn daemon_attrs(d: &Daemon) -> Vec<Attr> {
    let mut a = vec![
        Attr::U32(DAEMON_ATTR_STATE, state_value(d.state)),
        Attr::Str(DAEMON_ATTR_MCAST_IFN, d.mcast_ifn.clone()),
        Attr::U32(DAEMON_ATTR_SYNC_ID, d.sync_id),
    ];
    if let Some(m) = d.sync_maxlen {
        a.push(Attr::U16(DAEMON_ATTR_SYNC_MAXLEN, m));
    }
    match d.mcast_group {
        Some(IpAddr::V4(g)) => a.push(Attr::Bytes(DAEMON_ATTR_MCAST_GROUP, g.octets().to_vec())),
        Some(IpAddr::V6(g)) => a.push(Attr::Bytes(DAEMON_ATTR_MCAST_GROUP6, g.octets().to_vec())),
        None => {}
    }
    if let Some(p) = d.mcast_port {
        a.push(Attr::U16(DAEMON_ATTR_MCAST_PORT, p));
    }
    if let Some(t) = d.mcast_ttl {
        a.push(Attr::U8(DAEMON_ATTR_MCAST_TTL, t));
    }
    a
}

/// Dump requests (`NLM_F_DUMP`) and plain gets.
pub fn get_services() -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_SERVICE, attrs: vec![] }
}

/// Get one service.
pub fn get_service(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_SERVICE, attrs: vec![Attr::Nested(CMD_ATTR_SERVICE, service_key_attrs(key))] }
}

/// Dump the destinations of a service.
pub fn get_dests(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_DEST, attrs: vec![Attr::Nested(CMD_ATTR_SERVICE, service_key_attrs(key))] }
}

/// Ask for version and table size.
pub fn get_info() -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_INFO, attrs: vec![] }
}

/// Ask for the timeouts.
pub fn get_config() -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_CONFIG, attrs: vec![] }
}

/// Dump the sync daemons.
pub fn get_daemons() -> IpvsMessage {
    IpvsMessage { cmd: CMD_GET_DAEMON, attrs: vec![] }
}

// ---------------------------------------------------------------- replies

fn bad(what: &str) -> DecodeError {
    DecodeError::from(format!("IPVS reply: {what}"))
}

fn top(m: &IpvsMessage, kind: u16) -> Option<&[u8]> {
    m.attrs.iter().find_map(|a| match a {
        Attr::Bytes(k, v) if *k == kind => Some(v.as_slice()),
        _ => None,
    })
}

fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn u16_ne(b: Option<&[u8]>) -> Option<u16> {
    b.and_then(|b| b.get(..2)).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

fn u16_be(b: Option<&[u8]>) -> Option<u16> {
    b.and_then(|b| b.get(..2)).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn u32_ne(b: Option<&[u8]>) -> Option<u32> {
    b.and_then(|b| b.get(..4)).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// A counter: 8 bytes in STATS64 (and for byte counts in STATS), else 4.
fn counter(b: &[u8]) -> u64 {
    match b.len() {
        8.. => u64::from_ne_bytes(b[..8].try_into().expect("8 bytes")),
        4.. => u64::from(u32::from_ne_bytes(b[..4].try_into().expect("4 bytes"))),
        _ => 0,
    }
}

fn ip_of(b: Option<&[u8]>, v6: bool) -> Option<IpAddr> {
    let b = b?;
    if v6 {
        let o: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    } else {
        let o: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(o)))
    }
}

fn nul_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Decode a nested statistics attribute (`*_ATTR_STATS` or `*_ATTR_STATS64`).
pub fn decode_stats(b: &[u8]) -> Result<Stats, DecodeError> {
    let mut s = Stats::default();
    for (k, v) in raw_attrs(b)? {
        let n = counter(v);
        match k {
            STATS_ATTR_CONNS => s.conns = n,
            STATS_ATTR_INPKTS => s.inpkts = n,
            STATS_ATTR_OUTPKTS => s.outpkts = n,
            STATS_ATTR_INBYTES => s.inbytes = n,
            STATS_ATTR_OUTBYTES => s.outbytes = n,
            STATS_ATTR_CPS => s.cps = n,
            STATS_ATTR_INPPS => s.inpps = n,
            STATS_ATTR_OUTPPS => s.outpps = n,
            STATS_ATTR_INBPS => s.inbps = n,
            STATS_ATTR_OUTBPS => s.outbps = n,
            _ => {}
        }
    }
    Ok(s)
}

fn stats_of(attrs: &[(u16, &[u8])], stats64: u16, stats32: u16) -> Result<Stats, DecodeError> {
    match (find(attrs, stats64), find(attrs, stats32)) {
        (Some(b), _) | (None, Some(b)) => decode_stats(b),
        (None, None) => Ok(Stats::default()),
    }
}

/// Decode the nested service attribute of a reply.
pub fn decode_service(m: &IpvsMessage) -> Result<ServiceEntry, DecodeError> {
    let nested = top(m, CMD_ATTR_SERVICE).ok_or_else(|| bad("no service attribute"))?;
    let a = raw_attrs(nested)?;
    let v6 = u16_ne(find(&a, SVC_ATTR_AF)).ok_or_else(|| bad("service without family"))? == AF_INET6;
    let key = match u32_ne(find(&a, SVC_ATTR_FWMARK)).filter(|m| *m != 0) {
        Some(mark) => ServiceKey::Fwmark(mark, v6),
        None => {
            let proto = u16_ne(find(&a, SVC_ATTR_PROTOCOL)).and_then(Protocol::from_number);
            let ip = ip_of(find(&a, SVC_ATTR_ADDR), v6);
            let port = u16_be(find(&a, SVC_ATTR_PORT));
            match (proto, ip, port) {
                (Some(p), Some(ip), Some(port)) => ServiceKey::Addr(p, SocketAddr::new(ip, port)),
                _ => return Err(bad("service without protocol, address or port")),
            }
        }
    };
    let flags = find(&a, SVC_ATTR_FLAGS).and_then(|b| u32_ne(Some(b))).unwrap_or(0);
    let netmask = match find(&a, SVC_ATTR_NETMASK).and_then(|b| b.get(..4)) {
        Some(b) if v6 => u32::from_ne_bytes(b.try_into().expect("4 bytes")),
        Some(b) => u32::from_be_bytes(b.try_into().expect("4 bytes")),
        None => 0,
    };
    let service = Service {
        key,
        scheduler: find(&a, SVC_ATTR_SCHED_NAME).map(nul_str).unwrap_or_default(),
        flags: ServiceFlags(flags),
        timeout: u32_ne(find(&a, SVC_ATTR_TIMEOUT)).unwrap_or(0),
        netmask,
        pe_name: find(&a, SVC_ATTR_PE_NAME).map(nul_str).filter(|s| !s.is_empty()),
    };
    Ok(ServiceEntry { service, stats: stats_of(&a, SVC_ATTR_STATS64, SVC_ATTR_STATS)? })
}

/// Decode the nested destination attribute of a reply; `v6` is the service's family,
/// used when the kernel does not say the destination's own.
pub fn decode_dest(m: &IpvsMessage, service_v6: bool) -> Result<DestinationEntry, DecodeError> {
    let nested = top(m, CMD_ATTR_DEST).ok_or_else(|| bad("no destination attribute"))?;
    let a = raw_attrs(nested)?;
    let v6 = u16_ne(find(&a, DEST_ATTR_ADDR_FAMILY)).map_or(service_v6, |f| f == AF_INET6);
    let ip = ip_of(find(&a, DEST_ATTR_ADDR), v6).ok_or_else(|| bad("destination without address"))?;
    let port = u16_be(find(&a, DEST_ATTR_PORT)).ok_or_else(|| bad("destination without port"))?;
    let u = |k| u32_ne(find(&a, k)).unwrap_or(0);
    Ok(DestinationEntry {
        dest: Destination {
            addr: SocketAddr::new(ip, port),
            forward: Forward::from_flags(u(DEST_ATTR_FWD_METHOD)),
            weight: u(DEST_ATTR_WEIGHT),
            upper_threshold: u(DEST_ATTR_U_THRESH),
            lower_threshold: u(DEST_ATTR_L_THRESH),
        },
        active_conns: u(DEST_ATTR_ACTIVE_CONNS),
        inactive_conns: u(DEST_ATTR_INACT_CONNS),
        persist_conns: u(DEST_ATTR_PERSIST_CONNS),
        stats: stats_of(&a, DEST_ATTR_STATS64, DEST_ATTR_STATS)?,
    })
}

/// Decode a GET_INFO reply.
pub fn decode_info(m: &IpvsMessage) -> Result<Info, DecodeError> {
    Ok(Info {
        version: u32_ne(top(m, INFO_ATTR_VERSION)).ok_or_else(|| bad("info without version"))?,
        conn_tab_size: u32_ne(top(m, INFO_ATTR_CONN_TAB_SIZE)).unwrap_or(0),
    })
}

/// Decode a GET_CONFIG reply.
pub fn decode_timeouts(m: &IpvsMessage) -> Result<Timeouts, DecodeError> {
    Ok(Timeouts {
        tcp: u32_ne(top(m, CMD_ATTR_TIMEOUT_TCP)).unwrap_or(0),
        tcp_fin: u32_ne(top(m, CMD_ATTR_TIMEOUT_TCP_FIN)).unwrap_or(0),
        udp: u32_ne(top(m, CMD_ATTR_TIMEOUT_UDP)).unwrap_or(0),
    })
}

/// Decode one daemon of a GET_DAEMON dump.
pub fn decode_daemon(m: &IpvsMessage) -> Result<Daemon, DecodeError> {
    let nested = top(m, CMD_ATTR_DAEMON).ok_or_else(|| bad("no daemon attribute"))?;
    let a = raw_attrs(nested)?;
    let state = match u32_ne(find(&a, DAEMON_ATTR_STATE)) {
        Some(STATE_MASTER) => DaemonState::Master,
        Some(STATE_BACKUP) => DaemonState::Backup,
        _ => return Err(bad("daemon with unknown state")),
    };
    let group = ip_of(find(&a, DAEMON_ATTR_MCAST_GROUP), false)
        .or_else(|| ip_of(find(&a, DAEMON_ATTR_MCAST_GROUP6), true));
    Ok(Daemon {
        state,
        mcast_ifn: find(&a, DAEMON_ATTR_MCAST_IFN).map(nul_str).unwrap_or_default(),
        sync_id: u32_ne(find(&a, DAEMON_ATTR_SYNC_ID)).unwrap_or(0),
        sync_maxlen: u16_ne(find(&a, DAEMON_ATTR_SYNC_MAXLEN)),
        mcast_group: group,
        mcast_port: u16_ne(find(&a, DAEMON_ATTR_MCAST_PORT)),
        mcast_ttl: find(&a, DAEMON_ATTR_MCAST_TTL).and_then(|b| b.first().copied()),
    })
}
