//! A [`Store`] in one SQLite file (bundled SQLite, no system library needed).
//!
//! Records are kept as their stable JSON (the same documents [`KeyRecord::to_json`] writes),
//! next to indexed columns for lookup by client id and by user. Every change runs in one
//! `BEGIN IMMEDIATE` transaction, so it fully lands or not at all, even if the process is
//! killed mid-write; the file is in WAL mode so readers in other processes never block the
//! writer, and `busy_timeout` makes writers from several processes queue instead of failing.
//! Every record is validated on the way in and again on the way out.

mod schema;
mod shm;
mod watch;

pub use schema::{latest as latest_schema_version, Migration, APPLICATION_ID, MIGRATIONS};
pub use watch::{cached, cached_with, DataVersion, STAT_EVERY};

use crate::record::{KeyRecord, RecordError, UserRecord};
use crate::store::{KeyFilter, Store, StoreError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration as StdDuration;

/// How long a writer waits for another process's write lock before giving up.
pub const DEFAULT_BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// Why a store file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The file does not exist (and creation was not asked for).
    Missing(PathBuf),
    /// The file is a SQLite database of something else, or not a database at all.
    NotKeycel(PathBuf),
    /// The file was written by a newer keycel.
    NewerSchema {
        /// Version found in the file.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// SQLite failed (I/O, permissions, locking).
    Sqlite(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Missing(p) => write!(f, "no keycel store at {}", p.display()),
            OpenError::NotKeycel(p) => write!(f, "{} is not a keycel store", p.display()),
            OpenError::NewerSchema { found, supported } => write!(
                f,
                "store schema version {found} is newer than this build supports ({supported}); upgrade keycel"
            ),
            OpenError::Sqlite(e) => write!(f, "sqlite: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// What [`SqliteStore::check_integrity`] found in a healthy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Keys, every one valid.
    pub keys: usize,
    /// Users, every one valid.
    pub users: usize,
    /// Ids deleted for good (never reused).
    pub retired: usize,
    /// Schema version of the file.
    pub schema_version: u32,
}

/// A key store in a SQLite file. `Send + Sync`: one connection behind a mutex, so a process
/// shares one handle across threads; other processes open their own.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_err(e: rusqlite::Error) -> OpenError {
    OpenError::Sqlite(e.to_string())
}

fn unix_now() -> i64 {
    crate::clock::now().unix()
}

impl SqliteStore {
    /// Opens an existing store (migrating it to the current schema if it is older).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(OpenError::Missing(path.to_path_buf()));
        }
        Self::open_file(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX, false)
    }

    /// Opens a store, creating the file and its schema when missing.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_file(
            path.as_ref(),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            true,
        )
    }

    /// A private in-memory store (tests).
    pub fn in_memory() -> Result<Self, OpenError> {
        let conn = Connection::open_in_memory().map_err(open_err)?;
        Self::init(conn, None, true)
    }

    fn open_file(path: &Path, flags: OpenFlags, create: bool) -> Result<Self, OpenError> {
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        Self::init(conn, Some(path.to_path_buf()), create)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>, create: bool) -> Result<Self, OpenError> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(open_err)?;
        // A file that is not SQLite at all fails on its first read.
        let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                OpenError::NotKeycel(shown.clone())
            }
            other => open_err(other),
        })?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .map_err(open_err)?;
        let fresh = app_id == 0 && tables == 0;
        if !fresh && app_id != APPLICATION_ID {
            return Err(OpenError::NotKeycel(shown));
        }
        if fresh && !create {
            return Err(OpenError::NotKeycel(shown));
        }
        if path.is_some() {
            // WAL: readers never block the writer; FULL: a committed change survives power loss.
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(OpenError::Sqlite(format!("could not switch to WAL mode (got {mode})")));
            }
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(open_err)?;
        // Opening an up-to-date store takes no write lock; only a fresh or older file migrates.
        let up_to_date =
            !fresh && current_version(&conn).map_err(|_| OpenError::NotKeycel(shown.clone()))? == schema::latest();
        if !up_to_date {
            migrate(&mut conn)?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn), path })
    }

    /// The file, if not in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Changes how long a write waits for other processes' locks.
    pub fn set_busy_timeout(&self, timeout: StdDuration) -> Result<(), StoreError> {
        self.lock().busy_timeout(timeout).map_err(backend)
    }

    /// SQLite's `PRAGMA data_version`: changes whenever another connection (any process)
    /// commits to the file. Cheap; the record cache checks it on every lookup.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("PRAGMA data_version").map_err(backend)?;
        stmt.query_row([], |r| r.get(0)).map_err(backend)
    }

    /// The record generation: moves with every committed key or user change, by any
    /// connection (triggers), and with nothing else (admission's commits leave it alone).
    pub fn record_generation(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT n FROM keycel_generation WHERE id = 0").map_err(backend)?;
        stmt.query_row([], |r| r.get(0)).map_err(backend)
    }

    /// The schema version of the file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        current_version(&self.lock()).map_err(StoreError::from)
    }

    /// Runs SQLite's `integrity_check` and validates every stored record.
    pub fn check_integrity(&self) -> Result<IntegrityReport, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(backend)?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        drop(stmt);
        if problems.len() != 1 || problems.first().map(String::as_str) != Some("ok") {
            return Err(StoreError::Backend(format!("integrity_check: {}", problems.join("; "))));
        }
        let keys = select_keys(&conn, &KeyFilter::default())?.len();
        let users = select_users(&conn)?.len();
        let retired: i64 = conn.query_row("SELECT count(*) FROM retired_keys", [], |r| r.get(0)).map_err(backend)?;
        let overlap: i64 = conn
            .query_row("SELECT count(*) FROM keys JOIN retired_keys USING (id)", [], |r| r.get(0))
            .map_err(backend)?;
        if overlap != 0 {
            return Err(StoreError::Backend(format!("{overlap} retired id(s) still present as keys")));
        }
        Ok(IntegrityReport {
            keys,
            users,
            retired: usize::try_from(retired).unwrap_or(0),
            schema_version: current_version(&conn)?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change: SQLite rolls back
        // the open transaction when it is dropped.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction: committed if it returns Ok, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

fn current_version(conn: &Connection) -> Result<u32, OpenError> {
    let v: Option<i64> =
        conn.query_row("SELECT max(version) FROM keycel_schema", [], |r| r.get(0)).map_err(open_err)?;
    Ok(v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

/// Applies the missing migrations in one transaction (all or none).
fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
    tx.execute_batch(schema::VERSION_TABLE).map_err(open_err)?;
    let found = current_version(&tx)?;
    let supported = schema::latest();
    if found > supported {
        return Err(OpenError::NewerSchema { found, supported });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.execute_batch(m.sql).map_err(|e| OpenError::Sqlite(format!("migration {}: {e}", m.version)))?;
        tx.execute(
            "INSERT INTO keycel_schema (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.description, unix_now()],
        )
        .map_err(open_err)?;
    }
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}")).map_err(open_err)?;
    tx.commit().map_err(open_err)
}

fn corrupt(field: &str, message: String) -> StoreError {
    StoreError::Corrupt(RecordError { field: field.to_string(), message })
}

/// The indexed columns of a key row, checked against its document.
struct KeyRow {
    id: String,
    kind: String,
    user_id: Option<String>,
    active: bool,
    version: i64,
    doc: String,
}

impl KeyRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(KeyRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            user_id: r.get(2)?,
            active: r.get(3)?,
            version: r.get(4)?,
            doc: r.get(5)?,
        })
    }

    fn into_record(self) -> Result<KeyRecord, StoreError> {
        let rec = KeyRecord::from_json(&self.doc).map_err(StoreError::Corrupt)?;
        let consistent = rec.id.as_str() == self.id
            && rec.kind.as_str() == self.kind
            && rec.kind.user() == self.user_id.as_deref()
            && rec.active == self.active
            && i64::try_from(rec.version).ok() == Some(self.version);
        if !consistent {
            return Err(corrupt("id", format!("row {} disagrees with its stored document", self.id)));
        }
        Ok(rec)
    }
}

const KEY_COLUMNS: &str = "id, kind, user_id, active, version, doc";

fn version_col(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt("version", format!("{v} is too large to store")))
}

fn checked_doc(record: &KeyRecord) -> Result<String, StoreError> {
    record.validate().map_err(StoreError::Corrupt)?;
    Ok(record.to_json())
}

/// A key row as INSERT and UPDATE bind it (`?1`-`?7`): the id, the indexed columns derived
/// from the record, and the validated document. One place, so the two statements cannot drift.
struct KeyRowValues<'a> {
    id: &'a str,
    kind: &'static str,
    user: Option<&'a str>,
    active: bool,
    version: i64,
    expires_at: Option<i64>,
    doc: String,
}

impl<'a> KeyRowValues<'a> {
    fn new(record: &'a KeyRecord) -> Result<Self, StoreError> {
        Ok(KeyRowValues {
            id: record.id.as_str(),
            kind: record.kind.as_str(),
            user: record.kind.user(),
            active: record.active,
            version: version_col(record.version)?,
            expires_at: record.expires_at.map(|t| t.unix()),
            doc: checked_doc(record)?,
        })
    }
}

fn select_keys(conn: &Connection, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM keys
         WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR active = ?3)
         ORDER BY id"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params![filter.user, filter.kind, filter.active], KeyRow::from_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.into_iter().map(KeyRow::into_record).collect()
}

fn select_key(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1")).map_err(backend)?;
    let row = stmt.query_row([id], KeyRow::from_row).optional().map_err(backend)?;
    row.map(KeyRow::into_record).transpose()
}

fn parse_user(id: &str, doc: &str) -> Result<UserRecord, StoreError> {
    let u = UserRecord::from_json(doc).map_err(StoreError::Corrupt)?;
    if u.id != id {
        return Err(corrupt("id", format!("user row {id} disagrees with its stored document")));
    }
    Ok(u)
}

fn select_users(conn: &Connection) -> Result<Vec<UserRecord>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, doc FROM users ORDER BY id").map_err(backend)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.iter().map(|(id, doc)| parse_user(id, doc)).collect()
}

fn retire(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    tx.execute("INSERT OR IGNORE INTO retired_keys (id, retired_at) VALUES (?1, ?2)", params![id, unix_now()])
        .map_err(backend)?;
    Ok(())
}

impl Store for SqliteStore {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        select_key(&self.lock(), id)
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let row = KeyRowValues::new(record)?;
        let id = row.id;
        self.write(|tx| {
            let taken: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM keys WHERE id = ?1) OR EXISTS (SELECT 1 FROM retired_keys WHERE id = ?1)",
                    [id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if taken {
                return Err(StoreError::AlreadyExists(id.to_string()));
            }
            tx.execute(
                "INSERT INTO keys (id, kind, user_id, active, version, expires_at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![row.id, row.kind, row.user, row.active, row.version, row.expires_at, row.doc],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        let row = KeyRowValues::new(record)?;
        let expected = version_col(expected_version)?;
        let id = row.id;
        self.write(|tx| {
            let found: Option<i64> = tx
                .query_row("SELECT version FROM keys WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            let found = found.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            if found != expected {
                return Err(StoreError::Conflict {
                    id: id.to_string(),
                    expected: expected_version,
                    found: u64::try_from(found).unwrap_or(0),
                });
            }
            tx.execute(
                "UPDATE keys SET kind = ?2, user_id = ?3, active = ?4, version = ?5, expires_at = ?6, doc = ?7
                 WHERE id = ?1 AND version = ?8",
                params![row.id, row.kind, row.user, row.active, row.version, row.expires_at, row.doc, expected],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM keys WHERE id = ?1", [id]).map_err(backend)?;
            if n > 0 {
                retire(tx, id)?;
            }
            Ok(n > 0)
        })
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        select_keys(&self.lock(), filter)
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let conn = self.lock();
        let doc: Option<String> =
            conn.query_row("SELECT doc FROM users WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(backend)?;
        doc.map(|d| parse_user(id, &d)).transpose()
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        user.validate().map_err(StoreError::Corrupt)?;
        let doc = serde_json::to_string(user).map_err(|e| StoreError::Backend(e.to_string()))?;
        let version = version_col(user.version.max(1))?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO users (id, version, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc",
                params![user.id, version, doc],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let doomed: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("SELECT id FROM keys WHERE user_id = ?1 ORDER BY id").map_err(backend)?;
                let ids =
                    stmt.query_map([id], |r| r.get(0)).map_err(backend)?.collect::<Result<_, _>>().map_err(backend)?;
                ids
            };
            let had_user = tx.execute("DELETE FROM users WHERE id = ?1", [id]).map_err(backend)? > 0;
            if !had_user && doomed.is_empty() {
                return Err(StoreError::NotFound(id.to_string()));
            }
            for k in &doomed {
                tx.execute("DELETE FROM keys WHERE id = ?1", [k]).map_err(backend)?;
                retire(tx, k)?;
            }
            Ok(doomed)
        })
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        select_users(&self.lock())
    }
}

#[cfg(test)]
mod tests;
