//! One destination's probe, prepared once and run every interval: HTTP or HTTPS GET
//! (status, body substring, body MD5), TCP connect, or an executable's exit status.
//!
//! Everything a probe needs that does not change between probes is made when the
//! destination's task starts: the target address (`connect_ip`/`connect_port`), the Host
//! header, the TLS client configuration with its trust anchors (reading a CA file or the
//! system store is far dearer than a handshake), the command's environment.
//!
//! An HTTP(S) check keeps its connection open between probes when the check allows it
//! (`reuse_connection`, the default) and the server keeps it too: a probe is then one
//! request and one answer, without the connect, the TLS handshake and the close that
//! dominated a probe's CPU on both ends. A new connection is made after any failure, when
//! the server closed the kept one, and at least every [`MAX_REUSE`].
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_proto::spec::{HealthCheckSpec, ProbeKind, ServiceKey};
use md5::Digest;

use super::probe_exec::run;
use super::probe_tls::connector;
use crate::health::scripts::Scripts;
use rustls::pki_types::ServerName;

/// The most of a body read for a digest check: keepalived digests the whole page.
pub const MAX_DIGEST_BODY: usize = 1024 * 1024;

/// A prepared probe of one destination.
pub struct Prober {
    target: SocketAddr,
    timeout: Duration,
    kind: Result<Kind, String>,
    /// Counts the connections this probe opens (`lvs_health_probe_connections`).
    opened: prometheus_client::metrics::counter::Counter,
}

enum Kind {
    Tcp,
    Http(Box<Http>),
    Exec { scripts: Arc<Scripts>, command: Vec<String>, env: Vec<(&'static str, String)> },
}

struct Http {
    /// The pages each probe fetches, in order: the check's own, then its `urls`.
    pages: Vec<Page>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Keep the connection open between probes (the check's `reuse_connection`).
    reuse: bool,
    /// The connection the last probe left open, and when it was opened.
    kept: Option<(Conn, Instant)>,
}

/// One page of an HTTP check: its request, made once, and what it must return.
struct Page {
    path: String,
    request: Vec<u8>,
    expect_status: lvs_proto::spec::StatusSet,
    expect_body: Option<String>,
    expect_digest: Option<String>,
}

impl Page {
    /// `GET path` with `Host: host`, and its expectations.
    fn new(host: &str, u: &lvs_proto::spec::HttpUrl, keep: bool) -> Page {
        Page {
            path: u.path.clone(),
            request: crate::health::lean_http::request(host, &u.path, keep),
            expect_status: u.expect_status.clone(),
            expect_body: u.expect_body.clone(),
            expect_digest: u.expect_digest.clone(),
        }
    }

    /// Whether the body is read, and how much of it.
    fn body(&self) -> (bool, usize) {
        let cap = if self.expect_digest.is_some() { MAX_DIGEST_BODY } else { crate::health::http::MAX_BODY };
        (self.expect_body.is_some() || self.expect_digest.is_some(), cap)
    }

    /// The check's verdict on an answer.
    fn judge(&self, a: crate::health::lean_http::Answer) -> Result<(), String> {
        if !self.expect_status.contains(a.status) {
            return Err(format!("status {} (expected {})", a.status, self.expect_status));
        }
        if let Some(b) = &self.expect_body
            && !String::from_utf8_lossy(&a.body).contains(b.as_str())
        {
            return Err(format!("body lacks `{b}`"));
        }
        if let Some(want) = &self.expect_digest {
            let got: String = md5::Md5::digest(&a.body).iter().map(|b| format!("{b:02x}")).collect();
            if &got != want {
                return Err(format!("body md5 {got} (expected {want})"));
            }
        }
        Ok(())
    }
}

/// How long one connection serves probes: then the next probe connects afresh, which
/// proves the real server still accepts new connections, not just that the old one lives.
pub const MAX_REUSE: Duration = Duration::from_secs(30);

/// An HTTP probe's connection.
enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &tokio::net::TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Still open and silent since the last answer. A server that closed it (its idle
    /// timeout, a restart) has sent a FIN or a reset, and anything it sent unasked would be
    /// misread as the next answer. The runtime's readiness tells without a system call: it
    /// was cleared when the answer was read ([`Conn::rest`]), and only an event since sets
    /// it; then a peek looks at what came.
    fn idle(&self) -> bool {
        use futures::FutureExt;
        let tcp = self.tcp();
        if tcp.ready(tokio::io::Interest::READABLE).now_or_never().is_none() {
            return true;
        }
        let mut b = [0u8; 1];
        // Pending: nothing to read after all, neither data nor an end.
        tcp.peek(&mut b).now_or_never().is_none()
    }

    /// Put the connection to rest between probes: forget the readiness its last read
    /// left, so that [`Conn::idle`] sees only what comes from now on. (An event that came
    /// in between is lost to it; then the next request finds the connection dead, which
    /// the prober handles as stale.)
    fn rest(&self) {
        let _ = self
            .tcp()
            .try_io(tokio::io::Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
    }

    async fn exchange(
        &mut self,
        page: &Page,
        keep: bool,
    ) -> Result<crate::health::lean_http::Answer, crate::health::lean_http::Failure> {
        let (body, cap) = page.body();
        match self {
            Conn::Plain(s) => crate::health::lean_http::exchange(s, &page.request, body, cap, keep).await,
            Conn::Tls(s) => {
                crate::health::lean_http::exchange(&mut **s, &page.request, body, cap, keep).await
            }
        }
    }
}

impl Prober {
    /// Prepare the probe of destination `dest` of service `service` (named `name`). A
    /// check that cannot be prepared (its CA file vanished since the spec was accepted)
    /// fails every probe with the reason.
    pub fn new(
        name: &str,
        service: &ServiceKey,
        dest: SocketAddr,
        hc: &HealthCheckSpec,
        scripts: &Arc<Scripts>,
    ) -> Self {
        let target = hc.target(dest);
        let kind = match &hc.probe {
            ProbeKind::Tcp => Ok(Kind::Tcp),
            ProbeKind::Http {
                path,
                expect_status,
                expect_body,
                host,
                expect_digest,
                tls,
                reuse_connection,
                urls,
            } => {
                let tls = tls.as_ref().map(|t| connector(t, target)).transpose();
                tls.map(|tls| {
                    let host = host.clone().unwrap_or_else(|| target.ip().to_string());
                    let first = lvs_proto::spec::HttpUrl {
                        path: path.clone(),
                        expect_status: expect_status.clone(),
                        expect_body: expect_body.clone(),
                        expect_digest: expect_digest.clone(),
                        host: None,
                    };
                    let pages = std::iter::once(&first)
                        .chain(urls)
                        .map(|u| Page::new(u.host.as_deref().unwrap_or(&host), u, *reuse_connection))
                        .collect();
                    Kind::Http(Box::new(Http { pages, tls, reuse: *reuse_connection, kept: None }))
                })
            }
            ProbeKind::Exec { command } => Ok(Kind::Exec {
                scripts: Arc::clone(scripts),
                command: command.clone(),
                env: vec![
                    ("LVS_SERVICE", name.to_string()),
                    ("LVS_VIRTUAL", service.to_string()),
                    ("LVS_RS_ADDRESS", target.ip().to_string()),
                    ("LVS_RS_PORT", target.port().to_string()),
                    ("LVS_TIMEOUT_MS", hc.timeout_ms.to_string()),
                ],
            }),
        };
        Prober { target, timeout: Duration::from_millis(hc.timeout_ms), kind, opened: Default::default() }
    }

    /// Count the connections this probe opens on `opened` (a service's counter).
    pub fn counting(mut self, opened: prometheus_client::metrics::counter::Counter) -> Self {
        self.opened = opened;
        self
    }

    /// Probe once: `Err` says why the destination is unhealthy.
    pub async fn probe(&mut self) -> Result<(), String> {
        match &mut self.kind {
            Err(e) => Err(e.clone()),
            Ok(Kind::Tcp) => {
                self.opened.inc();
                tcp_connect(self.target, self.timeout).await
            }
            Ok(Kind::Http(h)) => h.probe(self.target, self.timeout, &self.opened).await,
            Ok(Kind::Exec { scripts, command, env }) => run(scripts, command, env, self.timeout).await,
        }
    }
}

impl Http {
    async fn probe(
        &mut self,
        target: SocketAddr,
        timeout: Duration,
        opened: &prometheus_client::metrics::counter::Counter,
    ) -> Result<(), String> {
        // Every page within the one timeout, in order; the first that fails decides.
        let deadline = tokio::time::Instant::now() + timeout;
        for i in 0..self.pages.len() {
            let answer = match tokio::time::timeout_at(deadline, self.exchange(target, opened, i)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            if let Err(e) = answer.and_then(|a| self.pages[i].judge(a)) {
                // After a failure the next probe starts from a new connection.
                self.kept = None;
                return Err(if self.pages.len() > 1 { format!("{}: {e}", self.pages[i].path) } else { e });
            }
        }
        Ok(())
    }

    /// One request, on the kept connection when there is a usable one, else on a new one.
    /// A kept connection that gives nothing back (the server closed it while idle) is not
    /// a verdict: the request goes again on a new connection, within the same timeout.
    async fn exchange(
        &mut self,
        target: SocketAddr,
        opened: &prometheus_client::metrics::counter::Counter,
        page: usize,
    ) -> Result<crate::health::lean_http::Answer, String> {
        if let Some((mut conn, since)) = self.kept.take()
            && since.elapsed() < MAX_REUSE
            && conn.idle()
        {
            match conn.exchange(&self.pages[page], self.reuse).await {
                Ok(a) => {
                    self.keep(conn, since, &a);
                    return Ok(a);
                }
                Err(f) if f.stale => {
                    tracing::debug!(%target, reason = %f.reason, "kept connection closed; connecting afresh")
                }
                Err(f) => return Err(f.reason),
            }
        }
        opened.inc();
        let tcp =
            tokio::net::TcpStream::connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let since = Instant::now();
        let mut conn = match &self.tls {
            None => Conn::Plain(tcp),
            Some((tls, name)) => Conn::Tls(Box::new(
                tls.connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {target}: {e}"))?,
            )),
        };
        let a = conn.exchange(&self.pages[page], self.reuse).await.map_err(|f| f.reason)?;
        self.keep(conn, since, &a);
        Ok(a)
    }

    fn keep(&mut self, conn: Conn, since: Instant, a: &crate::health::lean_http::Answer) {
        if self.reuse && a.reusable {
            conn.rest();
            self.kept = Some((conn, since));
        }
    }
}

/// TCP connect within `timeout` (the `tcp` check).
async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            // A reset rather than a FIN exchange: the check is done once connected.
            let _ = s.set_zero_linger();
            Ok(())
        }
        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
        Err(_) => Err(format!("connect {addr}: no answer within {} ms", timeout.as_millis())),
    }
}
