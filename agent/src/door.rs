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
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tracing::{debug, warn};

/// The caps of the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Handshakes in progress at once; beyond, the oldest is closed.
    pub max_pending: usize,
    /// Authenticated connections at once; beyond, a new one is closed.
    pub max_connections: usize,
    /// Longest a peer may take to finish its TLS handshake.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_pending: 128, max_connections: 64, handshake_timeout: Duration::from_secs(5) }
    }
}

/// One authenticated connection, holding its slot until it closes.
pub struct Conn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
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
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(limits.max_pending.max(1));
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), limits, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

type Pending = Arc<Mutex<VecDeque<(u64, tokio::task::AbortHandle)>>>;

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    tx: mpsc::Sender<Result<Conn, std::io::Error>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        let (acceptor, slots, tx, queue) =
            (acceptor.clone(), Arc::clone(&slots), tx.clone(), Arc::clone(&pending));
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
            let Ok(slot) = slots.try_acquire_owned() else {
                return warn!(%peer, max = limits.max_connections, "too many connections; closed a new one");
            };
            let _ = tx.send(Ok(Conn { inner: tls, _slot: slot })).await;
        });
        q.push_back((id, task.abort_handle()));
        while q.len() > limits.max_pending {
            if let Some((_, oldest)) = q.pop_front() {
                oldest.abort();
            }
        }
    }
}

/// Serve the agent's gRPC API (every call through [`crate::authz::Authorize`]) on
/// `listener`, behind the door's caps, until `shutdown` resolves. The daemon and the
/// tests use this one function, so the tests exercise the production path of "who may
/// come in".
pub async fn serve<S: crate::system::System + 'static>(
    agent: Arc<crate::node::Agent<S>>,
    listener: TcpListener,
    tls: crate::tls::ServerTls,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let revoked = Arc::clone(agent.revoked());
    let service = crate::grpc::Service { agent, credentials: tls.credentials };
    let service =
        crate::authz::Authorize::new(lvs_proto::pb::agent_server::AgentServer::new(service), revoked);
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(120))
        // A controller that vanished is noticed and its connection's slot freed.
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(64))
        .concurrency_limit_per_connection(32)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming(listener, tls.config, limits), shutdown)
        .await
}
