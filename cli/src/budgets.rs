//! `keycel key set-rate-limit`, `key set-credits` and the budget part of `key show`: the
//! key's rate limit, credits left and requests in flight, as the SQLite admission backend of
//! the same database file counts them (a PostgreSQL store has no admission table here: the
//! host's backend counts, so remaining credits are not shown).

use crate::error::CliError;
use keycel::admission::{Admission, SqliteAdmission};
use keycel::budget::{format_duration, CreditGrant, RateLimit, Refill};
use keycel::limiter::LimiterConfig;
use keycel::record::KeyRecord;
use keycel::time::{Duration, Timestamp};
use serde_json::{json, Value};

fn duration(flag: &str, s: &str) -> Result<Duration, CliError> {
    Duration::parse(s).map_err(|e| CliError::invalid(format!("{flag}: {e}")))
}

/// `--limit N --per 1m [--burst B]` or `--clear`.
pub fn rate_limit(
    limit: Option<u32>,
    per: Option<&str>,
    burst: Option<u32>,
    clear: bool,
) -> Result<Option<RateLimit>, CliError> {
    if clear {
        return Ok(None);
    }
    let (Some(limit), Some(per)) = (limit, per) else {
        return Err(CliError::invalid("give --limit and --per (and optionally --burst), or --clear"));
    };
    RateLimit::new(limit, duration("--per", per)?, burst.unwrap_or(0))
        .map(Some)
        .map_err(|e| CliError::invalid(format!("--{}: {}", e.field.trim_start_matches("rate_limit."), e.message)))
}

/// `--remaining N [--refill-amount A --refill-interval 1d]` or `--clear`.
pub fn credits(
    remaining: Option<u64>,
    amount: Option<u64>,
    interval: Option<&str>,
    clear: bool,
) -> Result<(Option<u64>, Option<Refill>), CliError> {
    if clear {
        return Ok((None, None));
    }
    let Some(remaining) = remaining else {
        return Err(CliError::invalid(
            "give --remaining (and optionally --refill-amount with --refill-interval), or --clear",
        ));
    };
    let refill = match (amount, interval) {
        (None, None) => None,
        (Some(amount), Some(i)) => Some(Refill { amount, interval: duration("--refill-interval", i)? }),
        _ => return Err(CliError::invalid("--refill-amount and --refill-interval go together")),
    };
    Ok((Some(remaining), refill))
}

/// `key create --rate-limit LIMIT/PER [--burst B]`: the same check as `set-rate-limit`.
pub fn rate_limit_flag(spec: Option<&str>, burst: Option<u32>) -> Result<Option<RateLimit>, CliError> {
    let Some(spec) = spec else { return Ok(None) };
    let (limit, per) = spec
        .split_once('/')
        .ok_or_else(|| CliError::invalid(format!("--rate-limit {spec:?}: expected LIMIT/PER, e.g. 100/1m")))?;
    let limit = limit
        .trim()
        .parse::<u32>()
        .map_err(|_| CliError::invalid(format!("--rate-limit {spec:?}: the limit must be a whole number")))?;
    RateLimit::new(limit, duration("--rate-limit", per.trim())?, burst.unwrap_or(0)).map(Some).map_err(|e| {
        let flag = if e.field.ends_with("burst") { "--burst" } else { "--rate-limit" };
        CliError::invalid(format!("{flag}: {}", e.message))
    })
}

/// `key create --credits N [--refill-amount A --refill-interval 1d]`: the same check as
/// `set-credits`; the keyring dates the grant at the key's creation.
pub fn credits_flag(
    remaining: Option<u64>,
    amount: Option<u64>,
    interval: Option<&str>,
    now: Timestamp,
) -> Result<Option<CreditGrant>, CliError> {
    if remaining.is_none() {
        if amount.is_some() || interval.is_some() {
            return Err(CliError::invalid("--refill-amount and --refill-interval need --credits"));
        }
        return Ok(None);
    }
    let (remaining, refill) = credits(remaining, amount, interval, false)?;
    Ok(remaining.map(|remaining| CreditGrant { remaining, refill, set_at: now }))
}

/// The admission backend of a SQLite store file (`None` for PostgreSQL).
fn admission(db: &str) -> Option<SqliteAdmission> {
    if keycel_postgres::is_dsn(db) {
        return None;
    }
    SqliteAdmission::open(db, LimiterConfig::default()).ok()
}

/// The budget of a key as `key show` prints it.
pub struct Budget {
    pub rate_limit: Option<RateLimit>,
    pub policy_default: Option<RateLimit>,
    pub credits_remaining: Option<u64>,
    pub in_flight: Option<usize>,
    pub counted_by: &'static str,
}

pub fn budget(db: &str, r: &KeyRecord, policy_default: Option<RateLimit>, now: Timestamp) -> Result<Budget, CliError> {
    let adm = admission(db);
    let counted_by = if adm.is_some() { "sqlite" } else { "host admission backend" };
    let err = |e: keycel::admission::AdmissionError| CliError::invalid(e.to_string());
    let in_flight = adm.as_ref().map(|a| a.in_flight(r.id.as_str())).transpose().map_err(err)?;
    let credits_remaining = match (&adm, &r.credits) {
        (Some(a), Some(g)) => Some(a.usage(r.id.as_str(), g, now).map_err(err)?),
        _ => None,
    };
    Ok(Budget { rate_limit: r.rate_limit, policy_default, credits_remaining, in_flight, counted_by })
}

impl Budget {
    pub fn json(&self, r: &KeyRecord) -> Value {
        json!({
            "rate_limit": self.rate_limit.or(self.policy_default),
            "rate_limit_from_policy": self.rate_limit.is_none() && self.policy_default.is_some(),
            "credits": r.credits,
            "credits_remaining": self.credits_remaining,
            "in_flight": self.in_flight,
            "counted_by": self.counted_by,
        })
    }

    pub fn rows(&self, r: &KeyRecord) -> Vec<(&'static str, String)> {
        let text = |l: RateLimit| format!("{} per {} (burst {})", l.limit, format_duration(l.per), l.burst);
        let rate = match (self.rate_limit, self.policy_default) {
            (Some(l), _) => text(l),
            (None, Some(d)) => format!("{} (policy default)", text(d)),
            (None, None) => "none".to_string(),
        };
        let credits = match &r.credits {
            None => "unmetered".to_string(),
            Some(g) => {
                let left = self.credits_remaining.map_or_else(|| "?".to_string(), |n| n.to_string());
                let refill = g.refill.map_or_else(String::new, |f| {
                    format!(", refill {} every {}", f.amount, format_duration(f.interval))
                });
                format!("{left} of {} left (granted {}{refill})", g.remaining, g.set_at.to_rfc3339())
            }
        };
        let in_flight = self.in_flight.map_or_else(|| format!("counted by the {}", self.counted_by), |n| n.to_string());
        vec![("rate limit", rate), ("credits", credits), ("in flight", in_flight)]
    }
}
