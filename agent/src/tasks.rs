//! The one registry of the agent's background tasks: every loop and server the agent starts
//! is spawned here, under a name, so that one [`Tasks::shutdown`] ends them all and the
//! daemon stops with nothing left running behind its back.
//!
//! A task runs until it returns or the registry is stopped; stopping drops it at its next
//! `await` (as `tokio::select!` on the stop token), which is what every one of them expects
//! of a process exit anyway: none holds a half-made kernel change across an `await`
//! (applies run inside the reconciler's lock, and a stop waits for that lock to be given
//! back before the process goes; see `run`).
//!
//! Finished tasks are reaped on every spawn, so a registry that spawns a task per
//! connection holds the live ones, not the history.
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A cloneable handle to the registry; every clone spawns into the same set.
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    set: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").field("live", &self.live()).field("stopped", &self.is_stopped()).finish()
    }
}

impl Tasks {
    /// Run `task` (named `name` in the log) until it returns or the registry stops. After
    /// [`Tasks::shutdown`] began, nothing new is started.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.inner.stop.clone();
        if stop.is_cancelled() {
            tracing::debug!(task = name, "not started: the agent is stopping");
            return;
        }
        let mut set = self.inner.set.lock().expect("task set");
        // Reap what has finished, so the set holds live tasks only.
        while let Some(done) = set.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!(error = %e, "a background task panicked");
            }
        }
        set.spawn(async move {
            tokio::select! {
                () = task => tracing::trace!(task = name, "ended"),
                () = stop.cancelled() => tracing::debug!(task = name, "stopped"),
            }
        });
    }

    /// Tasks still running (finished ones not yet reaped are not counted).
    pub fn live(&self) -> usize {
        let mut set = self.inner.set.lock().expect("task set");
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Whether [`Tasks::shutdown`] has begun.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// A future that completes when the registry is told to stop (for loops that want to
    /// finish a step of their own before they end).
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.stop.clone().cancelled_owned()
    }

    /// Stop every task and wait for them to end: each is dropped at its next `await`;
    /// anything still running after `grace` (a task stuck in blocking code) is aborted.
    /// Returns how many tasks were running.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.inner.stop.cancel();
        let mut set = std::mem::take(&mut *self.inner.set.lock().expect("task set"));
        let running = set.len();
        let drained = tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = set.len(),
                "background tasks still running after the grace period; aborted"
            );
            set.shutdown().await;
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_stop_ends_every_task_and_starts_no_new_one() {
        let tasks = Tasks::default();
        let ended = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        for _ in 0..5 {
            // Made outside the task and moved in: dropped with the task whether or not it
            // was ever polled.
            let guard = Count(Arc::clone(&ended));
            tasks.spawn("forever", async move {
                let _guard = guard;
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
        assert_eq!(tasks.live(), 5);
        assert_eq!(tasks.shutdown(Duration::from_secs(5)).await, 5);
        assert_eq!(ended.load(Ordering::SeqCst), 5, "every task was dropped");
        assert_eq!(tasks.live(), 0);
        tasks.spawn("late", async { panic!("must not run") });
        assert_eq!(tasks.live(), 0, "nothing starts after a stop");
    }

    #[tokio::test]
    async fn finished_tasks_are_reaped() {
        let tasks = Tasks::default();
        for _ in 0..100 {
            tasks.spawn("short", async {});
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tasks.live(), 0, "the set holds the live tasks, not the history");
    }
}
