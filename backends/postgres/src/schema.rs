//! The PostgreSQL schema and its migrations.
//!
//! Tables are prefixed `keycel_` because they usually share a database with the application's
//! own (`users` is a common name). The schema version lives in `keycel_schema`, one row per
//! applied migration; migrations run in one transaction under an advisory lock, so processes
//! starting together migrate once, and a database written by a newer keycel is refused.

/// Advisory lock key taken while migrating ("kcel").
pub const MIGRATION_LOCK: i64 = 0x6b63_656c;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "keycel_changes";

/// One migration: the version it produces and the SQL that gets there from the one before.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Schema version after this migration.
    pub version: i32,
    /// What it does (kept in `keycel_schema`).
    pub description: &'static str,
    /// SQL run inside the migration's transaction.
    pub sql: &'static str,
}

/// Every migration in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "keys, users, retired ids, change notifications",
    sql: r#"
        CREATE TABLE keycel_keys (
            id         text PRIMARY KEY,
            kind       text NOT NULL CHECK (kind IN ('api', 'personal')),
            user_id    text,
            active     boolean NOT NULL,
            version    bigint NOT NULL CHECK (version >= 1),
            expires_at bigint,
            doc        text NOT NULL,
            CHECK ((kind = 'personal') = (user_id IS NOT NULL))
        );
        CREATE INDEX keycel_keys_by_user ON keycel_keys (user_id) WHERE user_id IS NOT NULL;
        CREATE INDEX keycel_keys_by_kind_active ON keycel_keys (kind, active);
        CREATE TABLE keycel_users (
            id      text PRIMARY KEY,
            version bigint NOT NULL CHECK (version >= 1),
            doc     text NOT NULL
        );
        CREATE TABLE keycel_retired_keys (
            id         text PRIMARY KEY,
            retired_at bigint NOT NULL
        );
        -- Every committed change tells every listening process which record moved:
        -- {"t": "key"|"user", "id": ..., "v": version or null when deleted}.
        CREATE FUNCTION keycel_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            rid text;
            ver bigint;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                rid := OLD.id; ver := NULL;
            ELSE
                rid := NEW.id; ver := NEW.version;
            END IF;
            PERFORM pg_notify('keycel_changes', json_build_object(
                't', CASE TG_TABLE_NAME WHEN 'keycel_keys' THEN 'key' ELSE 'user' END,
                'id', rid, 'v', ver)::text);
            IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
                PERFORM pg_notify('keycel_changes', json_build_object(
                    't', CASE TG_TABLE_NAME WHEN 'keycel_keys' THEN 'key' ELSE 'user' END,
                    'id', OLD.id, 'v', NULL)::text);
            END IF;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER keycel_keys_notify AFTER INSERT OR UPDATE OR DELETE ON keycel_keys
            FOR EACH ROW EXECUTE FUNCTION keycel_notify();
        CREATE TRIGGER keycel_users_notify AFTER INSERT OR UPDATE OR DELETE ON keycel_users
            FOR EACH ROW EXECUTE FUNCTION keycel_notify();
    "#,
}];

/// The schema version this build writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates the version table itself (idempotent; run under the migration lock).
pub const VERSION_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS keycel_schema (
        version     integer PRIMARY KEY,
        description text NOT NULL,
        applied_at  bigint NOT NULL
    );
";
