//! [`PostgresStore`]: the [`Store`] over a PostgreSQL database, with the SQLite store's rules:
//! records validated on the way in and out, optimistic versions checked in the `UPDATE`'s own
//! `WHERE`, ids never reused (`keycel_retired_keys`), and every multi-row change in one
//! transaction.

use crate::pool::{backend, Conn, Pool};
use crate::schema::{self, MIGRATIONS, MIGRATION_LOCK, VERSION_TABLE};
use keycel::record::{KeyRecord, RecordError, UserRecord};
use keycel::store::{KeyFilter, Store, StoreError};
use postgres::{Client, Config, NoTls, Row};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a database could not be opened as a keycel store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The DSN does not parse.
    BadDsn(String),
    /// The database was written by a newer keycel.
    NewerSchema {
        /// Version found.
        found: i32,
        /// Highest version this build reads.
        supported: i32,
    },
    /// Connecting or migrating failed.
    Postgres(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::BadDsn(e) => write!(f, "invalid postgresql DSN: {e}"),
            OpenError::NewerSchema { found, supported } => write!(
                f,
                "store schema version {found} is newer than this build supports ({supported}); upgrade keycel"
            ),
            OpenError::Postgres(e) => write!(f, "postgres: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Idle connections kept for reuse.
    pub max_idle: usize,
    /// How long a connection attempt may take before the call fails (503).
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_idle: 16, connect_timeout: Duration::from_secs(5) }
    }
}

/// A keycel store in a PostgreSQL database (tables `keycel_*`).
pub struct PostgresStore {
    pool: Pool,
    dsn_shown: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.dsn_shown).finish_non_exhaustive()
    }
}

/// The DSN without its password, for messages and `repr`.
fn shown(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgresql://{}@{host}:{port}/{}", config.get_user().unwrap_or(""), config.get_dbname().unwrap_or(""))
}

pub(crate) fn unix_now() -> i64 {
    keycel::clock::now().unix()
}

impl PostgresStore {
    /// Connects (`postgresql://user[:password]@host[:port]/db` or `key=value` form), creating
    /// or migrating the schema.
    pub fn connect(dsn: &str) -> Result<Self, OpenError> {
        Self::connect_with(dsn, &Options::default())
    }

    /// [`PostgresStore::connect`] with settings.
    pub fn connect_with(dsn: &str, options: &Options) -> Result<Self, OpenError> {
        let mut config = Config::from_str(dsn).map_err(|e| OpenError::BadDsn(e.to_string()))?;
        config.connect_timeout(options.connect_timeout);
        config.application_name("keycel");
        let mut client = config.connect(NoTls).map_err(|e| OpenError::Postgres(e.to_string()))?;
        migrate(&mut client)?;
        drop(client);
        Ok(PostgresStore { dsn_shown: shown(&config), pool: Pool::new(config, options.max_idle) })
    }

    /// Where it is (no password).
    pub fn database(&self) -> &str {
        &self.dsn_shown
    }

    pub(crate) fn config(&self) -> &Config {
        self.pool.config()
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.read(|c| {
            let row = c.client.query_one("SELECT max(version) FROM keycel_schema", &[]).map_err(|e| backend(&e))?;
            Ok(row.get::<_, Option<i32>>(0).unwrap_or(0))
        })
    }

    /// Runs a read; if the pooled connection turned out dead (server restarted), once more on a
    /// fresh one. Reads are safe to repeat; writes are not retried.
    fn read<T>(&self, f: impl Fn(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut p = self.pool.get()?;
        let out = f(p.conn()?);
        if out.is_err() && p.is_dead() {
            p.note_error();
            drop(p);
            let mut p = self.pool.get()?;
            let out = f(p.conn()?);
            p.note_error();
            return out;
        }
        out
    }

    /// Runs `f` in one transaction: committed when it returns Ok, rolled back otherwise.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>, &crate::statements::Statements) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut p = self.pool.get()?;
        let out = (|| {
            let c = p.conn()?;
            let mut tx = c.client.transaction().map_err(|e| backend(&e))?;
            let out = f(&mut tx, &c.st)?;
            tx.commit().map_err(|e| backend(&e))?;
            Ok(out)
        })();
        if out.is_err() {
            p.note_error();
        }
        out
    }

    /// Current records of `ids` (None: gone), for cache reconciliation.
    pub fn keys_by_ids(&self, ids: &[String]) -> Result<HashMap<String, Option<KeyRecord>>, StoreError> {
        let mut out: HashMap<String, Option<KeyRecord>> = ids.iter().map(|i| (i.clone(), None)).collect();
        let rows = self.read(|c| c.client.query(&c.st.keys_by_ids, &[&ids]).map_err(|e| backend(&e)))?;
        for r in &rows {
            let rec = key_from_row(r)?;
            out.insert(rec.id.as_str().to_string(), Some(rec));
        }
        Ok(out)
    }

    /// Current users of `ids` (None: gone), for cache reconciliation.
    pub fn users_by_ids(&self, ids: &[String]) -> Result<HashMap<String, Option<UserRecord>>, StoreError> {
        let mut out: HashMap<String, Option<UserRecord>> = ids.iter().map(|i| (i.clone(), None)).collect();
        let rows = self.read(|c| c.client.query(&c.st.users_by_ids, &[&ids]).map_err(|e| backend(&e)))?;
        for r in &rows {
            let id: String = r.try_get(0).map_err(|e| backend(&e))?;
            let doc: String = r.try_get(1).map_err(|e| backend(&e))?;
            let u = parse_user(&id, &doc)?;
            out.insert(id, Some(u));
        }
        Ok(out)
    }
}

/// Applies the missing migrations in one transaction under the migration lock.
fn migrate(client: &mut Client) -> Result<(), OpenError> {
    let pg = |e: postgres::Error| OpenError::Postgres(e.to_string());
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    tx.batch_execute(VERSION_TABLE).map_err(pg)?;
    let found: i32 =
        tx.query_one("SELECT max(version) FROM keycel_schema", &[]).map_err(pg)?.get::<_, Option<i32>>(0).unwrap_or(0);
    let supported = schema::latest();
    if found > supported {
        return Err(OpenError::NewerSchema { found, supported });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.sql).map_err(|e| OpenError::Postgres(format!("migration {}: {e}", m.version)))?;
        tx.execute(
            "INSERT INTO keycel_schema (version, description, applied_at) VALUES ($1, $2, $3)",
            &[&m.version, &m.description, &unix_now()],
        )
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

fn corrupt(field: &str, message: String) -> StoreError {
    StoreError::Corrupt(RecordError::new(field, message))
}

/// A key row: the document, checked against the indexed columns it was stored with.
fn key_from_row(r: &Row) -> Result<KeyRecord, StoreError> {
    let g = |e: postgres::Error| backend(&e);
    let id: String = r.try_get(0).map_err(g)?;
    let kind: String = r.try_get(1).map_err(g)?;
    let user_id: Option<String> = r.try_get(2).map_err(g)?;
    let active: bool = r.try_get(3).map_err(g)?;
    let version: i64 = r.try_get(4).map_err(g)?;
    let doc: String = r.try_get(5).map_err(g)?;
    let rec = KeyRecord::from_json(&doc).map_err(StoreError::Corrupt)?;
    let consistent = rec.id.as_str() == id
        && rec.kind.as_str() == kind
        && rec.kind.user() == user_id.as_deref()
        && rec.active == active
        && i64::try_from(rec.version).ok() == Some(version);
    if !consistent {
        return Err(corrupt("id", format!("row {id} disagrees with its stored document")));
    }
    Ok(rec)
}

fn parse_user(id: &str, doc: &str) -> Result<UserRecord, StoreError> {
    let u = UserRecord::from_json(doc).map_err(StoreError::Corrupt)?;
    if u.id != id {
        return Err(corrupt("id", format!("user row {id} disagrees with its stored document")));
    }
    Ok(u)
}

fn version_col(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt("version", format!("{v} is too large to store")))
}

/// The values a key row is written with, derived from the validated record in one place.
struct KeyValues<'a> {
    id: &'a str,
    kind: &'static str,
    user: Option<&'a str>,
    active: bool,
    version: i64,
    expires_at: Option<i64>,
    doc: String,
}

impl<'a> KeyValues<'a> {
    fn new(r: &'a KeyRecord) -> Result<Self, StoreError> {
        r.validate().map_err(StoreError::Corrupt)?;
        Ok(KeyValues {
            id: r.id.as_str(),
            kind: r.kind.as_str(),
            user: r.kind.user(),
            active: r.active,
            version: version_col(r.version)?,
            expires_at: r.expires_at.map(|t| t.unix()),
            doc: r.to_json(),
        })
    }
}

impl Store for PostgresStore {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = self.read(|c| c.client.query_opt(&c.st.get_key, &[&id]).map_err(|e| backend(&e)))?;
        row.as_ref().map(key_from_row).transpose()
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let v = KeyValues::new(record)?;
        self.write(|tx, st| {
            if let Some(user) = v.user {
                tx.execute(&st.lock_user, &[&user]).map_err(|e| backend(&e))?;
            }
            let n = tx
                .execute(&st.insert_key, &[&v.id, &v.kind, &v.user, &v.active, &v.version, &v.expires_at, &v.doc])
                .map_err(|e| backend(&e))?;
            // Checked after the insert, on a fresh snapshot: a concurrent delete of the same id
            // has committed by now (our insert waited for its row lock), so its tombstone shows.
            let retired: bool = tx.query_one(&st.is_retired, &[&v.id]).map_err(|e| backend(&e))?.get(0);
            if n == 0 || retired {
                return Err(StoreError::AlreadyExists(v.id.to_string()));
            }
            Ok(())
        })
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        let v = KeyValues::new(record)?;
        let expected = version_col(expected_version)?;
        self.write(|tx, st| {
            let n = tx
                .execute(
                    &st.update_key,
                    &[&v.id, &v.kind, &v.user, &v.active, &v.version, &v.expires_at, &v.doc, &expected],
                )
                .map_err(|e| backend(&e))?;
            if n == 1 {
                return Ok(());
            }
            let found = tx.query_opt(&st.key_version, &[&v.id]).map_err(|e| backend(&e))?;
            match found {
                None => Err(StoreError::NotFound(v.id.to_string())),
                Some(row) => Err(StoreError::Conflict {
                    id: v.id.to_string(),
                    expected: expected_version,
                    found: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                }),
            }
        })
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|tx, st| {
            let n = tx.execute(&st.delete_key, &[&id]).map_err(|e| backend(&e))?;
            if n > 0 {
                tx.execute(&st.retire, &[&id, &unix_now()]).map_err(|e| backend(&e))?;
            }
            Ok(n > 0)
        })
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self.read(|c| {
            c.client.query(&c.st.list_keys, &[&filter.user, &filter.kind, &filter.active]).map_err(|e| backend(&e))
        })?;
        rows.iter().map(key_from_row).collect()
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = self.read(|c| c.client.query_opt(&c.st.get_user, &[&id]).map_err(|e| backend(&e)))?;
        match row {
            None => Ok(None),
            Some(r) => {
                let doc: String = r.try_get(0).map_err(|e| backend(&e))?;
                parse_user(id, &doc).map(Some)
            }
        }
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        user.validate().map_err(StoreError::Corrupt)?;
        let doc = serde_json::to_string(user).map_err(|e| StoreError::Backend(e.to_string()))?;
        let version = version_col(user.version.max(1))?;
        self.write(|tx, st| {
            tx.execute(&st.put_user, &[&user.id, &version, &doc]).map_err(|e| backend(&e))?;
            Ok(())
        })
    }

    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.write(|tx, st| {
            tx.execute(&st.lock_user, &[&id]).map_err(|e| backend(&e))?;
            let doomed: Vec<String> = tx
                .query(&st.user_key_ids, &[&id])
                .map_err(|e| backend(&e))?
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<_, _>>()
                .map_err(|e| backend(&e))?;
            let had_user = tx.execute(&st.delete_user, &[&id]).map_err(|e| backend(&e))? > 0;
            if !had_user && doomed.is_empty() {
                return Err(StoreError::NotFound(id.to_string()));
            }
            let now = unix_now();
            for k in &doomed {
                tx.execute(&st.delete_key, &[k]).map_err(|e| backend(&e))?;
                tx.execute(&st.retire, &[k, &now]).map_err(|e| backend(&e))?;
            }
            Ok(doomed)
        })
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = self.read(|c| c.client.query(&c.st.list_users, &[]).map_err(|e| backend(&e)))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(|e| backend(&e))?;
                let doc: String = r.try_get(1).map_err(|e| backend(&e))?;
                parse_user(&id, &doc)
            })
            .collect()
    }
}
