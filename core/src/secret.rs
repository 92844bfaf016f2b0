//! The secret half of a key: zeroized on drop, redacted when printed, never serialized.

use alloc::string::String;
use core::fmt;
use zeroize::Zeroizing;

/// A key secret (or a whole token, which contains one).
///
/// It is deliberately not `Clone`, `Serialize` or comparable: the only way to see it is
/// [`Secret::expose`], so every place that reads it is easy to find in review.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a string; the caller gives up its copy.
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The secret text. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2hunter2");
    }
}
