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
/// from minting a key that exceeds itself). A wildcard is covered only by an equal or
/// wider wildcard.
pub fn covered<'a>(pattern: &str, by: impl IntoIterator<Item = &'a str>) -> bool {
    by.into_iter().any(|b| {
        b == pattern
            || b == "*"
            || (pattern != "*" && matches(b, pattern.trim_end_matches(".*")))
            || matches(b, pattern)
    })
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
    }
}
