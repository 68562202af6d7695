//! An invalidation is final: a miss that began before a clear never stores its result after
//! it, and a call that begins after a clear never joins a flight that began before it, on the
//! memory store, on Redis and on Redis with a near-cache, in one process and (on Redis)
//! across two. Every wait is bounded.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
use redis::AsyncCommands;
use support::{exclusive, RedisServer};
use tokio::sync::Notify;
use tokio::time::timeout;

/// The "database": one version per id, bumped by writes.
static DB: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static RUNS: AtomicUsize = AtomicUsize::new(0);
/// When set, the next body stops after its query until released.
static HOLD: AtomicBool = AtomicBool::new(false);
static STARTED: Notify = Notify::const_new();
static RELEASE: Notify = Notify::const_new();

/// A read: the query first, then (when held) a wait, as a slow query or a slow render.
#[cache(expire = 300, namespace = "fence")]
async fn read(id: usize) -> u64 {
    let version = DB[id].load(SeqCst);
    RUNS.fetch_add(1, SeqCst);
    if HOLD.swap(false, SeqCst) {
        STARTED.notify_one();
        RELEASE.notified().await;
    }
    version
}

/// What each test runs on: a store from `config`, this test's turn at the process default,
/// and the server, if any.
/// The turn is the last field, so it is dropped last: the next test starts only once this
/// one's servers are stopped.
struct Setup {
    server: Option<RedisServer>,
    _cluster: Option<cluster::Cluster>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

async fn setup(backend: &str) -> Setup {
    let turn = exclusive().await;
    if backend == "cluster" {
        let cluster = tokio::task::spawn_blocking(cluster::start).await.unwrap();
        cache_runtime::init(CacheConfig::cluster(cluster.urls()))
            .await
            .unwrap();
        HOLD.store(false, SeqCst);
        return Setup {
            _turn: turn,
            server: None,
            _cluster: Some(cluster),
        };
    }
    let server = (backend != "memory").then(RedisServer::start);
    let config = match (backend, &server) {
        ("memory", _) => CacheConfig::memory(),
        ("redis", Some(server)) => CacheConfig::redis(server.url()),
        (_, Some(server)) => CacheConfig::redis(server.url()).local_cache(1_000),
        _ => unreachable!(),
    };
    cache_runtime::init(config).await.unwrap();
    clear_cache(Scope::all()).await.unwrap();
    HOLD.store(false, SeqCst);
    Setup {
        _turn: turn,
        server,
        _cluster: None,
    }
}

/// The entries of the namespace `fence` in Redis (not its fence).
async fn entries(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let found: Vec<String> = conn.keys("cache:fence:*").await.unwrap();
    found
        .into_iter()
        .filter(|k| k != "cache:fence::fence")
        .collect()
}

/// Starts a held read of `id` and waits until its query has run.
async fn held_read(id: usize) -> tokio::task::JoinHandle<u64> {
    HOLD.store(true, SeqCst);
    let call = tokio::spawn(read(id));
    timeout(Duration::from_secs(5), STARTED.notified())
        .await
        .expect("the held read started");
    call
}

/// A slow miss, a write and a clear, then the miss finishes: its (old) result is not stored,
/// and the next read runs the body.
async fn a_miss_from_before_a_clear_stores_nothing(backend: &str) {
    let setup = setup(backend).await;
    let id = 1;
    DB[id].store(1, SeqCst);
    let slow = held_read(id).await;
    DB[id].store(2, SeqCst); // the write commits...
    clear_cache(Scope::namespace("fence")).await.unwrap(); // ...and clears
    RELEASE.notify_one();
    assert_eq!(
        slow.await.unwrap(),
        1,
        "the slow read began before the write"
    );
    if let Some(server) = &setup.server {
        let mut conn = server.client().await;
        let found = entries(&mut conn).await;
        assert!(
            found.is_empty(),
            "the pre-clear result was stored: {found:?}"
        );
    }
    let runs = RUNS.load(SeqCst);
    assert_eq!(read(id).await, 2, "a read after the clear sees the write");
    assert_eq!(RUNS.load(SeqCst) - runs, 1, "and ran the body");
    assert_eq!(read(id).await, 2);
}

/// A call that begins after a clear, while a flight from before it is still running, runs
/// the body itself instead of waiting for the old flight's (stale) result.
async fn a_call_after_a_clear_does_not_join_an_older_flight(backend: &str) {
    let _setup = setup(backend).await;
    let id = 2;
    DB[id].store(1, SeqCst);
    let slow = held_read(id).await;
    DB[id].store(2, SeqCst);
    clear_cache(Scope::namespace("fence")).await.unwrap();
    let fresh = timeout(Duration::from_secs(3), read(id)).await;
    RELEASE.notify_one();
    assert_eq!(
        fresh.ok(),
        Some(2),
        "the read after the clear ran its own body, at once"
    );
    assert_eq!(slow.await.unwrap(), 1);
    assert_eq!(
        read(id).await,
        2,
        "the old flight did not overwrite the new entry"
    );
}

/// Readers and writers on a few keys for a bounded time; the "database" is versioned. After
/// each clear returns, the version it followed is the floor: no read that starts later may
/// return less.
async fn no_read_after_a_clear_returns_older_data(backend: &str) {
    static FLOOR: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    static VERSIONS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    static BODIES: AtomicUsize = AtomicUsize::new(0);

    #[cache(expire = 300, namespace = "stress", key = "s{id}")]
    async fn stressed(id: usize, pause_us: u64) -> u64 {
        let version = VERSIONS[id].load(SeqCst);
        BODIES.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_micros(pause_us)).await;
        version
    }

    let _setup = setup(backend).await;
    for (floor, version) in FLOOR.iter().zip(&VERSIONS) {
        floor.store(0, SeqCst);
        version.store(0, SeqCst);
    }
    let errors = cache_runtime::stats().errors;
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let mut tasks = Vec::new();
    for seed in 1..=6u64 {
        tasks.push(tokio::spawn(async move {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let (mut reads, mut violations, mut clears) = (0u64, 0u64, 0u64);
            // Bounded in count and time.
            for _ in 0..100_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let id = (next() % 4) as usize;
                if seed <= 2 {
                    // A writer: commit, then clear, then raise the floor.
                    let version = VERSIONS[id].fetch_add(1, SeqCst) + 1;
                    let scope = if next() % 2 == 0 {
                        Scope::key("stress", format!("s{id}"))
                    } else {
                        Scope::namespace("stress")
                    };
                    clear_cache(scope).await.unwrap();
                    FLOOR[id].fetch_max(version, SeqCst);
                    clears += 1;
                    tokio::time::sleep(Duration::from_micros(next() % 2_000)).await;
                } else {
                    let floor = FLOOR[id].load(SeqCst);
                    let got = stressed(id, next() % 3_000).await;
                    reads += 1;
                    if got < floor {
                        violations += 1;
                    }
                }
            }
            (reads, violations, clears)
        }));
    }
    let (mut reads, mut violations, mut clears) = (0, 0, 0);
    for task in tasks {
        let (r, v, c) = task.await.unwrap();
        reads += r;
        violations += v;
        clears += c;
    }
    let bodies = BODIES.swap(0, SeqCst) as u64;
    let errors = cache_runtime::stats().errors - errors;
    eprintln!(
        "{backend}: {reads} reads, {bodies} bodies, {clears} clears, {errors} errors, \
         {violations} violations"
    );
    assert!(reads > 200 && clears > 50, "{reads} reads, {clears} clears");
    assert!(
        bodies < reads,
        "some reads were hits: {bodies} bodies for {reads} reads"
    );
    assert_eq!(
        violations, 0,
        "reads that returned data older than a clear before them"
    );
}

macro_rules! on_every_backend {
    ($($case:ident),*) => {
        mod on_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case("memory").await })*
        }
        mod on_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case("redis").await })*
        }
        mod on_near {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case("near").await })*
        }
        mod on_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case("cluster").await })*
        }
    };
}

on_every_backend!(
    a_miss_from_before_a_clear_stores_nothing,
    a_call_after_a_clear_does_not_join_an_older_flight,
    no_read_after_a_clear_returns_older_data
);

/// Two processes on one Redis: A (a peer process) starts a slow miss, B (this test) clears
/// the namespace, A's body finishes: the key is absent in Redis and A's next read runs the
/// body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_in_one_process_fences_a_miss_in_another() {
    let setup = setup("redis").await;
    let server = setup.server.as_ref().unwrap();
    let mut peer = Command::new(env!("CARGO_BIN_EXE_fence_peer"))
        .arg(server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the peer");
    let mut to_peer = peer.stdin.take().unwrap();
    let mut from_peer = BufReader::new(peer.stdout.take().unwrap()).lines();
    let mut next_line = move || {
        from_peer
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| "the peer ended".into())
    };
    let line = tokio::task::block_in_place(&mut next_line);
    assert_eq!(line, "started 1", "the peer's miss is under way");
    clear_cache(Scope::namespace("fence")).await.unwrap();
    writeln!(to_peer, "go").unwrap();
    let line = tokio::task::block_in_place(&mut next_line);
    assert_eq!(line, "returned v1");
    let mut conn = server.client().await;
    let found = entries(&mut conn).await;
    assert!(
        found.is_empty(),
        "the pre-clear result was stored: {found:?}"
    );
    writeln!(to_peer, "go").unwrap();
    let line = tokio::task::block_in_place(&mut next_line);
    assert_eq!(line, "started 2", "the peer's next read ran the body");
    let line = tokio::task::block_in_place(&mut next_line);
    assert_eq!(line, "returned v2");
    let _ = peer.wait();
}
