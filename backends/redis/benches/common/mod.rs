//! What both admission benches share: a throwaway `redis-server` and the engine they measure.

use keycel::engine::Engine;
use keycel::hash::{HashParams, HashPolicy};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's `redis-server` on 127.0.0.1 (a free port, no persistence), killed on drop.
pub struct Server(Child, pub u16);

impl Server {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server(child, port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The default policy with edge-cheap hashing (the cache hit is what is measured).
pub fn engine() -> Engine {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(HashParams::EDGE).unwrap();
    Engine::with_config(policy, auth, None).unwrap()
}

/// A temporary directory for the SQLite file, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One API key in a memory store and the request every `authorize` bench sends with it.
pub struct Caller {
    pub store: std::sync::Arc<keycel::store::MemoryStore>,
    bearer: String,
    pub request: keycel::engine::Request,
}

impl Caller {
    pub fn new(now: keycel::time::Timestamp) -> Self {
        use keycel::keyring::{Actor, Keyring, NewKey};
        let store = std::sync::Arc::new(keycel::store::MemoryStore::new());
        let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE).unwrap()).unwrap();
        let (_, key) = ring.create(&Actor::Operator("bench".into()), NewKey::api("bench", "integration"), now).unwrap();
        let bearer = format!("Bearer {}", key.token().expose());
        let request = keycel::engine::Request::new("api.read").account("acc_2").method("GET").path("/v1/data");
        Caller { store, bearer, request }
    }

    /// The request's headers (a cache hit after the first call).
    pub fn headers(&self) -> [(&str, &str); 2] {
        [("accept", "application/json"), ("authorization", self.bearer.as_str())]
    }
}
