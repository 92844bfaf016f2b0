//! Python binding (placeholder; see issue 4).
