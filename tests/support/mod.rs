//! Test harness: real `redis-server` processes on free loopback ports, owned by the test.
#![allow(dead_code, unused_macros)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Tests in one binary share the process-wide cache, so they take turns.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// A test's own `redis-server` and its turn at the process-wide cache, which the test has
/// pointed at that server; both live as long as the test.
pub struct Fixture {
    pub server: RedisServer,
    pub _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A `redis-server` this test started; stopped (SIGKILL) when dropped.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_on(free_port(), args)
    }

    pub fn start_on(port: u16, args: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("cache-test-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            port,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: is it installed? (run the README's test command)");
        self.child = Some(child);
        self.wait_until_listening();
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not start within 10 s",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A URL with credentials: `redis://user:password@127.0.0.1:port/`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// `kill -9` and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same arguments (empty: nothing is saved).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    /// SIGSTOP: the server keeps its socket but answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// A direct client for inspecting and tampering with the server.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis")
    }

    /// A direct client logged in with `password` (as the default user).
    pub async fn client_with(
        &self,
        user: &str,
        password: &str,
    ) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url_with(user, password))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `check` until it returns true, at most `limit` long; true if it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `field` in the `section` of `INFO`, if it is there.
pub async fn info_field(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
    field: &str,
) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
}

/// Runs each `async fn case(config: CacheConfig)` of the test file on the memory store
/// (`on_memory::case`) and on a `redis-server` of its own (`on_redis::case`). The file
/// imports `RedisServer` and declares `#[macro_use] mod support;`.
macro_rules! on_both_stores {
    ($($case:ident),*) => {
        mod on_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(cache_runtime::CacheConfig::memory()).await })*
        }
        mod on_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let server = super::RedisServer::start();
                super::$case(cache_runtime::CacheConfig::redis(server.url())).await
            })*
        }
    };
}
