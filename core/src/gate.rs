//! A bound on argon2 computations running at once, so a flood of bad keys cannot take every
//! core and `concurrency × m_cost` of memory. Callers past the bound wait up to `max_wait`,
//! then get "overloaded" (503), which is cheaper than queueing without limit.

use std::sync::{Condvar, Mutex};
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

/// Counting semaphore over a mutex and condvar.
#[derive(Debug)]
pub struct HashGate {
    config: GateConfig,
    running: Mutex<usize>,
    freed: Condvar,
}

/// Every slot stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// A slot in the gate; released on drop (also during unwinding).
#[derive(Debug)]
pub struct GatePermit<'a>(&'a HashGate);

impl HashGate {
    /// A gate with `config.max_concurrent` slots (at least one).
    pub fn new(config: GateConfig) -> Self {
        HashGate { config, running: Mutex::new(0), freed: Condvar::new() }
    }

    /// Waits for a slot, up to `max_wait`.
    pub fn enter(&self) -> Result<GatePermit<'_>, Overloaded> {
        let max = self.config.max_concurrent.max(1);
        let mut guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Fast path without a clock read: `wait_timeout_while` calls `Instant::now()` first,
        // which panics on wasm32-unknown-unknown (a single-threaded isolate never waits).
        if *guard < max {
            *guard += 1;
            return Ok(GatePermit(self));
        }
        let (mut guard, timeout) = self
            .freed
            .wait_timeout_while(guard, self.config.max_wait, |running| *running >= max)
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() && *guard >= max {
            return Err(Overloaded);
        }
        *guard += 1;
        Ok(GatePermit(self))
    }

    /// Computations running now.
    pub fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Highest number of computations allowed at once.
    pub fn capacity(&self) -> usize {
        self.config.max_concurrent.max(1)
    }
}

impl Drop for GatePermit<'_> {
    fn drop(&mut self) {
        let mut g = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        *g = g.saturating_sub(1);
        drop(g);
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
