//! Helpers shared by integration tests (each test file is its own crate: `mod support;`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// A fresh directory under the system's temp dir (a random name, so parallel tests and
/// reruns never share one), removed with everything in it when dropped, also when the test
/// fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!("keycel-{label}-{:016x}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
