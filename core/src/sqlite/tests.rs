#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use super::*;
use crate::hash::PhcHash;
use crate::record::{AccountScope, KeyKind};
use crate::test_rng::TestRng;
use crate::time::Timestamp;
use crate::token::TokenFormat;
use std::sync::Arc;

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn key(seed: u64, kind: KeyKind) -> KeyRecord {
    let issued = TokenFormat::default().issue(&mut TestRng::new(seed)).unwrap();
    let t = Timestamp::from_unix(1_700_000_000).unwrap();
    KeyRecord {
        scopes: ["api.read".to_string()].into_iter().collect(),
        ..KeyRecord::new(issued.client_id, format!("key {seed}"), kind, "admin", PhcHash::parse(PHC).unwrap(), t)
    }
}

fn personal(seed: u64, user: &str) -> KeyRecord {
    key(seed, KeyKind::Personal { user: user.into() })
}

fn user(id: &str) -> UserRecord {
    UserRecord::new(id, ["admin".to_string()], AccountScope::All).unwrap()
}

fn temp_db(name: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let p = dir.path().join("keys.db");
    (dir, p)
}

/// A tiny self-cleaning temp dir (core has no tempfile dev-dependency).
mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap();
            let p = std::env::temp_dir().join(format!("keycel-sqlite-{name}-{}", u64::from_le_bytes(bytes)));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    let _: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
}

#[test]
fn round_trips_keys_and_users() {
    let s = SqliteStore::in_memory().unwrap();
    let k = key(1, KeyKind::Api);
    s.insert_key(&k).unwrap();
    assert_eq!(s.get_key(k.id.as_str()).unwrap(), Some(k.clone()));
    assert_eq!(s.get_key("kc_nothere").unwrap(), None);
    s.put_user(&user("u_1")).unwrap();
    assert_eq!(s.get_user("u_1").unwrap(), Some(user("u_1")));
    assert_eq!(s.list_users().unwrap().len(), 1);
}

#[test]
fn ids_are_never_reused() {
    let s = SqliteStore::in_memory().unwrap();
    let k = key(2, KeyKind::Api);
    s.insert_key(&k).unwrap();
    assert_eq!(s.insert_key(&k), Err(StoreError::AlreadyExists(k.id.to_string())));
    assert!(s.delete_key(k.id.as_str()).unwrap());
    assert!(!s.delete_key(k.id.as_str()).unwrap());
    assert_eq!(s.insert_key(&k), Err(StoreError::AlreadyExists(k.id.to_string())));
    assert_eq!(s.get_key(k.id.as_str()).unwrap(), None);
}

#[test]
fn updates_are_version_checked() {
    let s = SqliteStore::in_memory().unwrap();
    let k = key(3, KeyKind::Api);
    s.insert_key(&k).unwrap();
    let mut next = k.clone();
    next.name = "renamed".into();
    next.active = false;
    next.version = 2;
    s.update_key(&next, 1).unwrap();
    assert_eq!(s.get_key(k.id.as_str()).unwrap(), Some(next.clone()));
    // A writer that started from version 1 loses.
    let mut stale = k.clone();
    stale.version = 2;
    assert_eq!(s.update_key(&stale, 1), Err(StoreError::Conflict { id: k.id.to_string(), expected: 1, found: 2 }));
    assert_eq!(s.get_key(k.id.as_str()).unwrap(), Some(next));
    let other = key(4, KeyKind::Api);
    assert_eq!(s.update_key(&other, 1), Err(StoreError::NotFound(other.id.to_string())));
    // The indexed column follows the document.
    assert!(s.list_keys(&KeyFilter { active: Some(true), ..KeyFilter::default() }).unwrap().is_empty());
}

#[test]
fn invalid_records_are_refused_before_writing() {
    let s = SqliteStore::in_memory().unwrap();
    let mut k = key(5, KeyKind::Api);
    k.name = String::new();
    assert!(matches!(s.insert_key(&k), Err(StoreError::Corrupt(e)) if e.field == "name"));
    assert!(s.list_keys(&KeyFilter::default()).unwrap().is_empty());
    let mut u = user("u_1");
    u.id = "has space".into();
    assert!(matches!(s.put_user(&u), Err(StoreError::Corrupt(_))));
}

#[test]
fn filters_and_order() {
    let s = SqliteStore::in_memory().unwrap();
    let mut all = Vec::new();
    for i in 0..6 {
        let mut k = if i % 2 == 0 { key(10 + i, KeyKind::Api) } else { personal(10 + i, "u_1") };
        k.active = i < 4;
        s.insert_key(&k).unwrap();
        all.push(k);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.list_keys(&KeyFilter::default()).unwrap(), all);
    let f = |user: Option<&str>, kind: Option<&str>, active: Option<bool>| {
        let filter = KeyFilter { user: user.map(Into::into), kind: kind.map(Into::into), active };
        let got = s.list_keys(&filter).unwrap();
        let want: Vec<_> = all.iter().filter(|r| filter.matches(r)).cloned().collect();
        assert_eq!(got, want);
        got.len()
    };
    assert_eq!(f(Some("u_1"), None, None), 3);
    assert_eq!(f(None, Some("api"), None), 3);
    assert_eq!(f(None, None, Some(false)), 2);
    assert_eq!(f(Some("u_1"), Some("personal"), Some(true)), 2);
    assert_eq!(f(Some("nobody"), None, None), 0);
}

#[test]
fn remove_user_deletes_personal_tokens_atomically() {
    let s = SqliteStore::in_memory().unwrap();
    s.put_user(&user("u_1")).unwrap();
    s.put_user(&user("u_2")).unwrap();
    let a = personal(20, "u_1");
    let b = personal(21, "u_1");
    let c = personal(22, "u_2");
    let api = key(23, KeyKind::Api);
    for k in [&a, &b, &c, &api] {
        s.insert_key(k).unwrap();
    }
    let mut gone = s.remove_user("u_1").unwrap();
    gone.sort();
    let mut want = vec![a.id.to_string(), b.id.to_string()];
    want.sort();
    assert_eq!(gone, want);
    assert_eq!(s.get_user("u_1").unwrap(), None);
    assert_eq!(s.list_keys(&KeyFilter::default()).unwrap().len(), 2);
    assert_eq!(s.insert_key(&a), Err(StoreError::AlreadyExists(a.id.to_string())));
    assert_eq!(s.remove_user("u_1"), Err(StoreError::NotFound("u_1".into())));
    // A user with no tokens goes too.
    s.put_user(&user("u_3")).unwrap();
    assert_eq!(s.remove_user("u_3").unwrap(), Vec::<String>::new());
}

#[test]
fn persists_across_reopen_and_checks_integrity() {
    let (_dir, p) = temp_db("reopen");
    assert!(matches!(SqliteStore::open(&p), Err(OpenError::Missing(_))));
    let k = key(30, KeyKind::Api);
    {
        let s = SqliteStore::create(&p).unwrap();
        s.insert_key(&k).unwrap();
        s.put_user(&user("u_1")).unwrap();
        s.insert_key(&personal(31, "u_1")).unwrap();
        assert!(s.delete_key(personal(31, "u_1").id.as_str()).unwrap());
    }
    let s = SqliteStore::open(&p).unwrap();
    assert_eq!(s.get_key(k.id.as_str()).unwrap(), Some(k));
    assert_eq!(s.schema_version().unwrap(), latest_schema_version());
    let report = s.check_integrity().unwrap();
    assert_eq!((report.keys, report.users, report.retired), (1, 1, 1));
    let mode: String = s.lock().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // create() on an existing store just opens it.
    assert_eq!(SqliteStore::create(&p).unwrap().check_integrity().unwrap().keys, 1);
}

#[test]
fn refuses_foreign_and_newer_files() {
    let (dir, p) = temp_db("foreign");
    let other = dir.path().join("other.db");
    Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    assert!(matches!(SqliteStore::open(&other), Err(OpenError::NotKeycel(_))));
    assert!(matches!(SqliteStore::create(&other), Err(OpenError::NotKeycel(_))));
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    assert!(matches!(SqliteStore::open(&junk), Err(OpenError::NotKeycel(_))));
    drop(SqliteStore::create(&p).unwrap());
    Connection::open(&p)
        .unwrap()
        .execute("INSERT INTO keycel_schema (version, description, applied_at) VALUES (99, 'future', 0)", [])
        .unwrap();
    assert_eq!(
        SqliteStore::open(&p).unwrap_err(),
        OpenError::NewerSchema { found: 99, supported: latest_schema_version() }
    );
}

#[test]
fn migrates_an_empty_version_zero_file() {
    // A file that only has the version table and the application id (as if created by a
    // build that crashed before its first migration committed) is brought up to date.
    let (_dir, p) = temp_db("migrate");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(schema::VERSION_TABLE).unwrap();
    c.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}")).unwrap();
    drop(c);
    let s = SqliteStore::open(&p).unwrap();
    assert_eq!(s.schema_version().unwrap(), latest_schema_version());
    s.insert_key(&key(40, KeyKind::Api)).unwrap();
}

#[test]
fn tampered_rows_are_reported_not_trusted() {
    let s = SqliteStore::in_memory().unwrap();
    let k = key(50, KeyKind::Api);
    s.insert_key(&k).unwrap();
    s.lock().execute("UPDATE keys SET active = 0", []).unwrap();
    assert!(matches!(s.get_key(k.id.as_str()), Err(StoreError::Corrupt(_))));
    s.lock().execute("UPDATE keys SET active = 1, doc = '{\"schema\":1}'", []).unwrap();
    assert!(matches!(s.get_key(k.id.as_str()), Err(StoreError::Corrupt(e)) if e.field == "json"));
    assert!(s.check_integrity().is_err());
}

#[test]
fn threads_share_one_store() {
    let (_dir, p) = temp_db("threads");
    let s = Arc::new(SqliteStore::create(&p).unwrap());
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    s.insert_key(&key(1000 + t * 100 + i, KeyKind::Api)).unwrap();
                    assert!(s.list_keys(&KeyFilter::default()).unwrap().len() as u64 > i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.check_integrity().unwrap().keys, 100);
}

#[test]
fn keyring_runs_over_sqlite() {
    use crate::hash::{HashParams, HashPolicy};
    use crate::keyring::{Actor, Keyring, NewKey};
    let s: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let kr = Keyring::new(s.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE).unwrap()).unwrap();
    let op = Actor::Operator("test".into());
    let now = Timestamp::from_unix(1_800_000_000).unwrap();
    let (rec, _issued) = kr.create(&op, NewKey::api("Production", "admin"), now).unwrap();
    let renamed = kr.rename(&op, rec.id.as_str(), "Prod", now).unwrap();
    assert_eq!(renamed.version, 2);
    assert_eq!(s.get_key(rec.id.as_str()).unwrap(), Some(renamed));
    kr.delete(&op, rec.id.as_str(), now).unwrap();
    assert_eq!(s.get_key(rec.id.as_str()).unwrap(), None);
}

#[test]
fn sqlite_store_conforms() {
    let failures = crate::store::conformance::run(&|| {
        SqliteStore::in_memory().map(|s| Box::new(s) as Box<dyn Store>).map_err(|e| e.to_string())
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn cached_sqlite_store_conforms() {
    let failures = crate::store::conformance::run(&|| {
        let s = Arc::new(SqliteStore::in_memory().map_err(|e| e.to_string())?);
        Ok(Box::new(cached(s).map_err(|e| e.to_string())?) as Box<dyn Store>)
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Another connection's change (another process's CLI) is seen by the next lookup.
#[test]
fn cache_sees_other_connections_changes_on_the_next_lookup() {
    let (_dir, path) = temp_db("cache");
    let server = cached(Arc::new(SqliteStore::create(&path).unwrap())).unwrap();
    let cli = SqliteStore::open(&path).unwrap();
    let k = key(1, KeyKind::Api);
    cli.insert_key(&k).unwrap();
    let a = server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    let b = server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "second lookup is a cache hit");
    let mut off = k.clone();
    off.active = false;
    off.version = 2;
    cli.update_key(&off, 1).unwrap();
    assert!(!server.get_key_shared(k.id.as_str()).unwrap().unwrap().active, "deactivation seen at once");
    cli.delete_key(k.id.as_str()).unwrap();
    assert!(server.get_key_shared(k.id.as_str()).unwrap().is_none(), "deletion seen at once");
    cli.put_user(&user("u_1")).unwrap();
    assert!(server.get_user_shared("u_1").unwrap().is_some());
    cli.remove_user("u_1").unwrap();
    assert!(server.get_user_shared("u_1").unwrap().is_none(), "user removal seen at once");
}

fn watched(path: &Path) -> (Arc<SqliteStore>, Arc<DataVersion>, crate::store::CachedStore) {
    let inner = Arc::new(SqliteStore::open(path).unwrap());
    let watch = Arc::new(DataVersion::new(inner.clone()).unwrap());
    let store = cached_with(inner.clone(), watch.clone());
    (inner, watch, store)
}

/// A quiet file costs no `data_version` per lookup; another connection's commit moves the
/// `-shm` header, which sends the next lookup to the exact check.
#[test]
fn quiet_files_need_no_exact_check_and_commits_are_noticed() {
    let (_dir, path) = temp_db("quiet");
    let cli = SqliteStore::create(&path).unwrap();
    let k = key(1, KeyKind::Api);
    cli.insert_key(&k).unwrap();
    let (_inner, watch, server) = watched(&path);
    assert!(watch.uses_shm());
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    let quiet = watch.exact_checks();
    for _ in 0..50 {
        server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    }
    assert_eq!(watch.exact_checks(), quiet);
    let mut off = k.clone();
    off.active = false;
    off.version = 2;
    cli.update_key(&off, 1).unwrap();
    assert!(!server.get_key_shared(k.id.as_str()).unwrap().unwrap().active);
    assert_eq!(watch.exact_checks(), quiet + 1);
}

/// A torn header (the two copies differ, as while a commit rewrites them) is never taken as
/// "unchanged": the lookup revalidates with `data_version`.
#[test]
fn a_torn_shm_header_forces_revalidation() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let (_dir, path) = temp_db("torn");
    let cli = SqliteStore::create(&path).unwrap();
    let k = key(1, KeyKind::Api);
    cli.insert_key(&k).unwrap();
    let (_inner, watch, server) = watched(&path);
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    let before = watch.exact_checks();
    // Flip one byte of the second copy's checksum (offset 48 + 40), as a half-written header.
    let mut shm = std::fs::OpenOptions::new().read(true).write(true).open(super::shm::shm_path(&path)).unwrap();
    let mut byte = [0u8; 1];
    shm.seek(SeekFrom::Start(88)).unwrap();
    shm.read_exact(&mut byte).unwrap();
    shm.seek(SeekFrom::Start(88)).unwrap();
    shm.write_all(&[byte[0] ^ 0xff]).unwrap();
    shm.flush().unwrap();
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    assert_eq!(watch.exact_checks(), before + 1, "a torn header sends the lookup to data_version");
    // SQLite's own read in that check found the copies differ and rebuilt the header; the
    // next lookup re-primes on the rebuilt header, and after that lookups are free again.
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    let settled = watch.exact_checks();
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    assert_eq!(watch.exact_checks(), settled);
    // And commits are still seen.
    cli.delete_key(k.id.as_str()).unwrap();
    assert!(server.get_key_shared(k.id.as_str()).unwrap().is_none());
}

/// A `-shm` file replaced under the service (deleted by hand) is noticed at the next identity
/// check: from then on every lookup asks `data_version`.
#[test]
fn a_replaced_shm_file_falls_back_to_data_version() {
    let (_dir, path) = temp_db("replaced");
    let cli = SqliteStore::create(&path).unwrap();
    let k = key(1, KeyKind::Api);
    cli.insert_key(&k).unwrap();
    let (_inner, watch, server) = watched(&path);
    let shm = super::shm::shm_path(&path);
    let aside = path.with_extension("shm-aside");
    std::fs::rename(&shm, &aside).unwrap();
    std::fs::copy(&aside, &shm).unwrap();
    // The first lookup checks the file's identity (then every STAT_EVERY).
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    assert!(!watch.uses_shm(), "a replaced -shm file is not trusted");
    let before = watch.exact_checks();
    server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    assert_eq!(watch.exact_checks(), before + 1, "every lookup revalidates");
    std::fs::rename(&aside, &shm).unwrap();
}

#[test]
fn in_memory_stores_use_data_version() {
    let watch = DataVersion::new(Arc::new(SqliteStore::in_memory().unwrap())).unwrap();
    assert!(!watch.uses_shm());
}

/// SQLite admission commits to the key store's file on every admitted request; those commits
/// touch no record, so the record cache keeps its entries (a cache hit stays a hit), while a
/// record change by another connection in between is still seen at once.
#[test]
fn admission_commits_in_the_same_file_keep_the_record_cache() {
    use crate::admission::{Admission, SqliteAdmission, Ticket};
    let (_dir, path) = temp_db("admission-cache");
    let cli = SqliteStore::create(&path).unwrap();
    let k = key(1, KeyKind::Api);
    cli.insert_key(&k).unwrap();
    let (_inner, watch, server) = watched(&path);
    let admission = SqliteAdmission::open(&path, crate::limiter::LimiterConfig::default()).unwrap();
    let first = server.get_key_shared(k.id.as_str()).unwrap().unwrap();
    let now = Timestamp::from_unix(1_700_000_000).unwrap();
    for _ in 0..20 {
        let lease = admission.admit(&Ticket::new(k.id.as_str(), Some(5)), now).unwrap();
        let again = server.get_key_shared(k.id.as_str()).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "an admission commit must not drop the cached record");
        drop(lease);
    }
    assert!(watch.exact_checks() >= 1, "the header moved, so the generation was read");
    let mut off = k.clone();
    off.active = false;
    off.version = 2;
    cli.update_key(&off, 1).unwrap();
    admission.admit(&Ticket::new(k.id.as_str(), Some(5)), now).unwrap();
    assert!(!server.get_key_shared(k.id.as_str()).unwrap().unwrap().active, "a record change is seen at once");
}

/// The generation moves for every key and user change, by any connection, and for nothing else.
#[test]
fn record_generation_moves_only_with_records() {
    let (_dir, path) = temp_db("generation");
    let s = SqliteStore::create(&path).unwrap();
    let g0 = s.record_generation().unwrap();
    let k = key(1, KeyKind::Api);
    s.insert_key(&k).unwrap();
    let g1 = s.record_generation().unwrap();
    assert!(g1 > g0);
    s.put_user(&user("u_1")).unwrap();
    let g2 = s.record_generation().unwrap();
    assert!(g2 > g1);
    s.delete_key(k.id.as_str()).unwrap();
    s.remove_user("u_1").unwrap();
    let g3 = s.record_generation().unwrap();
    assert!(g3 > g2);
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("CREATE TABLE IF NOT EXISTS unrelated (x INTEGER); INSERT INTO unrelated VALUES (1);").unwrap();
    assert_eq!(s.record_generation().unwrap(), g3, "a commit touching no record leaves it");
}
