//! WASM binding (placeholder; see issue 5).
