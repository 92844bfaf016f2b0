//! Shared conformance vectors (see tests/vectors/).
