//! A dropped connection is not an outage: when every connection of the process is killed
//! (`CLIENT KILL`, as a proxy's idle timeout or a server-side kill does), the next lookups
//! retry once on a fresh connection and are hits; no body runs, no error is counted.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cache_runtime::{cache, Cache, CacheConfig};
use support::RedisServer;

#[cache(expire = 300, namespace = "reconnect", cache = cache, skip = [cache, bodies])]
async fn value(cache: &Cache, bodies: &AtomicU64, id: u64) -> String {
    bodies.fetch_add(1, Ordering::SeqCst);
    format!("value {id}")
}

/// The same, asking for the time left (`GET` + `PTTL` in one round trip).
#[cache(expire = 300, refresh = 5, namespace = "reconnect_ttl", cache = cache, skip = [cache, bodies])]
async fn value_ttl(cache: &Cache, bodies: &AtomicU64, id: u64) -> String {
    bodies.fetch_add(1, Ordering::SeqCst);
    format!("value {id}")
}

async fn call(cache: &Cache, bodies: &AtomicU64, id: u64, ttl: bool) -> String {
    match ttl {
        false => value(cache, bodies, id).await,
        true => value_ttl(cache, bodies, id).await,
    }
}

async fn kill_all_clients(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    // SKIPME defaults to yes: the admin connection survives.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(admin)
        .await
        .unwrap()
}

async fn after_kills_hits_are_still_hits(config: CacheConfig, server: &RedisServer, ttl: bool) {
    let cache = Cache::new(config).await.unwrap();
    let bodies = AtomicU64::new(0);
    for id in 0..20 {
        call(&cache, &bodies, id, ttl).await;
    }
    assert_eq!(bodies.load(Ordering::SeqCst), 20);
    let errors_before = cache.stats().errors;
    let mut admin = server.client().await;
    for round in 0..3 {
        let killed = kill_all_clients(&mut admin).await;
        assert!(
            killed >= 1,
            "round {round}: no connection of the cache was killed"
        );
        // One caller alone, then many at once (their GETs batched into one MGET).
        assert_eq!(call(&cache, &bodies, 0, ttl).await, "value 0");
        let killed = kill_all_clients(&mut admin).await;
        assert!(
            killed >= 1,
            "round {round}: the fresh connection was not killed"
        );
        let cache = Arc::new(cache.clone());
        let calls: Vec<_> = (0..20)
            .map(|id| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move {
                    let bodies = AtomicU64::new(0);
                    let got = call(&cache, &bodies, id, ttl).await;
                    (got, bodies.load(Ordering::SeqCst))
                })
            })
            .collect();
        for (id, call) in calls.into_iter().enumerate() {
            let (got, ran) = call.await.unwrap();
            assert_eq!(got, format!("value {id}"));
            assert_eq!(ran, 0, "round {round}: the body of {id} ran after the kill");
        }
    }
    assert_eq!(
        bodies.load(Ordering::SeqCst),
        20,
        "no body ran after a kill"
    );
    assert_eq!(
        cache.stats().errors,
        errors_before,
        "a dropped connection is no error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_retried_once_on_a_fresh_one() {
    let server = RedisServer::start();
    after_kills_hits_are_still_hits(CacheConfig::redis(server.url()), &server, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_retried_when_the_time_left_is_asked_for_too() {
    let server = RedisServer::start();
    after_kills_hits_are_still_hits(CacheConfig::redis(server.url()), &server, true).await;
}
