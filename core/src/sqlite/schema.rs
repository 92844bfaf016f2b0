//! The on-disk schema and its migrations.
//!
//! A file is recognised as a keycel store by its `application_id`; its schema version lives in
//! the `keycel_schema` table (one row per applied migration), so a newer file is refused
//! instead of being misread, and an older one is upgraded in one transaction.

/// `PRAGMA application_id` of a keycel store: "kcel" in ASCII.
pub const APPLICATION_ID: i32 = 0x6b63_656c;

/// One migration: the version it produces and the SQL that gets there from the one before.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Schema version after this migration.
    pub version: u32,
    /// What it does (kept in `keycel_schema`).
    pub description: &'static str,
    /// SQL run inside the migration's transaction.
    pub sql: &'static str,
}

/// Every migration in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "keys, users, retired ids",
        sql: "
        CREATE TABLE keys (
            id         TEXT PRIMARY KEY NOT NULL,
            kind       TEXT NOT NULL CHECK (kind IN ('api', 'personal')),
            user_id    TEXT,
            active     INTEGER NOT NULL CHECK (active IN (0, 1)),
            version    INTEGER NOT NULL CHECK (version >= 1),
            expires_at INTEGER,
            doc        TEXT NOT NULL,
            CHECK ((kind = 'personal') = (user_id IS NOT NULL))
        ) STRICT;
        CREATE INDEX keys_by_user ON keys (user_id) WHERE user_id IS NOT NULL;
        CREATE INDEX keys_by_kind_active ON keys (kind, active);
        CREATE TABLE users (
            id      TEXT PRIMARY KEY NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            doc     TEXT NOT NULL
        ) STRICT;
        CREATE TABLE retired_keys (
            id         TEXT PRIMARY KEY NOT NULL,
            retired_at INTEGER NOT NULL
        ) STRICT;
    ",
    },
    Migration {
        version: 2,
        description: "record generation: bumped by triggers on every key or user change",
        // Why: SQLite admission commits to the same file on every admitted request, which moves
        // `data_version` and the `-shm` header; the record cache must not be dropped for those.
        // The triggers fire for every writer (keycel, the `sqlite3` shell, any client), so the
        // generation moves exactly when a record does.
        sql: "
        CREATE TABLE keycel_generation (
            id INTEGER PRIMARY KEY NOT NULL CHECK (id = 0),
            n  INTEGER NOT NULL
        ) STRICT;
        INSERT INTO keycel_generation (id, n) VALUES (0, 0);
        CREATE TRIGGER keycel_keys_insert AFTER INSERT ON keys
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
        CREATE TRIGGER keycel_keys_update AFTER UPDATE ON keys
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
        CREATE TRIGGER keycel_keys_delete AFTER DELETE ON keys
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
        CREATE TRIGGER keycel_users_insert AFTER INSERT ON users
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
        CREATE TRIGGER keycel_users_update AFTER UPDATE ON users
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
        CREATE TRIGGER keycel_users_delete AFTER DELETE ON users
            BEGIN UPDATE keycel_generation SET n = n + 1 WHERE id = 0; END;
    ",
    },
];

/// The schema version this build writes.
pub fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates the version table itself (idempotent).
pub const VERSION_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS keycel_schema (
        version     INTEGER PRIMARY KEY NOT NULL,
        description TEXT NOT NULL,
        applied_at  INTEGER NOT NULL
    ) STRICT;
";
