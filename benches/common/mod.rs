//! What the benchmarks share: the workload's value type and a `redis-server` of their own.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The value every benchmark caches: about 150 bytes of JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub price_cents: u64,
    pub currency: String,
    pub in_stock: bool,
    pub tags: Vec<String>,
}

/// The product of `id`.
pub fn make_product(id: u64) -> Product {
    Product {
        id,
        sku: format!("SKU-{id:08}"),
        name: format!("Stainless steel water bottle #{id}"),
        price_cents: 1_999 + id % 500,
        currency: "EUR".to_owned(),
        in_stock: !id.is_multiple_of(7),
        tags: vec!["outdoor".to_owned(), "kitchen".to_owned()],
    }
}

/// A `redis-server` on a free loopback port, killed when dropped (panics included).
pub struct RedisServer {
    pub port: u16,
    pub child: Child,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one (`REDIS_SERVER` names another binary) and waits until it accepts.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        assert_ne!(port, 6379, "the bench never touches port 6379");
        let dir =
            std::env::temp_dir().join(format!("cache-bench-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: is it installed?");
        let server = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not start within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    /// Where it listens.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills the processes `pids` names (the bench's redis-server, a load generator) and exits if
/// the run takes longer than `limit`; disarmed on drop.
pub struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    pub fn arm(
        bench: &'static str,
        limit: Duration,
        pids: impl FnOnce() -> Vec<u32> + Send + 'static,
    ) -> Self {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                eprintln!("{bench}: over {limit:?}, stopping the processes it started and exiting");
                for pid in pids().into_iter().filter(|&pid| pid != 0) {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                std::process::exit(2);
            }
        });
        Watchdog(Some(done))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}
