//! Failed-authentication budgets ([`crate::throttle`]) in the SQLite admission file, so every
//! worker process of a machine charges one budget per client address and client id (with
//! process-local budgets, N workers let an address fail N times its budget).
//!
//! One row per subject in `keycel_failures` (kind, key, the [`Debt`]); a charge is one short
//! `BEGIN IMMEDIATE` transaction (read, [`Debt::charged`], write) so concurrent processes never
//! overshoot; a refund one transaction. What runs on event loops never touches the file, since
//! the admission connection may be waiting on another process's write lock: the screen answers
//! from the refusals this process's charges got, and a shed is charged to this process's own
//! count ([`InProcess`]). The same debt arithmetic as the process-local budget, so the answers
//! (429 and `Retry-After`) are the same. Rows whose debt is paid back carry nothing and are
//! deleted every [`PRUNE_EVERY`] charges of a handle.
//!
//! A store error leaves this process's answer standing (a locked file must not lock every
//! client out; the bound then holds per process, and the gate still bounds argon2).

use super::sqlite::Shared;
use super::sqlite_leases::Immediate;
use crate::throttle::{Debt, Exhausted, FailureBudget, InProcess, Subject, ThrottleConfig};
use crate::time::Timestamp;
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Charges between two deletions of paid-back rows (per handle).
pub(super) const PRUNE_EVERY: u32 = 256;

/// Budgets of one [`super::SqliteAdmission`]'s file, on its connection.
#[derive(Debug)]
pub(super) struct SqliteFailures {
    shared: Arc<Shared>,
    config: ThrottleConfig,
    charges: AtomicU32,
    here: InProcess,
}

fn read(conn: &Connection, subject: Subject<'_>) -> Result<Option<Debt>, rusqlite::Error> {
    let mut st = conn.prepare_cached("SELECT debt_ms, at_ms FROM keycel_failures WHERE kind = ?1 AND key = ?2")?;
    let mut rows = st.query(params![subject.kind(), subject.key()])?;
    Ok(match rows.next()? {
        Some(r) => Some(Debt { ms: r.get(0)?, at: r.get(1)? }),
        None => None,
    })
}

fn write(conn: &Connection, subject: Subject<'_>, d: Debt) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO keycel_failures (kind, key, debt_ms, at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, key) DO UPDATE SET debt_ms = excluded.debt_ms, at_ms = excluded.at_ms",
    )?
    .execute(params![subject.kind(), subject.key(), d.ms, d.at])?;
    Ok(())
}

impl SqliteFailures {
    pub(super) fn new(shared: Arc<Shared>, config: ThrottleConfig) -> Self {
        let here = InProcess::new(config.clone());
        SqliteFailures { shared, config, charges: AtomicU32::new(0), here }
    }

    /// `Ok(Err(_))`: refused (nothing written).
    fn try_charge(
        &self,
        subject: Subject<'_>,
        now_ms: i64,
        limit: u32,
    ) -> Result<Result<(), Exhausted>, rusqlite::Error> {
        let (interval, tolerance) = self.config.rates(limit);
        let conn = self.shared.conn();
        let tx = Immediate::begin(&conn)?;
        let debt = read(&tx, subject)?.unwrap_or_default();
        let next = match debt.charged(now_ms, interval, tolerance) {
            Ok(next) => next,
            Err(e) => return Ok(Err(e)),
        };
        write(&tx, subject, next)?;
        if self.charges.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            tx.prepare_cached("DELETE FROM keycel_failures WHERE at_ms + debt_ms <= ?1")?.execute([now_ms])?;
        }
        tx.commit()?;
        Ok(Ok(()))
    }
}

impl FailureBudget for SqliteFailures {
    fn charge(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        let Some(limit) = self.config.limit(subject) else { return Ok(()) };
        let now_ms = now.unix().saturating_mul(1000);
        self.here.charge(subject, now, || self.try_charge(subject, now_ms, limit).ok())
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        let Some(limit) = self.config.limit(subject) else { return };
        self.here.refund(subject, now, || {
            let (interval, _) = self.config.rates(limit);
            let now_ms = now.unix().saturating_mul(1000);
            let conn = self.shared.conn();
            let Ok(tx) = Immediate::begin(&conn) else { return };
            if let Ok(Some(debt)) = read(&tx, subject) {
                if write(&tx, subject, debt.refunded(now_ms, interval)).is_ok() {
                    let _ = tx.commit();
                }
            }
        });
    }

    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        self.here.exhausted(subject, now)
    }

    fn charge_nowait(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        self.here.charge_nowait(subject, now)
    }

    fn refund_nowait(&self, subject: Subject<'_>, now: Timestamp) {
        self.here.refund_nowait(subject, now);
    }
}
