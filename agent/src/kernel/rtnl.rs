//! One rtnetlink handle with what every call through it needs: a deadline, dump retries when the kernel interrupts a dump, and a new connection when the old one died.
use crate::kernel::system::{SysCause, SysResult, SystemError};
use futures::StreamExt;
use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::Handle;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::{debug, warn};

pub(crate) const MAIN_TABLE: u8 = 254;

/// Longest any one kernel call may take. A netlink reply normally arrives in microseconds;
/// past this the socket is presumed wedged and is replaced, so one hung call cannot hold
/// the reconcile lock (and every apply, drain and quarantine behind it) for ever.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// How often an interrupted dump is tried before it is reported as a failure.
pub(crate) const DUMP_TRIES: u32 = 8;

/// Why one dump attempt did not produce a consistent answer.
pub(crate) enum DumpError {
    /// EBUSY/EINTR or `NLM_F_DUMP_INTR`: the kernel asks us to try again.
    Interrupted(String),
    /// No answer within [`CALL_DEADLINE`].
    Hung,
    /// A real refusal, with the kernel's errno inside.
    Failed(rtnetlink::Error),
}

/// The rtnetlink socket with the two rules the kernel imposes on its users: one dump in
/// flight per socket (a second one is refused with EBUSY: the agent's observers — apply,
/// heal, status, the health flusher, facts — run concurrently), and a dump that raced a
/// change (`NLM_F_DUMP_INTR`, EINTR) is retried rather than returned half-done.
pub(crate) struct Rtnl {
    handle: std::sync::Mutex<Handle>,
    dump_lock: Mutex<()>,
}

impl Rtnl {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self { handle: std::sync::Mutex::new(connect()?), dump_lock: Mutex::new(()) })
    }

    pub(crate) fn handle(&self) -> Handle {
        self.handle.lock().expect("rtnetlink handle").clone()
    }

    /// Replace a socket that stopped answering; later calls use the new one.
    pub(crate) fn reconnect(&self, why: &str) {
        match connect() {
            Ok(h) => {
                warn!(why, "rtnetlink socket replaced");
                *self.handle.lock().expect("rtnetlink handle") = h;
            }
            Err(e) => warn!(why, error = %e, "rtnetlink socket could not be replaced"),
        }
    }

    /// Dump `msg`'s kind completely, one dump at a time, retrying interruptions.
    pub(crate) async fn dump(
        &self,
        what: &str,
        msg: RouteNetlinkMessage,
    ) -> SysResult<Vec<RouteNetlinkMessage>> {
        let _one_at_a_time = self.dump_lock.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let why = match self.dump_once(msg.clone()).await {
                Ok(v) => return Ok(v),
                Err(DumpError::Failed(e)) => return Err(SystemError::new(what, e)),
                Err(DumpError::Hung) => {
                    self.reconnect(what);
                    format!("no answer within {CALL_DEADLINE:?}")
                }
                Err(DumpError::Interrupted(why)) => why,
            };
            if attempt >= DUMP_TRIES {
                return Err(SystemError::new(what, format!("{why} ({attempt} tries)")));
            }
            debug!(what, attempt, why, "dump retried");
            tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
        }
    }

    pub(crate) async fn dump_once(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, DumpError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut stream = self.handle().request(req).map_err(DumpError::Failed)?;
        let collect = async {
            let mut out = Vec::new();
            let mut interrupted = false;
            while let Some(m) = stream.next().await {
                interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                match m.payload {
                    NetlinkPayload::InnerMessage(x) => out.push(x),
                    NetlinkPayload::Error(e) if [-libc::EBUSY, -libc::EINTR].contains(&e.raw_code()) => {
                        return Err(DumpError::Interrupted(e.to_io().to_string()));
                    }
                    NetlinkPayload::Error(e) => {
                        return Err(DumpError::Failed(rtnetlink::Error::NetlinkError(e)));
                    }
                    NetlinkPayload::Done(_) => break,
                    _ => {}
                }
            }
            if interrupted {
                return Err(DumpError::Interrupted("dump interrupted by a concurrent change".into()));
            }
            Ok(out)
        };
        tokio::time::timeout(CALL_DEADLINE, collect).await.map_err(|_| DumpError::Hung)?
    }

    /// Run one change request with the deadline; a hung socket is replaced.
    pub(crate) async fn change<F>(&self, op: String, f: F) -> SysResult<()>
    where
        F: Future<Output = Result<(), rtnetlink::Error>>,
    {
        match tokio::time::timeout(CALL_DEADLINE, f).await {
            Ok(r) => r.map_err(|e| SystemError::new(op, e)),
            Err(_) => {
                self.reconnect(&op);
                Err(SystemError::new(op, SysCause::TimedOut(CALL_DEADLINE)))
            }
        }
    }
}

pub(crate) fn connect() -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}
