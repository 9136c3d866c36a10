//! One HTTP/1.1 GET with a deadline, on hyper: the health check's probe, the real server's
//! local httpd check and the VIP probe of `verify` all use it.
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The most of a response body that is read. A health check looks for a substring near
/// the top of a status page and `verify` for the first line; a server (or anything
/// answering on its address) that sends more cannot make the agent buffer it.
pub const MAX_BODY: usize = 64 * 1024;

/// Read at most `cap` bytes of `body`; the rest is not read (the connection is closed).
async fn read_capped(mut body: hyper::body::Incoming, cap: usize) -> Result<Bytes, String> {
    let mut out = bytes::BytesMut::new();
    while out.len() < cap {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(format!("body: {e}")),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    let take = data.len().min(cap - out.len());
                    out.extend_from_slice(&data[..take]);
                }
            }
        }
    }
    Ok(out.freeze())
}

/// What a GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The first line of the body, trimmed: how `verify` tells real servers apart.
    pub fn first_line(&self) -> String {
        String::from_utf8_lossy(&self.body).lines().next().unwrap_or("").trim().to_string()
    }
}

/// GET `path` from `addr` with `Host: host`; the whole exchange must finish within `timeout`.
pub async fn get(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<Response, String> {
    match tokio::time::timeout(timeout, exchange(addr, host, path)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange(addr: SocketAddr, host: &str, path: &str) -> Result<Response, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::USER_AGENT, concat!("lvs-agent/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let exchange = async {
        let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = read_capped(resp.into_body(), MAX_BODY).await?;
        Ok(Response { status, body })
    };
    // The connection task must be polled while the response is read; it may finish first
    // (the server closed after the body), which is not an error by itself.
    let mut conn = std::pin::pin!(conn);
    let mut exchange = std::pin::pin!(exchange);
    let mut conn_done = false;
    loop {
        tokio::select! {
            r = &mut exchange => return r,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                c.map_err(|e| format!("connection: {e}"))?;
            }
        }
    }
}
