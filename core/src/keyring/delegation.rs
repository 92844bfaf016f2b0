//! The delegation rule (issue 11): a key acting through management can never create, reshape
//! or take over a key that exceeds itself, on any dimension, judged on the record as it will
//! be after the change.
//!
//! Each dimension is one small [`Dimension`] comparing the actor's effective [`Authority`]
//! with the target's resulting one. A new per-key limit (rate limits, credit budgets) adds a
//! field to [`Authority`] and one entry to [`DIMENSIONS`], and is held to the same rule.

use super::authority::Authority;
use crate::budget::{CreditGrant, RateLimit};
use crate::policy::scopes;
use crate::record::AccountScope;
use crate::time::Timestamp;

/// One dimension of authority on which a target must not exceed its actor.
pub trait Dimension: Sync {
    /// Its name in refusals (`scopes`, `accounts`, ...).
    fn name(&self) -> &'static str;
    /// `Some(why)` when `target` exceeds `actor` on this dimension.
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String>;
}

/// Every scope pattern the target holds is covered by the actor's (wildcards only by equal or
/// wider wildcards).
#[derive(Debug, Clone, Copy)]
pub struct Scopes;
/// The target's accounts are a subset of the actor's; `all` only from an actor with `all`.
#[derive(Debug, Clone, Copy)]
pub struct Accounts;
/// When the actor expires, the target expires no later.
#[derive(Debug, Clone, Copy)]
pub struct Expiry;
/// The target's in-flight limit is no looser than the actor's.
#[derive(Debug, Clone, Copy)]
pub struct MaxConcurrent;

impl Dimension for Scopes {
    fn name(&self) -> &'static str {
        "scopes"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        let mine = || actor.scopes.iter().map(String::as_str);
        target
            .scopes
            .iter()
            .find(|p| !scopes::covered(p, mine()))
            .map(|p| format!("scope {p:?} is not covered by the acting key's own scopes"))
    }
}

impl Dimension for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        (!accounts_within(&target.accounts, &actor.accounts))
            .then(|| "its account scope is not inside the acting key's own".to_string())
    }
}

impl Dimension for Expiry {
    fn name(&self) -> &'static str {
        "expiry"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        let limit = actor.expires_at?;
        let later = target.expires_at.is_none_or(|t: Timestamp| t > limit);
        later.then(|| format!("it would outlive the acting key, which expires at {}", limit.to_rfc3339()))
    }
}

impl Dimension for MaxConcurrent {
    fn name(&self) -> &'static str {
        "max_concurrent"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        (target.max_concurrent > actor.max_concurrent).then(|| {
            format!("max_concurrent {} is looser than the acting key's {}", target.max_concurrent, actor.max_concurrent)
        })
    }
}

/// The target's rate limit is no looser than the actor's: no limit is looser than any; a
/// higher rate per time or a larger burst is looser.
#[derive(Debug, Clone, Copy)]
pub struct Rate;
/// The target's credits are no looser than the actor's: unmetered is looser than metered;
/// more credits granted, or a refill where the actor has none, or more refill per time, is
/// looser.
#[derive(Debug, Clone, Copy)]
pub struct Credits;

/// `a.0 / a.1 > b.0 / b.1` for non-negative numbers, exactly (no division).
fn faster(a: (u128, i64), b: (u128, i64)) -> bool {
    let (an, ad) = (a.0, u128::try_from(a.1.max(1)).unwrap_or(1));
    let (bn, bd) = (b.0, u128::try_from(b.1.max(1)).unwrap_or(1));
    an.saturating_mul(bd) > bn.saturating_mul(ad)
}

fn rate_looser(target: &RateLimit, actor: &RateLimit) -> Option<String> {
    if faster((u128::from(target.limit), target.per.secs()), (u128::from(actor.limit), actor.per.secs())) {
        return Some(format!(
            "rate_limit {} per {}s is looser than the acting key's {} per {}s",
            target.limit,
            target.per.secs(),
            actor.limit,
            actor.per.secs()
        ));
    }
    (target.burst > actor.burst)
        .then(|| format!("rate_limit burst {} is looser than the acting key's {}", target.burst, actor.burst))
}

fn credits_looser(target: &CreditGrant, actor: &CreditGrant) -> Option<String> {
    if target.remaining > actor.remaining {
        return Some(format!("credits {} exceed the acting key's {}", target.remaining, actor.remaining));
    }
    match (&target.refill, &actor.refill) {
        (Some(_), None) => Some("credits refill while the acting key's do not".to_string()),
        (Some(t), Some(a)) => {
            faster((u128::from(t.amount), t.interval.secs()), (u128::from(a.amount), a.interval.secs())).then(|| {
                format!(
                    "credits refill {} per {}s is looser than the acting key's {} per {}s",
                    t.amount,
                    t.interval.secs(),
                    a.amount,
                    a.interval.secs()
                )
            })
        }
        _ => None,
    }
}

impl Dimension for Rate {
    fn name(&self) -> &'static str {
        "rate_limit"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        let mine = actor.rate_limit.as_ref()?;
        match &target.rate_limit {
            None => Some("no rate limit is looser than the acting key's".to_string()),
            Some(t) => rate_looser(t, mine),
        }
    }
}

impl Dimension for Credits {
    fn name(&self) -> &'static str {
        "credits"
    }
    fn exceeds(&self, actor: &Authority, target: &Authority) -> Option<String> {
        let mine = actor.credits.as_ref()?;
        match &target.credits {
            None => Some("unmetered is looser than the acting key's credits".to_string()),
            Some(t) => credits_looser(t, mine),
        }
    }
}

/// Every dimension the rule compares, in the order refusals report them.
pub const DIMENSIONS: &[&dyn Dimension] = &[&Scopes, &Accounts, &Expiry, &MaxConcurrent, &Rate, &Credits];

/// A dimension on which the target would exceed its actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excess {
    /// The dimension (`scopes`, `accounts`, `expiry`, `max_concurrent`, `rate_limit`, `credits`).
    pub dimension: &'static str,
    /// Why, for the audit reason (no secrets).
    pub detail: String,
}

/// The first dimension on which `target` exceeds `actor`, or `None` when it stays within.
pub fn exceeds(actor: &Authority, target: &Authority) -> Option<Excess> {
    DIMENSIONS.iter().find_map(|d| d.exceeds(actor, target).map(|detail| Excess { dimension: d.name(), detail }))
}

/// True when `inner` names no account outside `outer` (`all` is inside only `all`).
pub fn accounts_within(inner: &AccountScope, outer: &AccountScope) -> bool {
    match (inner, outer) {
        (_, AccountScope::All) => true,
        (AccountScope::All, AccountScope::Only(_)) => false,
        (AccountScope::Only(i), AccountScope::Only(o)) => i.is_subset(o),
    }
}

/// A target an actor limited to some accounts may see at all: its effective account scope
/// is inside the actor's. Any other target answers exactly like a missing key.
pub fn visible(actor: &Authority, target: &AccountScope) -> bool {
    accounts_within(target, &actor.accounts)
}
