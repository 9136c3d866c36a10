//! A lean HTTP/1.1 GET for health probes: the request's bytes are made once per
//! destination, the response is read into one buffer and parsed in place (status line,
//! the headers that frame a body and say whether the connection stays open, chunked or
//! not). A probe reads the body when its check looks at it, or to leave a kept-alive
//! connection ready for the next probe.
//!
//! Why not hyper here (it serves every other HTTP use of the agent): per probe it builds a
//! request and a header map, runs a connection task beside the exchange and allocates a
//! body stream; at thousands of probes a second that was a visible share of the checker's
//! CPU. What is read stays bounded: 16 KiB of headers, `cap` bytes of body.
use super::http_body::Framing;
use super::http_body::MAX_HEAD;
use super::http_body::chunked;
use super::http_body::find;
use super::http_body::framing;
use super::http_body::headers;
use super::http_body::read_capped;
use super::http_body::read_more;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The bytes of `GET path` with `Host: host`. Without `keep`, the request asks the server
/// to close once it has answered; with it, HTTP/1.1's default holds: the connection stays.
pub fn request(host: &str, path: &str, keep: bool) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lvs-agent/{}\r\nAccept: */*\r\n{}\r\n",
        env!("CARGO_PKG_VERSION"),
        if keep { "" } else { "Connection: close\r\n" }
    )
    .into_bytes()
}

/// What one exchange returned.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Up to `cap` bytes of the decoded body, when the caller asked for the body.
    pub body: Vec<u8>,
    /// The connection can carry the next request: the server keeps it open and this
    /// response was read to its last byte, with nothing after it.
    pub reusable: bool,
}

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// In words, for the destination's status.
    pub reason: String,
    /// Nothing came back at all: the request could not be sent, or the connection was
    /// closed or reset before the first byte of an answer. On a kept-alive connection that
    /// is the server having closed it while idle, not a verdict on the server.
    pub stale: bool,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure { reason: reason.into(), stale: false }
    }
}

/// Send `req` on `io` and read the answer: its status and, when `body` asks for it, up to
/// `cap` bytes of its decoded body. With `keep` (the request let the connection stay open)
/// a body the caller does not want is still read, up to `cap`, so that the connection is
/// ready for the next request.
pub async fn exchange<S>(
    io: &mut S,
    req: &[u8],
    body: bool,
    cap: usize,
    keep: bool,
) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = io.write_all(req).await {
        return Err(Failure { reason: format!("request: {e}"), stale: true });
    }
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD {
            return Err(Failure::new(format!("response head over {MAX_HEAD} bytes")));
        }
        match read_more(io, &mut buf).await {
            Ok(0) if buf.is_empty() => {
                return Err(Failure { reason: "connection closed without a response".into(), stale: true });
            }
            Ok(0) => return Err(Failure::new("response head cut short")),
            Ok(_) => {}
            Err(e) => return Err(Failure { stale: buf.is_empty(), reason: e }),
        }
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| Failure::new("response head is not text"))?;
    let status = status(head).map_err(Failure::new)?;
    // 1xx, 204 and 304 answers have no body, whatever their headers say (RFC 9112 6.3).
    let framing = match status {
        100..=199 | 204 | 304 => Framing::Length(0),
        _ => framing(head).map_err(Failure::new)?,
    };
    // A body that ends only with the connection cannot leave it reusable, and is not
    // waited for when the check does not look at it.
    let persistent = keep && persistent(head) && framing != Framing::ToEof;
    if !body && !persistent {
        return Ok(Answer { status, body: Vec::new(), reusable: false });
    }
    let rest = buf.split_off(head_end);
    let (mut got, complete) = match framing {
        Framing::Length(n) if n > cap && !body => {
            return Ok(Answer { status, body: Vec::new(), reusable: false });
        }
        Framing::Length(n) => {
            let mut got = read_capped(io, rest, n, cap).await.map_err(Failure::new)?;
            // Exactly the body, nothing after it (a stray byte would start the next answer).
            let complete = got.len() == n;
            got.truncate(n);
            (got, complete)
        }
        Framing::ToEof => (read_capped(io, rest, usize::MAX, cap).await.map_err(Failure::new)?, false),
        Framing::Chunked => chunked(io, rest, cap).await.map_err(Failure::new)?,
    };
    got.truncate(cap);
    if !body {
        got = Vec::new();
    }
    Ok(Answer { status, body: got, reusable: persistent && complete })
}

/// `HTTP/1.x NNN reason`.
fn status(head: &str) -> Result<u16, String> {
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") && (100..=999).contains(&code) => Ok(code),
        _ => Err(format!("not an HTTP/1 response: `{}`", line.chars().take(60).collect::<String>())),
    }
}

/// Whether the server keeps the connection open after this response: HTTP/1.1 unless it
/// says `Connection: close`, HTTP/1.0 only when it says `keep-alive`.
fn persistent(head: &str) -> bool {
    let says = |token: &str| {
        headers(head, "connection").any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if head.starts_with("HTTP/1.1") { !says("close") } else { says("keep-alive") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Serve `response` (in pieces of `piece` bytes) to one exchange; what came back.
    async fn serve(
        response: &[u8],
        piece: usize,
        body: bool,
        cap: usize,
        keep: bool,
    ) -> Result<Answer, Failure> {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let response = response.to_vec();
        let srv = tokio::spawn(async move {
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                let n = server.read(&mut b).await.unwrap();
                req.extend_from_slice(&b[..n]);
            }
            for p in response.chunks(piece) {
                server.write_all(p).await.unwrap();
                tokio::task::yield_now().await;
            }
            // The server stays for a moment, its end open: an answer framed by its length
            // must not wait for the close.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            req
        });
        let r = exchange(&mut client, &request("www.example.org", "/health", keep), body, cap, keep).await;
        let req = srv.await.unwrap();
        assert!(req.starts_with(b"GET /health HTTP/1.1\r\nHost: www.example.org\r\n"));
        assert_eq!(find(&req, b"Connection: close").is_some(), !keep);
        r
    }

    async fn run(response: &[u8], piece: usize, body: bool, cap: usize) -> Result<(u16, Vec<u8>), String> {
        serve(response, piece, body, cap, false).await.map(|a| (a.status, a.body)).map_err(|f| f.reason)
    }

    #[tokio::test]
    async fn status_and_bodies_framed_every_way_even_a_byte_at_a_time() {
        let by_length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more";
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        let to_eof = b"HTTP/1.0 503 Service Unavailable\r\nServer: busybox\r\n\r\nhello";
        for piece in [1, 7, 4096] {
            assert_eq!(run(by_length, piece, true, 1024).await.unwrap(), (200, b"hello".to_vec()));
            assert_eq!(run(chunked, piece, true, 1024).await.unwrap(), (200, b"hello".to_vec()));
            assert_eq!(run(to_eof, piece, true, 1024).await.unwrap(), (503, b"hello".to_vec()));
        }
        // The status alone: the body is not read.
        assert_eq!(run(by_length, 4096, false, 1024).await.unwrap(), (200, Vec::new()));
        // Bodies stop at the cap.
        assert_eq!(run(chunked, 3, true, 4).await.unwrap().1, b"hell");
        assert_eq!(run(to_eof, 3, true, 2).await.unwrap().1, b"he");
    }

    #[tokio::test]
    async fn a_connection_is_reusable_only_when_the_server_keeps_it_and_the_answer_was_read_whole() {
        let cases: &[(&[u8], bool, &str)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, "1.1 with a length"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
                true,
                "chunked, with a trailer",
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", true, "204: no body, whatever the framing"),
            (
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello",
                true,
                "1.0 that says keep-alive",
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
                false,
                "Connection: close",
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 5\r\n\r\nhello",
                false,
                "close among tokens",
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, "1.0 (busybox httpd)"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello!", false, "a byte after the body"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nhello", false, "a body over the cap"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nX",
                false,
                "a byte after the chunks",
            ),
            (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello", false, "a body up to the close"),
        ];
        for &(response, reusable, what) in cases {
            // A stray byte that arrives after the answer was read is the kept connection's
            // idle check's to see (probe.rs); here it comes with the answer.
            let pieces: &[usize] = if what.starts_with("a byte after") { &[4096] } else { &[1, 4096] };
            for (&piece, body) in pieces.iter().flat_map(|p| [(p, true), (p, false)]) {
                let a = serve(response, piece, body, 1024, true)
                    .await
                    .unwrap_or_else(|f| panic!("{what}: {f:?}"));
                assert_eq!(a.reusable, reusable, "{what}, body {body}, piece {piece}");
                assert!(body || a.body.is_empty(), "{what}: an unwanted body is not handed back");
            }
        }
        // Without `keep` nothing is reusable, and an unwanted body is not read at all.
        let a = serve(cases[0].0, 4096, false, 1024, false).await.unwrap();
        assert_eq!(a, Answer { status: 200, body: vec![], reusable: false });
    }

    #[tokio::test]
    async fn nothing_back_at_all_is_stale_anything_else_is_a_verdict() {
        let f = serve(b"", 4096, false, 1024, true).await.unwrap_err();
        assert_eq!(f, Failure { reason: "connection closed without a response".into(), stale: true });
        let f = serve(b"HTTP/1.1 200", 4096, false, 1024, true).await.unwrap_err();
        assert_eq!(f, Failure { reason: "response head cut short".into(), stale: false });
        // A request that cannot be sent: the other end is gone.
        let (mut client, server) = tokio::io::duplex(64);
        drop(server);
        let f = exchange(&mut client, &request("h", "/", true), false, 1024, true).await.unwrap_err();
        assert!(f.stale && f.reason.starts_with("request: "), "{f:?}");
    }

    #[tokio::test]
    async fn what_is_not_http_or_never_ends_its_head_is_an_error() {
        let e = run(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", 4096, false, 1024).await.unwrap_err();
        assert!(e.starts_with("not an HTTP/1 response: `SSH-2.0"), "{e}");
        let e = run(b"HTTP/1.1 200 OK\r\nX: y", 4096, false, 1024).await.unwrap_err();
        assert_eq!(e, "response head cut short");
        let e = run(b"", 4096, false, 1024).await.unwrap_err();
        assert_eq!(e, "connection closed without a response");
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_HEAD + 10));
        let e = run(&huge, 4096, false, 1024).await.unwrap_err();
        assert!(e.contains("over 16384 bytes"), "{e}");
        let e = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 4096, true, 1024)
            .await
            .unwrap_err();
        assert_eq!(e, "bad chunk size `zz`");
    }
}
