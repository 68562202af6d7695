//! The near-cache (L1): hits without a round trip, copies that never outlive Redis, and
//! invalidation across processes.

mod suite;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
use redis::AsyncCommands;
use support::{exclusive, Fixture, RedisServer};

async fn gets(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn init_l1(server: &RedisServer) {
    cache_runtime::init(CacheConfig::redis(server.url()).local_cache(1_000))
        .await
        .unwrap();
    // The near-cache serves nothing until its invalidation channel is subscribed.
    let live = support::eventually(Duration::from_secs(5), || async {
        let before = cache_runtime::stats().local_hits;
        suite::site_config().await;
        suite::site_config().await;
        cache_runtime::stats().local_hits > before
    })
    .await;
    assert!(live, "the near-cache came up");
}

/// A fresh server with the cache and its near-cache pointed at it, live.
async fn redis_near() -> Fixture {
    let turn = exclusive().await;
    let server = RedisServer::start();
    init_l1(&server).await;
    // What `init_l1` stored to see the near-cache live is not part of any case.
    clear_cache(Scope::all()).await.unwrap();
    Fixture {
        server,
        _turn: turn,
    }
}

// The behavioural suite again, with every hit after the first served in process.
suite_cases!(redis_near);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_hits_cost_no_round_trip() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    init_l1(&server).await;
    let mut admin = server.client().await;
    let product = suite::get_product(7).await;
    let before = gets(&mut admin).await;
    for _ in 0..100 {
        assert_eq!(suite::get_product(7).await, product);
    }
    assert_eq!(gets(&mut admin).await - before, 0, "no GET reached Redis");
}

#[cache(expire = 1, namespace = "l1short")]
async fn short(n: u32) -> String {
    format!("computed {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_outlives_the_redis_entry() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    init_l1(&server).await;
    let mut admin = server.client().await;
    // Written by this process with expire = 1.
    short(1).await;
    let before = cache_runtime::stats().misses;
    short(1).await;
    assert_eq!(cache_runtime::stats().misses, before, "a hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    short(1).await;
    assert_eq!(
        cache_runtime::stats().misses,
        before + 1,
        "expired with Redis"
    );
    // Written by someone else with 400 ms left: the copy gets what Redis has left. (The clear
    // drops the copy `init_l1` made.)
    clear_cache(Scope::key("config", "site")).await.unwrap_or(0);
    let _: () = redis::cmd("SET")
        .arg("cache:config:site")
        .arg(r#"{"title":"from elsewhere"}"#)
        .arg("PX")
        .arg(400)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(suite::site_config().await.title, "from elsewhere");
    assert_eq!(suite::site_config().await.title, "from elsewhere");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        suite::site_config().await.title,
        "shop",
        "the copy expired with the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_invalidation_channel_flushes_the_near_cache() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    init_l1(&server).await;
    let mut admin = server.client().await;
    assert_eq!(suite::site_config().await.title, "shop");
    // Changed behind the cache's back, without an invalidation: the copy is still served.
    let _: () = admin
        .set_ex("cache:config:site", r#"{"title":"changed"}"#, 300)
        .await
        .unwrap();
    assert_eq!(suite::site_config().await.title, "shop");
    let _: () = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let flushed = support::eventually(Duration::from_secs(5), || async {
        suite::site_config().await.title == "changed"
    })
    .await;
    assert!(
        flushed,
        "the near-cache was flushed when its channel dropped"
    );
}

/// The peer process, started on the Redis at `url`, once it serves its value from its near-cache.
fn start_peer(url: &str) -> (Child, impl Iterator<Item = String> + Send) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_near_cache_peer"))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the peer");
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    (child, lines)
}

/// Milliseconds from `since` until the peer saw its copy change, and what it then saw.
fn peer_change(
    mut child: Child,
    mut lines: impl Iterator<Item = String>,
    since: u128,
) -> (u128, String) {
    let line = lines.next().expect("a line from the peer");
    let _ = child.wait();
    let mut parts = line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("changed"), "{line}");
    let at: u128 = parts.next().unwrap().parse().unwrap();
    (at.saturating_sub(since), parts.next().unwrap().to_string())
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Stores `"first"` under the peer's key and starts a peer process, which caches it.
async fn peer_holding_first(
    server: &RedisServer,
    admin: &mut redis::aio::MultiplexedConnection,
) -> (Child, impl Iterator<Item = String> + Send + 'static) {
    let _: () = admin
        .set_ex("cache:peer:v", r#""first""#, 300)
        .await
        .unwrap();
    let url = server.url();
    tokio::task::spawn_blocking(move || start_peer(&url))
        .await
        .unwrap()
}

/// [`peer_change`], off the runtime.
async fn peer_sees_change(
    child: Child,
    lines: impl Iterator<Item = String> + Send + 'static,
    since: u128,
) -> (u128, String) {
    tokio::task::spawn_blocking(move || peer_change(child, lines, since))
        .await
        .unwrap()
}

#[cache(expire = 300, namespace = "peer", key = "v")]
async fn peer_value() -> String {
    "computed".to_string()
}

/// The peer's entry, written through the cache, so that its namespace index lists it.
#[cache(expire = 300, namespace = "peer", key = "v")]
async fn peer_first() -> String {
    "first".to_string()
}

/// A clear of `scope` in this process (which has no near-cache: clears are published all the
/// same) evicts the copy a peer process keeps in its near-cache within 50 ms, though the peer
/// was told of nothing else: the entry had been changed in Redis behind its back.
async fn a_clear_evicts_another_process_copy_within_50_ms(scope: Scope) {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    cache_runtime::init(CacheConfig::redis(server.url()))
        .await
        .unwrap();
    assert_eq!(peer_first().await, "first");
    let (child, lines) = peer_holding_first(&server, &mut admin).await;
    // Changed without an invalidation: the peer keeps serving its copy...
    let _: () = admin
        .set_ex("cache:peer:v", r#""second""#, 300)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...until the clear.
    let cleared_at = unix_ms();
    assert_eq!(
        clear_cache(scope).await.unwrap(),
        1,
        "the one entry removed"
    );
    let (after, seen) = peer_sees_change(child, lines, cleared_at).await;
    assert_eq!(seen, "computed", "the peer recomputed after the clear");
    assert!(after < 50, "evicted {after} ms after the clear");
    eprintln!("peer copy evicted {after} ms after the clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_clear_in_one_process_evicts_another_process_copy_within_50_ms() {
    a_clear_evicts_another_process_copy_within_50_ms(Scope::key("peer", "v")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_clear_in_one_process_evicts_another_process_copy_within_50_ms() {
    a_clear_evicts_another_process_copy_within_50_ms(Scope::namespace("peer")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_clear_in_one_process_evicts_another_process_copy_within_50_ms() {
    a_clear_evicts_another_process_copy_within_50_ms(Scope::all()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_in_one_process_evicts_another_process_copy() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    init_l1(&server).await;
    let (child, lines) = peer_holding_first(&server, &mut admin).await;
    // Gone from Redis without an invalidation; this process recomputes and overwrites it.
    let _: () = admin.del("cache:peer:v").await.unwrap();
    let written_at = unix_ms();
    assert_eq!(peer_value().await, "computed");
    let (after, seen) = peer_sees_change(child, lines, written_at).await;
    assert_eq!(seen, "computed");
    assert!(after < 50, "evicted {after} ms after the overwrite");
}

#[cache(expire = 60, namespace = "reinit")]
async fn slow_while_reinit(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    n * 2
}

async fn subscribers(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (_, n): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("cache:invalidate")
        .query_async(conn)
        .await
        .unwrap();
    n
}

/// `init` again retires the backend it replaces: a call running on the old one still gets
/// its body's result, the old near-cache stops listening and serves nothing more, and the new
/// backend is the one calls use from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_again_retires_the_old_backend() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    init_l1(&server).await;
    assert_eq!(subscribers(&mut admin).await, 1);
    let running = tokio::spawn(slow_while_reinit(21));
    tokio::time::sleep(Duration::from_millis(50)).await;
    cache_runtime::init(CacheConfig::memory()).await.unwrap();
    let unsubscribed = support::eventually(Duration::from_secs(5), || {
        let mut admin = admin.clone();
        async move { subscribers(&mut admin).await == 0 }
    })
    .await;
    assert!(unsubscribed, "the old near-cache stopped listening");
    let value = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the call on the retired backend ended")
        .expect("and did not panic");
    assert_eq!(value, 42);
    // Stored neither in the old near-cache nor in the new memory backend: a miss there.
    let before = cache_runtime::stats().misses;
    assert_eq!(slow_while_reinit(21).await, 42);
    assert_eq!(cache_runtime::stats().misses, before + 1);
    assert_eq!(slow_while_reinit(21).await, 42, "the new backend caches");
    assert_eq!(cache_runtime::stats().misses, before + 1);
}

/// The near-cache keeps the decoded value of a type that can be cloned, like the memory
/// store; Redis itself hands out fresh bytes, decoded on every hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_hits_clone_a_decoded_copy() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    init_l1(&server).await;
    assert_eq!(suite::decodes_of_a_miss_and_three_hits(1).await, (3, 3));
    clear_cache(Scope::namespace("reuse")).await.unwrap();
    assert_eq!(suite::decodes_of_a_miss_and_three_hits(1).await, (3, 3));
    cache_runtime::init(CacheConfig::redis(server.url()))
        .await
        .unwrap();
    assert_eq!(
        suite::decodes_of_a_miss_and_three_hits(2).await,
        (9, 3),
        "without a near-cache every Redis hit decodes"
    );
}
