//! Scope patterns: dotted names where a trailing `*` matches any suffix (`admin.*` matches
//! `admin.account.create`; `*` matches everything). Roles expand to pattern lists at load time
//! so a request only runs string comparisons.

/// True when `pattern` covers `scope`.
pub fn matches(pattern: &str, scope: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        // `admin.*` covers `admin.x` and `admin.x.y`, not `admin` itself nor `administrator`.
        Some(prefix) => {
            scope.len() > prefix.len() + 1
                && scope.starts_with(prefix)
                && scope.as_bytes().get(prefix.len()) == Some(&b'.')
        }
        None => pattern == scope,
    }
}

/// True when any pattern covers `scope`.
pub fn any_matches<'a>(patterns: impl IntoIterator<Item = &'a str>, scope: &str) -> bool {
    patterns.into_iter().any(|p| matches(p, scope))
}

/// True when every scope `pattern` could grant is also granted by `by` (used to stop a key
/// from minting a key that exceeds itself). An exact scope is covered by an equal scope or a
/// wildcard matching it; a wildcard is covered only by an equal or wider wildcard (an exact
/// `keys.create` does not cover `keys.create.*`, which also grants `keys.create.api`).
pub fn covered<'a>(pattern: &str, by: impl IntoIterator<Item = &'a str>) -> bool {
    by.into_iter().any(|b| covers_one(b, pattern))
}

/// True when the single pattern `b` grants everything `pattern` grants.
fn covers_one(b: &str, pattern: &str) -> bool {
    if b == pattern || b == "*" {
        return true;
    }
    if pattern == "*" {
        return false;
    }
    match pattern.strip_suffix(".*") {
        // A wildcard: only a wider wildcard (`keys.*` over `keys.create.*`).
        Some(prefix) => b.ends_with(".*") && matches(b, prefix),
        None => matches(b, pattern),
    }
}

/// The patterns granting exactly what both `p` and `q` grant: scope patterns nest or are
/// disjoint, so the answer is the narrower of the two, or nothing.
pub fn intersect<'a>(p: &'a str, q: &'a str) -> Option<&'a str> {
    if covers_one(q, p) {
        Some(p)
    } else if covers_one(p, q) {
        Some(q)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_semantics() {
        assert!(matches("admin.*", "admin.account.create"));
        assert!(matches("admin.*", "admin.embed"));
        assert!(!matches("admin.*", "admin"));
        assert!(!matches("admin.*", "administrator.x"));
        assert!(matches("*", "anything"));
        assert!(matches("api.read", "api.read"));
        assert!(!matches("api.read", "api.write"));
        assert!(!matches("api.read", "api.read.x"));
    }

    #[test]
    fn coverage() {
        assert!(covered("api.read", ["api.*"]));
        assert!(covered("admin.account.*", ["admin.*"]));
        assert!(!covered("admin.*", ["admin.account.*"]));
        assert!(!covered("*", ["admin.*"]));
        assert!(covered("*", ["*"]));
        assert!(!covered("api.write", ["api.read"]));
        // Issue 11: an exact scope never covers a wildcard below it.
        assert!(!covered("keys.create.*", ["keys.create"]));
        assert!(covered("keys.create.*", ["keys.*"]));
        assert!(covered("keys.create.*", ["keys.create.*"]));
        assert!(!covered("keys.*", ["keys.create.*"]));
    }

    /// Every segment-built scope up to `depth` segments over a two-letter alphabet.
    fn scopes(depth: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut layer = vec![String::new()];
        for _ in 0..depth {
            let mut next = Vec::new();
            for base in &layer {
                for seg in ["a", "b"] {
                    next.push(if base.is_empty() { seg.to_string() } else { format!("{base}.{seg}") });
                }
            }
            out.extend(next.iter().cloned());
            layer = next;
        }
        out
    }

    /// Every pattern up to three segments: exact scopes, `x.*` wildcards and `*`.
    fn patterns() -> Vec<String> {
        let exact = scopes(3);
        let mut out: Vec<String> = exact.iter().map(|s| format!("{s}.*")).collect();
        out.extend(exact);
        out.push("*".to_string());
        out
    }

    /// Exhaustive over a small universe: `covered(p, [b])` is exactly "every concrete scope
    /// (up to five segments, deeper than any pattern) that `p` matches, `b` matches too", and
    /// `intersect` grants exactly the scopes both grant.
    #[test]
    fn coverage_and_intersection_agree_with_the_definition() {
        let universe = scopes(5);
        let pats = patterns();
        for p in &pats {
            for b in &pats {
                let by_definition = universe.iter().filter(|s| matches(p, s)).all(|s| matches(b, s));
                assert_eq!(covered(p, [b.as_str()]), by_definition, "covered({p:?}, [{b:?}])");
                let both: Vec<&String> = universe.iter().filter(|s| matches(p, s) && matches(b, s)).collect();
                match intersect(p, b) {
                    Some(i) => {
                        let granted: Vec<&String> = universe.iter().filter(|s| matches(i, s)).collect();
                        assert_eq!(granted, both, "intersect({p:?}, {b:?}) = {i:?}");
                    }
                    None => assert!(both.is_empty(), "intersect({p:?}, {b:?}) = None but {both:?}"),
                }
            }
        }
    }
}
