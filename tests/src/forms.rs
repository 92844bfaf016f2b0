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
