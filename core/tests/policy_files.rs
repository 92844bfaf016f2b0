//! Runs every `policies/**/*.tests.toml` and checks every shipped policy loads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::policy::testing::run_path;
use keycel::policy::PolicySet;
use std::path::Path;

fn policies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

#[test]
fn every_policy_test_file_passes() {
    let reports = run_path(policies_dir()).unwrap();
    assert!(reports.len() >= 5, "expected the default and example test files, found {}", reports.len());
    let mut failures = Vec::new();
    let mut total = 0;
    for r in &reports {
        total += r.cases.len();
        for c in r.cases.iter().filter(|c| !c.passed) {
            failures.push(format!("{}: {}: {} ({})", r.file.display(), c.name, c.mismatch, c.decision.reason));
        }
    }
    assert!(total >= 30, "only {total} policy cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn default_policy_embedded_matches_the_file() {
    let on_disk = std::fs::read_to_string(policies_dir().join("default.toml")).unwrap();
    assert_eq!(on_disk, keycel::policy::DEFAULT_POLICY);
    PolicySet::default_policy().unwrap();
}
