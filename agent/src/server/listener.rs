//! The agent's listening socket: TCP accept, the mutual-TLS handshake and the caps that
//! keep a flood of connections from growing the agent's memory or crowding out `lvsctl`.
//!
//! Anyone who can reach the agent's port can open connections before proving anything,
//! so those are the cheap ones to drop: at most [`Limits::max_pending`] handshakes run at
//! once, and when one more arrives the *oldest* pending one is closed (a peer that sends
//! nothing is the one that has waited longest; `lvsctl` finishes its handshake in
//! milliseconds). A handshake that has not finished within [`Limits::handshake_timeout`]
//! is closed too. Authenticated connections are capped at [`Limits::max_connections`];
//! one more is closed right after its handshake. Both caps are counted here, not by the
//! kernel's file-descriptor limit (the unit also sets `LimitNOFILE`).
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use lvs_proto::identity::Role;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tracing::{debug, warn};

use crate::server::revoked::Revoked;

/// Largest request message a caller may send (a spec of thousands of services fits).
pub const MAX_MESSAGE: usize = 4 << 20;
/// Largest reply the agent encodes (an IPVS table with its connections).
pub const MAX_REPLY: usize = 64 << 20;
/// Largest header block a peer may send.
pub const MAX_HEADERS: u32 = 16 << 10;
/// How long a connection may live before it is asked to go.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// How long it may then take to finish what it streams.
pub const MAX_AGE_GRACE: Duration = Duration::from_secs(600);

/// The caps of the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Handshakes in progress at once; beyond, the oldest is closed.
    pub max_pending: usize,
    /// Authenticated connections at once; beyond, a new one is closed.
    pub max_connections: usize,
    /// Connections one caller (one certificate's name) may hold at once.
    pub per_caller: usize,
    /// Slots only admins may take: viewers (and, on the enrolment door, anyone) share the
    /// rest, so no number of viewer connections keeps an admin out.
    pub admin_reserve: usize,
    /// Longest a peer may take to finish its TLS handshake.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending: 128,
            max_connections: 64,
            per_caller: 16,
            admin_reserve: 16,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// Who may come through the door once the handshake is done.
#[derive(Clone)]
pub enum Gate {
    /// Anyone who finished a handshake (the enrolment door: no client certificates),
    /// counted per source address.
    Anyone,
    /// Callers whose client certificate names an admin or a viewer and is not revoked
    /// ([`crate::server::authz::identify`]); a connection whose serial is revoked later is closed
    /// when the list changes.
    Callers(Arc<Revoked>),
}

/// The connections the door let in: counted per caller, closable by serial.
#[derive(Default)]
struct Held {
    next: u64,
    conns: HashMap<u64, Holder>,
}

struct Holder {
    caller: String,
    serial: String,
    admin: bool,
    /// Revoked: let in only to be told so (every call PERMISSION_DENIED with the reason),
    /// in a lane of its own that takes no caller's slot, for [`REFUSAL_LIFE`].
    revoked: bool,
    fd: RawFd,
}

/// Connections of revoked certificates let in at once, to hear why they are refused.
const REFUSAL_LANE: usize = 8;
/// How long such a connection lives.
const REFUSAL_LIFE: Duration = Duration::from_secs(2);

type Registry = Arc<Mutex<Held>>;

impl Held {
    /// A slot for `who`, or why there is none.
    fn admit(&mut self, who: Holder, limits: &Limits) -> Result<u64, String> {
        if who.revoked {
            let lane = self.conns.values().filter(|h| h.revoked).count();
            if lane >= REFUSAL_LANE {
                return Err(format!("{} is revoked (and {lane} revoked connections are open)", who.caller));
            }
            let id = self.next;
            self.next += 1;
            self.conns.insert(id, who);
            return Ok(id);
        }
        let total = self.conns.values().filter(|h| !h.revoked).count();
        if total >= limits.max_connections {
            return Err(format!("{total} connections already (at most {})", limits.max_connections));
        }
        let mine = self.conns.values().filter(|h| h.caller == who.caller && !h.revoked).count();
        if mine >= limits.per_caller {
            return Err(format!(
                "{} holds {mine} connections already (at most {})",
                who.caller, limits.per_caller
            ));
        }
        let others = self.conns.values().filter(|h| !h.admin && !h.revoked).count();
        let shared = limits.max_connections.saturating_sub(limits.admin_reserve);
        if !who.admin && others >= shared {
            return Err(format!(
                "non-admins hold {others} connections already (the last {} are kept for admins)",
                limits.admin_reserve
            ));
        }
        let id = self.next;
        self.next += 1;
        self.conns.insert(id, who);
        Ok(id)
    }

    /// Close (shut down both ways) every connection whose serial `revoked` now holds: its
    /// requests and streams (an `Events` feed) end at once.
    fn close_revoked(&self, revoked: &Revoked) -> usize {
        let mut n = 0;
        for h in self.conns.values().filter(|h| !h.revoked && revoked.contains(&h.serial)) {
            // SAFETY: `fd` is the socket of a connection still registered: it is removed
            // from the registry (under this lock) before its socket is closed, so the
            // descriptor cannot have been reused for anything else.
            unsafe { libc::shutdown(h.fd, libc::SHUT_RDWR) };
            warn!(caller = %h.caller, serial = %h.serial, "revoked: connection closed");
            n += 1;
        }
        n
    }
}

/// A slot in the registry, given back when dropped.
struct Ticket {
    id: u64,
    registry: Registry,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.lock().expect("door registry").conns.remove(&self.id);
    }
}

/// One authenticated connection, holding its slot until it closes.
pub struct Conn {
    // Dropped before `inner`: the slot (and its descriptor in the registry) goes before the
    // socket is closed.
    _ticket: Ticket,
    inner: tokio_rustls::server::TlsStream<TcpStream>,
}

impl Connected for Conn {
    // The same info tonic gives a TLS stream of its own, so `Request::peer_certs` works.
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The authenticated connections arriving on `listener`, for
/// `tonic::transport::Server::serve_with_incoming*`. The accept loop runs until the
/// stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    limits: Limits,
    gate: Gate,
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(limits.max_pending.max(1));
    let registry = Registry::default();
    if let Gate::Callers(revoked) = &gate {
        let (revoked, registry, tx) = (Arc::clone(revoked), Arc::clone(&registry), tx.clone());
        let mut changed = revoked.watch();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = changed.changed() => if r.is_err() { return },
                    () = tx.closed() => return,
                }
                registry.lock().expect("door registry").close_revoked(&revoked);
            }
        });
    }
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), limits, gate, registry, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Who holds `tls`, as the registry counts them; or why they may not come in.
fn holder(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
    peer: std::net::SocketAddr,
    gate: &Gate,
) -> Result<Holder, String> {
    let fd = tls.get_ref().0.as_raw_fd();
    match gate {
        Gate::Anyone => Ok(Holder {
            caller: peer.ip().to_string(),
            serial: String::new(),
            admin: false,
            revoked: false,
            fd,
        }),
        Gate::Callers(revoked) => {
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref());
            let (caller, serial) = crate::server::authz::caller_of(leaf)?;
            Ok(Holder {
                admin: caller.role >= Role::Admin,
                revoked: revoked.contains(&serial),
                caller: caller.to_string(),
                serial,
                fd,
            })
        }
    }
}

type Pending = Arc<Mutex<VecDeque<(u64, tokio::task::AbortHandle)>>>;

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    gate: Gate,
    registry: Registry,
    tx: mpsc::Sender<Result<Conn, std::io::Error>>,
) {
    let pending: Pending = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        let id = next_id;
        next_id += 1;
        let (acceptor, registry, gate, tx, queue) =
            (acceptor.clone(), Arc::clone(&registry), gate.clone(), tx.clone(), Arc::clone(&pending));
        // Spawn and enqueue under the lock, so a handshake that ends at once still finds
        // itself in the queue to remove.
        let mut q = pending.lock().expect("pending handshakes");
        let task = tokio::spawn(async move {
            let r = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
            queue.lock().expect("pending handshakes").retain(|(i, _)| *i != id);
            let tls = match r {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => return debug!(%peer, "TLS handshake timed out"),
            };
            // Revoked certificates and callers over their share never take a slot.
            let who = match holder(&tls, peer, &gate) {
                Ok(w) => w,
                Err(reason) => return warn!(%peer, %reason, "connection refused"),
            };
            let lane = who.revoked;
            let id = match registry.lock().expect("door registry").admit(who, &limits) {
                Ok(id) => id,
                Err(reason) => return warn!(%peer, %reason, "too many connections; closed a new one"),
            };
            if lane {
                // Closed after its short life, if it has not gone by then (checked under the
                // registry's lock, so the descriptor is still its own).
                let registry = Arc::clone(&registry);
                tokio::spawn(async move {
                    tokio::time::sleep(REFUSAL_LIFE).await;
                    if let Some(h) = registry.lock().expect("door registry").conns.get(&id) {
                        // SAFETY: registered, so not closed yet (see `close_revoked`).
                        unsafe { libc::shutdown(h.fd, libc::SHUT_RDWR) };
                    }
                });
            }
            let ticket = Ticket { id, registry };
            let _ = tx.send(Ok(Conn { _ticket: ticket, inner: tls })).await;
        });
        q.push_back((id, task.abort_handle()));
        while q.len() > limits.max_pending {
            if let Some((_, oldest)) = q.pop_front() {
                oldest.abort();
            }
        }
    }
}

/// Serve the agent's gRPC API (every call through [`crate::server::authz::Authorize`]) on
/// `listener`, behind the door's caps, until `shutdown` resolves. The daemon and the
/// tests use this one function, so the tests exercise the production path of "who may
/// come in".
pub async fn serve<S: crate::kernel::system::System + 'static>(
    agent: Arc<crate::node::Agent<S>>,
    listener: TcpListener,
    tls: crate::server::tls::ServerTls,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let revoked = Arc::clone(agent.revoked());
    let service = crate::server::grpc::Service { agent, credentials: tls.credentials };
    let service = crate::server::authz::Authorize::new(
        lvs_proto::pb::agent_server::AgentServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_REPLY),
        Arc::clone(&revoked),
    );
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(120))
        // A controller that vanished is noticed and its connection's slot freed.
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(64))
        .concurrency_limit_per_connection(32)
        // No connection holds its slot for ever: after an hour it is asked to go (GOAWAY;
        // lvsctl reconnects), and closed 10 minutes later whatever it still streams.
        .max_connection_age(MAX_AGE)
        .max_connection_age_grace(MAX_AGE_GRACE)
        .http2_max_header_list_size(MAX_HEADERS)
        .add_service(service)
        .serve_with_incoming_shutdown(
            incoming(listener, tls.config, limits, Gate::Callers(revoked)),
            shutdown,
        )
        .await
}
