//! Turns for the heavy reads a caller may ask for (the IPVS connection table, live
//! connection counts): each reads a procfs file that can hold millions of lines, on a
//! blocking thread. One at a time per caller and [`MAX_AT_ONCE`] in all, so no viewer can
//! keep the blocking pool or the director's CPU busy; more are refused at once (the caller
//! tries again), never queued behind each other or in front of the reconciler.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Heavy reads running at once, all callers together.
pub const MAX_AT_ONCE: usize = 4;

/// Who is reading now.
#[derive(Default)]
pub struct HeavyReads {
    running: Arc<Mutex<HashSet<String>>>,
}

/// A running read; the turn ends when it is dropped.
#[derive(Debug)]
pub struct Turn {
    who: String,
    running: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.running.lock().expect("heavy reads").remove(&self.who);
    }
}

impl HeavyReads {
    /// A turn for the caller of this request ([`crate::server::caller::current`]; the agent's own
    /// reads are `agent`), or why not now.
    pub fn turn(&self) -> Result<Turn, String> {
        let who = crate::server::caller::current().map(|c| c.to_string()).unwrap_or_else(|| "agent".into());
        let mut r = self.running.lock().expect("heavy reads");
        if r.contains(&who) {
            return Err(format!(
                "{who} is reading the connection table already: one read at a time per caller"
            ));
        }
        if r.len() >= MAX_AT_ONCE {
            return Err(format!("{MAX_AT_ONCE} connection-table reads are running: try again in a moment"));
        }
        r.insert(who.clone());
        Ok(Turn { who, running: Arc::clone(&self.running) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_turn_per_caller_and_a_few_in_all() {
        let h = HeavyReads::default();
        let first = h.turn().unwrap();
        assert!(h.turn().unwrap_err().contains("one read at a time per caller"));
        drop(first);
        h.turn().expect("free again");
    }
}
