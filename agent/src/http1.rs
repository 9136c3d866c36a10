//! A lean HTTP/1.1 GET for health probes: the request's bytes are made once per
//! destination, the response is read into one buffer and parsed in place (status line,
//! the two headers that frame a body, chunked or not). A probe asks for `Connection:
//! close` and reads the body only when its check looks at it.
//!
//! Why not hyper here (it serves every other HTTP use of the agent): per probe it builds a
//! request and a header map, runs a connection task beside the exchange and allocates a
//! body stream; at thousands of probes a second that was a visible share of the checker's
//! CPU. What is read stays bounded: 16 KiB of headers, `cap` bytes of body.
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most of a response head that is read.
pub const MAX_HEAD: usize = 16 * 1024;

/// The bytes of `GET path` with `Host: host`, asking the server to close.
pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lvs-agent/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Send `req` on `io` and read the answer: its status, and (when `body` asks for it) up to
/// `cap` bytes of its decoded body.
pub async fn exchange<S>(io: &mut S, req: &[u8], body: bool, cap: usize) -> Result<(u16, Vec<u8>), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(req).await.map_err(|e| format!("request: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD {
            return Err(format!("response head over {MAX_HEAD} bytes"));
        }
        if read_more(io, &mut buf).await? == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".into()
            } else {
                "response head cut short".into()
            });
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head is not text".to_string())?;
    let status = status(head)?;
    if !body {
        return Ok((status, Vec::new()));
    }
    let framing = framing(head)?;
    let rest = buf.split_off(head_end);
    let b = match framing {
        Framing::Length(n) => read_exact_capped(io, rest, n, cap).await?,
        Framing::ToEof => read_exact_capped(io, rest, usize::MAX, cap).await?,
        Framing::Chunked => chunked(io, rest, cap).await?,
    };
    Ok((status, b))
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 4096];
    let n = match io.read(&mut chunk).await {
        Ok(n) => n,
        // A TLS server that closes without close_notify (most do, after `Connection:
        // close`): the end of the response, as on a plain socket.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(e) => return Err(format!("response: {e}")),
    };
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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

/// How the body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    ToEof,
}

fn framing(head: &str) -> Result<Framing, String> {
    let mut length = None;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().ends_with("chunked") {
            return Ok(Framing::Chunked);
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length `{value}`"))?);
        }
    }
    Ok(length.map_or(Framing::ToEof, Framing::Length))
}

/// `have` plus what follows, until `n` bytes, the end of the stream, or `cap`.
async fn read_exact_capped<S: AsyncRead + Unpin>(
    io: &mut S,
    mut have: Vec<u8>,
    n: usize,
    cap: usize,
) -> Result<Vec<u8>, String> {
    let want = n.min(cap);
    while have.len() < want {
        if read_more(io, &mut have).await? == 0 {
            break;
        }
    }
    have.truncate(want);
    Ok(have)
}

/// A chunked body, decoded, up to `cap` bytes.
async fn chunked<S: AsyncRead + Unpin>(io: &mut S, mut raw: Vec<u8>, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&raw[pos..], b"\r\n") {
                break pos + i;
            }
            if raw.len() - pos > 64 || read_more(io, &mut raw).await? == 0 {
                return Err("chunk size line cut short".into());
            }
        };
        let size_text = std::str::from_utf8(&raw[pos..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{size_text}`"))?;
        pos = line_end + 2;
        if size == 0 || out.len() >= cap {
            return Ok(out);
        }
        while raw.len() < pos + size + 2 {
            if read_more(io, &mut raw).await? == 0 {
                return Err("chunk cut short".into());
            }
        }
        let take = size.min(cap - out.len());
        out.extend_from_slice(&raw[pos..pos + take]);
        pos += size + 2;
        // Keep what is unread only.
        raw.drain(..pos);
        pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serve `response` (in pieces of `piece` bytes) to one exchange; what came back.
    async fn run(response: &[u8], piece: usize, body: bool, cap: usize) -> Result<(u16, Vec<u8>), String> {
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
            req
        });
        let r = exchange(&mut client, &request("www.example.org", "/health"), body, cap).await;
        let req = srv.await.unwrap();
        assert!(req.starts_with(b"GET /health HTTP/1.1\r\nHost: www.example.org\r\n"));
        r
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
