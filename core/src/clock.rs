//! The one place keycel reads the system clock (std only). Everything else takes `now`, so
//! tests, replays and WASM hosts (where `SystemTime` is unavailable) pass time in.

use crate::time::Timestamp;

/// The current time from the system clock.
pub fn now() -> Timestamp {
    let secs = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    Timestamp::saturating_from_unix(secs)
}
