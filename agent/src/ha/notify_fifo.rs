//! keepalived's notify FIFO: where the engine's state changes come from.
use std::path::{Path, PathBuf};

use lvs_proto::reply::EventKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tracing::{info, warn};

use super::supervisor::until_stopped;
use crate::ha::straddle::Bounce;
use crate::ha::vrrp::{Tracker, parse_notify};
use crate::telemetry::events::Events;

/// Make the FIFO at `path` (an existing FIFO is kept, anything else there replaced).
pub(super) fn make_fifo(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("path with a NUL byte"))?;
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Read the notify FIFO until the engine stops: each state change of our instance is
/// tracked, logged, published and followed by the hand-over bounce.
pub(super) async fn read_fifo(
    fifo: PathBuf,
    instance: String,
    (tracker, bounce): (Tracker, Bounce),
    events: Events,
    mut stopped: watch::Receiver<bool>,
) {
    // Opened read-write, so it never sees end-of-file while keepalived restarts.
    let rx = match tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_receiver(&fifo) {
        Ok(rx) => rx,
        Err(e) => return warn!(fifo = %fifo.display(), error = %e, "cannot read keepalived's notify FIFO"),
    };
    let mut lines = BufReader::new(rx).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            () = until_stopped(&mut stopped) => return,
        };
        let Ok(Some(line)) = line else { return };
        let Some((name, state, priority)) = parse_notify(&line) else { continue };
        if name != instance || !tracker.set(state) {
            continue;
        }
        info!(instance = %name, state = state.as_str(), priority, "VRRP state changed");
        events
            .emit(EventKind::Vrrp, format!("VRRP instance {name}: {} (priority {priority})", state.as_str()));
        bounce.follow(state).await;
    }
}
