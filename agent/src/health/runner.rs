//! The thread an agent's probes run on, and the grid their timers snap to.
//!
//! Profiling the checker (`perf` on `cargo bench -p lvs-tests --bench health`) showed a
//! third of its CPU in the kernel's context switches: probes spread over the agent's
//! multi-threaded runtime woke its worker threads for every timer and every socket
//! event, one probe at a time, often across threads. So all probes of an agent run on one
//! thread of their own, on a single-threaded runtime (no cross-thread wake-ups, one
//! `epoll_wait` serves every probe whose socket is ready), and a probe's next start is
//! rounded up to a grid ([`slot`]), so probes due within the same few milliseconds start —
//! and mostly finish — in the same wake-up. With kept-alive connections a probe is a
//! write and a read, and the wake-ups around them were then most of its cost (under the
//! VM's emulated CPU, 0.3 wake-ups a probe instead of 1.0 cut its CPU by half): the grid
//! is 5% of the interval, between 4 and 50 ms, so that 200 destinations checked every
//! second share 20 wake-ups a second. The grid moves when a probe runs within its
//! interval, not how often: an interval that is a multiple of its slot (every interval up
//! to 1 s, and every whole number of 50 ms) keeps its exact cadence, so detection times
//! (`fall` × interval) do not change. The rest of the agent (the flusher, gRPC)
//! stays on its runtime and hears from the probes over a channel.
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The finest grid probe start times snap to.
pub const MIN_SLOT: Duration = Duration::from_millis(4);
/// The coarsest.
pub const MAX_SLOT: Duration = Duration::from_millis(50);

/// The grid of probes every `interval`: a start is at most this much later than the
/// interval says, 5% of it (10 ms at 200 ms, 50 ms from 1 s on).
pub fn slot(interval: Duration) -> Duration {
    (interval / 20).clamp(MIN_SLOT, MAX_SLOT)
}

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

/// `t` rounded up to the next multiple of `slot` after `epoch`.
pub fn snap(epoch: Instant, t: Instant, slot: Duration) -> Instant {
    let since = t.saturating_duration_since(epoch).as_nanos();
    let slot = slot.as_nanos();
    let up = since.div_ceil(slot) * slot;
    epoch + Duration::from_nanos(up as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_snap_up_to_the_grid_and_never_earlier() {
        let e = Instant::now();
        for (interval, slot_ms) in
            [(50, 4), (100, 5), (200, 10), (500, 25), (1000, 50), (2000, 50), (60_000, 50)]
        {
            let slot = slot(Duration::from_millis(interval));
            assert_eq!(slot, Duration::from_millis(slot_ms), "interval {interval} ms");
            for ms in [0u64, 1, 9, 10, 11, 995, 1000] {
                let t = e + Duration::from_millis(ms);
                let s = snap(e, t, slot);
                assert!(s >= t && s - t < slot, "{ms} ms -> {:?}", s - e);
                assert_eq!((s - e).as_nanos() % slot.as_nanos(), 0);
            }
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
