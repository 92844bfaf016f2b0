//! The `keycel_leases` table of [`super::sqlite::SqliteAdmission`]: its layout, the migration
//! from the first layout, and the statements on it.
//!
//! Why this layout: one `WITHOUT ROWID` B-tree keyed `(key_id, id)`, so an admission writes one
//! page (the first layout, `id INTEGER PRIMARY KEY AUTOINCREMENT` plus an index on
//! `(key_id, expires_at)`, wrote three: the row, the index entry and `sqlite_sequence`) and a
//! release deletes from one page. Lease ids are a random 63-bit start per handle plus a
//! counter ([`LeaseIds`]): never reused while a holder might still release or renew by id
//! (a fresh random start per open; two handles collide only if their ranges meet, odds
//! ~ leases / 2^63), which is what AUTOINCREMENT bought before.

use rusqlite::{params, Connection, TransactionBehavior};
use std::sync::atomic::{AtomicU64, Ordering};

/// The current layout (also what a fresh file gets).
const CREATE_LEASES: &str = "
    CREATE TABLE IF NOT EXISTS keycel_leases (
        key_id     TEXT NOT NULL,
        id         INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, id)
    ) STRICT, WITHOUT ROWID;
";

/// Budgets (GCRA TAT and credit count per metered key): unchanged since the first layout.
const CREATE_BUDGETS: &str = "
    CREATE TABLE IF NOT EXISTS keycel_budgets (
        key_id         TEXT PRIMARY KEY,
        tat_ms         INTEGER NOT NULL DEFAULT 0,
        credits_set_at INTEGER,
        credits_period INTEGER,
        credits_spent  INTEGER
    ) STRICT, WITHOUT ROWID;
";

/// Failed-authentication debts per subject (see `sqlite_failures.rs`).
const CREATE_FAILURES: &str = "
    CREATE TABLE IF NOT EXISTS keycel_failures (
        kind    TEXT NOT NULL,
        key     TEXT NOT NULL,
        debt_ms INTEGER NOT NULL,
        at_ms   INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) STRICT, WITHOUT ROWID;
";

/// Moves a first-layout `keycel_leases` (rowid table, AUTOINCREMENT, separate index) to the
/// current layout, keeping every row and its id, in one transaction.
///
/// Why keep the rows and ids: a process of the previous version still running on the file
/// (a rolling restart) holds leases counted there; copied, they keep counting, and its
/// `DELETE ... WHERE id = ?` release and `UPDATE ... WHERE id = ?` renewal still find them.
/// Its next admission fails instead (its `INSERT` leaves `id` NULL, refused by `NOT NULL`),
/// so it answers 503 until restarted: an old and a new process never count apart. New ids
/// are random 63-bit numbers, far from the small AUTOINCREMENT ids copied over.
const MIGRATE_FIRST_LAYOUT: &str = "
    CREATE TABLE keycel_leases_v2 (
        key_id     TEXT NOT NULL,
        id         INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, id)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO keycel_leases_v2 (key_id, id, expires_at) SELECT key_id, id, expires_at FROM keycel_leases;
    DROP TABLE keycel_leases;
    ALTER TABLE keycel_leases_v2 RENAME TO keycel_leases;
";

/// The first layout is a rowid table (`PRAGMA table_list` column `wr` = 0).
fn has_first_layout(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let mut st = conn.prepare("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'keycel_leases'")?;
    let mut rows = st.query([])?;
    Ok(match rows.next()? {
        Some(r) => r.get::<_, i64>(0)? == 0,
        None => false,
    })
}

/// Creates the tables when missing and migrates a first-layout lease table, in one
/// `BEGIN IMMEDIATE` transaction (several processes opening at once: one migrates, the
/// others then see the new layout).
pub(super) fn ensure_schema(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if has_first_layout(&tx)? {
        tx.execute_batch(MIGRATE_FIRST_LAYOUT)?;
    }
    tx.execute_batch(CREATE_LEASES)?;
    // A previous-version process opening the file afterwards recreates its index (its
    // `CREATE INDEX IF NOT EXISTS` fits the new columns): one more page per write, dropped here.
    tx.execute_batch("DROP INDEX IF EXISTS keycel_leases_by_key;")?;
    tx.execute_batch(CREATE_BUDGETS)?;
    tx.execute_batch(CREATE_FAILURES)?;
    tx.commit()
}

/// A `BEGIN IMMEDIATE` transaction on cached statements (rusqlite's `Transaction` prepares
/// `BEGIN` and `COMMIT` anew each time: microseconds on every admission); rolled back on drop
/// unless committed.
#[derive(Debug)]
pub(super) struct Immediate<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Immediate<'c> {
    pub(super) fn begin(conn: &'c Connection) -> Result<Self, rusqlite::Error> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Immediate { conn, open: true })
    }

    /// A failed commit (busy) leaves the transaction open: the drop rolls it back.
    pub(super) fn commit(mut self) -> Result<(), rusqlite::Error> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Immediate<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
        }
    }
}

/// Lease ids of one handle: a random 63-bit start, then consecutive (wrapping within the
/// positive `i64` range, skipping 0).
#[derive(Debug)]
pub(super) struct LeaseIds {
    next: AtomicU64,
}

impl LeaseIds {
    const MASK: u64 = (1 << 63) - 1;

    pub(super) fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)?;
        Ok(LeaseIds { next: AtomicU64::new(u64::from_le_bytes(b)) })
    }

    pub(super) fn take(&self) -> i64 {
        loop {
            let id = self.next.fetch_add(1, Ordering::Relaxed) & Self::MASK;
            if let Ok(id @ 1..) = i64::try_from(id) {
                return id;
            }
        }
    }
}

/// The key's rows: `(live, lost)` at `now` (a row is live while its deadline is ahead).
pub(super) fn count(conn: &Connection, key_id: &str, now: i64) -> Result<(i64, bool), rusqlite::Error> {
    let mut st = conn.prepare_cached("SELECT expires_at FROM keycel_leases WHERE key_id = ?1")?;
    let mut rows = st.query([key_id])?;
    let (mut live, mut lost) = (0i64, false);
    while let Some(r) = rows.next()? {
        if r.get::<_, i64>(0)? > now {
            live += 1;
        } else {
            lost = true;
        }
    }
    Ok((live, lost))
}

/// Deletes the key's rows whose deadline has passed.
pub(super) fn reclaim_key(conn: &Connection, key_id: &str, now: i64) -> Result<usize, rusqlite::Error> {
    conn.prepare_cached("DELETE FROM keycel_leases WHERE key_id = ?1 AND expires_at <= ?2")?
        .execute(params![key_id, now])
}

pub(super) fn insert(conn: &Connection, key_id: &str, id: i64, deadline: i64) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("INSERT INTO keycel_leases (key_id, id, expires_at) VALUES (?1, ?2, ?3)")?
        .execute(params![key_id, id, deadline])?;
    Ok(())
}

/// Moves one row's deadline; false: the row is gone (released, or reclaimed as lost).
pub(super) fn renew(conn: &Connection, key_id: &str, id: i64, deadline: i64) -> Result<bool, rusqlite::Error> {
    let n = conn
        .prepare_cached("UPDATE keycel_leases SET expires_at = ?1 WHERE key_id = ?2 AND id = ?3")?
        .execute(params![deadline, key_id, id])?;
    Ok(n > 0)
}

pub(super) fn delete(conn: &Connection, key_id: &str, id: i64) -> Result<bool, rusqlite::Error> {
    let n =
        conn.prepare_cached("DELETE FROM keycel_leases WHERE key_id = ?1 AND id = ?2")?.execute(params![key_id, id])?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The first layout's statements, as the previous version ran them.
    const FIRST_LAYOUT: &str = "
        CREATE TABLE IF NOT EXISTS keycel_leases (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            key_id     TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX IF NOT EXISTS keycel_leases_by_key ON keycel_leases (key_id, expires_at);
    ";

    /// A file written by the previous version opens: its rows (and ids) carry over and still
    /// count; the old process's release and renewal by id still work, its admission fails
    /// (503) instead of counting apart; the old index and AUTOINCREMENT are gone.
    #[test]
    fn a_first_layout_file_migrates_keeping_its_leases() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(FIRST_LAYOUT).unwrap();
        for _ in 0..3 {
            conn.execute("INSERT INTO keycel_leases (key_id, expires_at) VALUES ('kc_a', 100)", []).unwrap();
        }
        ensure_schema(&mut conn).unwrap();
        assert!(!has_first_layout(&conn).unwrap());
        assert_eq!(count(&conn, "kc_a", 50).unwrap(), (3, false));
        assert_eq!(count(&conn, "kc_a", 100).unwrap(), (0, true));
        let indexes: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'keycel_leases' AND sql IS NOT NULL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexes, 0);
        // The previous version's statements on the new table.
        assert_eq!(conn.execute("UPDATE keycel_leases SET expires_at = 200 WHERE id = 2", []).unwrap(), 1);
        assert_eq!(conn.execute("DELETE FROM keycel_leases WHERE id = 1", []).unwrap(), 1);
        assert!(conn.execute("INSERT INTO keycel_leases (key_id, expires_at) VALUES ('kc_a', 100)", []).is_err());
        assert_eq!(count(&conn, "kc_a", 150).unwrap(), (1, true));
        // The previous version's open on the migrated file keeps the layout; its index goes
        // at the next open of this version.
        conn.execute_batch(FIRST_LAYOUT).unwrap();
        assert!(!has_first_layout(&conn).unwrap());
        ensure_schema(&mut conn).unwrap();
        assert_eq!(count(&conn, "kc_a", 150).unwrap(), (1, true));
        let indexes: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'keycel_leases' AND sql IS NOT NULL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexes, 0);
    }

    /// Dropped without commit (a refusal, an error): nothing written, the connection usable.
    #[test]
    fn an_uncommitted_transaction_rolls_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure_schema(&mut conn).unwrap();
        {
            let tx = Immediate::begin(&conn).unwrap();
            insert(&tx, "kc_a", 1, 100).unwrap();
        }
        assert!(conn.is_autocommit());
        assert_eq!(count(&conn, "kc_a", 0).unwrap(), (0, false));
        let tx = Immediate::begin(&conn).unwrap();
        insert(&tx, "kc_a", 2, 100).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&conn, "kc_a", 0).unwrap(), (1, false));
    }

    #[test]
    fn ids_are_positive_and_not_reused() {
        let ids = LeaseIds { next: AtomicU64::new(LeaseIds::MASK - 1) };
        assert_eq!(ids.take(), i64::MAX - 1);
        assert_eq!(ids.take(), i64::MAX);
        assert_eq!(ids.take(), 1, "wraps within the positive range, skipping 0");
        let r = LeaseIds::random().unwrap();
        let a = r.take();
        assert!(a > 0 && r.take() != a);
    }
}
