//! CLI failures and their exit codes. Every failure has one code, listed in `--help`.

use keycel::keyring::KeyringError;
use keycel::sqlite::OpenError;
use keycel::store::StoreError;
use std::fmt;

/// Exit codes (also in the top-level `--help`).
pub mod code {
    /// Success; `authorize`: the request is allowed.
    pub const OK: u8 = 0;
    /// `authorize`: denied; `policy test`: a test failed; `demo`: a step deviated.
    pub const DENIED: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// No such key, user or store file.
    pub const NOT_FOUND: u8 = 3;
    /// A value is invalid (name, role, scope, duration, header...).
    pub const INVALID: u8 = 4;
    /// The id exists already, or someone changed the record concurrently.
    pub const CONFLICT: u8 = 5;
    /// The policy refused a management action.
    pub const FORBIDDEN: u8 = 6;
    /// A policy file does not load (syntax, unknown scope, CEL error).
    pub const POLICY: u8 = 7;
    /// The store or the file system failed.
    pub const STORE: u8 = 8;
}

/// A failure: exit code, short kind for `--json`, and a message that never holds a secret.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        CliError { code, kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(code::NOT_FOUND, "not_found", message)
    }

    pub fn store(message: impl Into<String>) -> Self {
        Self::new(code::STORE, "store", message)
    }

    pub fn policy(message: impl Into<String>) -> Self {
        Self::new(code::POLICY, "policy", message)
    }

    /// A non-error outcome that must still exit non-zero (denied, failed tests, demo deviations).
    pub fn denied(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(code::DENIED, kind, message)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "kind": self.kind, "exit_code": self.code, "message": self.message } })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => CliError::not_found(e.to_string()),
            StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => {
                CliError::new(code::CONFLICT, "conflict", e.to_string())
            }
            StoreError::Corrupt(_) | StoreError::Backend(_) => CliError::store(e.to_string()),
        }
    }
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> Self {
        match &e {
            OpenError::Missing(p) => {
                CliError::not_found(format!("no keycel store at {} (create one with `keycel init`)", p.display()))
            }
            _ => CliError::store(e.to_string()),
        }
    }
}

impl From<KeyringError> for CliError {
    fn from(e: KeyringError) -> Self {
        match e {
            KeyringError::Denied(d) if d.status == 400 => CliError::invalid(d.reason),
            KeyringError::Denied(d) => CliError::new(
                code::FORBIDDEN,
                "forbidden",
                format!("the policy refused this action ({} {}): {}", d.status, d.code.unwrap_or_default(), d.reason),
            ),
            KeyringError::NotFound(id) => CliError::not_found(format!("not found: {id}")),
            KeyringError::Invalid(r) => CliError::invalid(r.to_string()),
            KeyringError::Store(s) => s.into(),
            KeyringError::Hash(h) => CliError::invalid(format!("hashing: {h}")),
            KeyringError::Token(t) => CliError::store(format!("issuing a token: {t}")),
        }
    }
}

impl From<keycel::policy::PolicyError> for CliError {
    fn from(e: keycel::policy::PolicyError) -> Self {
        CliError::policy(e.to_string())
    }
}

impl From<keycel::engine::EngineError> for CliError {
    fn from(e: keycel::engine::EngineError) -> Self {
        CliError::policy(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::store(format!("i/o: {e}"))
    }
}
