//! Failed-authentication budgets ([`crate::throttle`]) in the SQLite admission file, so every
//! worker process of a machine charges one budget per client address and client id (with
//! process-local budgets, N workers let an address fail N times its budget).
//!
//! One row per subject in `keycel_failures` (kind, key, the [`Debt`]); a charge is one short
//! `BEGIN IMMEDIATE` transaction (read, [`Debt::charged`], write) so concurrent processes never
//! overshoot; a refund one transaction. What runs on event loops never touches the file, since
//! the admission connection may be waiting on another process's write lock: the screen answers
//! from the refusals this process's charges got, and a shed is charged to this process's own
//! count (the [`SharedBudget`] this store sits behind). The same debt arithmetic as the process-local budget, so the answers
//! (429 and `Retry-After`) are the same. Rows whose debt is paid back carry nothing and are
//! deleted every [`PRUNE_EVERY`] charges of a handle.
//!
//! A store error leaves this process's answer standing (a locked file must not lock every
//! client out; the bound then holds per process, and the gate still bounds argon2).

use super::sqlite::Shared;
use super::sqlite_leases::Immediate;
use crate::throttle::{Debt, DebtStore, Exhausted, Subject};
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Charges between two deletions of paid-back rows (per handle).
pub(super) const PRUNE_EVERY: u32 = 256;

/// Debts in one [`super::SqliteAdmission`]'s file, on its connection.
#[derive(Debug)]
pub(super) struct SqliteDebts {
    shared: Arc<Shared>,
    charges: AtomicU32,
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

impl SqliteDebts {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteDebts { shared, charges: AtomicU32::new(0) }
    }

    /// `Ok(Err(_))`: refused (nothing written).
    fn try_charge(
        &self,
        subject: Subject<'_>,
        interval: i64,
        tolerance: i64,
        now_ms: i64,
    ) -> Result<Result<(), Exhausted>, rusqlite::Error> {
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

impl DebtStore for SqliteDebts {
    fn charge(
        &self,
        subject: Subject<'_>,
        interval: i64,
        tolerance: i64,
        now_ms: i64,
    ) -> Option<Result<(), Exhausted>> {
        self.try_charge(subject, interval, tolerance, now_ms).ok()
    }

    fn refund(&self, subject: Subject<'_>, interval: i64, _tolerance: i64, now_ms: i64) {
        let conn = self.shared.conn();
        let Ok(tx) = Immediate::begin(&conn) else { return };
        if let Ok(Some(debt)) = read(&tx, subject) {
            if write(&tx, subject, debt.refunded(now_ms, interval)).is_ok() {
                let _ = tx.commit();
            }
        }
    }
}
