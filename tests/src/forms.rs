//! `tests/vectors/forms/*.json`: value forms every runtime must produce identically, such as
//! the public form of a key record (no hashes). A separate directory because these cases are
//! not requests: each one is a record as stored and the public form every binding's
//! `to_dict()` / `toJSON()` and the CLI must show for it.

use keycel::record::KeyRecord;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `tests/vectors/forms/records.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordForms {
    /// What the file holds.
    pub description: String,
    /// The cases.
    pub cases: Vec<RecordFormCase>,
}

/// One record in both forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFormCase {
    /// Name.
    pub name: String,
    /// The storage form (with hashes), as a store holds it.
    pub storage: serde_json::Value,
    /// The public form every runtime must give for it.
    pub public: serde_json::Value,
}

/// The file's path.
pub fn record_forms_path() -> PathBuf {
    crate::repo_root().join("tests/vectors/forms/records.json")
}

/// Checks every case through core; one line per mismatch.
pub fn check_record_forms(forms: &RecordForms) -> Vec<String> {
    let mut failures = Vec::new();
    for c in &forms.cases {
        match KeyRecord::from_storage_value(c.storage.clone()) {
            Err(e) => failures.push(format!("{}: storage form refused: {e}", c.name)),
            Ok(r) => {
                let public = r.to_public_value();
                if public != c.public {
                    failures.push(format!("{}: public form {public} != {}", c.name, c.public));
                }
                if public.to_string().contains("$argon2") {
                    failures.push(format!("{}: public form carries a hash", c.name));
                }
                if r.to_storage_value() != c.storage {
                    failures.push(format!("{}: storage form does not round-trip", c.name));
                }
            }
        }
    }
    failures
}

/// `tests/vectors/forms/budgets.json`: the budget input shapes (`rate_limit`, `credits`) as a
/// user sends them (the management API's fields, Python's keywords, the JS key spec), and the
/// record form each becomes or the field-named error it gets, the same in every runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetForms {
    /// What the file holds.
    pub description: String,
    /// When the keys are created (a grant's `set_at`).
    pub now: String,
    /// The cases.
    pub cases: Vec<BudgetFormCase>,
}

/// One input and what it must give.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFormCase {
    /// Name.
    pub name: String,
    /// `{"rate_limit": ...}` or `{"credits": ...}`: the value as sent.
    pub input: serde_json::Value,
    /// The record's field as stored and shown (`{"rate_limit": {...}}`), or
    /// `{"error": {"code": "invalid_record", "field": "rate_limit.per"}}`.
    pub expect: serde_json::Value,
}

/// The file's path.
pub fn budget_forms_path() -> PathBuf {
    crate::repo_root().join("tests/vectors/forms/budgets.json")
}

/// What core's parser (`keycel::budget::spec`) makes of a case's input: the record field or
/// the error, in the case's `expect` form.
pub fn parse_budget_input(input: &serde_json::Value, now: keycel::time::Timestamp) -> serde_json::Value {
    use keycel::budget::spec;
    use serde_json::json;
    let parsed = match (input.get("rate_limit"), input.get("credits")) {
        (Some(v), None) => spec::rate_limit("rate_limit", v).map(|r| json!({ "rate_limit": r })),
        (None, Some(v)) => spec::credits("credits", v, now).map(|g| json!({ "credits": g })),
        _ => return json!({ "error": { "code": "bad_case", "field": "" } }),
    };
    parsed.unwrap_or_else(|e| json!({ "error": { "code": "invalid_record", "field": e.field } }))
}

/// Checks every case through core; one line per mismatch.
pub fn check_budget_forms(forms: &BudgetForms) -> Vec<String> {
    let Ok(now) = keycel::time::Timestamp::parse_rfc3339(&forms.now) else {
        return vec![format!("bad now {}", forms.now)];
    };
    forms
        .cases
        .iter()
        .filter_map(|c| {
            let got = parse_budget_input(&c.input, now);
            (got != c.expect).then(|| format!("{}: {} gave {got}, expected {}", c.name, c.input, c.expect))
        })
        .collect()
}
