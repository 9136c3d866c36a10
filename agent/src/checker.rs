//! The thread an agent's probes run on, and the grid their timers snap to.
//!
//! Profiling the checker (`perf` on `cargo bench -p lvs-tests --bench health`) showed a
//! third of its CPU in the kernel's context switches: probes spread over the agent's
//! multi-threaded runtime woke its worker threads for every timer and every socket
//! event, one probe at a time, often across threads. So all probes of an agent run on one
//! thread of their own, on a single-threaded runtime (no cross-thread wake-ups, one
//! `epoll_wait` serves every probe whose socket is ready), and a probe's next start is
//! rounded up to a [`SLOT`] grid, so probes due within the same few milliseconds start —
//! and mostly finish — in the same wake-up. The rest of the agent (the flusher, gRPC)
//! stays on its runtime and hears from the probes over a channel.
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The grid probe start times snap to: at most this much later than their interval says.
pub const SLOT: Duration = Duration::from_millis(4);

/// The checker thread of one agent: probe tasks are spawned on it; dropping it stops the
/// thread and drops every probe still running (an exec check's process group with it).
pub struct CheckerThread {
    handle: Handle,
    epoch: Instant,
    stop: Option<oneshot::Sender<()>>,
}

impl CheckerThread {
    /// Start the thread. It inherits the caller's namespaces (a test's private network
    /// namespace, for one).
    pub fn start() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("lvs-checker".into()).spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            });
            // `rt` drops here, and with it every probe task.
        })?;
        // The real clock, whatever the caller's runtime does with time (tests pause it).
        Ok(CheckerThread { handle, epoch: Instant::from_std(std::time::Instant::now()), stop: Some(stop) })
    }

    /// Run `f` on the checker thread.
    pub fn spawn<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// The grid's origin (see [`snap`]).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

impl Drop for CheckerThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `t` rounded up to the next multiple of [`SLOT`] after `epoch`.
pub fn snap(epoch: Instant, t: Instant) -> Instant {
    let since = t.saturating_duration_since(epoch).as_nanos();
    let slot = SLOT.as_nanos();
    let up = since.div_ceil(slot) * slot;
    epoch + Duration::from_nanos(up as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_snap_up_to_the_grid_and_never_earlier() {
        let e = Instant::now();
        for ms in [0u64, 1, 9, 10, 11, 995, 1000] {
            let t = e + Duration::from_millis(ms);
            let s = snap(e, t);
            assert!(s >= t && s - t < SLOT, "{ms} ms -> {:?}", s - e);
            assert_eq!((s - e).as_nanos() % SLOT.as_nanos(), 0);
        }
    }

    #[test]
    fn a_dropped_checker_stops_its_probes() {
        let c = CheckerThread::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Holds `tx` until dropped: the receiver sees the disconnect when the task goes.
        c.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(c);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
