//! Audit events: one serializable event per keyring change or refused change.
//! Events carry ids, names and versions, never secrets or hashes.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// One change (or refused change) to the keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: Timestamp,
    /// Who (`operator:<name>` or `key:<client id>`).
    pub actor: String,
    /// The management action (`keys.rotate`, ...).
    pub action: String,
    /// The key concerned.
    pub key_id: Option<String>,
    /// The user concerned.
    pub user_id: Option<String>,
    /// Record version after the change.
    pub version: Option<u64>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Short human detail (no secrets).
    pub detail: String,
}

/// Receives audit events. Must not fail the change it reports on.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// Drops events.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullAudit;

impl AuditSink for NullAudit {
    fn record(&self, _event: &AuditEvent) {}
}

/// Keeps events in memory (tests, demos, the CLI's JSON output).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAudit {
    /// Events so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, event: &AuditEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
    }
}

/// Writes events as JSON lines to stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrAudit;

impl AuditSink for StderrAudit {
    fn record(&self, event: &AuditEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            eprintln!("{line}");
        }
    }
}
