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
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lvs_proto::spec::{HealthCheckSpec, ProbeKind, ServiceKey, TlsProbe, TlsVerify};
use md5::Digest;

use crate::health::scripts::Scripts;
use rustls::pki_types::{CertificateDer, ServerName};

/// The most of a body read for a digest check: keepalived digests the whole page.
pub const MAX_DIGEST_BODY: usize = 1024 * 1024;

/// The largest CA file a check may name (a bundle of a few hundred CAs).
const MAX_CA_FILE: u64 = 1 << 20;

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

/// The TLS connector of an HTTPS check and the name it presents: the SNI, or the address
/// (no SNI is sent for an address; the certificate must then name it).
fn connector(
    t: &TlsProbe,
    target: SocketAddr,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match &t.verify {
        TlsVerify::System => builder.with_root_certificates(system_roots()?).with_no_client_auth(),
        TlsVerify::CaFile(f) => builder.with_root_certificates(ca_file(f)?).with_no_client_auth(),
        TlsVerify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    let name = match &t.sni {
        Some(n) => ServerName::try_from(n.clone()).map_err(|e| format!("SNI `{n}`: {e}"))?,
        None => ServerName::IpAddress(target.ip().into()),
    };
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// The director's trust store, read once per process.
fn system_roots() -> Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("the system trust store holds no CA certificate{why}"));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The CA certificates of a PEM file.
pub fn ca_file(path: &str) -> Result<Arc<rustls::RootCertStore>, String> {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    // A regular file of bounded size: `/dev/zero` or a FIFO named by a spec must not hang
    // or fill the agent.
    let f = std::fs::File::open(path).map_err(|e| format!("CA file {path}: {e}"))?;
    let m = f.metadata().map_err(|e| format!("CA file {path}: {e}"))?;
    if !m.is_file() {
        return Err(format!("CA file {path} is not a regular file"));
    }
    let mut pem = Vec::new();
    f.take(MAX_CA_FILE + 1).read_to_end(&mut pem).map_err(|e| format!("CA file {path}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("CA file {path} is larger than {MAX_CA_FILE} bytes"));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA file {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("CA file {path} holds no usable certificate"));
    }
    Ok(Arc::new(roots))
}

/// Accepts any certificate (the definition said `verify = false`); the handshake's
/// signatures are still checked, so the peer holds the key of what it presented.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Run the script `command` names (no shell), as [`Scripts::command`] prepares it, with
/// `env` added; its exit status 0 is healthy. After `timeout` its whole process group is
/// killed: a hung check script and anything it started cannot pile up, one per interval.
pub async fn run(
    scripts: &Scripts,
    command: &[String],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(), String> {
    let program = command.first().map(String::as_str).unwrap_or("");
    let mut cmd = scripts.command(command, timeout)?;
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    // Killed with everything it started when the verdict is late or the probe is dropped
    // (its destination left the spec, the agent stops): never left running behind.
    let mut group = GroupKill(child.id());
    let stderr = child.stderr.take();
    let wait = async {
        let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
        // It ended by itself; what it left in the background is its own business (and its
        // group id may be reused once those are gone).
        group.0 = None;
        let mut said = String::new();
        if let (false, Some(mut e)) = (status.success(), stderr) {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 512];
            // Only the start, and only briefly: a chatty script cannot make the agent
            // buffer its output, nor a child it left behind holding the pipe stall it.
            let n = tokio::time::timeout(Duration::from_millis(100), e.read(&mut buf)).await;
            let n = n.ok().and_then(Result::ok).unwrap_or(0);
            // The script's words reach events and the admin's terminal: one line, no
            // control characters (no escape sequences).
            said = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_string();
        }
        Ok::<_, String>((status, said))
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok((status, _))) if status.success() => Ok(()),
        Ok(Ok((status, said))) => {
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => "failed".into(),
            };
            Err(if said.is_empty() {
                format!("{program}: {how}")
            } else {
                format!("{program}: {how}: {said}")
            })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("{program}: no verdict within {} ms (killed)", timeout.as_millis())),
    }
}

/// Kills a process group when dropped, unless disarmed (`None`).
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on the process group this module created for its child; the
            // child is not reaped yet (it is disarmed once it is), so the id is still ours.
            unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
        }
    }
}

/// What the spec's checks and hooks need on this host and it lacks (a script missing from
/// the script directory, or one others could change, or no script user; an unreadable CA
/// file), in words: the agent refuses such a spec before changing anything, rather than
/// quarantining every real server for a typo.
pub fn missing_files(spec: &lvs_proto::NodeSpec, scripts: &Scripts) -> Vec<String> {
    let mut out = Vec::new();
    for v in &spec.virtual_services {
        let checks = v.health_check.iter().chain(v.destinations.iter().filter_map(|d| match &d.check {
            lvs_proto::spec::DestinationCheck::Own(h) => Some(&**h),
            _ => None,
        }));
        for h in checks {
            match &h.probe {
                ProbeKind::Exec { command } => out.extend(unusable(scripts, &command[0], &v.name, "check")),
                ProbeKind::Http { tls: Some(TlsProbe { verify: TlsVerify::CaFile(f), .. }), .. } => {
                    if let Err(e) = ca_file(f) {
                        out.push(format!("service {}: check: {e}", v.name));
                    }
                }
                _ => {}
            }
        }
        if let Some(n) = v.notify.first() {
            out.extend(unusable(scripts, n, &v.name, "notify hook"));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn unusable(scripts: &Scripts, name: &str, service: &str, what: &str) -> Option<String> {
    if let Err(e) = scripts.user() {
        return Some(format!("service {service}: {what} {name}: {e}"));
    }
    scripts.resolve(name).err().map(|e| format!("service {service}: {what} {name}: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ca_file_that_is_no_regular_file_or_too_big_is_refused_at_once() {
        let e = super::ca_file("/dev/zero").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; (super::MAX_CA_FILE + 1) as usize]).unwrap();
        let e = super::ca_file(big.to_str().unwrap()).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}
