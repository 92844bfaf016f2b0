//! A throwaway PostgreSQL cluster per test binary, started by `tests/servers/postgres.sh`
//! (initdb as the `postgres` user, 127.0.0.1, a free port), stopped on drop or, for the
//! shared one in a `static` (never dropped), by the script's watchdog when the test exits.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    pub dsn: String,
    dir: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/servers/postgres.sh")
}

impl Cluster {
    pub fn start() -> Cluster {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(std::process::id().to_string())
            .output()
            .expect("run postgres.sh");
        assert!(out.status.success(), "postgres.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let (dsn, dir) = line.trim_end().split_once('\t').expect("DSN<TAB>DIR");
        Cluster { dsn: dsn.to_string(), dir: dir.to_string() }
    }

    /// A fresh empty database in this cluster (one per test or conformance case).
    pub fn database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let mut c = postgres::Client::connect(&self.dsn, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = self.dsn.rsplit_once('/').unwrap().0;
        format!("{base}/{name}")
    }

    /// Fast restart on the same port: every open connection drops.
    pub fn restart(&self) {
        let st = Command::new("bash").arg(script()).arg("restart").arg(&self.dir).status().unwrap();
        assert!(st.success(), "restart failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).status();
    }
}

impl Cluster {
    /// Stops the server, keeping its data (an outage).
    pub fn pause(&self) {
        let st = Command::new("bash").arg(script()).arg("pause").arg(&self.dir).status().unwrap();
        assert!(st.success(), "pause failed");
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        let st = Command::new("bash").arg(script()).arg("resume").arg(&self.dir).status().unwrap();
        assert!(st.success(), "resume failed");
    }
}
