//! The admission script's arguments and answers (`script.lua` documents the wire form), kept
//! apart from the connection handling so both sides of the protocol are read in one place.

use redis::Value;

/// Redis keys of one API key's state, all hash-tagged `{keycel:<key id>}` (one Cluster slot).
pub fn keys(key_id: &str) -> [String; 3] {
    [format!("{{keycel:{key_id}}}:leases"), format!("{{keycel:{key_id}}}:rate"), format!("{{keycel:{key_id}}}:credits")]
}

/// A credit grant as the script counts it (milliseconds on Redis's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantArgs {
    /// Credits of the first period (the grant's `remaining`).
    pub first: u64,
    /// Credits of every later period (refill amount; 0 without refill).
    pub amount: u64,
    /// Refill interval (0: no refill, one period forever).
    pub interval_ms: i64,
    /// The grant's epoch (`set_at`).
    pub epoch_ms: i64,
    /// The highest count this process has seen for (epoch, period): re-seeds lost state.
    pub floor_period: i64,
    /// See `floor_period`.
    pub floor_used: u64,
}

/// Numbers past 2^53 do not survive Lua's doubles; credits are capped there (9e15).
pub const MAX_EXACT: u64 = (1 << 53) - 1;

impl GrantArgs {
    fn argv(&self) -> [Arg<'static>; 6] {
        [
            Arg::Int(exact(self.first)),
            Arg::Int(exact(self.amount)),
            Arg::Int(self.interval_ms),
            Arg::Int(self.epoch_ms),
            Arg::Int(self.floor_period),
            Arg::Int(exact(self.floor_used)),
        ]
    }
}

/// `n` capped at [`MAX_EXACT`] (fits an `i64`).
fn exact(n: u64) -> i64 {
    i64::try_from(n.min(MAX_EXACT)).unwrap_or(0)
}

/// One script argument (`ARGV[i]`), as the request packer ([`crate::wire`]) writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Str(&'a str),
    Int(i64),
}

fn fill(inv: &mut redis::ScriptInvocation<'_>, argv: &[Arg<'_>]) {
    for a in argv {
        match a {
            Arg::Str(s) => inv.arg(*s),
            Arg::Int(i) => inv.arg(*i),
        };
    }
}

/// One admission request.
#[derive(Debug, Clone)]
pub struct AdmitArgs<'a> {
    pub limit: u32,
    pub ttl_ms: i64,
    pub member: &'a str,
    pub cost: u32,
    /// GCRA emission interval and tolerance (ms); `None`: no rate limit.
    pub rate: Option<(i64, i64)>,
    /// `None`: unmetered.
    pub credits: Option<GrantArgs>,
}

/// The arguments of an admit (the order `script.lua` reads them in).
pub fn admit_argv<'a>(a: &AdmitArgs<'a>) -> [Arg<'a>; 13] {
    let (interval, tolerance) = a.rate.unwrap_or((0, 0));
    let [g1, g2, g3, g4, g5, g6] = match &a.credits {
        Some(g) => g.argv(),
        None => [Arg::Str("-"), Arg::Int(0), Arg::Int(0), Arg::Int(0), Arg::Int(0), Arg::Int(0)],
    };
    [
        Arg::Str("admit"),
        Arg::Int(i64::from(a.limit)),
        Arg::Int(a.ttl_ms),
        Arg::Str(a.member),
        Arg::Int(i64::from(a.cost)),
        Arg::Int(interval),
        Arg::Int(tolerance),
        g1,
        g2,
        g3,
        g4,
        g5,
        g6,
    ]
}

/// What an admit sends: (how many of the key's names, how many of [`admit_argv`]'s
/// arguments). Without a rate limit or credits (most keys) only the lease set and the first
/// four arguments go: the script reads the absent ones as "no rate limit" and "unmetered",
/// takes its short path and answers with the count alone (`benches/latency.rs`: the admit's
/// p50 went from the floor script's + 11 µs to + 2 µs on this machine kind).
pub fn admit_shape(a: &AdmitArgs<'_>) -> (usize, usize) {
    if a.rate.is_none() && a.credits.is_none() {
        (1, 4)
    } else {
        (3, 13)
    }
}

/// The arguments of a usage read.
pub fn usage_argv(g: &GrantArgs) -> [Arg<'static>; 7] {
    let [g1, g2, g3, g4, g5, g6] = g.argv();
    [Arg::Str("usage"), g1, g2, g3, g4, g5, g6]
}

/// The arguments of a lease renewal.
pub fn renew_argv(ttl_ms: i64, member: &str) -> [Arg<'_>; 3] {
    [Arg::Str("renew"), Arg::Int(ttl_ms), Arg::Str(member)]
}

/// Fills `inv` for an admit (redis-rs's own invocation; the backend packs with [`crate::wire`]).
pub fn admit_args(inv: &mut redis::ScriptInvocation<'_>, a: &AdmitArgs<'_>) {
    let argv = admit_argv(a);
    fill(inv, argv.get(..admit_shape(a).1).unwrap_or(&argv));
}

/// Fills `inv` for a usage read.
pub fn usage_args(inv: &mut redis::ScriptInvocation<'_>, g: &GrantArgs) {
    fill(inv, &usage_argv(g));
}

/// The script's answer to an admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Admitted {
        /// Members of the key's lease set now (this one included; lost leases are reclaimed
        /// only once the set is full, so this can count some until then).
        held: i64,
        /// Cost-1 requests that would still conform now; `None`: no rate limit.
        rate_remaining: Option<u64>,
        /// Milliseconds until the whole rate allowance is back.
        rate_reset_ms: i64,
        /// `None`: unmetered.
        credits: Option<Counted>,
    },
    Busy {
        held: i64,
    },
    RateLimited {
        retry_after_ms: i64,
        reset_ms: i64,
    },
    UsageExceeded {
        /// `None`: no refill comes.
        retry_after_ms: Option<i64>,
        counted: Counted,
    },
}

/// Where the key's credit count stands after the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub remaining: u64,
    pub used: u64,
    pub period: i64,
    pub epoch_ms: i64,
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn word(v: Option<&Value>) -> Option<&[u8]> {
    match v? {
        Value::BulkString(b) => Some(b.as_slice()),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn unsigned(i: i64) -> u64 {
    u64::try_from(i).unwrap_or(0)
}

/// Parses an admit answer; `None` for anything the script never sends.
pub fn parse_admit(v: &Value) -> Option<Reply> {
    // The short admit's answer: the count alone (no rate limit, unmetered).
    if let Value::Int(held @ 1..) = v {
        return Some(Reply::Admitted { held: *held, rate_remaining: None, rate_reset_ms: 0, credits: None });
    }
    let Value::Array(a) = v else { return None };
    if int(a.first())? == 1 {
        let rate = int(a.get(2))?;
        let credits = int(a.get(4))?;
        return Some(Reply::Admitted {
            held: int(a.get(1))?,
            rate_remaining: (rate >= 0).then(|| unsigned(rate)),
            rate_reset_ms: int(a.get(3))?,
            credits: (credits >= 0).then_some(Counted {
                remaining: unsigned(credits),
                used: unsigned(int(a.get(5))?),
                period: int(a.get(6))?,
                epoch_ms: int(a.get(7))?,
            }),
        });
    }
    match word(a.get(1))? {
        b"busy" => Some(Reply::Busy { held: int(a.get(2))? }),
        b"rate" => Some(Reply::RateLimited { retry_after_ms: int(a.get(2))?, reset_ms: int(a.get(3))? }),
        b"credits" => {
            let retry = int(a.get(2))?;
            Some(Reply::UsageExceeded {
                retry_after_ms: (retry >= 0).then_some(retry),
                counted: Counted {
                    remaining: 0,
                    used: unsigned(int(a.get(3))?),
                    period: int(a.get(4))?,
                    epoch_ms: int(a.get(5))?,
                },
            })
        }
        _ => None,
    }
}

/// Parses a usage answer: (remaining, used, period).
pub fn parse_usage(v: &Value) -> Option<(u64, u64, i64)> {
    let Value::Array(a) = v else { return None };
    Some((unsigned(int(a.first())?), unsigned(int(a.get(1))?), int(a.get(2))?))
}
