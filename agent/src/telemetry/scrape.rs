//! `/metrics` over HTTP/1.1 for Prometheus ([`serve`]): behind the cluster's mutual TLS
//! (a caller's certificate, viewer or admin, not revoked; the same [`crate::server::authz`] rule
//! as every gRPC call) or open, as [`MetricsConfig`] says. Each scrape renders
//! [`crate::telemetry::metrics::Metrics::render`] over a fresh [`crate::node::Agent::metrics_snapshot`].
//!
//! What a peer can make it do is bounded: a connection cap, a deadline per connection
//! (a slow client cannot hold a slot), request headers only (no body is read), and one
//! path.
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tracing::{debug, info, warn};

use crate::kernel::system::System;
use crate::node::Agent;
use crate::telemetry::metrics::Format;
use lvs_proto::agent_config::{MetricsAuth, MetricsConfig};

/// Scrapes served at once; more wait for a slot (Prometheus scrapes one at a time).
const MAX_CONNECTIONS: usize = 16;

/// Connections one source address (open mode) or one caller (mutual TLS) may hold.
const PER_SOURCE: usize = 4;
/// The longest one connection may live: a scrape of thousands of destinations takes
/// milliseconds, so only a stalled peer reaches this.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// Who is asking, as far as the answer depends on it.
#[derive(Clone)]
enum Peer {
    /// Open mode: anyone.
    Anyone,
    /// Mutual TLS: the verified leaf certificate (DER), checked per request.
    Certificate(Option<Vec<u8>>),
}

/// Serve `/metrics` of `agent` on `listener` as `config` says, until `shutdown`.
/// `tls` is the agent's own server TLS (its live certificate and the cluster CA) for
/// [`MetricsAuth::MutualTls`].
pub async fn serve<S: System + 'static>(
    agent: Arc<Agent<S>>,
    listener: TcpListener,
    config: &MetricsConfig,
    tls: &crate::server::tls::ServerTls,
    shutdown: impl Future<Output = ()>,
) {
    let credentials = Arc::clone(&tls.credentials);
    info!(listen = %config.listen, auth = ?config.auth, "serving /metrics");
    match config.auth {
        MetricsAuth::Open => {
            tokio::select! {
                () = accept_open(listener, agent, credentials) => {}
                () = shutdown => {}
            }
        }
        MetricsAuth::MutualTls => {
            // The agent's own TLS settings (live certificate, cluster CA as the only
            // anchor for clients), speaking HTTP/1.1 instead of HTTP/2.
            let mut cfg = (*tls.config).clone();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            let limits = crate::server::listener::Limits {
                max_connections: MAX_CONNECTIONS,
                per_caller: PER_SOURCE,
                admin_reserve: PER_SOURCE,
                ..Default::default()
            };
            let gate = crate::server::listener::Gate::Callers(Arc::clone(agent.revoked()));
            let mut incoming =
                std::pin::pin!(crate::server::listener::incoming(listener, Arc::new(cfg), limits, gate));
            let accept = async {
                while let Some(conn) = incoming.next().await {
                    let Ok(conn) = conn else { continue };
                    use tonic::transport::server::Connected;
                    let leaf =
                        conn.connect_info().peer_certs().and_then(|c| c.first().map(|d| d.as_ref().to_vec()));
                    let agent = Arc::clone(&agent);
                    let credentials = Arc::clone(&credentials);
                    let tasks = agent.tasks().clone();
                    tasks.spawn(
                        "metrics connection",
                        connection(conn, Peer::Certificate(leaf), agent, credentials),
                    );
                }
            };
            tokio::select! {
                () = accept => {}
                () = shutdown => {}
            }
        }
    }
}

/// Open mode's accept loop: plain HTTP to anyone, [`MAX_CONNECTIONS`] at once. Idle sockets
/// from one address cannot take every slot: each source address holds at most
/// [`PER_SOURCE`] (Prometheus keeps one), the rest are closed at once.
async fn accept_open<S: System + 'static>(
    listener: TcpListener,
    agent: Arc<Agent<S>>,
    credentials: Arc<crate::server::credentials::Credentials>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let sources: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> = Arc::default();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = peer.ip();
        {
            let mut s = sources.lock().expect("metrics sources");
            let n = s.entry(ip).or_default();
            if *n >= PER_SOURCE {
                debug!(%peer, "metrics: too many connections from this address; closed");
                continue;
            }
            *n += 1;
        }
        let (agent, credentials, sources) =
            (Arc::clone(&agent), Arc::clone(&credentials), Arc::clone(&sources));
        let tasks = agent.tasks().clone();
        tasks.spawn("metrics connection", async move {
            connection(tcp, Peer::Anyone, agent, credentials).await;
            let mut s = sources.lock().expect("metrics sources");
            if let Some(n) = s.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    s.remove(&ip);
                }
            }
            drop(slot);
        });
    }
}

/// One connection: HTTP/1.1 requests until the peer closes or the deadline passes.
async fn connection<S: System + 'static>(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: Peer,
    agent: Arc<Agent<S>>,
    credentials: Arc<crate::server::credentials::Credentials>,
) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (agent, credentials, peer) = (Arc::clone(&agent), Arc::clone(&credentials), peer.clone());
        async move { Ok::<_, Infallible>(answer(&req, &peer, &agent, &credentials).await) }
    });
    let serving = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service);
    match tokio::time::timeout(CONNECTION_DEADLINE, serving).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "metrics connection ended"),
        Err(_) => debug!("metrics connection closed at its deadline"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("literal"));
    r
}

async fn answer<S: System + 'static>(
    req: &Request<hyper::body::Incoming>,
    peer: &Peer,
    agent: &Agent<S>,
    credentials: &crate::server::credentials::Credentials,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "only /metrics is served here\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    if let Peer::Certificate(leaf) = peer
        && let Err(why) =
            crate::server::authz::check(crate::server::authz::METRICS_PATH, leaf.as_deref(), agent.revoked())
    {
        return text(StatusCode::FORBIDDEN, format!("{why}\n"));
    }
    let format = Format::from_accept(
        req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
    );
    let snap = agent.metrics_snapshot(Some(credentials.info().not_after_unix)).await;
    let body = crate::telemetry::exposition::render(agent.events().metrics(), &snap, format);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, format.content_type().parse().expect("literal"));
    r
}
