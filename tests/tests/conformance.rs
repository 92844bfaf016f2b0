//! Runs every shared vector in `tests/vectors/` through the Rust engine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel_conformance::{run, run_over, vector_files, Vector};

#[test]
fn every_vector_conforms() {
    let files = vector_files();
    assert!(files.len() >= 5, "vector files missing: {files:?}");
    let mut total = 0;
    let mut failures = Vec::new();
    for f in &files {
        let v: Vector = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let (n, fails) = run(&v).unwrap();
        total += n;
        failures.extend(fails.into_iter().map(|x| format!("{}: {x}", f.display())));
    }
    assert!(total >= 40, "only {total} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_status_code_is_covered() {
    let mut seen = std::collections::BTreeSet::new();
    for f in vector_files() {
        let v: Vector = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        seen.extend(v.cases.iter().map(|c| c.expect.status));
    }
    for s in [200, 400, 401, 403, 404, 429] {
        assert!(seen.contains(&s), "no vector case answers {s}");
    }
}

#[test]
fn budget_input_forms_match_the_vectors() {
    use keycel_conformance::forms::{budget_forms_path, check_budget_forms, BudgetForms};
    let forms: BudgetForms = serde_json::from_str(&std::fs::read_to_string(budget_forms_path()).unwrap()).unwrap();
    assert!(forms.cases.len() >= 20, "only {} budget form cases", forms.cases.len());
    let failures = check_budget_forms(&forms);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn public_record_forms_match_the_vectors() {
    use keycel_conformance::forms::{check_record_forms, record_forms_path, RecordForms};
    let forms: RecordForms = serde_json::from_str(&std::fs::read_to_string(record_forms_path()).unwrap()).unwrap();
    assert!(forms.cases.len() >= 3, "only {} record form cases", forms.cases.len());
    let failures = check_record_forms(&forms);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same vectors, decided over the SQLite store behind its record cache.
#[test]
fn every_vector_conforms_over_cached_sqlite() {
    let mut failures = Vec::new();
    for f in vector_files() {
        let v: Vector = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let store =
            keycel::sqlite::cached(std::sync::Arc::new(keycel::sqlite::SqliteStore::in_memory().unwrap())).unwrap();
        let (_, fails) = run_over(&v, &store).unwrap();
        failures.extend(fails.into_iter().map(|x| format!("{}: {x}", f.display())));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
