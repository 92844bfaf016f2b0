//! Credit floors: the highest consumed count this process has seen per key, grant epoch and
//! refill period. Every admit answers with the key's count; when Redis loses the state
//! (`FLUSHALL`, a restart without persistence) the next call from this process re-seeds the
//! count with its floor instead of zero, so credits a live process has seen spent are never
//! handed out again. What no live process has seen (every worker and Redis lost together) is
//! the remaining bound; AOF persistence closes it (README).

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the oldest periods are dropped (one small entry per metered key).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Floors {
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    epoch_ms: i64,
    period: i64,
    used: u64,
}

impl Floors {
    /// The floor to send for `key_id` under the grant of `epoch_ms`: (period, used); (0, 0)
    /// when this process has seen nothing of that grant.
    pub fn get(&self, key_id: &str, epoch_ms: i64) -> (i64, u64) {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(key_id) {
            Some(s) if s.epoch_ms == epoch_ms => (s.period, s.used),
            _ => (0, 0),
        }
    }

    /// Records a count the script answered with: a newer grant or period replaces the entry,
    /// the same one keeps the highest count.
    pub fn see(&self, key_id: &str, epoch_ms: i64, period: i64, used: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let new = Seen { epoch_ms, period, used };
        match seen.get_mut(key_id) {
            Some(s) if (s.epoch_ms, s.period) > (epoch_ms, period) => {}
            Some(s) if (s.epoch_ms, s.period) == (epoch_ms, period) => s.used = s.used.max(used),
            Some(s) => *s = new,
            None => {
                if seen.len() >= MAX_KEYS {
                    // Bounded memory: forget the keys of the oldest grants first.
                    let mut epochs: Vec<i64> = seen.values().map(|s| s.epoch_ms).collect();
                    epochs.sort_unstable();
                    let cut = epochs.get(epochs.len() / 2).copied().unwrap_or(i64::MIN);
                    seen.retain(|_, s| s.epoch_ms > cut);
                }
                seen.insert(key_id.to_string(), new);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keeps_the_highest_count_of_the_newest_grant_and_period() {
        let f = Floors::default();
        assert_eq!(f.get("k", 10), (0, 0));
        f.see("k", 10, 0, 5);
        f.see("k", 10, 0, 3); // an older answer arriving late
        assert_eq!(f.get("k", 10), (0, 5));
        f.see("k", 10, 1, 1); // next period
        assert_eq!(f.get("k", 10), (1, 1));
        f.see("k", 10, 0, 9); // a late answer of the old period does not go back
        assert_eq!(f.get("k", 10), (1, 1));
        assert_eq!(f.get("k", 20), (0, 0), "another grant's floor is not this one's");
        f.see("k", 20, 0, 2);
        assert_eq!(f.get("k", 20), (0, 2));
    }
}
