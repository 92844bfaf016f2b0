//! Every statement the store runs, prepared once per pooled connection (one round trip per
//! call instead of two).

use postgres::{Client, Statement};

const KEY_COLUMNS: &str = "id, kind, user_id, active, version, doc";

/// Prepared statements of one connection.
pub(crate) struct Statements {
    pub(crate) get_key: Statement,
    pub(crate) keys_by_ids: Statement,
    pub(crate) list_keys: Statement,
    pub(crate) insert_key: Statement,
    pub(crate) is_retired: Statement,
    pub(crate) update_key: Statement,
    pub(crate) key_version: Statement,
    pub(crate) delete_key: Statement,
    pub(crate) retire: Statement,
    pub(crate) get_user: Statement,
    pub(crate) users_by_ids: Statement,
    pub(crate) put_user: Statement,
    pub(crate) list_users: Statement,
    pub(crate) user_key_ids: Statement,
    pub(crate) delete_user: Statement,
    pub(crate) lock_user: Statement,
}

impl Statements {
    pub(crate) fn prepare(c: &mut Client) -> Result<Self, postgres::Error> {
        // Ids sort by bytes (COLLATE "C"), as in every other store, whatever the database locale.
        Ok(Statements {
            get_key: c.prepare(&format!("SELECT {KEY_COLUMNS} FROM keycel_keys WHERE id = $1"))?,
            keys_by_ids: c.prepare(&format!("SELECT {KEY_COLUMNS} FROM keycel_keys WHERE id = ANY($1)"))?,
            list_keys: c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM keycel_keys
                 WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR kind = $2)
                   AND ($3::boolean IS NULL OR active = $3)
                 ORDER BY id COLLATE \"C\""
            ))?,
            insert_key: c.prepare(
                "INSERT INTO keycel_keys (id, kind, user_id, active, version, expires_at, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )?,
            is_retired: c.prepare("SELECT EXISTS (SELECT 1 FROM keycel_retired_keys WHERE id = $1)")?,
            update_key: c.prepare(
                "UPDATE keycel_keys SET kind = $2, user_id = $3, active = $4, version = $5, expires_at = $6, doc = $7
                 WHERE id = $1 AND version = $8",
            )?,
            key_version: c.prepare("SELECT version FROM keycel_keys WHERE id = $1")?,
            delete_key: c.prepare("DELETE FROM keycel_keys WHERE id = $1")?,
            retire: c.prepare(
                "INSERT INTO keycel_retired_keys (id, retired_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            )?,
            get_user: c.prepare("SELECT doc FROM keycel_users WHERE id = $1")?,
            users_by_ids: c.prepare("SELECT id, doc FROM keycel_users WHERE id = ANY($1)")?,
            put_user: c.prepare(
                "INSERT INTO keycel_users (id, version, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc",
            )?,
            list_users: c.prepare("SELECT id, doc FROM keycel_users ORDER BY id COLLATE \"C\"")?,
            user_key_ids: c
                .prepare("SELECT id FROM keycel_keys WHERE user_id = $1 ORDER BY id COLLATE \"C\" FOR UPDATE")?,
            delete_user: c.prepare("DELETE FROM keycel_users WHERE id = $1")?,
            // Serializes "add a token for user U" with "remove user U": no token outlives its user.
            lock_user: c.prepare("SELECT pg_advisory_xact_lock(1801676140, hashtext($1))")?,
        })
    }
}
