//! Reading an HTTP/1.1 response body the way its headers frame it (content-length, chunked, or up to the close), into one buffer, capped.
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<usize, String> {
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

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How the body is delimited.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    ToEof,
}

pub(crate) fn framing(head: &str) -> Result<Framing, String> {
    let chunked = |v: &str| v.len() >= 7 && v.as_bytes()[v.len() - 7..].eq_ignore_ascii_case(b"chunked");
    if headers(head, "transfer-encoding").any(chunked) {
        return Ok(Framing::Chunked);
    }
    match headers(head, "content-length").last() {
        Some(v) => v.parse::<usize>().map(Framing::Length).map_err(|_| format!("bad Content-Length `{v}`")),
        None => Ok(Framing::ToEof),
    }
}

/// `have` plus what follows, until `n` bytes (or one more: a byte after the body shows),
/// the end of the stream, or `cap`.
pub(crate) async fn read_capped<S: AsyncRead + Unpin>(
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
    Ok(have)
}

/// A chunked body, decoded, up to `cap` bytes; and whether it was read to its end (the
/// last chunk and the trailer section, with nothing after them).
pub(crate) async fn chunked<S: AsyncRead + Unpin>(
    io: &mut S,
    mut raw: Vec<u8>,
    cap: usize,
) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let line_end =
            line(io, &mut raw, pos, 64).await.map_err(|_| "chunk size line cut short".to_string())?;
        let size_text = std::str::from_utf8(&raw[pos..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{size_text}`"))?;
        pos = line_end + 2;
        if size == 0 {
            // The trailer section: header lines up to an empty one.
            loop {
                let Ok(end) = line(io, &mut raw, pos, MAX_HEAD).await else { return Ok((out, false)) };
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Ok((out, raw.len() == pos));
                }
            }
        }
        if out.len() >= cap {
            return Ok((out, false));
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

/// The end of the line that starts at `pos` (where its CRLF begins), reading more as needed;
/// `Err` when the stream ends first or the line grows past `max` bytes.
pub(crate) async fn line<S: AsyncRead + Unpin>(
    io: &mut S,
    raw: &mut Vec<u8>,
    pos: usize,
    max: usize,
) -> Result<usize, ()> {
    loop {
        if let Some(i) = find(&raw[pos..], b"\r\n") {
            return Ok(pos + i);
        }
        if raw.len() - pos > max || read_more(io, raw).await.map_err(|_| ())? == 0 {
            return Err(());
        }
    }
}

/// The most of a response head that is read.
pub const MAX_HEAD: usize = 16 * 1024;

/// The values of every `name` header, trimmed, as sent (compare them ignoring ASCII case:
/// this runs on every probe, so nothing is copied).
pub(crate) fn headers<'a>(head: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    head.lines().skip(1).filter_map(move |line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
