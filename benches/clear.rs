//! Clearing a namespace costs O(its entries), not O(the database).
//!
//! `cargo bench --bench clear`: starts its own `redis-server` on a free loopback port, fills it
//! with 1,000,000 foreign keys and a 10,000-entry namespace written through `#[cache]`, and
//! times `clear_cache(Scope::namespace(..))` against a SCAN of the whole keyspace (what a
//! SCAN-based clear has to walk). Then it checks that the namespace index does not grow when
//! entries expire instead of being cleared.

mod common;

use std::time::{Duration, Instant};

use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
use common::RedisServer;

const OTHERS: u64 = 1_000_000;
const ENTRIES: u64 = 10_000;
const ROUNDS: usize = 5;

#[cache(expire = 600, namespace = "bench")]
async fn entry(id: u64) -> u64 {
    id
}

#[cache(expire = 1, namespace = "fleeting")]
async fn fleeting(id: u64) -> u64 {
    id
}

async fn fill_foreign(admin: &mut redis::aio::MultiplexedConnection) {
    for chunk in 0..OTHERS / 10_000 {
        let mut pipe = redis::pipe();
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            pipe.cmd("SET").arg(format!("other:{i}")).arg(i).ignore();
        }
        let _: () = pipe.query_async(admin).await.expect("fill");
    }
}

/// Writes the namespace's entries through `#[cache]`, as an application would.
async fn fill_entries() {
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            tokio::spawn(async move {
                for id in (t..ENTRIES).step_by(16) {
                    entry(id).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

/// Microseconds Redis spent on commands since the last `CONFIG RESETSTAT`.
async fn server_usec(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !l.starts_with("config") && !l.starts_with("info"))
        .filter_map(|l| {
            l.split(",usec=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

async fn scan_all(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let mut cursor = 0u64;
    let mut matched = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("cache:bench:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await
            .expect("scan");
        matched += keys.len() as u64;
        if next == 0 {
            return matched;
        }
        cursor = next;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    cache_runtime::init(CacheConfig::redis(server.url()).clock_skew(Duration::ZERO))
        .await
        .expect("init");

    let started = Instant::now();
    fill_foreign(&mut admin).await;
    fill_entries().await;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
    println!(
        "filled {dbsize} keys ({OTHERS} foreign, {ENTRIES} entries + 1 index) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // What a SCAN-based clear walks: the whole keyspace (read-only here, to keep the entries).
    let started = Instant::now();
    let matched = scan_all(&mut admin).await;
    let scan_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut clears = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            fill_entries().await;
        }
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin)
            .await
            .unwrap();
        let started = Instant::now();
        let removed = clear_cache(Scope::namespace("bench")).await.expect("clear");
        let clear_ms = started.elapsed().as_secs_f64() * 1e3;
        let usec = server_usec(&mut admin).await;
        let dbsize_after: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
        assert_eq!(removed, ENTRIES, "every entry removed");
        assert_eq!(dbsize_after, OTHERS, "the index went with its namespace");
        clears.push((clear_ms, usec));
    }
    clears.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median_ms, median_usec) = clears[clears.len() / 2];
    let all: Vec<String> = clears.iter().map(|(ms, _)| format!("{ms:.1}")).collect();

    println!();
    println!("| what | entries | time |");
    println!("| --- | ---: | ---: |");
    println!("| SCAN MATCH over the keyspace (no delete) | {matched} | {scan_ms:.1} ms |");
    println!(
        "| clear_cache(Scope::namespace), median of {ROUNDS} | {ENTRIES} | {median_ms:.1} ms (all: {} ms; redis busy {:.1} ms of the median) |",
        all.join(" / "),
        median_usec as f64 / 1e3
    );
    println!("ratio scan/clear: {:.1}x", scan_ms / median_ms);

    // The index does not grow when entries expire instead of being cleared.
    for id in 0..ENTRIES {
        fleeting(id).await;
    }
    let before: u64 = redis::cmd("ZCARD")
        .arg("cache:fleeting")
        .query_async(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    fleeting(ENTRIES + 1).await;
    let after: u64 = redis::cmd("ZCARD")
        .arg("cache:fleeting")
        .query_async(&mut admin)
        .await
        .unwrap();
    println!("index of a namespace whose {ENTRIES} entries expired: {before} members before, {after} after the next write");
}
