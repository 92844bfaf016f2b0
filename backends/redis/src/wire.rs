//! The admission script's request, packed straight into one RESP buffer: `EVALSHA <sha> <n>`,
//! the first `n` of the key's three hash-tagged names and the arguments, with no per-argument allocation
//! (redis-rs's `ScriptInvocation` allocates a vector per key and argument, then copies them
//! again into the command). One `write` per request, on a `TCP_NODELAY` socket.

use crate::script::Arg;
use redis::{ConnectionLike, ErrorKind, RedisResult, ServerErrorKind, Value};

/// Suffixes of one key's state names (`{keycel:<key id>}<suffix>`, see [`crate::script::keys`]).
const SUFFIXES: [&str; 3] = ["}:leases", "}:rate", "}:credits"];
const TAG: &str = "{keycel:";

/// `EVALSHA <sha> <keys> <the first keys of key_id's names> <argv...>` as RESP bytes
/// (`keys` is at most 3).
pub fn pack(sha: &str, key_id: &str, keys: usize, argv: &[Arg<'_>]) -> Vec<u8> {
    let keys = keys.min(SUFFIXES.len());
    let mut b = Vec::with_capacity(160 + 3 * key_id.len() + 24 * argv.len());
    b.push(b'*');
    put_int(&mut b, i64::try_from(3 + keys + argv.len()).unwrap_or(i64::MAX));
    b.extend_from_slice(b"\r\n$7\r\nEVALSHA\r\n");
    bulk(&mut b, sha.as_bytes());
    put_int_bulk(&mut b, i64::try_from(keys).unwrap_or(0));
    for suffix in SUFFIXES.iter().take(keys) {
        b.push(b'$');
        put_int(&mut b, i64::try_from(TAG.len() + key_id.len() + suffix.len()).unwrap_or(i64::MAX));
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(TAG.as_bytes());
        b.extend_from_slice(key_id.as_bytes());
        b.extend_from_slice(suffix.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    for a in argv {
        match a {
            Arg::Str(s) => bulk(&mut b, s.as_bytes()),
            Arg::Int(i) => put_int_bulk(&mut b, *i),
        }
    }
    b
}

/// An integer as a bulk string (how redis-rs sends integer arguments).
fn put_int_bulk(b: &mut Vec<u8>, i: i64) {
    let mut digits = [0u8; 20];
    let n = digits_of(i, &mut digits);
    bulk(b, digits.get(n..).unwrap_or_default());
}

/// Sends a packed request; on `NOSCRIPT` (a restarted or flushed Redis) loads `source` with
/// `SCRIPT LOAD` and sends it once more. Server error replies come back as errors.
pub fn call(c: &mut redis::Connection, packed: &[u8], source: &str) -> RedisResult<Value> {
    match c.req_packed_command(packed)?.extract_error() {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            let _: String = redis::cmd("SCRIPT").arg("LOAD").arg(source).query(c)?;
            c.req_packed_command(packed)?.extract_error()
        }
        r => r,
    }
}

fn bulk(b: &mut Vec<u8>, s: &[u8]) {
    b.push(b'$');
    put_int(b, i64::try_from(s.len()).unwrap_or(i64::MAX));
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(s);
    b.extend_from_slice(b"\r\n");
}

fn put_int(b: &mut Vec<u8>, i: i64) {
    let mut digits = [0u8; 20];
    let n = digits_of(i, &mut digits);
    b.extend_from_slice(digits.get(n..).unwrap_or_default());
}

/// Writes `i` in decimal at the end of `out`; returns where it starts.
fn digits_of(i: i64, out: &mut [u8; 20]) -> usize {
    let mut n = i.unsigned_abs();
    let mut at = out.len();
    loop {
        at -= 1;
        if let Some(d) = out.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        if let Some(d) = out.get_mut(at) {
            *d = b'-';
        }
    }
    at
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::script::{self, AdmitArgs, GrantArgs};

    /// The packer writes byte for byte what redis-rs writes for the same command.
    #[test]
    fn packs_what_redis_rs_packs() {
        let sha = crate::script().get_hash().to_string();
        let grant = GrantArgs {
            first: u64::MAX,
            amount: 7,
            interval_ms: -1,
            epoch_ms: i64::MIN + 1,
            floor_period: 0,
            floor_used: 9_007_199_254_740_991,
        };
        let cases = [
            AdmitArgs { limit: 5, ttl_ms: 60_000, member: "1234-00ff-1", cost: 1, rate: None, credits: None },
            AdmitArgs {
                limit: u32::MAX,
                ttl_ms: 0,
                member: "",
                cost: 0,
                rate: Some((i64::MAX, -10)),
                credits: Some(grant),
            },
        ];
        for key_id in ["kc_0123456789abcdef", "", "ключ{x}"] {
            for a in &cases {
                let argv = script::admit_argv(a);
                let (keys, n) = script::admit_shape(a);
                let argv = &argv[..n];
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(&sha).arg(keys);
                for k in script::keys(key_id).iter().take(keys) {
                    cmd.arg(k);
                }
                for x in argv {
                    match x {
                        Arg::Str(s) => cmd.arg(*s),
                        Arg::Int(i) => cmd.arg(*i),
                    };
                }
                assert_eq!(pack(&sha, key_id, keys, argv), cmd.get_packed_command(), "{key_id} {a:?}");
            }
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&sha).arg(3).arg(&script::keys(key_id)).arg("renew").arg(-5i64).arg("m");
            assert_eq!(pack(&sha, key_id, 3, &script::renew_argv(-5, "m")), cmd.get_packed_command());
        }
    }

    #[test]
    fn digits() {
        for i in [0, 1, -1, 9, 10, -10, 1_000_000, i64::MAX, i64::MIN, i64::MIN + 1] {
            let mut d = [0u8; 20];
            let n = digits_of(i, &mut d);
            assert_eq!(std::str::from_utf8(&d[n..]).unwrap(), i.to_string());
        }
    }
}
