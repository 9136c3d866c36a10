//! `lvsctl events`: follow every agent's event stream (applies, weight changes, health
//! transitions, drift and healing) as one feed. An agent that goes away is reported and
//! re-dialled every 2 s; the others keep flowing.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use lvs_proto::pb;
use tokio::sync::mpsc;

use super::{CmdError, Ctx};

enum Item {
    Event(pb::Event),
    Lost(String, String),
}

fn when(unix_ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Follow `nodes` (all when empty); stop after `count` events, or on Ctrl-C.
pub async fn events(
    ctx: &Ctx,
    nodes: &[String],
    count: Option<usize>,
    out: &mut dyn Write,
) -> Result<ExitCode, CmdError> {
    let nodes = if nodes.is_empty() { ctx.fleet.names() } else { nodes.to_vec() };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in nodes {
        let client = ctx.fleet.client(&n)?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let mut c = client.clone();
                let lost = match c.events(pb::EventsRequest {}).await {
                    Ok(r) => {
                        let mut s = r.into_inner();
                        loop {
                            match s.message().await {
                                Ok(Some(e)) => {
                                    if tx.send(Item::Event(e)).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break "stream ended".to_string(),
                                Err(e) => break crate::fleet::describe(&e),
                            }
                        }
                    }
                    Err(e) => crate::fleet::describe(&e),
                };
                if tx.send(Item::Lost(n.clone(), lost)).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    drop(tx);
    let mut seen = 0;
    let done = loop {
        let item = tokio::select! {
            i = rx.recv() => i,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let Some(item) = item else { break Ok(()) };
        let is_event = matches!(item, Item::Event(_));
        let r = match item {
            Item::Event(e) if ctx.json => writeln!(
                out,
                "{}",
                serde_json::json!({"time": when(e.unix_ms), "node": e.node, "kind": e.kind, "message": e.message})
            ),
            Item::Event(e) => writeln!(out, "{} {} {}: {}", when(e.unix_ms), e.node, e.kind, e.message),
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
    for t in tasks {
        t.abort();
    }
    done?;
    Ok(ExitCode::SUCCESS)
}
