//! PostgresStore against a real server (a throwaway cluster): the store conformance suite,
//! uncached and cached; schema versioning; and the record cache's change feed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::Cluster;
use keycel::record::KeyKind;
use keycel::store::conformance::{run, sample_key, sample_user};
use keycel::store::{Store, StoreError};
use keycel_postgres::{CacheSettings, CachedPostgres, OpenError, PostgresStore};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(Cluster::start)
}

fn fresh_store() -> Arc<PostgresStore> {
    Arc::new(PostgresStore::connect(&cluster().database()).unwrap())
}

fn fast() -> CacheSettings {
    CacheSettings {
        heartbeat: Duration::from_millis(50),
        bound: Duration::from_millis(250),
        ..CacheSettings::default()
    }
}

#[test]
fn postgres_store_conforms() {
    let failures = run(&|| Ok(Box::new(PostgresStore::connect(&cluster().database()).map_err(|e| e.to_string())?)));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn cached_postgres_store_conforms() {
    let failures = run(&|| {
        let c = CachedPostgres::new(fresh_store(), fast()).map_err(|e| e.to_string())?;
        if !c.wait_live(Duration::from_secs(10)) {
            return Err("listener never went live".into());
        }
        Ok(Box::new(c))
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn schema_is_versioned_and_newer_refused() {
    let dsn = cluster().database();
    let s = PostgresStore::connect(&dsn).unwrap();
    assert_eq!(s.schema_version().unwrap(), keycel_postgres::schema::latest());
    // Opening again does not migrate twice.
    let s2 = PostgresStore::connect(&dsn).unwrap();
    assert_eq!(s2.schema_version().unwrap(), keycel_postgres::schema::latest());
    let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
    c.execute("INSERT INTO keycel_schema (version, description, applied_at) VALUES (99, 'future', 0)", &[]).unwrap();
    let e = PostgresStore::connect(&dsn).unwrap_err();
    assert!(matches!(e, OpenError::NewerSchema { found: 99, .. }), "{e:?}");
    assert!(matches!(PostgresStore::connect("postgresql://[bad"), Err(OpenError::BadDsn(_))));
}

#[test]
fn concurrent_openers_migrate_once() {
    let dsn = cluster().database();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| PostgresStore::connect(&dsn).map(|_| ()))).collect();
        for h in hs {
            h.join().unwrap().unwrap();
        }
    });
    let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM keycel_schema", &[]).unwrap().get(0);
    assert_eq!(n, i64::from(keycel_postgres::schema::latest()));
}

#[test]
fn a_row_edited_behind_keycel_is_reported_corrupt() {
    let dsn = cluster().database();
    let s = PostgresStore::connect(&dsn).unwrap();
    let k = sample_key(1, KeyKind::Api).unwrap();
    s.insert_key(&k).unwrap();
    let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
    c.execute("UPDATE keycel_keys SET active = false", &[]).unwrap();
    assert!(matches!(s.get_key(k.id.as_str()), Err(StoreError::Corrupt(_))));
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting for {what}");
}

/// Another process's change (here: another store, its own connections) reaches the cache
/// through NOTIFY, for keys and users alike.
#[test]
fn notifications_evict_changed_records() {
    let dsn = cluster().database();
    let other = PostgresStore::connect(&dsn).unwrap();
    let cached = CachedPostgres::new(Arc::new(PostgresStore::connect(&dsn).unwrap()), fast()).unwrap();
    assert!(cached.wait_live(Duration::from_secs(10)));
    let k = sample_key(1, KeyKind::Api).unwrap();
    other.insert_key(&k).unwrap();
    // The insert's own notification may evict the first fill; then lookups are cache hits.
    wait_until("a cache hit", Duration::from_secs(2), || {
        let a = cached.get_key_shared(k.id.as_str()).unwrap().unwrap();
        let b = cached.get_key_shared(k.id.as_str()).unwrap().unwrap();
        Arc::ptr_eq(&a, &b)
    });
    let mut off = k.clone();
    off.active = false;
    off.version = 2;
    let t = Instant::now();
    other.update_key(&off, 1).unwrap();
    eprintln!("update took {:?}", t.elapsed());
    wait_until("deactivation", Duration::from_secs(2), || {
        !cached.get_key_shared(k.id.as_str()).unwrap().unwrap().active
    });
    eprintln!("deactivation seen after {:?}", t.elapsed());
    other.put_user(&sample_user("u_1").unwrap()).unwrap();
    assert!(cached.get_user_shared("u_1").unwrap().is_some());
    other.remove_user("u_1").unwrap();
    wait_until("user removal", Duration::from_secs(2), || cached.get_user_shared("u_1").unwrap().is_none());
    other.delete_key(k.id.as_str()).unwrap();
    wait_until("deletion", Duration::from_secs(2), || cached.get_key_shared(k.id.as_str()).unwrap().is_none());
    assert!(cached.notifications() >= 4, "{} notifications", cached.notifications());
}

/// The server goes away and comes back while a change is made: lookups fail closed past the
/// bound, the listener reconnects and reconciles, and no lookup ever returns the revoked record.
#[test]
fn outage_fails_closed_and_reconnect_reconciles() {
    // A cluster of its own: this test stops and starts the server.
    let own = Cluster::start();
    let dsn = own.database();
    let store = Arc::new(PostgresStore::connect(&dsn).unwrap());
    let cached = CachedPostgres::new(store, fast()).unwrap();
    assert!(cached.wait_live(Duration::from_secs(10)));
    let k = sample_key(1, KeyKind::Api).unwrap();
    cached.insert_key(&k).unwrap();
    assert!(cached.get_key_shared(k.id.as_str()).unwrap().unwrap().active);
    let sessions = cached.sessions();

    own.pause();
    std::thread::sleep(fast().bound + Duration::from_millis(100));
    assert!(!cached.is_live(), "still trusted past the bound with the server down");
    let r = cached.get_key_shared(k.id.as_str());
    assert!(matches!(r, Err(StoreError::Backend(_))), "server down past the bound must fail closed: {r:?}");

    own.resume();
    // Revoke at once, most likely before the listener is back: its notification is lost to
    // this process, only the reconciliation can catch it.
    let other = PostgresStore::connect(&dsn).unwrap();
    let mut off = k.clone();
    off.active = false;
    off.version = 2;
    other.update_key(&off, 1).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && !(cached.is_live() && cached.sessions() > sessions) {
        if let Ok(Some(r)) = cached.get_key_shared(k.id.as_str()) {
            assert!(!r.active, "served the revoked record after the change committed");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(cached.is_live() && cached.sessions() > sessions, "listener did not come back");
    for _ in 0..50 {
        assert!(!cached.get_key_shared(k.id.as_str()).unwrap().unwrap().active);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A restart (every connection dropped at once) mid-run: the pool and the listener recover.
#[test]
fn restart_mid_run_recovers() {
    let own = Cluster::start();
    let dsn = own.database();
    let cached = CachedPostgres::new(Arc::new(PostgresStore::connect(&dsn).unwrap()), fast()).unwrap();
    assert!(cached.wait_live(Duration::from_secs(10)));
    let k = sample_key(1, KeyKind::Api).unwrap();
    cached.insert_key(&k).unwrap();
    own.restart();
    wait_until("listener back", Duration::from_secs(10), || cached.is_live() && cached.sessions() >= 2);
    let other = PostgresStore::connect(&dsn).unwrap();
    other.delete_key(k.id.as_str()).unwrap();
    wait_until("deletion after restart", Duration::from_secs(2), || {
        cached.get_key_shared(k.id.as_str()).is_ok_and(|r| r.is_none())
    });
    // The pool's connections died in the restart; writes work again on fresh ones.
    cached.put_user(&sample_user("u_1").unwrap()).unwrap();
}

/// The shared vectors decided over PostgreSQL, uncached and cached.
#[test]
fn every_vector_conforms_over_postgres() {
    let mut failures = Vec::new();
    for f in keycel_conformance::vector_files() {
        let v: keycel_conformance::Vector = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let plain = PostgresStore::connect(&cluster().database()).unwrap();
        let (_, fails) = keycel_conformance::run_over(&v, &plain).unwrap();
        failures.extend(fails.into_iter().map(|x| format!("uncached {}: {x}", f.display())));
        let cached = CachedPostgres::new(fresh_store(), fast()).unwrap();
        assert!(cached.wait_live(Duration::from_secs(10)));
        let (_, fails) = keycel_conformance::run_over(&v, &cached).unwrap();
        failures.extend(fails.into_iter().map(|x| format!("cached {}: {x}", f.display())));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
