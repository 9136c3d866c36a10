//! The IPVS client: one generic-netlink socket, requests batched in windows.
//!
//! Requests are pipelined: a window of up to [`WINDOW`] messages goes out in one
//! `sendmsg`, and the kernel answers each with an ACK or an error, so 10,000 rules cost
//! ~80 round trips instead of 10,000 (ipvsadm opens a socket and waits per rule). The
//! kernel handles every message of a window even when an earlier one fails, so each
//! request gets its own result. Every receive has a deadline: a stuck kernel turns into
//! [`Error::Timeout`], never a hung agent.
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_GENERIC};

use crate::error::{Error, Result};
use crate::types::{Daemon, DestinationEntry, Info, ServiceEntry, ServiceKey, Timeouts};
use crate::wire::{self, IpvsMessage, Op};

/// Requests per `sendmsg`. Each ACK costs the receive buffer a socket buffer, so the
/// window stays well below what [`RCVBUF`] holds.
pub const WINDOW: usize = 128;
const RCVBUF: usize = 4 << 20;
/// Default deadline for one kernel answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the kernel's IPVS, in the network namespace of the creating thread.
pub struct Ipvs {
    socket: TokioSocket,
    family: u16,
    seq: u32,
    timeout: Duration,
    /// Set after a timeout: late answers would confuse the next exchange.
    stale: bool,
    /// Requests sent since the connection opened.
    sent: u64,
}

impl Ipvs {
    /// Open a socket and resolve the `IPVS` family. [`Error::NoIpvs`] when it is absent.
    pub async fn connect() -> Result<Self> {
        Self::connect_with_timeout(DEFAULT_TIMEOUT).await
    }

    /// Like [`Ipvs::connect`] with a deadline for every kernel answer.
    pub async fn connect_with_timeout(timeout: Duration) -> Result<Self> {
        let socket = open()?;
        let mut me = Self { socket, family: 0, seq: 0, timeout, stale: false, sent: 0 };
        me.family = me.resolve_family().await?;
        Ok(me)
    }

    /// Requests sent to the kernel so far (each change or query is one).
    pub fn requests_sent(&self) -> u64 {
        self.sent
    }

    /// The generic-netlink family id the kernel assigned to IPVS.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    async fn resolve_family(&mut self) -> Result<u16> {
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(crate::consts::IPVS_GENL_NAME.into())],
        });
        genl.finalize();
        self.seq += 1;
        let seq = self.seq;
        let buf = wire::serialize(genl, NLM_F_REQUEST | NLM_F_ACK, seq);
        self.socket.send(&buf).await?;
        loop {
            let data = self.recv("resolve the IPVS family").await?;
            for (hdr, payload) in split::<GenlMessage<GenlCtrl>>(&data)? {
                if hdr.sequence_number != seq {
                    continue;
                }
                match payload {
                    NetlinkPayload::InnerMessage(m) => {
                        if let Some(id) = m.payload.nlas.iter().find_map(|a| match a {
                            GenlCtrlAttrs::FamilyId(id) => Some(*id),
                            _ => None,
                        }) {
                            return Ok(id);
                        }
                    }
                    NetlinkPayload::Error(e) => match e.code {
                        None => {}
                        Some(c) if -c.get() == crate::error::libc_errno::ENOENT => return Err(Error::NoIpvs),
                        Some(c) => return Err(Error::Io(std::io::Error::from_raw_os_error(-c.get()))),
                    },
                    _ => {}
                }
            }
        }
    }

    async fn recv(&mut self, what: &str) -> Result<Vec<u8>> {
        match tokio::time::timeout(self.timeout, self.socket.recv_from_full()).await {
            Ok(r) => Ok(r?.0),
            Err(_) => {
                self.stale = true;
                Err(Error::Timeout { op: what.to_owned(), timeout: self.timeout })
            }
        }
    }

    fn refresh(&mut self) -> Result<()> {
        if self.stale {
            self.socket = open()?;
            self.stale = false;
        }
        Ok(())
    }

    fn encode(&mut self, msg: IpvsMessage, flags: u16) -> (u32, Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        self.sent += 1;
        (self.seq, wire::frame(msg, self.family, flags, self.seq))
    }

    /// Apply changes in order; one result per change. A failed change does not stop the
    /// ones after it (the kernel processes each message on its own), so the caller knows
    /// exactly what was applied.
    pub async fn apply(&mut self, ops: &[Op]) -> Result<Vec<Result<()>>> {
        self.refresh()?;
        let mut results: Vec<Result<()>> = Vec::with_capacity(ops.len());
        for window in ops.chunks(WINDOW) {
            let mut buf = Vec::with_capacity(window.len() * 128);
            let first = self.seq.wrapping_add(1);
            for op in window {
                buf.extend_from_slice(&self.encode(op.message(), NLM_F_REQUEST | NLM_F_ACK).1);
            }
            self.socket.send(&buf).await?;
            let mut got: Vec<Option<Result<()>>> = (0..window.len()).map(|_| None).collect();
            let mut pending = window.len();
            while pending > 0 {
                let data = self.recv(&window[window.len() - pending].describe()).await?;
                for (hdr, payload) in split::<GenlMessage<IpvsMessage>>(&data)? {
                    let idx = hdr.sequence_number.wrapping_sub(first) as usize;
                    let Some(slot) = got.get_mut(idx).filter(|s| s.is_none()) else { continue };
                    if let NetlinkPayload::Error(e) = payload {
                        let op = &window[idx];
                        *slot = Some(match e.code {
                            None => Ok(()),
                            Some(c) => Err(Error::from_errno(-c.get(), op.message().cmd, op.describe())),
                        });
                        pending -= 1;
                    }
                }
            }
            results.extend(got.into_iter().map(|r| r.expect("every slot answered")));
        }
        Ok(results)
    }

    /// Apply one change.
    pub async fn apply_one(&mut self, op: Op) -> Result<()> {
        self.apply(std::slice::from_ref(&op)).await?.pop().expect("one result")
    }

    /// Send a request and collect the messages of its answer (a dump or a single reply).
    async fn query(&mut self, msg: IpvsMessage, dump: bool, what: &str) -> Result<Vec<IpvsMessage>> {
        Ok(self.query_raw(msg, dump, what).await?.into_iter().map(|(m, _)| m).collect())
    }

    /// Like `query`, also returning each reply message's bytes (netlink header included).
    /// Used to capture real kernel replies as test fixtures.
    pub async fn query_raw(
        &mut self,
        msg: IpvsMessage,
        dump: bool,
        what: &str,
    ) -> Result<Vec<(IpvsMessage, Vec<u8>)>> {
        self.refresh()?;
        let cmd = msg.cmd;
        let flags = if dump { NLM_F_REQUEST | NLM_F_DUMP } else { NLM_F_REQUEST | NLM_F_ACK };
        let (seq, buf) = self.encode(msg, flags);
        self.socket.send(&buf).await?;
        let mut out = Vec::new();
        loop {
            let data = self.recv(what).await?;
            for ((hdr, payload), raw) in
                split::<GenlMessage<IpvsMessage>>(&data)?.into_iter().zip(frames(&data))
            {
                if hdr.sequence_number != seq {
                    continue;
                }
                match payload {
                    NetlinkPayload::InnerMessage(m) => out.push((m.payload, raw.to_vec())),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(Error::from_errno(-c.get(), cmd, what.to_owned())),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Version and connection table size.
    pub async fn info(&mut self) -> Result<Info> {
        let r = self.query(wire::get_info(), false, "get IPVS info").await?;
        let m = r.first().ok_or_else(|| Error::Decode("empty GET_INFO reply".into()))?;
        wire::decode_info(m).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Every virtual service with its counters.
    pub async fn services(&mut self) -> Result<Vec<ServiceEntry>> {
        let r = self.query(wire::get_services(), true, "list services").await?;
        r.iter().map(|m| wire::decode_service(m).map_err(|e| Error::Decode(e.to_string()))).collect()
    }

    /// One virtual service; [`Error::NoService`] when absent.
    pub async fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry> {
        let what = format!("get service {key}");
        let r = self.query(wire::get_service(key), false, &what).await?;
        let Some(m) = r.first() else { return Err(Error::NoService { op: what }) };
        wire::decode_service(m).map_err(|e| Error::Decode(e.to_string()))
    }

    /// The destinations of a service, with connections and counters.
    pub async fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<DestinationEntry>> {
        let what = format!("list destinations of {key}");
        let r = self.query(wire::get_dests(key), true, &what).await?;
        r.iter()
            .map(|m| wire::decode_dest(m, key.is_ipv6()).map_err(|e| Error::Decode(e.to_string())))
            .collect()
    }

    /// Connection timeouts.
    pub async fn timeouts(&mut self) -> Result<Timeouts> {
        let r = self.query(wire::get_config(), false, "get timeouts").await?;
        let m = r.first().ok_or_else(|| Error::Decode("empty GET_CONFIG reply".into()))?;
        wire::decode_timeouts(m).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Running connection-sync daemons.
    pub async fn daemons(&mut self) -> Result<Vec<Daemon>> {
        let r = self.query(wire::get_daemons(), true, "list sync daemons").await?;
        r.iter().map(|m| wire::decode_daemon(m).map_err(|e| Error::Decode(e.to_string()))).collect()
    }
}

fn open() -> Result<TokioSocket> {
    let mut socket = TokioSocket::new(NETLINK_GENERIC)?;
    socket.socket_mut().bind(&SocketAddr::new(0, 0))?;
    socket.socket_mut().set_rx_buf_sz(RCVBUF)?;
    // Ask the kernel to leave the request out of error replies: smaller ACKs.
    let _ = socket.socket_mut().set_cap_ack(true);
    Ok(socket)
}

/// The byte ranges of the netlink messages in a datagram (already validated by `split`).
fn frames(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= data.len() {
        let len = u32::from_ne_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > data.len() {
            break;
        }
        out.push(&data[off..off + len]);
        off += (len + 3) & !3;
    }
    out
}

/// Split one datagram into its netlink messages.
fn split<T>(data: &[u8]) -> Result<Vec<(NetlinkHeader, NetlinkPayload<T>)>>
where
    T: NetlinkDeserializable + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= data.len() {
        let len = u32::from_ne_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > data.len() {
            return Err(Error::Decode(format!("truncated netlink message ({len} bytes at {off})")));
        }
        let msg = NetlinkMessage::<T>::deserialize(&data[off..off + len])
            .map_err(|e| Error::Decode(e.to_string()))?;
        out.push(msg.into_parts());
        off += (len + 3) & !3;
    }
    Ok(out)
}
