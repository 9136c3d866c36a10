//! BIRD's control socket, spoken directly (what `birdc` does): one command, its reply
//! decoded once into [`Protocol`]s or a verdict. BIRD is the agent's own child, but its
//! replies are still read with a size limit and a deadline: a wedged daemon costs one
//! failed status, never the agent's memory or a stuck task.
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Largest reply read (a few hundred sessions' `show protocols all`).
const MAX_REPLY: usize = 1 << 20;
/// How long one command may take.
const DEADLINE: Duration = Duration::from_secs(3);

/// Why a command did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting, writing or reading.
    #[error("BIRD control socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("BIRD did not answer {command:?} within {DEADLINE:?}")]
    Timeout {
        /// The command.
        command: String,
    },
    /// An answer over [`MAX_REPLY`] bytes, or not in BIRD's reply format.
    #[error("BIRD's answer to {command:?}: {why}")]
    Garbled {
        /// The command.
        command: String,
        /// What was wrong.
        why: String,
    },
    /// BIRD refused the command (a reply code 8xxx or 9xxx).
    #[error("BIRD refused {command:?}: {text}")]
    Refused {
        /// The command.
        command: String,
        /// What it said.
        text: String,
    },
}

/// One reply line: its code (the previous line's for a continuation) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// BIRD's 4-digit reply code.
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

/// Run `command` on the socket at `path` and return its reply lines.
pub async fn command(path: &Path, command: &str) -> Result<Vec<Line>, ControlError> {
    match tokio::time::timeout(DEADLINE, exchange(path, command)).await {
        Ok(r) => r,
        Err(_) => Err(ControlError::Timeout { command: command.into() }),
    }
}

async fn exchange(path: &Path, cmd: &str) -> Result<Vec<Line>, ControlError> {
    let io = |source| ControlError::Io { path: path.display().to_string(), source };
    let stream = UnixStream::connect(path).await.map_err(io)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    // The greeting: `0001 BIRD 2.0.12 ready.`
    read_reply(&mut r, cmd).await?;
    w.write_all(format!("{cmd}\n").as_bytes()).await.map_err(io)?;
    let lines = read_reply(&mut r, cmd).await?;
    if let Some(bad) = lines.iter().find(|l| l.code >= 8000) {
        return Err(ControlError::Refused { command: cmd.into(), text: bad.text.trim().into() });
    }
    Ok(lines)
}

/// Lines up to the one that ends the reply (a code followed by a space).
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    cmd: &str,
) -> Result<Vec<Line>, ControlError> {
    let garbled = |why: &str| ControlError::Garbled { command: cmd.into(), why: why.into() };
    let mut out = Vec::new();
    let mut total = 0;
    let mut code = 0;
    loop {
        let mut buf = Vec::new();
        let n = tokio::io::AsyncReadExt::take(&mut *r, (MAX_REPLY - total + 1) as u64)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|source| ControlError::Io { path: String::new(), source })?;
        if n == 0 {
            return Err(garbled("the socket closed mid-reply"));
        }
        total += n;
        if total > MAX_REPLY {
            return Err(garbled("over 1 MiB"));
        }
        let line = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_string();
        // `DDDD-text` (more follows), `DDDD text` (the last line), ` text` (continuation).
        let b = line.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'-' || b[4] == b' ') {
            code = line[..4].parse().map_err(|_| garbled("bad code"))?;
            out.push(Line { code, text: line[5..].to_string() });
            if b[4] == b' ' {
                return Ok(out);
            }
        } else if b.first() == Some(&b' ') {
            out.push(Line { code, text: line[1..].to_string() });
        } else {
            return Err(garbled(&format!("unexpected line {:?}", lvs_proto::names::shown(&line))));
        }
    }
}

/// One protocol of `show protocols all`, as far as status needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protocol {
    /// BIRD's name (`peer_router_4`).
    pub name: String,
    /// `BGP`, `Static`, `BFD`, …
    pub kind: String,
    /// `up`, `start`, `down`, …
    pub state: String,
    /// Since when, s since the epoch (the configuration sets `timeformat protocol "%s"`).
    pub since_s: u64,
    /// BGP: `Established`, `Active`, `Connect`, …
    pub bgp_state: String,
    /// The last error, if BIRD gives one.
    pub last_error: String,
    /// Routes imported.
    pub imported: u32,
    /// Routes exported.
    pub exported: u32,
}

/// `show protocols all` decoded: code 1002 opens a protocol (its table row), 1006 lines
/// detail it.
pub fn protocols(lines: &[Line]) -> Vec<Protocol> {
    let mut out: Vec<Protocol> = Vec::new();
    for l in lines {
        match l.code {
            1002 => {
                let mut w = l.text.split_whitespace();
                let mut p = Protocol {
                    name: w.next().unwrap_or_default().into(),
                    kind: w.next().unwrap_or_default().into(),
                    ..Protocol::default()
                };
                let _table = w.next();
                p.state = w.next().unwrap_or_default().into();
                p.since_s = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push(p);
            }
            1006 => {
                let Some(p) = out.last_mut() else { continue };
                let t = l.text.trim();
                if let Some(v) = t.strip_prefix("BGP state:") {
                    p.bgp_state = v.trim().into();
                } else if let Some(v) = t.strip_prefix("Last error:") {
                    p.last_error = v.trim().into();
                } else if let Some(v) = t.strip_prefix("Routes:") {
                    // `1 imported, 0 exported, 1 preferred` (more channels add up).
                    for part in v.split(',') {
                        let mut w = part.split_whitespace();
                        let n: u32 = w.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        match w.next() {
                            Some("imported") => p.imported += n,
                            Some("exported") => p.exported += n,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as BIRD 2.0.12 sent it in a namespace test (`show protocols all`).
    const SHOWN: &str = "2002-Name       Proto      Table      State  Since         Info
1002-device1    Device     ---        up     1796437865    
1002-peer_lb2_4 BGP        ---        up     1796437870    Established   
1006-  BGP state:          Established
     Neighbor address: 198.18.0.3
   Channel ipv4
     State:          UP
     Routes:         1 imported, 0 exported, 1 preferred
 
1002-peer_lb3_4 BGP        ---        start  1796437866    Active        Socket: No route to host
1006-  BGP state:          Active
     Last error:       Socket: No route to host
 
0000 
";

    #[tokio::test]
    async fn a_reply_is_read_to_its_last_line_and_decoded() {
        let mut r = BufReader::new(SHOWN.as_bytes());
        let lines = read_reply(&mut r, "show protocols all").await.unwrap();
        assert_eq!(lines.last().unwrap(), &Line { code: 0, text: String::new() });
        let p = protocols(&lines);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[1].name.as_str(), p[1].bgp_state.as_str(), p[1].imported),
            ("peer_lb2_4", "Established", 1)
        );
        assert_eq!(p[1].since_s, 1_796_437_870);
        assert_eq!((p[2].state.as_str(), p[2].last_error.as_str()), ("start", "Socket: No route to host"));
    }

    #[tokio::test]
    async fn a_reply_that_never_ends_or_is_not_birds_is_an_error() {
        let mut r = BufReader::new("1002-x BGP\n".as_bytes());
        assert!(matches!(read_reply(&mut r, "c").await, Err(ControlError::Garbled { .. })));
        let mut r = BufReader::new("HTTP/1.1 200 OK\n".as_bytes());
        assert!(matches!(read_reply(&mut r, "c").await, Err(ControlError::Garbled { .. })));
        let flood = format!("1002-{}\n", "x".repeat(MAX_REPLY + 10));
        let mut r = BufReader::new(flood.as_bytes());
        assert!(matches!(read_reply(&mut r, "c").await, Err(ControlError::Garbled { .. })));
    }
}
