//! Where the CLI's store is: a SQLite file (`keys.db`, `sqlite:keys.db`) or a PostgreSQL
//! database (`postgresql://...`), chosen by `--db`/`KEYCEL_DB`; and `keycel store copy`,
//! which moves every user and key between stores as they are (same ids, same hashes: nobody
//! is re-issued a key).

use crate::error::CliError;
use keycel::sqlite::SqliteStore;
use keycel::store::{KeyFilter, Store, StoreError};
use keycel_postgres::PostgresStore;
use std::path::Path;
use std::sync::Arc;

/// A parsed store location.
pub enum Location<'a> {
    /// A SQLite file.
    Sqlite(&'a Path),
    /// A PostgreSQL DSN.
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    pub fn parse(spec: &'a str) -> Self {
        if keycel_postgres::is_dsn(spec) {
            Location::Postgres(spec)
        } else {
            Location::Sqlite(Path::new(spec.strip_prefix("sqlite:").unwrap_or(spec)))
        }
    }
}

fn pg_error(e: keycel_postgres::OpenError) -> CliError {
    CliError::store(e.to_string())
}

/// Opens the store at `spec`; a SQLite file must exist unless `create`. (A PostgreSQL
/// database must exist; its keycel tables are created or migrated.)
pub fn open(spec: &str, create: bool) -> Result<Arc<dyn Store>, CliError> {
    Ok(match Location::parse(spec) {
        Location::Postgres(dsn) => Arc::new(PostgresStore::connect(dsn).map_err(pg_error)?),
        Location::Sqlite(p) if create => Arc::new(SqliteStore::create(p)?),
        Location::Sqlite(p) => Arc::new(SqliteStore::open(p)?),
    })
}

/// What a copy did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Copied {
    pub users: usize,
    pub keys: usize,
    /// Records already present in the target, identical (a re-run after an interruption).
    pub unchanged: usize,
}

/// Copies every user, then every key, as is. A record already in the target must be
/// identical (so an interrupted copy can be re-run); a different one stops the copy.
pub fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied, CliError> {
    let mut n = Copied::default();
    for u in from.list_users()? {
        match to.get_user(&u.id)? {
            Some(existing) if existing == u => n.unchanged += 1,
            Some(_) => {
                return Err(CliError::from(StoreError::AlreadyExists(format!(
                    "user {} (different in the target)",
                    u.id
                ))))
            }
            None => {
                to.put_user(&u)?;
                n.users += 1;
            }
        }
    }
    for k in from.list_keys(&KeyFilter::default())? {
        match to.get_key(k.id.as_str())? {
            Some(existing) if existing == k => n.unchanged += 1,
            Some(_) => {
                return Err(CliError::from(StoreError::AlreadyExists(format!(
                    "key {} (different in the target)",
                    k.id
                ))))
            }
            None => {
                to.insert_key(&k)?;
                n.keys += 1;
            }
        }
    }
    Ok(n)
}
