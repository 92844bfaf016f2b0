//! SQLite admission: one budget per key for every worker process on a machine, in the same
//! database file as the [`crate::sqlite::SqliteStore`] (its own table, `keycel_leases`).
//!
//! Each admission is one short `BEGIN IMMEDIATE` transaction (count the key's rows, reclaim
//! its lost ones if any, insert), so two processes can never both take the last slot; a
//! release is one single-row `DELETE`. The file is in WAL mode and writers queue on
//! `busy_timeout`. Table layout, ids and migration: [`super::sqlite_leases`].
//!
//! Rate limits and credits live in `keycel_budgets` (one row per metered key: the GCRA TAT
//! and the credit count), read and written in the same transaction as the lease, so every
//! check comes before any write and a refusal writes nothing. The credit count is in the
//! file: a restarted process continues it and never hands credits out twice.
//!
//! Liveness across processes: a lease row carries a deadline `lease_ttl` ahead. A live
//! process renews the rows of every lease it still holds from a background thread (every
//! third of the TTL), so a live request keeps its slot however long it runs; a process that
//! dies (SIGKILL, OOM) stops renewing and its rows are reclaimed once their deadline passes.
//! A release that fails (the file briefly locked) is also reclaimed after the deadline,
//! since the lease is no longer renewed.

use super::local::{check_budget, KeyBudget};
use super::sqlite_failures::SqliteDebts;
use super::sqlite_leases::{self as leases, Immediate, LeaseIds};
use super::{Admission, AdmissionError, CreditCount, CreditGrant, Lease, Refusal, SharedLease, Ticket};
use crate::limiter::LimiterConfig;
use crate::throttle::{FailureBudget, ThrottleConfig};
use crate::time::Timestamp;
use rusqlite::{params, Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration as StdDuration;

const BACKEND: &str = "sqlite";

/// The stored budget row of a key (none: fresh).
fn read_budget(conn: &Connection, key_id: &str) -> Result<KeyBudget, rusqlite::Error> {
    let mut st = conn.prepare_cached(
        "SELECT tat_ms, credits_set_at, credits_period, credits_spent FROM keycel_budgets WHERE key_id = ?1",
    )?;
    let mut rows = st.query([key_id])?;
    let Some(r) = rows.next()? else { return Ok(KeyBudget::default()) };
    let credits = match (r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?) {
        (Some(set_at), Some(period), Some(spent)) => {
            Some(CreditCount { set_at, period, spent: u64::try_from(spent).unwrap_or(0) })
        }
        _ => None,
    };
    Ok(KeyBudget { tat_ms: r.get(0)?, credits })
}

fn write_budget(conn: &Connection, key_id: &str, b: &KeyBudget) -> Result<(), rusqlite::Error> {
    let c = b.credits;
    conn.prepare_cached(
        "INSERT INTO keycel_budgets (key_id, tat_ms, credits_set_at, credits_period, credits_spent)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key_id) DO UPDATE SET tat_ms = excluded.tat_ms, credits_set_at = excluded.credits_set_at,
             credits_period = excluded.credits_period, credits_spent = excluded.credits_spent",
    )?
    .execute(params![
        key_id,
        b.tat_ms,
        c.map(|c| c.set_at),
        c.map(|c| c.period),
        c.map(|c| i64::try_from(c.spent).unwrap_or(i64::MAX)),
    ])?;
    Ok(())
}

#[derive(Debug)]
pub(super) struct Shared {
    conn: Mutex<Connection>,
    /// Lease rows this process still holds, id to key (renewed by the keeper thread).
    live: Mutex<HashMap<i64, Arc<str>>>,
    ids: LeaseIds,
    config: LimiterConfig,
    path: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn err(e: &rusqlite::Error) -> AdmissionError {
    AdmissionError { backend: BACKEND, detail: e.to_string() }
}

/// Leases counted in a SQLite file shared by the processes of one machine.
#[derive(Debug, Clone)]
pub struct SqliteAdmission {
    shared: Arc<Shared>,
}

impl SqliteAdmission {
    /// Opens admission in the database file at `path` (normally the key store's file),
    /// creating its table when missing, and starts the renewal thread.
    pub fn open(path: impl AsRef<Path>, config: LimiterConfig) -> Result<Self, AdmissionError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(&e))?;
        conn.busy_timeout(StdDuration::from_secs(10)).map_err(|e| err(&e))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| err(&e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AdmissionError { backend: BACKEND, detail: format!("could not switch to WAL (got {mode})") });
        }
        // A lease row lost in a power cut is reclaimed like a crashed holder's: NORMAL is enough.
        conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(|e| err(&e))?;
        // The WAL checkpoint stays SQLite's default (every 1,000 pages): each admission and
        // release appends a frame of the same page, and SQLite's WAL index finds a page's frames
        // by walking a hash chain as long as the WAL holds frames of it, so a longer WAL makes
        // every commit slower (4,000 pages: median admit 16-17 us in C on this machine kind,
        // 1,000: 12-13 us), while the checkpoint's fsync costs the same per page whatever its size.
        leases::ensure_schema(&mut conn).map_err(|e| err(&e))?;
        let ids = LeaseIds::random().map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
        let shared = Arc::new(Shared { conn: Mutex::new(conn), live: Mutex::new(HashMap::new()), ids, config, path });
        keeper(Arc::downgrade(&shared));
        Ok(SqliteAdmission { shared })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The settings (default limit, lease TTL, `Retry-After`).
    pub fn config(&self) -> &LimiterConfig {
        &self.shared.config
    }

    /// Renews every lease this process holds, now (the keeper thread does this on its own).
    pub fn renew_live(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        self.shared.renew_live(now)
    }
}

impl Shared {
    /// The admission connection (also the failure budgets', see `sqlite_failures.rs`).
    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// `now` is whole seconds (floored), so the real instant may be up to a second later: the
    /// deadline is one second past `now + TTL`, so a lease is never reclaimed sooner than a full
    /// TTL after its last renewal (a live holder renews every third of it).
    fn deadline(&self, now: Timestamp) -> i64 {
        now.plus(self.config.lease_ttl).unix().saturating_add(1)
    }

    fn renew_live(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        let held: Vec<(i64, Arc<str>)> = lock(&self.live).iter().map(|(id, k)| (*id, Arc::clone(k))).collect();
        if held.is_empty() {
            return Ok(0);
        }
        let deadline = self.deadline(now);
        let conn = lock(&self.conn);
        let tx = Immediate::begin(&conn).map_err(|e| err(&e))?;
        let mut n = 0;
        for (id, key_id) in held {
            n += usize::from(leases::renew(&tx, &key_id, id, deadline).map_err(|e| err(&e))?);
        }
        tx.commit().map_err(|e| err(&e))?;
        Ok(n)
    }

    fn release(&self, key_id: &str, id: i64) -> bool {
        lock(&self.live).remove(&id);
        let conn = lock(&self.conn);
        // A failed delete is reclaimed after the deadline: the row is no longer renewed.
        leases::delete(&conn, key_id, id).unwrap_or(false)
    }
}

/// Renews the process's live leases every third of the TTL while the admission exists.
fn keeper(shared: Weak<Shared>) {
    let period = shared
        .upgrade()
        .map(|s| StdDuration::from_secs(u64::try_from(s.config.lease_ttl.secs() / 3).unwrap_or(0).max(1)))
        .unwrap_or(StdDuration::from_secs(1));
    let spawned = std::thread::Builder::new().name("keycel-lease-keeper".into()).spawn(move || loop {
        std::thread::sleep(period);
        let Some(s) = shared.upgrade() else { return };
        // A failure (file locked for a moment) is retried on the next tick, well before the deadline.
        let _ = s.renew_live(crate::clock::now());
    });
    // Without a thread (resource limits) leases still work; long holders then expire at the TTL.
    drop(spawned);
}

impl Admission for SqliteAdmission {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn admit(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<Lease, Refusal> {
        let s = &self.shared;
        let limit = ticket.max_concurrent.unwrap_or(s.config.default_limit).max(1);
        let deadline = s.deadline(now);
        let unavailable = |e: rusqlite::Error| Refusal::Unavailable { backend: BACKEND, detail: e.to_string() };
        let (id, status) = {
            let conn = lock(&s.conn);
            let tx = Immediate::begin(&conn).map_err(unavailable)?;
            // Only live holders count; a lost holder's rows past their deadline are deleted
            // (when there are any: usually none, and then this transaction writes one page).
            let (held, lost) = leases::count(&tx, ticket.key_id, now.unix()).map_err(unavailable)?;
            if held >= i64::from(limit) {
                return Err(Refusal::Busy { limit, retry_after_secs: s.config.retry_after_secs });
            }
            let mut status = None;
            if ticket.metered() {
                let state = read_budget(&tx, ticket.key_id).map_err(unavailable)?;
                // A refusal returns here: the transaction rolls back, nothing was written.
                let (next, st) = check_budget(ticket, state, now)?;
                write_budget(&tx, ticket.key_id, &next).map_err(unavailable)?;
                status = Some(st);
            }
            if lost {
                leases::reclaim_key(&tx, ticket.key_id, now.unix()).map_err(unavailable)?;
            }
            let id = s.ids.take();
            leases::insert(&tx, ticket.key_id, id, deadline).map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            (id, status)
        };
        let key_id: Arc<str> = Arc::from(ticket.key_id);
        lock(&s.live).insert(id, Arc::clone(&key_id));
        Ok(Lease::shared(Box::new(SqliteLease { shared: Arc::clone(s), id, key_id, released: false }))
            .with_budget(status))
    }

    /// Live leases only: a lost holder's row past its deadline no longer counts, even before
    /// the next admission of the key deletes it.
    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError> {
        let conn = lock(&self.shared.conn);
        let now = crate::clock::now().unix();
        let (n, _) = leases::count(&conn, key_id, now).map_err(|e| err(&e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn reclaim_expired(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        let conn = lock(&self.shared.conn);
        conn.execute("DELETE FROM keycel_leases WHERE expires_at <= ?1", [now.unix()]).map_err(|e| err(&e))
    }

    /// Failure budgets in the same file, so a machine's workers charge one per subject.
    fn failure_budget(&self, config: &ThrottleConfig) -> Option<Arc<dyn FailureBudget>> {
        let debts = SqliteDebts::new(Arc::clone(&self.shared));
        Some(Arc::new(crate::throttle::SharedBudget::new(debts, config.clone())))
    }

    fn usage(&self, key_id: &str, grant: &CreditGrant, now: Timestamp) -> Result<u64, AdmissionError> {
        let conn = lock(&self.shared.conn);
        let stored = read_budget(&conn, key_id).map_err(|e| err(&e))?.credits;
        Ok(grant.left(&grant.current(stored, now)))
    }
}

/// A lease row held by this process; deleted on release or drop.
#[derive(Debug)]
struct SqliteLease {
    shared: Arc<Shared>,
    id: i64,
    key_id: Arc<str>,
    released: bool,
}

impl SharedLease for SqliteLease {
    fn id(&self) -> u64 {
        u64::try_from(self.id).unwrap_or(0)
    }
    fn key_id(&self) -> &Arc<str> {
        &self.key_id
    }
    /// Held while this value lives: the process renews it.
    fn expires_at(&self) -> Option<Timestamp> {
        None
    }
    fn renew(&mut self, now: Timestamp) -> bool {
        if self.released {
            return false;
        }
        let deadline = self.shared.deadline(now);
        let conn = lock(&self.shared.conn);
        leases::renew(&conn, &self.key_id, self.id, deadline).unwrap_or(false)
    }
    fn release(&mut self) -> bool {
        if self.released {
            return false;
        }
        self.released = true;
        self.shared.release(&self.key_id, self.id)
    }
}

impl Drop for SqliteLease {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    fn cfg(ttl: i64) -> LimiterConfig {
        LimiterConfig { lease_ttl: Duration::from_secs(ttl), ..LimiterConfig::default() }
    }

    /// A fresh database file in its own directory, removed when dropped (also after a failure).
    struct TempDb {
        dir: std::path::PathBuf,
        file: std::path::PathBuf,
    }

    impl TempDb {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDb { file: dir.join("shared.db"), dir }
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn two_handles_on_one_file_share_the_budget() {
        let db = TempDb::new("keycel-adm");
        let file = &db.file;
        let a = SqliteAdmission::open(file, cfg(60)).unwrap();
        let b = SqliteAdmission::open(file, cfg(60)).unwrap();
        let ticket = Ticket::new("kc_a", Some(5));
        let now = crate::clock::now();
        let mut held = Vec::new();
        for i in 0..5 {
            let side = if i % 2 == 0 { &a } else { &b };
            held.push(side.admit(&ticket, now).unwrap());
        }
        assert_eq!(a.admit(&ticket, now).unwrap_err(), Refusal::Busy { limit: 5, retry_after_secs: 1 });
        assert!(b.admit(&ticket, now).is_err());
        assert_eq!(b.in_flight("kc_a").unwrap(), 5);
        held.pop();
        assert!(b.admit(&ticket, now).is_ok(), "released on drop, and that one again");
        drop(held);
        assert_eq!(a.in_flight("kc_a").unwrap(), 0);
    }

    /// Timestamps are floored seconds: a lease taken at "0" may really be 0.99 s old, so at "3"
    /// a 3 s TTL has not passed yet (CI saw a live worker's slot counted free a second early).
    #[test]
    fn a_lease_is_never_reclaimed_before_a_full_ttl() {
        let db = TempDb::new("keycel-adm3");
        let file = &db.file;
        let a = SqliteAdmission::open(file, cfg(3)).unwrap();
        let ticket = Ticket::new("kc_a", Some(1));
        let lost = a.admit(&ticket, t(0)).unwrap();
        std::mem::forget(lost);
        lock(&a.shared.live).clear();
        assert!(a.admit(&ticket, t(3)).is_err(), "reclaimed before a full TTL had passed");
        assert!(a.admit(&ticket, t(4)).is_ok());
    }

    /// `in_flight` is what a new admission would count: a lost row past its deadline is not,
    /// even while no admission of the key has deleted it yet (CI saw "2 leases still in flight"
    /// ten seconds after a SIGKILL with a 3 s TTL).
    #[test]
    fn in_flight_counts_only_live_leases() {
        let db = TempDb::new("keycel-adm4");
        let file = &db.file;
        let a = SqliteAdmission::open(file, cfg(3)).unwrap();
        let ticket = Ticket::new("kc_a", Some(5));
        let long_ago = Timestamp::from_unix(crate::clock::now().unix() - 100).unwrap();
        std::mem::forget(a.admit(&ticket, long_ago).unwrap());
        lock(&a.shared.live).clear();
        assert_eq!(a.in_flight("kc_a").unwrap(), 0);
        let held = a.admit(&ticket, crate::clock::now()).unwrap();
        assert_eq!(a.in_flight("kc_a").unwrap(), 1);
        drop(held);
    }

    /// A holder that died (its rows never renewed nor deleted) is reclaimed after the TTL;
    /// a live holder's renewed rows are not.
    #[test]
    fn dead_holders_are_reclaimed_live_ones_renewed() {
        let db = TempDb::new("keycel-adm2");
        let file = &db.file;
        let live = SqliteAdmission::open(file, cfg(3)).unwrap();
        let other = SqliteAdmission::open(file, cfg(3)).unwrap();
        let ticket = Ticket::new("kc_a", Some(2));
        let kept = live.admit(&ticket, t(0)).unwrap();
        // A "dead process": its lease is leaked (never released, never renewed by anyone).
        let dead = other.admit(&ticket, t(0)).unwrap();
        std::mem::forget(dead);
        lock(&other.shared.live).clear();
        assert_eq!(live.renew_live(t(10)).unwrap(), 1);
        assert!(live.admit(&ticket, t(2)).is_err(), "not yet expired");
        let next = live.admit(&ticket, t(11)).unwrap();
        assert!(live.admit(&ticket, t(11)).is_err(), "the renewed live lease was reclaimed");
        drop((kept, next));
        assert_eq!(live.in_flight("kc_a").unwrap(), 0);
    }
}
