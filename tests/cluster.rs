//! On a Redis Cluster of 3 primaries and 3 replicas (six real `redis-server` processes on
//! free loopback ports, made a cluster by `redis-cli --cluster create`, started by each
//! test): the behavioural suite, entries spread over every primary, clears that remove them
//! from every node and leave foreign keys, and the near-cache's invalidation across nodes.

#[path = "support/cluster.rs"]
mod cluster;
mod suite;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{cache, Cache, CacheConfig, Scope};
use support::exclusive;

/// The suite's fixture: a cluster, with the process-wide cache pointed at it.
struct Fixture {
    _cluster: cluster::Cluster,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

async fn on_cluster() -> Fixture {
    let turn = exclusive().await;
    let cluster = tokio::task::spawn_blocking(cluster::start).await.unwrap();
    cache_runtime::init(CacheConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    Fixture {
        _cluster: cluster,
        _turn: turn,
    }
}

suite_cases!(on_cluster);

#[derive(Default)]
struct Bodies(AtomicU64);

#[cache(namespace = "spread", expire = 600, cache = cache, skip = [cache, bodies])]
async fn spread(cache: &Cache, id: u64, bodies: &Bodies) -> u64 {
    bodies.0.fetch_add(1, Ordering::Relaxed);
    id + 1
}

#[cache(namespace = "other", expire = 600, cache = cache, skip = [cache, bodies])]
async fn other(cache: &Cache, id: u64, bodies: &Bodies) -> u64 {
    bodies.0.fetch_add(1, Ordering::Relaxed);
    id + 2
}

/// The keys under `pattern` on the node at `port` (not the cluster: that node only).
async fn keys_on(port: u16, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// How many entries (not the crate's own keys, whose key segment starts with `:`) match
/// `pattern` on each primary.
async fn entries_everywhere(primaries: &[u16], pattern: &str) -> Vec<usize> {
    let mut counts = Vec::new();
    for &port in primaries {
        let keys = keys_on(port, pattern).await;
        let entry = |key: &&String| {
            let rest = key.strip_prefix("cache:").unwrap_or("");
            rest.split_once(':')
                .is_some_and(|(_, segment)| !segment.starts_with(':'))
        };
        counts.push(keys.iter().filter(entry).count());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_spread_over_every_primary_and_clears_reach_every_node() {
    let _turn = exclusive().await;
    let cluster = tokio::task::spawn_blocking(cluster::start).await.unwrap();
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let cache = Cache::new(CacheConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let bodies = Bodies::default();
    for id in 0..300 {
        assert_eq!(spread(&cache, id, &bodies).await, id + 1);
        assert_eq!(other(&cache, id, &bodies).await, id + 2);
    }
    for id in 0..300 {
        assert_eq!(spread(&cache, id, &bodies).await, id + 1);
    }
    assert_eq!(
        bodies.0.load(Ordering::Relaxed),
        600,
        "the second round hit"
    );
    assert_eq!(cache.stats().hits, 300);

    let spread_counts = entries_everywhere(&primaries, "cache:spread:*").await;
    println!("entries of `spread` per primary: {spread_counts:?}");
    assert!(spread_counts.iter().all(|&n| n > 50), "{spread_counts:?}");
    assert_eq!(spread_counts.iter().sum::<usize>(), 300);

    // Foreign keys on every node survive every clear.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut admin = client.get_async_connection().await.unwrap();
    for i in 0..30 {
        let _: () = redis::AsyncCommands::set(&mut admin, format!("foreign:{i}"), i)
            .await
            .unwrap();
    }

    // A key clear, then a namespace clear: exact counts, from every node.
    let one = cache
        .clear(Scope::key("spread", spread_key(&cache, 7).await))
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(cache.clear(Scope::namespace("spread")).await.unwrap(), 299);
    assert_eq!(
        entries_everywhere(&primaries, "cache:spread:*").await,
        [0, 0, 0]
    );
    let other_counts = entries_everywhere(&primaries, "cache:other:*").await;
    assert_eq!(
        other_counts.iter().sum::<usize>(),
        300,
        "another namespace kept"
    );
    let before = bodies.0.load(Ordering::Relaxed);
    assert_eq!(spread(&cache, 1, &bodies).await, 2);
    assert_eq!(bodies.0.load(Ordering::Relaxed), before + 1, "recomputed");

    // Everything: every primary's entries, exactly counted; foreign keys stay.
    assert_eq!(cache.clear(Scope::all()).await.unwrap(), 301);
    let mut left = Vec::new();
    for &port in &primaries {
        left.extend(keys_on(port, "cache:*").await);
    }
    // Only the fence of everything, which the clear moved, stays.
    assert_eq!(left, ["cache:::fence"], "{left:?}");
    let mut foreign = 0;
    for &port in &primaries {
        foreign += keys_on(port, "foreign:*").await.len();
    }
    assert_eq!(foreign, 30, "foreign keys kept");
}

/// The key segment of `spread(id)`, as the cache's listing shows it.
async fn spread_key(cache: &Cache, id: u64) -> String {
    let bodies = Bodies::default();
    spread(cache, id, &bodies).await;
    let mut cursor = 0;
    for _ in 0..100 {
        let page = cache.keys("spread", "*", cursor, 100).await.unwrap();
        for (key, _) in &page.keys {
            let segment = key.strip_prefix("cache:spread:").unwrap().to_owned();
            if segment.ends_with(&md5_of(id)) {
                return segment;
            }
        }
        if page.next_cursor == 0 {
            break;
        }
        cursor = page.next_cursor;
    }
    panic!("no key for {id}");
}

fn md5_of(id: u64) -> String {
    use md5::Digest as _;
    let json = serde_json::to_vec(&[id]).unwrap();
    format!("{:x}", md5::Md5::digest(&json))
}

/// A copy in one process's near-cache is evicted when another process clears it, whichever
/// node the invalidation was published on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_cache_copy_is_evicted_by_another_process_clear() {
    let _turn = exclusive().await;
    let cluster = tokio::task::spawn_blocking(cluster::start).await.unwrap();
    let near = Cache::new(CacheConfig::cluster(cluster.urls()).local_cache(1_000))
        .await
        .unwrap();
    let writer = Cache::new(CacheConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let bodies = Bodies::default();
    let served = support::eventually(Duration::from_secs(5), || async {
        spread(&near, 9, &bodies).await;
        near.stats().local_hits > 0
    })
    .await;
    assert!(served, "the near-cache never served a copy");
    let ran = bodies.0.load(Ordering::Relaxed);
    assert_eq!(writer.clear(Scope::namespace("spread")).await.unwrap(), 1);
    let evicted = support::eventually(Duration::from_secs(1), || async {
        spread(&near, 9, &bodies).await;
        bodies.0.load(Ordering::Relaxed) > ran
    })
    .await;
    assert!(evicted, "the copy outlived the other process's clear");
}

/// A dropped connection is not an outage on a cluster either: after every client connection
/// of every node is killed (`CLIENT KILL TYPE normal`), the next lookups are hits, alone and
/// many at once; no body runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_connection_is_killed_hits_are_still_hits() {
    let _turn = exclusive().await;
    let cluster = tokio::task::spawn_blocking(cluster::start).await.unwrap();
    let cache = Cache::new(CacheConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let bodies = Bodies::default();
    for id in 0..20 {
        spread(&cache, id, &bodies).await;
    }
    assert_eq!(bodies.0.load(Ordering::Relaxed), 20);
    let mut admins = Vec::new();
    for node in &cluster.nodes {
        let client = redis::Client::open(node.url()).unwrap();
        admins.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    for round in 0..3 {
        let mut killed = 0u64;
        for admin in &mut admins {
            // SKIPME defaults to yes: the admin connection survives.
            let n: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .query_async(admin)
                .await
                .unwrap();
            killed += n;
        }
        assert!(
            killed >= 3,
            "round {round}: only {killed} connections killed"
        );
        let calls: Vec<_> = (0..20)
            .map(|id| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let bodies = Bodies::default();
                    let got = spread(&cache, id, &bodies).await;
                    (got, bodies.0.load(Ordering::Relaxed))
                })
            })
            .collect();
        for (id, call) in calls.into_iter().enumerate() {
            let (got, ran) = call.await.unwrap();
            assert_eq!(got, id as u64 + 1);
            assert_eq!(ran, 0, "round {round}: the body of {id} ran after the kill");
        }
    }
}
