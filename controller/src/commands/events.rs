//! `lvsctl events`: follow every agent's event stream (applies, weight changes, health
//! transitions, drift and healing) as one feed. An agent that goes away is reported and
//! re-dialled every 2 s; the others keep flowing.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use lvs_proto::reply::Event;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{CmdError, Ctx};

enum Item {
    Event(Event),
    Lost(String, String),
}

/// One event as `-o json` prints it (one object per line).
#[derive(Debug, Serialize)]
struct EventLine<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

fn when(unix_ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Send `node`'s events to `tx`, reconnecting 2 s after the stream is lost (and saying
/// so on `tx`), until the printer has gone.
async fn feed(fleet: &crate::fleet::Fleet, n: String, tx: mpsc::UnboundedSender<Item>) {
    loop {
        let lost = match fleet.events(&n).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                loop {
                    match stream.next().await {
                        Some(Ok(e)) => {
                            if tx.send(Item::Event(e)).is_err() {
                                return;
                            }
                        }
                        None => break "stream ended".to_string(),
                        Some(Err(e)) => break e.to_string(),
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if tx.send(Item::Lost(n.clone(), lost)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Follow `nodes` (all when empty); stop after `count` events, or on Ctrl-C.
pub async fn events(
    ctx: &Ctx,
    nodes: &[String],
    count: Option<usize>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let nodes = if nodes.is_empty() { ctx.fleet.names() } else { nodes.to_vec() };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in nodes {
        if !ctx.fleet.names().contains(&n) {
            return Err(CmdError::Usage(format!("no node `{n}` in {}", ctx.file.display())));
        }
        tasks.push(feed(&ctx.fleet, n, tx.clone()));
    }
    drop(tx);
    // The feeders run beside the printer, on this task: they borrow the fleet.
    let mut feeders = std::pin::pin!(futures::future::join_all(tasks));
    let mut seen = 0;
    let done = loop {
        let item = tokio::select! {
            i = rx.recv() => i,
            _ = &mut feeders => None,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let Some(item) = item else { break Ok(()) };
        let is_event = matches!(item, Item::Event(_));
        let r = match item {
            Item::Event(e) if ctx.json => {
                let line = serde_json::to_string(&EventLine { time: when(e.unix_ms), event: &e })
                    .map_err(std::io::Error::other)?;
                writeln!(out, "{line}")
            }
            Item::Event(e) if e.by.is_empty() => {
                writeln!(out, "{} {} {}: {}", when(e.unix_ms), e.node, e.kind, e.message)
            }
            Item::Event(e) => {
                writeln!(out, "{} {} {} by {}: {}", when(e.unix_ms), e.node, e.kind, e.by, e.message)
            }
            // With -o json stdout holds only events (one JSON object a line).
            Item::Lost(n, why) if ctx.json => writeln!(err, "# {n}: {why}; retrying in 2 s"),
            Item::Lost(n, why) => writeln!(out, "# {n}: {why}; retrying in 2 s"),
        };
        if let Err(e) = r.and_then(|_| out.flush()) {
            break Err(e);
        }
        seen += usize::from(is_event);
        if count.is_some_and(|c| seen >= c) {
            break Ok(());
        }
    };
    done?;
    Ok(ExitCode::SUCCESS)
}
