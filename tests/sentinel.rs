//! Behind Sentinel: one primary, one replica and three sentinels, each a real process on a
//! free loopback port started by the test. The behavioural suite runs on it, and a failover
//! under load shows that callers never see an error or a slow call, that caching resumes on
//! the promoted replica, and that the old primary, back as a replica, is never written to.

mod suite;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::{cache, Cache, CacheConfig};
use support::{exclusive, free_port, info_field, RedisServer};

const MASTER: &str = "mymaster";

/// A sentinel process; killed when dropped.
struct Sentinel {
    port: u16,
    child: Child,
    dir: PathBuf,
    password: Option<String>,
}

impl Sentinel {
    fn start(primary: u16, password: Option<&str>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("cache-test-sentinel-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n\
                 sentinel parallel-syncs {MASTER} 1\n{}",
                dir.display(),
                match password {
                    Some(pw) => format!(
                        "requirepass {pw}\nsentinel sentinel-pass {pw}\nsentinel auth-pass {MASTER} {pw}\n"
                    ),
                    None => String::new(),
                }
            ),
        )
        .expect("sentinel.conf");
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server --sentinel");
        let password = password.map(str::to_owned);
        Self {
            port,
            child,
            dir,
            password,
        }
    }

    fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    async fn client(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    }

    /// What `SENTINEL MASTER mymaster` says, field by field.
    async fn master(&self) -> Option<std::collections::HashMap<String, String>> {
        let mut conn = self.client().await?;
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER)
            .query_async(&mut conn)
            .await
            .ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One primary, one replica of it, three sentinels that monitor it (quorum 2).
struct Set {
    primary: RedisServer,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Set {
    /// Starts the set and waits until every sentinel knows the replica and the two other
    /// sentinels (what a failover needs), at most 20 s.
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// [`start`](Self::start), every process asking for `password` when there is one.
    async fn start_with(password: Option<&str>) -> Self {
        let turn = exclusive().await;
        let auth: Vec<&str> = match password {
            Some(pw) => vec!["--requirepass", pw, "--masterauth", pw],
            None => Vec::new(),
        };
        let primary = RedisServer::start_with(&auth);
        let port = primary.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", port.as_str()];
        args.extend(&auth);
        let replica = RedisServer::start_with(&args);
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(primary.port, password))
            .collect();
        let ready = support::eventually(Duration::from_secs(20), || async {
            for sentinel in &sentinels {
                let Some(master) = sentinel.master().await else {
                    return false;
                };
                let field = |name: &str| master.get(name).map(String::as_str).unwrap_or("");
                if field("num-slaves") != "1" || field("num-other-sentinels") != "2" {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(ready, "the sentinel set did not come up within 20 s");
        Set {
            primary,
            replica,
            sentinels,
            _turn: turn,
        }
    }

    fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::url).collect()
    }

    fn config(&self) -> CacheConfig {
        CacheConfig::sentinel(self.urls(), MASTER)
    }

    /// The port of the primary the sentinels name now.
    async fn primary_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let Some(mut conn) = sentinel.client().await else {
                continue;
            };
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER)
                .query_async(&mut conn)
                .await
                .ok()
                .flatten();
            if let Some((_, port)) = addr {
                return Some(port);
            }
        }
        None
    }
}

/// The suite's fixture: the set, with the process-wide cache pointed at it.
async fn sentinel() -> Set {
    let set = Set::start().await;
    cache_runtime::init(set.config()).await.unwrap();
    set
}

suite_cases!(sentinel);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_written_to_the_primary_and_read_from_it() {
    let set = Set::start().await;
    let cache = Cache::new(set.config()).await.unwrap();
    assert_eq!(triple(&cache, 7, &Bodies::default()).await, 21);
    let mut primary = set.primary.client().await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut primary, "cache:sentinel:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ping = cache.ping().await.unwrap();
    assert!(ping < Duration::from_secs(1));
}

/// With a password on every process, the URLs' password logs in to the sentinels and to the
/// primary; a wrong one caches nothing (and fails nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_password_logs_in_to_sentinels_and_primary() {
    let set = Set::start_with(Some("s3cret")).await;
    let cache = Cache::new(set.config()).await.unwrap();
    let bodies = Bodies::default();
    for _ in 0..3 {
        assert_eq!(triple(&cache, 5, &bodies).await, 15);
    }
    assert_eq!(bodies.0.load(Ordering::Relaxed), 1, "cached");
    let mut primary = set.primary.client_with("default", "s3cret").await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut primary, "cache:sentinel:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");

    let wrong: Vec<String> = set
        .sentinels
        .iter()
        .map(|s| format!("redis://:wrong@127.0.0.1:{}", s.port))
        .collect();
    let cache = Cache::new(CacheConfig::sentinel(wrong, MASTER))
        .await
        .unwrap();
    let bodies = Bodies::default();
    for _ in 0..2 {
        assert_eq!(triple(&cache, 5, &bodies).await, 15);
    }
    assert_eq!(bodies.0.load(Ordering::Relaxed), 2, "ran uncached");
}

/// The near-cache behind Sentinel: a copy in one process is evicted when another clears
/// the entry (the invalidation goes through the primary the sentinels name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_cache_copy_is_evicted_by_another_process_clear() {
    let set = Set::start().await;
    let near = Cache::new(set.config().local_cache(1_000)).await.unwrap();
    let other = Cache::new(set.config()).await.unwrap();
    let bodies = Bodies::default();
    // Subscribed once a copy is served from process.
    let subscribed = support::eventually(Duration::from_secs(5), || async {
        triple(&near, 9, &bodies).await;
        near.stats().local_hits > 0
    })
    .await;
    assert!(subscribed, "the near-cache never served a copy");
    let ran = bodies.0.load(Ordering::Relaxed);
    let removed = other
        .clear(cache_runtime::Scope::namespace("sentinel"))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let evicted = support::eventually(Duration::from_secs(1), || async {
        triple(&near, 9, &bodies).await;
        bodies.0.load(Ordering::Relaxed) > ran
    })
    .await;
    assert!(evicted, "the copy outlived the other process's clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sentinel_configurations_are_refused() {
    for config in [
        CacheConfig::sentinel(Vec::<String>::new(), MASTER),
        CacheConfig::sentinel(["redis://127.0.0.1:1"], " "),
        CacheConfig::sentinel(["not a url"], MASTER),
    ] {
        let err = Cache::new(config).await.unwrap_err();
        assert!(
            matches!(err, cache_runtime::CacheError::InvalidConfig(_)),
            "{err}"
        );
    }
}

#[derive(Default)]
struct Bodies(AtomicU64);

#[cache(namespace = "sentinel", expire = 600, cache = cache, skip = [cache, bodies])]
async fn triple(cache: &Cache, id: u64, bodies: &Bodies) -> u64 {
    bodies.0.fetch_add(1, Ordering::Relaxed);
    id * 3
}

/// One second of the failover run.
#[derive(Clone, Copy, Default)]
struct Second {
    calls: u64,
    served: u64,
    bodies: u64,
    wrong: u64,
    max_us: u64,
}

/// How the primary goes away.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// SIGKILL: its connections break at once; restarted later (empty).
    Kill,
    /// SIGSTOP: its connections stay open and nothing answers (a partition, a stalled
    /// host); SIGCONT later (with its data).
    Freeze,
}

/// SIGKILL of the primary under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_load_costs_no_errors_and_no_slow_calls() {
    failover(Death::Kill).await;
}

/// SIGSTOP of the primary under load: calls time out instead of failing at once, and the
/// sentinels' `+switch-master` is what moves the cache to the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_is_left_behind_without_slow_calls() {
    failover(Death::Freeze).await;
}

/// The primary goes away (`death`) while 16 tasks call over 1,000 hot keys: no call fails or
/// takes over 0.3 s; hits resume on the promoted replica within 0.5 s of the sentinels'
/// switch; the old primary, back, is a replica and nothing is written to it.
async fn failover(death: Death) {
    const TASKS: u64 = 16;
    const KEYS: u64 = 1_000;
    const SECONDS: usize = 14;
    let mut set = Set::start().await;
    let old_port = set.primary.port;
    let cache = Arc::new(
        Cache::new(
            set.config()
                .command_timeout(Duration::from_millis(100))
                .connect_timeout(Duration::from_millis(100))
                .breaker_cooldown(Duration::from_millis(200))
                // Every hit asks Redis: no copies in process serve calls through the outage.
                .hot_set(0),
        )
        .await
        .unwrap(),
    );
    let warm = Bodies::default();
    for id in 0..KEYS {
        triple(&cache, id, &warm).await;
    }
    // The replica has every entry before the kill (what it serves after its promotion).
    let replica = set.replica.client().await;
    let copied = support::eventually(Duration::from_secs(5), || {
        let mut replica = replica.clone();
        async move {
            let db = info_field(&mut replica, "keyspace", "db0").await;
            let keys = db.as_deref().and_then(|db| {
                db.strip_prefix("keys=")?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            });
            keys.is_some_and(|keys| keys >= KEYS)
        }
    })
    .await;
    assert!(copied, "the replica did not get the entries");

    let started = Instant::now();
    let table = Arc::new(Mutex::new(vec![Second::default(); SECONDS]));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (cache, table, stop) = (Arc::clone(&cache), Arc::clone(&table), Arc::clone(&stop));
            tokio::spawn(async move {
                // Its own: a body that ran for this task's call is told apart from others'.
                let bodies = Bodies::default();
                let mut id = task * 61;
                // Bounded by the clock and by a count.
                for _ in 0..5_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    id = (id + 17) % KEYS;
                    let before = bodies.0.load(Ordering::Relaxed);
                    let t = Instant::now();
                    let got = triple(&cache, id, &bodies).await;
                    let took = t.elapsed();
                    let ran = bodies.0.load(Ordering::Relaxed) > before;
                    let second = started.elapsed().as_secs() as usize;
                    if second >= SECONDS {
                        break;
                    }
                    {
                        let mut table = table.lock().unwrap();
                        let row = &mut table[second];
                        row.calls += 1;
                        row.bodies += u64::from(ran);
                        row.served += u64::from(!ran);
                        row.wrong += u64::from(got != id * 3);
                        row.max_us = row.max_us.max(took.as_micros() as u64);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = started.elapsed();
    match death {
        Death::Kill => set.primary.kill(),
        Death::Freeze => set.primary.freeze(),
    }
    // The first store hit after the kill (the cache's own count: a call that got another
    // task's result, single-flight, is no hit of the store).
    let first_hit = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            let before = cache.stats().hits;
            for _ in 0..2_000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if cache.stats().hits > before {
                    return Some(started.elapsed());
                }
            }
            None
        })
    };
    // The switch, as the sentinels name the new primary.
    let mut switched_at = None;
    for _ in 0..200 {
        if set
            .primary_port()
            .await
            .is_some_and(|port| port != old_port)
        {
            switched_at = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let switched_at = switched_at.expect("the sentinels did not switch within 5 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The old primary comes back; the sentinels make it a replica of the new one.
    match death {
        Death::Kill => set.primary.restart(),
        Death::Freeze => set.primary.thaw(),
    }
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);

    let table = table.lock().unwrap().clone();
    println!(
        "{death:?}: primary gone at {:.2} s, sentinels switched at {:.2} s ({:.2} s later)",
        killed_at.as_secs_f64(),
        switched_at.as_secs_f64(),
        (switched_at - killed_at).as_secs_f64()
    );
    // `served`: calls whose own body did not run (a hit, or another task's result).
    println!("second     calls    served    bodies   max ms");
    for (i, row) in table.iter().enumerate() {
        println!(
            "{i:>6} {:>9} {:>9} {:>9} {:>8.1}",
            row.calls,
            row.served,
            row.bodies,
            row.max_us as f64 / 1000.0
        );
    }
    let slowest = table.iter().map(|r| r.max_us).max().unwrap_or(0);
    assert!(
        table.iter().all(|r| r.wrong == 0),
        "a call got a wrong value"
    );
    assert!(
        slowest <= 300_000,
        "a call took {:.1} ms",
        slowest as f64 / 1000.0
    );
    assert!(table.iter().all(|r| r.calls > 0), "a second without calls");

    // Hits resume within 0.5 s of the switch, and the second after that is all but hits.
    let first_hit = first_hit
        .await
        .unwrap()
        .expect("no hit within 10 s of the kill");
    println!(
        "first store hit after the primary went: at {:.3} s, {:+.3} s after the switch",
        first_hit.as_secs_f64(),
        first_hit.as_secs_f64() - switched_at.as_secs_f64()
    );
    assert!(
        first_hit <= switched_at + Duration::from_millis(500),
        "hits resumed {:.3} s after the switch",
        (first_hit.saturating_sub(switched_at)).as_secs_f64()
    );
    let next = &table[((switched_at.as_secs_f64() + 0.5).ceil() as usize).min(SECONDS - 1)];
    assert!(
        next.served * 100 >= next.calls * 99,
        "the second after the switch: {} of {} calls served without a body",
        next.served,
        next.calls
    );

    // The old primary is a replica now (the sentinels reconfigured it, dropping its
    // clients, so each look is on a connection of its own), and refused no write: none was
    // sent to it.
    let old = set.primary.url();
    let field = |section: &'static str, name: &'static str| {
        let old = old.clone();
        async move {
            let client = redis::Client::open(old).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let info: String = redis::cmd("INFO")
                .arg(section)
                .query_async(&mut conn)
                .await
                .ok()?;
            let prefix = format!("{name}:");
            info.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map(|v| v.trim().to_owned())
        }
    };
    let demoted = support::eventually(Duration::from_secs(10), || async {
        field("replication", "master_link_status").await.as_deref() == Some("up")
    })
    .await;
    assert!(demoted, "the old primary did not come back as a replica");
    for id in 0..50 {
        triple(&cache, KEYS + id, &warm).await;
    }
    assert_eq!(warm.0.load(Ordering::Relaxed), KEYS + 50);
    let refused = field("errorstats", "errorstat_READONLY").await;
    assert_eq!(refused, None, "writes went to the old primary");
    let stats = cache.stats();
    println!("stats after the failover: {stats:?}");
}
