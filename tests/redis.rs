//! The behavioural suite on Redis, plus what only Redis can show: TTLs on the server, foreign
//! keys, garbage values, outages, passwords and ACLs. Each test starts its own `redis-server`.

mod suite;
mod support;

use std::time::Duration;

use cache_runtime::{clear_cache, CacheConfig, Scope};
use redis::AsyncCommands;
use support::{exclusive, info_field, Fixture, RedisServer};

/// A fresh server with the cache pointed at it.
async fn redis() -> Fixture {
    let turn = exclusive().await;
    let server = RedisServer::start();
    cache_runtime::init(CacheConfig::redis(server.url()))
        .await
        .unwrap();
    Fixture {
        server,
        _turn: turn,
    }
}

suite_cases!(redis);

async fn keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = conn.keys(pattern).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_in_redis_is_expire_and_the_layout_is_documented() {
    let f = redis().await;
    let mut conn = f.server.client().await;
    suite::get_product(42).await;
    suite::site_config().await;
    suite::no_namespace(1).await;
    let found = keys(&mut conn, "cache:catalog:*").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let key = &found[0];
    let hash = key.rsplit(':').next().unwrap();
    assert_eq!(
        key,
        &format!("cache:catalog:redis::suite::get_product:{hash}"),
        "{{prefix}}:{{namespace}}:{{module path}}::{{fn}}:{{md5}}"
    );
    assert_eq!(hash.len(), 32);
    let ttl: i64 = conn.ttl(key).await.unwrap();
    assert!((299..=300).contains(&ttl), "ttl {ttl}");
    let ttl: i64 = conn.ttl("cache:config:site").await.unwrap();
    assert!((59..=60).contains(&ttl), "default expire is 60, got {ttl}");
    let namespace_less = keys(&mut conn, "cache::*").await;
    assert_eq!(namespace_less.len(), 1);
    assert!(namespace_less[0].starts_with("cache::redis::suite::no_namespace:"));
    let json: String = conn.get("cache:config:site").await.unwrap();
    assert_eq!(json, r#"{"title":"shop"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clears_touch_nothing_outside_the_prefix() {
    let f = redis().await;
    let mut conn = f.server.client().await;
    for key in [
        "other:1",
        "cachex:catalog:1",
        "cache",
        "users:1",
        "CACHE:catalog:x",
    ] {
        let _: () = conn.set(key, "foreign").await.unwrap();
    }
    suite::get_product(1).await;
    suite::in_users(1).await;
    assert_eq!(clear_cache(Scope::namespace("users")).await.unwrap(), 1);
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 1);
    for key in [
        "other:1",
        "cachex:catalog:1",
        "cache",
        "users:1",
        "CACHE:catalog:x",
    ] {
        let v: Option<String> = conn.get(key).await.unwrap();
        assert_eq!(v.as_deref(), Some("foreign"), "{key} survived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_prefix_holds_every_key() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    cache_runtime::init(CacheConfig::redis(server.url()).prefix("myapp"))
        .await
        .unwrap();
    let mut conn = server.client().await;
    suite::get_product(1).await;
    suite::site_config().await;
    let all = keys(&mut conn, "*").await;
    assert!(all.iter().all(|k| k.starts_with("myapp:")), "{all:?}");
    // Two entries, and the index of each of their namespaces.
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(
        clear_cache(Scope::all()).await.unwrap(),
        2,
        "indexes are not entries"
    );
    // Everything but the fence of everything, which the clear moved and keeps (README,
    // "Invalidation is final").
    assert_eq!(
        keys(&mut conn, "*").await,
        ["myapp:::fence"],
        "and they go with everything else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_redis_is_a_miss_and_is_overwritten() {
    let f = redis().await;
    let mut conn = f.server.client().await;
    let good = suite::site_config().await;
    let garbage: [&[u8]; 4] = [b"{\"title\":", b"\xff\xfe\x00binary", b"42", b""];
    for bad in garbage {
        let _: () = conn.set("cache:config:site", bad).await.unwrap();
        assert_eq!(suite::site_config().await, good);
        let stored: String = conn.get("cache:config:site").await.unwrap();
        assert_eq!(stored, r#"{"title":"shop"}"#, "overwritten");
    }
    // A key of another Redis type.
    let _: () = conn.del("cache:config:site").await.unwrap();
    let _: () = conn.rpush("cache:config:site", "x").await.unwrap();
    assert_eq!(suite::site_config().await, good);
    let stored: String = conn.get("cache:config:site").await.unwrap();
    assert_eq!(stored, r#"{"title":"shop"}"#, "overwritten");
}

/// Calls `get_product(id)` and checks the result is right whatever happens to Redis.
async fn correct_product(id: u64) {
    let p = tokio::time::timeout(Duration::from_secs(5), suite::get_product(id))
        .await
        .expect("a cached call is bounded");
    assert_eq!(p.id, id);
}

/// True when a call of `get_product(id)` is served from the cache.
async fn is_hit(id: u64) -> bool {
    let before = cache_runtime::stats().hits;
    correct_product(id).await;
    cache_runtime::stats().hits > before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absent_at_init_then_caching_starts_when_it_appears() {
    let _turn = exclusive().await;
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let config = CacheConfig::redis(url).breaker_cooldown(Duration::from_millis(200));
    cache_runtime::init(config)
        .await
        .expect("an unreachable Redis is not fatal");
    for _ in 0..3 {
        correct_product(1).await;
        assert!(!is_hit(1).await);
    }
    assert!(
        clear_cache(Scope::all()).await.is_err(),
        "an admin action reports the outage"
    );
    let _server = RedisServer::start_on(port, &[]);
    let resumed = support::eventually(Duration::from_secs(5), || async { is_hit(1).await }).await;
    assert!(resumed, "caching started without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_then_restarted_caching_resumes() {
    let _turn = exclusive().await;
    let mut server = RedisServer::start();
    let config = CacheConfig::redis(server.url()).breaker_cooldown(Duration::from_millis(200));
    cache_runtime::init(config).await.unwrap();
    correct_product(7).await;
    assert!(is_hit(7).await);
    server.kill();
    let calls: Vec<_> = (0..50u64)
        .map(|i| tokio::spawn(correct_product(i % 5)))
        .collect();
    for call in calls {
        call.await.expect("no panic while Redis is down");
    }
    server.restart();
    let resumed = support::eventually(Duration::from_secs(5), || async { is_hit(7).await }).await;
    assert!(resumed, "caching resumed after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_outage_not_an_error() {
    let _turn = exclusive().await;
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let wrong = server.url_with("", "wrong");
    cache_runtime::init(CacheConfig::redis(wrong))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(!is_hit(3).await);
    }
    assert!(clear_cache(Scope::all()).await.is_err());
    // The right one works.
    cache_runtime::init(CacheConfig::redis(server.url_with("", "right")))
        .await
        .unwrap();
    correct_product(3).await;
    assert!(is_hit(3).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_confined_to_the_prefix_is_enough() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">pw",
            "resetkeys",
            "~cache:*",
            "resetchannels",
            "-@all",
            "+@all",
            "-@dangerous",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = admin.set("secret:1", "x").await.unwrap();
    cache_runtime::init(CacheConfig::redis(server.url_with("app", "pw")))
        .await
        .unwrap();
    correct_product(5).await;
    assert!(is_hit(5).await);
    suite::in_users(1).await;
    assert_eq!(clear_cache(Scope::namespace("users")).await.unwrap(), 1);
    assert_eq!(
        clear_cache(Scope::key("catalog", "nothing")).await.unwrap(),
        0
    );
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 1);
    let errors_before = cache_runtime::stats().errors;
    correct_product(5).await;
    assert!(is_hit(5).await);
    assert_eq!(
        cache_runtime::stats().errors,
        errors_before,
        "no command was refused"
    );
    let v: Option<String> = admin.get("secret:1").await.unwrap();
    assert_eq!(v.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_or_config_is_an_init_error() {
    let _turn = exclusive().await;
    for config in [
        CacheConfig::redis("not a url"),
        CacheConfig::redis("http://127.0.0.1/"),
        CacheConfig::redis("redis://127.0.0.1:1/").pool_size(0),
        CacheConfig::redis("redis://127.0.0.1:1/").command_timeout(Duration::ZERO),
        CacheConfig::memory().prefix(""),
    ] {
        let err = cache_runtime::init(config).await.unwrap_err();
        assert!(
            matches!(err, cache_runtime::CacheError::InvalidConfig(_)),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_each_call_at_most_the_command_timeout() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let config = CacheConfig::redis(server.url()).command_timeout(Duration::from_millis(200));
    cache_runtime::init(config).await.unwrap();
    correct_product(1).await;
    server.freeze();
    let started = std::time::Instant::now();
    correct_product(1).await;
    let took = started.elapsed();
    server.thaw();
    // 200 ms timeout + 5 ms body; generous slack for a loaded machine, still far below 5 s.
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn busy_callers_do_not_starve_other_tasks_while_redis_is_known_down() {
    let _turn = exclusive().await;
    let mut server = RedisServer::start();
    let config = CacheConfig::redis(server.url()).breaker_cooldown(Duration::from_secs(30));
    cache_runtime::init(config).await.unwrap();
    server.kill();
    // The first call finds the connection gone and marks Redis down for the retry interval.
    for _ in 0..3 {
        correct_product(1).await;
    }
    suite::busy_callers_do_not_starve_other_tasks().await;
}

/// `calls` of one command in `INFO commandstats`.
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    info_field(conn, "commandstats", &format!("cmdstat_{command}"))
        .await
        .and_then(|v| v.strip_prefix("calls=")?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A counter of `INFO stats`.
async fn stat(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    info_field(conn, "stats", field)
        .await
        .map_or(0, |v| v.parse().unwrap())
}

/// A lone call's lookup is one `GET`; lookups made while another is in flight go out
/// together as one `MGET`. Either way each call reads its key once, and a miss writes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_reads_its_key_once_and_a_miss_adds_one_set() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    suite::get_product(1).await; // connects
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    for id in 100..110 {
        suite::get_product(id).await;
    }
    suite::get_product(1).await;
    let counts = (
        command_calls(&mut admin, "get").await,
        command_calls(&mut admin, "mget").await,
        command_calls(&mut admin, "set").await,
        command_calls(&mut admin, "ping").await,
    );
    // Each miss also reads its fence (one MGET of two keys) before its body, and writes in
    // a script that checks the fences (two GETs, counted with the script's commands) before
    // its one SET; a hit is still one GET.
    assert_eq!(
        counts,
        (11 + 2 * 10, 10, 10, 0),
        "one at a time: GETs, MGETs, SETs, PINGs"
    );
    assert_eq!(
        command_calls(&mut admin, "evalsha").await,
        10,
        "one write each"
    );
    let calls: Vec<_> = (0..64u64)
        .map(|i| tokio::spawn(suite::get_product(1 + i % 2 * 99)))
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let (get, mget, set) = (
        command_calls(&mut admin, "get").await - (11 + 2 * 10),
        command_calls(&mut admin, "mget").await - 10,
        command_calls(&mut admin, "set").await,
    );
    assert_eq!(set, 10, "64 hits write nothing");
    assert!(
        get + mget <= 64,
        "{get} GETs and {mget} MGETs for 64 lookups"
    );
    // Every key read is a hit or a miss in Redis's own count; each miss also read its two
    // fences twice (its MGET, its write's script), absent here (never cleared).
    let reads = stat(&mut admin, "keyspace_hits").await + stat(&mut admin, "keyspace_misses").await;
    assert_eq!(reads, 11 + 64 + 4 * 10, "each call read its key once");
    assert_eq!(stat(&mut admin, "keyspace_misses").await, 10 + 4 * 10);
}

/// Lookups of many keys at once, some stored and some not, each get their own key's value,
/// whether they went out alone or in an `MGET`; and callers that give up mid-flight leave
/// nothing stuck behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_each_get_their_own_value() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    for id in 0..100 {
        suite::get_product(id).await;
    }
    for round in 0..5u64 {
        // Ids below 100 are stored; each round's others are not until its calls store them.
        let calls: Vec<_> = (0..200u64)
            .map(|i| {
                let id = if i % 2 == 0 {
                    i / 2
                } else {
                    1000 * (round + 1) + i
                };
                tokio::spawn(async move { (id, suite::get_product(id).await) })
            })
            .collect();
        // Some callers give up while their lookup is queued or in flight.
        let cancelled: Vec<_> = (0..50u64)
            .map(|i| tokio::spawn(suite::get_product(i)))
            .collect();
        for call in &cancelled {
            call.abort();
        }
        for call in calls {
            let (id, product) = call.await.unwrap();
            assert_eq!(product.id, id, "round {round}");
            assert_eq!(product.name, format!("product {id}"));
        }
    }
    assert!(
        command_calls(&mut admin, "mget").await > 0,
        "some lookups were batched"
    );
    // Nothing is left waiting: lone calls still answer at once, from the cache.
    let hits = cache_runtime::stats().hits;
    for id in 0..10 {
        correct_product(id).await;
    }
    assert_eq!(cache_runtime::stats().hits, hits + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_clear_reads_its_index_not_the_keyspace() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    let mut fill = redis::pipe();
    for i in 0..20_000 {
        fill.set(format!("other:{i}"), i).ignore();
    }
    let _: () = fill.query_async(&mut admin).await.unwrap();
    for id in 0..50 {
        suite::get_product(id).await;
    }
    suite::in_users(1).await;
    suite::no_namespace(1).await;
    let index: u64 = admin.zcard("cache:catalog").await.unwrap();
    assert_eq!(index, 50);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(clear_cache(Scope::namespace("catalog")).await.unwrap(), 50);
    assert_eq!(
        command_calls(&mut admin, "scan").await,
        0,
        "no SCAN of the keyspace"
    );
    let left: Vec<String> = keys(&mut admin, "cache:catalog*").await;
    // The namespace's fence, which the clear moved, stays.
    assert_eq!(left, ["cache:catalog::fence"], "entries and index are gone");
    assert_eq!(clear_cache(Scope::namespace("catalog")).await.unwrap(), 0);
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
    // 20,000 others, the users entry and its index, the namespace-less entry, the fence.
    assert_eq!(size, 20_004);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_forgets_entries_that_expired() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let config = CacheConfig::redis(server.url()).clock_skew(Duration::ZERO);
    cache_runtime::init(config).await.unwrap();
    let mut admin = server.client().await;
    for n in 0..20 {
        suite::short_lived(n).await;
    }
    let members: u64 = admin.zcard("cache:short").await.unwrap();
    assert_eq!(members, 20);
    let ttl: i64 = admin.ttl("cache:short").await.unwrap();
    assert!(
        (0..=1).contains(&ttl),
        "the index lives as long as its entries: {ttl}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // One write in eight trims the index.
    for n in 100..108 {
        suite::short_lived(n).await;
    }
    let members: u64 = admin.zcard("cache:short").await.unwrap();
    assert!(
        members <= 8,
        "expired members were trimmed by later writes: {members} left"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let exists: bool = admin.exists("cache:short").await.unwrap();
    assert!(!exists, "an index whose entries all expired goes too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_after_failures_and_closes_when_redis_returns() {
    let _turn = exclusive().await;
    let mut server = RedisServer::start();
    let config = CacheConfig::redis(server.url())
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_secs(2));
    cache_runtime::init(config).await.unwrap();
    correct_product(1).await;
    assert_eq!(
        cache_runtime::stats().circuit,
        cache_runtime::Circuit::Closed
    );
    let trips = cache_runtime::stats().circuit_trips;
    server.kill();
    for _ in 0..5 {
        correct_product(1).await;
    }
    let s = cache_runtime::stats();
    assert_eq!(s.circuit, cache_runtime::Circuit::Open);
    assert_eq!(s.circuit_trips, trips + 1, "opened once");
    let skipped = s.skipped_open;
    for _ in 0..100 {
        correct_product(1).await;
    }
    assert_eq!(
        cache_runtime::stats().skipped_open,
        skipped + 100,
        "open: Redis is not asked"
    );
    server.restart();
    let closed = support::eventually(Duration::from_secs(5), || async {
        correct_product(1).await;
        cache_runtime::stats().circuit == cache_runtime::Circuit::Closed
    })
    .await;
    assert!(closed, "a probe closed the circuit after the cool-down");
    correct_product(2).await;
    assert!(is_hit(2).await, "caching resumed");
}

#[cache_runtime::cache(expire = 100, jitter = 0.5, namespace = "jitter")]
async fn jittered(n: u32) -> u32 {
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_ttls_below_expire() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    for n in 0..40 {
        jittered(n).await;
    }
    let mut ttls = Vec::new();
    for key in keys(&mut admin, "cache:jitter:*").await {
        let ttl: i64 = admin.ttl(&key).await.unwrap();
        ttls.push(ttl);
    }
    assert_eq!(ttls.len(), 40);
    assert!(ttls.iter().all(|t| (49..=100).contains(t)), "{ttls:?}");
    ttls.sort();
    ttls.dedup();
    assert!(ttls.len() > 5, "spread: {ttls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_queued_behind_a_failing_reconnect_do_not_wait_in_turn() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let config = CacheConfig::redis(server.url())
        .connect_timeout(Duration::from_millis(300))
        // High enough that the breaker does not hide the queue.
        .breaker_threshold(1_000);
    cache_runtime::init(config).await.unwrap();
    correct_product(1).await;
    let mut admin = server.client().await;
    // Drop the shared connection (the admin's own survives: SKIPME is the default)...
    let _: () = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal"])
        .query_async(&mut admin)
        .await
        .unwrap();
    // ...and freeze Redis, so that reconnecting hangs until the connect timeout.
    server.freeze();
    let calls: Vec<_> = (0..16u64)
        .map(|i| {
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                correct_product(i).await;
                started.elapsed()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for call in calls {
        slowest = slowest.max(call.await.unwrap());
    }
    server.thaw();
    // One connect attempt (300 ms) plus the body; queued in turn, 16 callers took 16 x 300 ms.
    assert!(
        slowest < Duration::from_millis(1_500),
        "slowest call {slowest:?}"
    );
}

#[cache_runtime::cache(namespace = "locks", key = "boom", lock = true)]
async fn locked_then_panics() -> u32 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    panic!("the body fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_released_when_its_body_panics() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    let call = tokio::spawn(locked_then_panics());
    let held = support::eventually(Duration::from_secs(2), || {
        let mut admin = admin.clone();
        async move {
            admin
                .exists("cache:locks::lock:boom")
                .await
                .unwrap_or(false)
        }
    })
    .await;
    assert!(held, "the lock was taken while the body ran");
    assert!(call.await.is_err(), "the panic reaches the caller");
    // Released at once, not after the 10 s lock timeout.
    let released = support::eventually(Duration::from_secs(2), || {
        let mut admin = admin.clone();
        async move { !admin.exists("cache:locks::lock:boom").await.unwrap_or(true) }
    })
    .await;
    assert!(released, "the lock of a panicked body was released");
    let _: () = redis::cmd("PING").query_async(&mut admin).await.unwrap();
}

/// A namespace clear finds the entries this crate wrote, through their index; a key put under
/// the namespace by another tool is not in the index, so it stays until it expires or a key
/// or full clear removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_clear_removes_what_the_crate_wrote_and_leaves_foreign_keys() {
    let f = redis().await;
    let mut admin = f.server.client().await;
    suite::get_product(1).await;
    let _: () = admin
        .set_ex("cache:catalog:written-elsewhere", "\"x\"", 60)
        .await
        .unwrap();
    assert_eq!(clear_cache(Scope::namespace("catalog")).await.unwrap(), 1);
    assert_eq!(
        keys(&mut admin, "cache:catalog*").await,
        ["cache:catalog::fence", "cache:catalog:written-elsewhere"]
    );
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 1);
    assert_eq!(keys(&mut admin, "cache:*").await, ["cache:::fence"]);
}
