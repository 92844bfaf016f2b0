//! A small connection pool: idle connections on a stack, a new one when none is idle, broken
//! ones dropped on return. Chosen over r2d2 because keycel needs only this much (no reaper
//! thread, no extra crates), it lets each connection carry its prepared statements, and a
//! caller never waits for a checkout: a database that is down fails the call at once (503)
//! instead of queueing requests behind a pool timeout.

use crate::statements::Statements;
use keycel::store::StoreError;
use postgres::{Client, Config, NoTls};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// A connection with its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) st: Statements,
}

/// The pool.
pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("max_idle", &self.max_idle).finish_non_exhaustive()
    }
}

pub(crate) fn backend(e: &postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

impl Pool {
    pub(crate) fn new(config: Config, max_idle: usize) -> Self {
        Pool { config, idle: Mutex::new(Vec::new()), max_idle }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh connection with the statements prepared (schema must exist).
    fn connect(&self) -> Result<Conn, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(|e| backend(&e))?;
        let st = Statements::prepare(&mut client).map_err(|e| backend(&e))?;
        Ok(Conn { client, st })
    }

    /// An idle connection if one is still open, else a new one.
    pub(crate) fn get(&self) -> Result<Pooled<'_>, StoreError> {
        loop {
            let c = self.idle().pop();
            match c {
                Some(c) if c.client.is_closed() => continue,
                Some(c) => return Ok(Pooled { pool: self, conn: Some(c) }),
                None => return Ok(Pooled { pool: self, conn: Some(self.connect()?) }),
            }
        }
    }

    /// Drops every idle connection (after the server went away, they are all dead).
    pub(crate) fn flush(&self) {
        self.idle().clear();
    }
}

/// A checked-out connection; goes back to the pool on drop unless it broke.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Pooled<'_> {
    pub(crate) fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.conn.as_mut().ok_or_else(|| StoreError::Backend("connection already released".into()))
    }

    /// After an error on a closed connection: forget the others too (a restart kills all).
    pub(crate) fn note_error(&mut self) {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
            self.pool.flush();
        }
    }

    /// True when the connection died (the call may be retried on a fresh one if it only read).
    pub(crate) fn is_dead(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.client.is_closed())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if !c.client.is_closed() {
                let mut idle = self.pool.idle();
                if idle.len() < self.pool.max_idle {
                    idle.push(c);
                }
            }
        }
    }
}
