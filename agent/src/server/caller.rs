//! Who asked for what the agent is doing now. The door ([`crate::server::authz`]) runs every call
//! inside [`scope`] with the caller its certificate names; whatever that call makes the
//! agent do and publish (events, logs) reads it back with [`current`], so "who asked" is
//! recorded without every method of [`crate::node::Agent`] taking it as an argument. Work
//! the agent starts by itself (start-up, healing, health checks) has no caller.
use lvs_proto::identity::Caller;

tokio::task_local! {
    static CALLER: Caller;
}

/// Run `f` as `caller`'s.
pub async fn scope<F: Future>(caller: Caller, f: F) -> F::Output {
    CALLER.scope(caller, f).await
}

/// The caller of the work in progress, if a caller started it.
pub fn current() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

/// Run `f` (typically a spawned task's body) as the current caller's, if any: a task
/// spawned on a caller's behalf does not inherit task-locals by itself.
pub async fn carry<F: Future>(caller: Option<Caller>, f: F) -> F::Output {
    match caller {
        Some(c) => scope(c, f).await,
        None => f.await,
    }
}
