//! keycel's CEL functions. They are registered once on the engine's root context.
//!
//! `has_scope` and `in_account_scope` need the request's key and user. Instead of copying
//! them into a CEL value per request (or hiding them in thread-local state), the functions ask
//! the per-request resolver for a reserved name that CEL source cannot spell (it contains a
//! NUL byte), and the resolver answers from the borrowed records.

use cel::common::types::CelBool;
use cel::common::value::CowVal;
use cel::{Context, ExecutionError, FunctionContext};
use std::net::IpAddr;
use std::sync::Arc;

/// Reserved resolver prefix for `has_scope`.
pub(crate) const SCOPE_QUERY: &str = "\0scope\0";
/// Reserved resolver prefix for `in_account_scope`.
pub(crate) const ACCOUNT_QUERY: &str = "\0account\0";

/// Asks the resolver for `prefix ‖ arg`. The name is built on the stack when it fits (every
/// valid scope and account id does), so the common call allocates nothing.
fn ask(ftx: &FunctionContext, prefix: &str, arg: &str) -> Result<bool, ExecutionError> {
    let mut buf = [0u8; 192];
    let heap;
    let name: &str = match buf.get_mut(..prefix.len() + arg.len()) {
        Some(slot) => {
            let (a, b) = slot.split_at_mut(prefix.len());
            a.copy_from_slice(prefix.as_bytes());
            b.copy_from_slice(arg.as_bytes());
            std::str::from_utf8(slot).map_err(|_| ftx.error("invalid name"))?
        }
        None => {
            heap = format!("{prefix}{arg}");
            &heap
        }
    };
    let v: Option<CowVal> = ftx.ptx.get_variable(name);
    match v.as_deref().and_then(|v| v.downcast_ref::<CelBool>()) {
        Some(b) => Ok(*b.inner()),
        None => Err(ftx.error("keycel facts are not available in this context")),
    }
}

/// `has_scope(s)`: the key's effective scopes (role + explicit, capped by the user for
/// personal tokens) cover `s`.
pub fn has_scope(ftx: &FunctionContext, scope: Arc<String>) -> Result<bool, ExecutionError> {
    ask(ftx, SCOPE_QUERY, &scope)
}

/// `in_account_scope(a)`: the key (and, for personal tokens, its user) may reach account `a`.
pub fn in_account_scope(ftx: &FunctionContext, account: Arc<String>) -> Result<bool, ExecutionError> {
    ask(ftx, ACCOUNT_QUERY, &account)
}

/// `ip_in(cidr)`: `request.ip` lies in `cidr` (IPv4 or IPv6; a bare address is a /32 or /128).
/// False when the request has no IP; an error for a malformed CIDR or IP (fails closed).
pub fn ip_in(ftx: &FunctionContext, cidr: Arc<String>) -> Result<bool, ExecutionError> {
    let ip = ftx.ptx.get_variable("request.ip");
    let Some(ip) = ip.as_deref().and_then(|v| v.downcast_ref::<cel::common::types::CelString>()) else {
        return Ok(false);
    };
    let ip: IpAddr = ip.inner().parse().map_err(|_| ftx.error("request.ip is not an IP address"))?;
    let (net, bits) = parse_cidr(&cidr).ok_or_else(|| ftx.error(format!("{cidr:?} is not a CIDR block")))?;
    Ok(cidr_contains(net, bits, ip))
}

/// Parses `addr/bits` (or a bare address).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let addr: IpAddr = addr.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((addr, bits))
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

/// Civil UTC fields of a Unix time.
fn civil(t: i64) -> (i64, i64) {
    let days = t.div_euclid(86_400);
    let hour = t.rem_euclid(86_400) / 3600;
    // 1970-01-01 was a Thursday (ISO weekday 4).
    let weekday = (days + 3).rem_euclid(7) + 1;
    (hour, weekday)
}

/// `hour_utc(t)`: hour of day 0-23 of a Unix time (e.g. `now`).
pub fn hour_utc(t: i64) -> i64 {
    civil(t).0
}

/// `weekday_utc(t)`: ISO weekday of a Unix time, 1 = Monday ... 7 = Sunday.
pub fn weekday_utc(t: i64) -> i64 {
    civil(t).1
}

/// A root context with the CEL standard library and keycel's functions.
pub fn root_context() -> Result<Context<'static, 'static>, cel::DeclarationError> {
    let mut ctx = Context::default();
    ctx.add_function("has_scope", has_scope)?;
    ctx.add_function("in_account_scope", in_account_scope)?;
    ctx.add_function("ip_in", ip_in)?;
    ctx.add_function("hour_utc", hour_utc)?;
    ctx.add_function("weekday_utc", weekday_utc)?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let (n, b) = parse_cidr("10.0.0.0/8").unwrap();
        assert!(cidr_contains(n, b, "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains(n, b, "11.1.2.3".parse().unwrap()));
        let (n, b) = parse_cidr("2001:db8::/32").unwrap();
        assert!(cidr_contains(n, b, "2001:db8::1".parse().unwrap()));
        assert!(!cidr_contains(n, b, "10.0.0.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nope").is_none());
        let (n, b) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(cidr_contains(n, b, "8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn civil_time() {
        // 2026-11-23T17:43:00Z is a Monday.
        assert_eq!(hour_utc(1_795_455_780), 17);
        assert_eq!(weekday_utc(1_795_455_780), 1);
        assert_eq!(weekday_utc(0), 4);
    }
}
