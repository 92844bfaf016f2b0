//! Policy tests as data (placeholder, replaced below).
