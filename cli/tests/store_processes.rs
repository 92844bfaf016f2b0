//! The SQLite store across processes: a writer killed with SIGKILL mid-way leaves a store
//! where every change fully landed or not at all, and readers in other processes see only
//! valid records while writers from several processes queue on the lock.
//!
//! The child processes are this test binary itself, re-run with `--exact <helper> --ignored`
//! and a role in the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::hash::PhcHash;
use keycel::record::{AccountScope, KeyKind, KeyRecord, UserRecord};
use keycel::sqlite::SqliteStore;
use keycel::store::{KeyFilter, Store, StoreError};
use keycel::time::Timestamp;
use keycel::token::ClientId;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
const ROLE: &str = "KEYCEL_TEST_CHILD";
const DB: &str = "KEYCEL_TEST_DB";
const TAG: &str = "KEYCEL_TEST_TAG";

/// A client id unique per (tag, counter): `kc_` + tag letter + 15 digits.
fn id(tag: char, n: u64) -> ClientId {
    ClientId::parse_any(&format!("kc_{tag}{n:015}")).unwrap()
}

fn record(id: ClientId, kind: KeyKind) -> KeyRecord {
    let t = Timestamp::from_unix(1_800_000_000).unwrap();
    KeyRecord {
        description: "x".repeat(200),
        scopes: ["api.read".to_string()].into_iter().collect(),
        ..KeyRecord::new(id, "proc", kind, "admin", PhcHash::parse(PHC).unwrap(), t)
    }
}

fn user(id: &str) -> UserRecord {
    UserRecord::new(id, ["admin".to_string()], AccountScope::All).unwrap()
}

fn spawn_child(helper: &str, db: &Path, tag: char) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE, "1")
        .env(DB, db)
        .env(TAG, tag.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn child_env() -> Option<(String, char)> {
    std::env::var(ROLE).ok()?;
    Some((std::env::var(DB).unwrap(), std::env::var(TAG).unwrap().chars().next().unwrap()))
}

/// Writer loop (child). Each round: add a user with three personal tokens, add and update an
/// API token, delete an older API token, remove the previous round's user (a multi-row
/// change). After each committed change it prints `ok <client id>` for keys it created.
#[test]
#[ignore = "helper: run as a child process by the tests below"]
fn helper_writer() {
    let Some((db, tag)) = child_env() else { return };
    let store = SqliteStore::open(&db).unwrap();
    let limit: u64 = std::env::var("KEYCEL_TEST_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let mut n = 0u64;
    let mut round = 0u64;
    while round < limit {
        let uid = format!("u_{tag}_{round}");
        store.put_user(&user(&uid)).unwrap();
        for _ in 0..3 {
            n += 1;
            store.insert_key(&record(id(tag, n), KeyKind::Personal { user: uid.clone() })).unwrap();
            println!("ok {}", id(tag, n));
        }
        n += 1;
        let api = record(id(tag, n), KeyKind::Api);
        store.insert_key(&api).unwrap();
        println!("ok {}", api.id);
        let mut next = api.clone();
        next.version = 2;
        next.name = "updated".into();
        next.scopes = ["api.read".to_string(), "api.write".to_string()].into_iter().collect();
        store.update_key(&next, 1).unwrap();
        if round >= 2 {
            // An API key from two rounds ago (4 keys per round, the 4th is the API key).
            store.delete_key(id(tag, (round - 1) * 4).as_str()).unwrap();
        }
        if round >= 1 {
            store.remove_user(&format!("u_{tag}_{}", round - 1)).unwrap();
        }
        round += 1;
    }
    println!("done");
}

/// Reader loop (child): reads everything over and over; every record must validate.
#[test]
#[ignore = "helper: run as a child process by the tests below"]
fn helper_reader() {
    let Some((db, _)) = child_env() else { return };
    let store = SqliteStore::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut reads = 0u64;
    while Instant::now() < deadline {
        let keys = store.list_keys(&KeyFilter::default()).unwrap();
        for k in keys.iter().take(5) {
            // A key listed a moment ago may be gone now, never invalid.
            let _ = store.get_key(k.id.as_str()).unwrap();
        }
        let _ = store.list_users().unwrap();
        reads += 1;
    }
    println!("reads {reads}");
}

/// The invariants every write preserves: SQLite integrity, every record valid, no retired
/// id alive, and no personal token without its user (remove_user is all-or-nothing).
fn check_invariants(db: &Path) -> (usize, usize) {
    let store = SqliteStore::open(db).unwrap();
    let report = store.check_integrity().unwrap();
    let users: BTreeSet<String> = store.list_users().unwrap().into_iter().map(|u| u.id).collect();
    let keys = store.list_keys(&KeyFilter::default()).unwrap();
    for k in &keys {
        if let Some(u) = k.kind.user() {
            assert!(users.contains(u), "personal token {} outlived its user {u}", k.id);
        }
        assert!(k.version == 1 || (k.version == 2 && k.name == "updated" && k.scopes.len() == 2), "torn update");
    }
    (report.keys, report.users)
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Reads the writer's acknowledgements until `at_least` inserts are confirmed. The pipe stays
/// open (returned) so the writer keeps writing until it is killed.
fn read_acknowledged(child: &mut Child, at_least: usize) -> (Vec<String>, Lines) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < at_least {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(id) = l.strip_prefix("ok ") {
                    acked.push(id.to_string());
                }
            }
            _ => panic!("writer ended early after {} writes", acked.len()),
        }
    }
    (acked, lines)
}

#[test]
fn killed_writer_leaves_only_whole_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    drop(SqliteStore::create(&db).unwrap());
    let mut all_acked = Vec::new();
    for (i, tag) in ['a', 'b', 'c', 'd'].into_iter().enumerate() {
        let mut child = spawn_child("helper_writer", &db, tag);
        let (mut acked, lines) = read_acknowledged(&mut child, 40 + i * 25);
        // Let it run on a little so the kill lands inside some later transaction.
        std::thread::sleep(Duration::from_millis(7 * i as u64 + 3));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "the writer must die by SIGKILL, not finish or panic: {status}");
        // Everything it acknowledged before dying counts too.
        acked.extend(lines.map_while(Result::ok).filter_map(|l| l.strip_prefix("ok ").map(str::to_string)));
        let (keys, _users) = check_invariants(&db);
        assert!(keys > 0);
        all_acked.extend(acked);
    }
    // Durability: every acknowledged insert is still there or was deleted (retired) later;
    // its id can never be inserted again.
    let store = SqliteStore::open(&db).unwrap();
    for id in &all_acked {
        let r = record(ClientId::parse_any(id).unwrap(), KeyKind::Api);
        assert_eq!(store.insert_key(&r), Err(StoreError::AlreadyExists(id.clone())), "lost acknowledged {id}");
    }
}

#[test]
fn writers_and_readers_in_several_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    drop(SqliteStore::create(&db).unwrap());
    let rounds = 15u64;
    let mut writers: Vec<Child> = ['p', 'q', 'r']
        .into_iter()
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "helper_writer", "--ignored", "--nocapture", "--test-threads=1"])
                .env(ROLE, "1")
                .env(DB, &db)
                .env(TAG, tag.to_string())
                .env("KEYCEL_TEST_ROUNDS", rounds.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut readers: Vec<Child> = ['x', 'y'].into_iter().map(|t| spawn_child("helper_reader", &db, t)).collect();
    for c in writers.iter_mut().chain(readers.iter_mut()) {
        let out = c.wait_with_output_ref();
        assert!(out.0.success(), "child failed: {}", out.1);
    }
    let (keys, users) = check_invariants(&db);
    // Per writer: 4 keys per round; all personal tokens but the last round's removed with
    // their users; API keys all but the two newest deleted.
    assert_eq!(users, 3);
    assert_eq!(keys, 3 * (3 + 2));
}

trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        let mut text = String::new();
        if let Some(out) = self.stdout.take() {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                text.push_str(&l);
                text.push('\n');
            }
        }
        (self.wait().unwrap(), text.lines().last().unwrap_or("").to_string())
    }
}
