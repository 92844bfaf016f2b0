//! A bound on argon2 computations running at once, so a flood of bad keys cannot take every
//! core and `concurrency × m_cost` of memory. Callers past the bound wait up to `max_wait`,
//! then get "overloaded" (503), which is cheaper than queueing without limit.
//!
//! Each slot also owns argon2's working memory ([`Workspace`]): a permit lends it to the one
//! computation that holds the slot and takes it back on release. So the process holds at
//! most `slots` workspaces, allocated once, and RSS under any flood stays within
//! `slots × m_cost` plus a constant, whatever the allocator does with freed blocks.

use crate::hash::Workspace;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

/// Gate settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// argon2 computations allowed at once (default: number of cores).
    pub max_concurrent: usize,
    /// How long a caller waits for a slot before "overloaded".
    pub max_wait: StdDuration,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            max_concurrent: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            max_wait: StdDuration::from_secs(2),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    /// Workspaces of the free slots (at most `max_concurrent` exist in all).
    idle: Vec<Workspace>,
}

/// Counting semaphore over a mutex and condvar, with one argon2 workspace per slot.
#[derive(Debug)]
pub struct HashGate {
    config: GateConfig,
    state: Mutex<State>,
    freed: Condvar,
}

/// Every slot stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// A slot in the gate and its workspace; both are returned on drop (also during unwinding).
#[derive(Debug)]
pub struct GatePermit<'a> {
    gate: &'a HashGate,
    workspace: Option<Workspace>,
}

impl GatePermit<'_> {
    /// The slot's argon2 memory, to pass to `HashPolicy::*_in`.
    pub fn workspace(&mut self) -> &mut Workspace {
        self.workspace.get_or_insert_with(Workspace::new)
    }
}

impl HashGate {
    /// A gate with `config.max_concurrent` slots (at least one).
    pub fn new(config: GateConfig) -> Self {
        HashGate { config, state: Mutex::new(State::default()), freed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot, up to `max_wait`.
    pub fn enter(&self) -> Result<GatePermit<'_>, Overloaded> {
        let max = self.capacity();
        let mut guard = self.lock();
        // Fast path without a clock read: `wait_timeout_while` calls `Instant::now()` first,
        // which panics on wasm32-unknown-unknown (a single-threaded isolate never waits).
        if guard.running >= max {
            let (g, timeout) = self
                .freed
                .wait_timeout_while(guard, self.config.max_wait, |s| s.running >= max)
                .unwrap_or_else(|p| p.into_inner());
            guard = g;
            if timeout.timed_out() && guard.running >= max {
                return Err(Overloaded);
            }
        }
        guard.running += 1;
        let workspace = guard.idle.pop();
        Ok(GatePermit { gate: self, workspace })
    }

    /// Computations running now.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// Highest number of computations allowed at once.
    pub fn capacity(&self) -> usize {
        self.config.max_concurrent.max(1)
    }

    /// argon2 memory held by the free slots, in bytes (at most `capacity × largest m_cost`).
    pub fn idle_workspace_bytes(&self) -> usize {
        self.lock().idle.iter().map(Workspace::bytes).sum()
    }
}

impl Drop for GatePermit<'_> {
    fn drop(&mut self) {
        let mut g = self.gate.lock();
        g.running = g.running.saturating_sub(1);
        if let Some(ws) = self.workspace.take() {
            g.idle.push(ws);
        }
        drop(g);
        self.gate.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{HashParams, HashPolicy};

    #[test]
    fn bounds_and_times_out() {
        let g = HashGate::new(GateConfig { max_concurrent: 1, max_wait: StdDuration::from_millis(20) });
        let p = g.enter().unwrap();
        assert_eq!(g.running(), 1);
        assert!(g.enter().is_err());
        drop(p);
        assert!(g.enter().is_ok());
        assert_eq!(g.running(), 0);
    }

    /// A slot's workspace is allocated once and lent to every later computation in that slot.
    #[test]
    fn slots_reuse_their_workspace() {
        let g = HashGate::new(GateConfig { max_concurrent: 2, max_wait: StdDuration::from_millis(20) });
        let policy = HashPolicy::with_params(HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 }).unwrap();
        for _ in 0..5 {
            let mut a = g.enter().unwrap();
            let mut b = g.enter().unwrap();
            policy.verify_dummy_in(b"x", a.workspace());
            policy.verify_dummy_in(b"y", b.workspace());
        }
        assert_eq!(g.idle_workspace_bytes(), 2 * 1024 * 1024, "two slots, one 1 MiB workspace each");
    }
}
