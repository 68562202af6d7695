//! Fault injection: a bounded load of concurrent cached calls while Redis is killed, frozen,
//! out of memory, restarted empty or its pool is held by a slow admin action, and 1,000
//! callers of one cold key. Each case counts what the callers got (calls, wrong values, calls
//! over their bound, panics), the bodies that ran and the slowest call, prints a row to stderr
//! and appends it to `target/fault-report.md`.
//!
//! The cached functions return plain values, so an "error seen by a caller" is a wrong value,
//! a call slower than the case's bound, or a panic (a `JoinError` of the caller's task).

mod support;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{cache, clear_cache, stats, CacheConfig, Circuit, Scope};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use support::{exclusive, info_field, RedisServer};

/// Scheduling slack on top of every computed bound: two cores shared with other builds.
const SLACK: Duration = Duration::from_secs(1);

static ITEM_BODIES: AtomicU64 = AtomicU64::new(0);
static BIG_BODIES: AtomicU64 = AtomicU64::new(0);
static COLD_BODIES: AtomicU64 = AtomicU64::new(0);

const ITEM_BODY: Duration = Duration::from_millis(2);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn expected_item(id: u64) -> Item {
    Item {
        id,
        name: format!("item {id}"),
        tags: vec![format!("t{}", id % 7), "faults".into()],
    }
}

#[cache(expire = 300, namespace = "faults")]
async fn item(id: u64) -> Item {
    ITEM_BODIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(ITEM_BODY).await;
    expected_item(id)
}

/// Large enough that a few dozen fill a 1 MB `maxmemory`.
const BIG_LEN: usize = 16 * 1024;

fn expected_big(id: u64) -> String {
    let unit = format!("{id}-");
    let mut s = unit.repeat(BIG_LEN / unit.len() + 1);
    s.truncate(BIG_LEN);
    s
}

#[cache(expire = 300, namespace = "faults_big")]
async fn big(id: u64) -> String {
    BIG_BODIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1)).await;
    expected_big(id)
}

const COLD_BODY: Duration = Duration::from_millis(200);

#[cache(expire = 300, namespace = "faults_cold")]
async fn cold(id: u64) -> u64 {
    COLD_BODIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(COLD_BODY).await;
    id * 3 + 1
}

/// A function of its own for finding out whether Redis answers, so the others' counters
/// are not disturbed.
#[cache(expire = 300, namespace = "faults_probe")]
async fn probe(n: u64) -> u64 {
    n + 1
}

async fn item_ok(id: u64) -> bool {
    item(id).await == expected_item(id)
}

async fn big_ok(id: u64) -> bool {
    big(id).await == expected_big(id)
}

/// What the callers of one load saw.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    /// A value other than what the body computes.
    wrong: u64,
    /// Calls slower than the bound (including those cut off at the hard limit).
    late: u64,
    /// Callers' tasks that panicked.
    panics: u64,
    max_latency: Duration,
    /// Calls that took at least `Load::slow`.
    slow: u64,
}

impl Tally {
    fn errors(&self) -> u64 {
        self.wrong + self.late + self.panics
    }

    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.wrong += other.wrong;
        self.late += other.late;
        self.panics += other.panics;
        self.max_latency = self.max_latency.max(other.max_latency);
        self.slow += other.slow;
    }

    fn errors_text(&self) -> String {
        if self.errors() == 0 {
            "0".into()
        } else {
            format!(
                "{} ({} wrong, {} late, {} panics)",
                self.errors(),
                self.wrong,
                self.late,
                self.panics
            )
        }
    }
}

#[derive(Clone, Copy)]
struct Load {
    tasks: u64,
    /// Task `t` calls ids `t, t + tasks, t + 2 * tasks, ...` modulo `ids`.
    ids: u64,
    /// Calls per task at most.
    iterations: u64,
    /// Wall time of the load at most.
    limit: Duration,
    /// A call slower than this is an error.
    bound: Duration,
    /// Calls at least this slow are counted in `Tally::slow`.
    slow: Duration,
}

/// Runs `load.tasks` tasks calling `call(id)` (true = the value was right) until `stop`, the
/// iteration count or the time limit, whichever comes first.
async fn run_load<F, Fut>(load: Load, stop: Arc<AtomicBool>, call: F) -> Tally
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    // A call that hangs is cut off here and counted late; the test still ends.
    let hard_limit = load.bound * 3;
    let tasks: Vec<_> = (0..load.tasks)
        .map(|t| {
            let call = call.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                for i in 0..load.iterations {
                    if stop.load(Ordering::Relaxed) || started.elapsed() >= load.limit {
                        break;
                    }
                    let id = (t + i * load.tasks) % load.ids;
                    let t0 = Instant::now();
                    let got = tokio::time::timeout(hard_limit, call(id)).await;
                    let took = t0.elapsed();
                    tally.calls += 1;
                    match got {
                        Ok(true) => {}
                        Ok(false) => tally.wrong += 1,
                        Err(_) => {}
                    }
                    if took > load.bound {
                        tally.late += 1;
                    }
                    if took >= load.slow {
                        tally.slow += 1;
                    }
                    tally.max_latency = tally.max_latency.max(took);
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => total.add(&tally),
            Err(_) => total.panics += 1,
        }
    }
    total
}

fn report_path() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if PathBuf::from(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => manifest.join(dir),
        None => manifest.join("target"),
    };
    target.join("fault-report.md")
}

const HEADER: &str = "| case | calls | errors seen by callers | bodies run | max latency ms | notes | run (pid) |\n| --- | ---: | --- | ---: | ---: | --- | ---: |\n";

/// Prints the case's row (under the table's header) to stderr and appends it to the report.
fn report(case: &str, tally: &Tally, bodies: u64, notes: &str) {
    let row = format!(
        "| {case} | {} | {} | {bodies} | {:.1} | {notes} | {} |\n",
        tally.calls,
        tally.errors_text(),
        tally.max_latency.as_secs_f64() * 1000.0,
        std::process::id(),
    );
    eprint!("\n{HEADER}{row}");
    let path = report_path();
    let written = std::fs::create_dir_all(path.parent().expect("a parent dir"))
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        })
        .and_then(|mut file| {
            if file.metadata()?.len() == 0 {
                file.write_all(b"# Fault-injection report (tests/faults.rs)\n\n")?;
                file.write_all(HEADER.as_bytes())?;
            }
            file.write_all(row.as_bytes())
        });
    if let Err(e) = written {
        panic!("cannot append to {}: {e}", path.display());
    }
}

/// How long from now until a call is a hit again, polling for at most `limit`.
async fn first_hit_within(limit: Duration) -> Option<Duration> {
    let since = Instant::now();
    let hits_before = stats().hits;
    while since.elapsed() < limit {
        if stats().hits > hits_before {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Lets the load run on for 300 ms more (on the recovered server), stops it, and returns its
/// tally, the stats at the end and how many item bodies ran since `bodies_before`.
async fn finish_load(
    running: tokio::task::JoinHandle<Tally>,
    stop: &AtomicBool,
    bodies_before: u64,
) -> (Tally, cache_runtime::Stats, u64) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    let bodies = ITEM_BODIES.load(Ordering::SeqCst) - bodies_before;
    (tally, stats(), bodies)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The server's processes are started, stopped and signalled with blocking calls; this
/// keeps them off the runtime's workers, which the load needs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// Waits (bounded) until cached calls reach Redis again: a call of `probe` is a hit or a
/// miss rather than bypassed. Returns how long that took.
async fn until_redis_answers(limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut n = 1_000_000;
    while started.elapsed() < limit {
        let before = stats();
        n += 1;
        assert_eq!(probe(n).await, n + 1);
        let after = stats();
        if after.hits + after.misses > before.hits + before.misses {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn dbsize(conn: &mut MultiplexedConnection) -> u64 {
    redis::cmd("DBSIZE").query_async(conn).await.unwrap()
}

/// 1. `kill -9` of Redis under load, then a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_then_restart() {
    let _turn = exclusive().await;
    let mut server = RedisServer::start();
    let cooldown = Duration::from_millis(500);
    let command_timeout = Duration::from_millis(500);
    let connect_timeout = Duration::from_secs(1);
    cache_runtime::init(
        CacheConfig::redis(server.url())
            .breaker_cooldown(cooldown)
            .command_timeout(command_timeout)
            .connect_timeout(connect_timeout),
    )
    .await
    .unwrap();
    let bodies = ITEM_BODIES.load(Ordering::SeqCst);
    let start = stats();
    // A call waits at most for one command or one connection attempt (a refused connect to
    // a dead port returns at once; the bound covers a slow one), plus its body.
    let bound = command_timeout + connect_timeout + ITEM_BODY + SLACK;
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        tasks: 32,
        ids: 300,
        iterations: 1_000_000,
        limit: Duration::from_secs(12),
        bound,
        slow: bound,
    };
    let running = tokio::spawn(run_load(load, Arc::clone(&stop), item_ok));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_kill = stats();
    assert!(
        before_kill.hits > start.hits,
        "the cache served hits before the kill"
    );
    blocking(|| server.kill());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let down = stats();
    assert!(
        down.circuit_trips > start.circuit_trips,
        "the circuit opened while Redis was dead: {down:?}"
    );
    blocking(|| server.restart());
    let resumed = first_hit_within(Duration::from_secs(10)).await;
    let (tally, end, bodies) = finish_load(running, &stop, bodies).await;
    let resumed_text = resumed.map_or("never".into(), ms);
    report(
        "1 kill -9 mid-load, restart",
        &tally,
        bodies,
        &format!(
            "cooldown {}; first hit {resumed_text} after restart; trips +{}, skipped-open +{}, backend errors +{}",
            ms(cooldown),
            end.circuit_trips - start.circuit_trips,
            end.skipped_open - start.skipped_open,
            end.errors - start.errors,
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert!(tally.calls > 1_000, "the load ran: {tally:?}");
    let resumed = resumed.expect("hits resumed after the restart");
    assert!(
        resumed <= cooldown + Duration::from_secs(2),
        "hits resumed {resumed:?} after the restart; the cool-down is {cooldown:?}"
    );
}

/// 2. Redis frozen (SIGSTOP) for 2 s under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_under_load() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let command_timeout = Duration::from_millis(200);
    let connect_timeout = Duration::from_secs(1);
    cache_runtime::init(
        CacheConfig::redis(server.url())
            .command_timeout(command_timeout)
            .connect_timeout(connect_timeout)
            .breaker_cooldown(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let bodies = ITEM_BODIES.load(Ordering::SeqCst);
    let start = stats();
    // Why this bound: a call whose GET meets the frozen server waits one command timeout,
    // then runs its body (the write is skipped after a failed read). A timeout keeps the
    // shared connection, so no call waits for a new one. Once `breaker_threshold` calls
    // have failed the circuit opens and calls cost only the body until a probe, which again
    // waits at most the command timeout. The slack is scheduling on two shared cores.
    let bound = command_timeout + ITEM_BODY + Duration::from_millis(400);
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        tasks: 32,
        ids: 300,
        iterations: 1_000_000,
        limit: Duration::from_secs(10),
        bound,
        slow: command_timeout,
    };
    let running = tokio::spawn(run_load(load, Arc::clone(&stop), item_ok));
    tokio::time::sleep(Duration::from_millis(600)).await;
    blocking(|| server.freeze());
    let frozen_at = stats();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen = stats();
    blocking(|| server.thaw());
    let resumed = first_hit_within(Duration::from_secs(8)).await;
    let (tally, end, bodies) = finish_load(running, &stop, bodies).await;
    report(
        "2 SIGSTOP 2 s mid-load",
        &tally,
        bodies,
        &format!(
            "bound {}; {} calls >= command timeout {}; skipped-open while frozen {}; trips +{}; first hit {} after thaw",
            ms(bound),
            tally.slow,
            ms(command_timeout),
            frozen.skipped_open - frozen_at.skipped_open,
            end.circuit_trips - start.circuit_trips,
            resumed.map_or("never".into(), ms),
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert!(
        frozen.circuit_trips > frozen_at.circuit_trips,
        "the circuit opened while Redis was frozen"
    );
    assert!(
        frozen.skipped_open > frozen_at.skipped_open,
        "most calls skipped the frozen Redis"
    );
    assert!(resumed.is_some(), "hits resumed after the thaw");
}

/// 3. `maxmemory 1mb` with `noeviction`: writes are refused with OOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_refuses_writes() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    for (name, value) in [("maxmemory", "1mb"), ("maxmemory-policy", "noeviction")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let used_before = info_field(&mut admin, "memory", "used_memory_human").await;
    cache_runtime::init(
        CacheConfig::redis(server.url()).breaker_cooldown(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let bodies = BIG_BODIES.load(Ordering::SeqCst);
    let start = stats();
    let bound = Duration::from_millis(500) + Duration::from_secs(1) + SLACK;
    let load = Load {
        tasks: 32,
        ids: 300,
        iterations: 30,
        limit: Duration::from_secs(5),
        bound,
        slow: bound,
    };
    let tally = run_load(load, Arc::new(AtomicBool::new(false)), big_ok).await;
    let end = stats();
    let bodies = BIG_BODIES.load(Ordering::SeqCst) - bodies;
    let oom: u64 = info_field(&mut admin, "errorstats", "errorstat_OOM")
        .await
        .and_then(|v| {
            v.strip_prefix("count=")
                .and_then(|n| n.split(',').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    let stored = dbsize(&mut admin).await;
    report(
        "3 maxmemory 1mb noeviction",
        &tally,
        bodies,
        &format!(
            "used_memory before {}; {oom} OOM replies; {stored} keys stored of 300 ids (+index); backend errors +{}; hits +{}; trips +{}",
            used_before.unwrap_or_default(),
            end.errors - start.errors,
            end.hits - start.hits,
            end.circuit_trips - start.circuit_trips,
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert_eq!(tally.calls, 32 * 30);
    assert!(oom > 0, "Redis refused writes with OOM");
    assert!(end.errors > start.errors, "the refused writes were counted");
    assert!(stored < 300, "not every value fit: {stored} keys");
}

/// 4. Redis restarted empty: every key misses once, then hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_empty_redis_refills() {
    let _turn = exclusive().await;
    let mut server = RedisServer::start();
    cache_runtime::init(
        CacheConfig::redis(server.url()).breaker_cooldown(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    const IDS: u64 = 200;
    const TASKS: u64 = 20;
    let bound = Duration::from_millis(500) + Duration::from_secs(1) + ITEM_BODY + SLACK;
    // Each id belongs to one task, so every sweep calls each id exactly once.
    let sweep = Load {
        tasks: TASKS,
        ids: IDS,
        iterations: IDS / TASKS,
        limit: Duration::from_secs(10),
        bound,
        slow: bound,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let b0 = ITEM_BODIES.load(Ordering::SeqCst);
    let mut tally = run_load(sweep, Arc::clone(&stop), item_ok).await;
    assert_eq!(ITEM_BODIES.load(Ordering::SeqCst) - b0, IDS, "first fill");
    let s = stats();
    tally.add(&run_load(sweep, Arc::clone(&stop), item_ok).await);
    assert_eq!(stats().hits - s.hits, IDS, "all cached");

    blocking(|| server.restart());
    let answered = until_redis_answers(Duration::from_secs(5)).await;
    assert!(answered.is_some(), "the cache reached the restarted Redis");
    let s1 = stats();
    let b1 = ITEM_BODIES.load(Ordering::SeqCst);
    tally.add(&run_load(sweep, Arc::clone(&stop), item_ok).await);
    let s2 = stats();
    let b2 = ITEM_BODIES.load(Ordering::SeqCst);
    tally.add(&run_load(sweep, Arc::clone(&stop), item_ok).await);
    let s3 = stats();
    let b3 = ITEM_BODIES.load(Ordering::SeqCst);
    report(
        "4 restart empty",
        &tally,
        b3 - b0,
        &format!(
            "fill {IDS} + 0; after restart (reconnected in {}): sweep 1 {} misses {} hits {} bodies, sweep 2 {} misses {} hits {} bodies",
            answered.map_or("-".into(), ms),
            s2.misses - s1.misses,
            s2.hits - s1.hits,
            b2 - b1,
            s3.misses - s2.misses,
            s3.hits - s2.hits,
            b3 - b2,
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert_eq!(
        (s2.misses - s1.misses, s2.hits - s1.hits, b2 - b1),
        (IDS, 0, IDS),
        "after the restart every key misses once and its body runs once"
    );
    assert_eq!(
        (s3.misses - s2.misses, s3.hits - s2.hits, b3 - b2),
        (0, IDS, 0),
        "then every key hits again"
    );
}

/// `n` keys `foreign:{i}` outside the prefix, written by a server-side loop (a client-side
/// pipeline of that many `SET`s takes seconds in a debug build). Small batches: the admin
/// client gives up on a reply after redis-rs's default response timeout (500 ms), which a
/// large batch can exceed on a busy machine.
async fn fill_foreign(admin: &mut MultiplexedConnection, n: u64) {
    const BATCH: u64 = 5_000;
    for first in (0..n).step_by(BATCH as usize) {
        let last = (first + BATCH).min(n) - 1;
        let _: () = redis::cmd("EVAL")
            .arg("for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'foreign:' .. i, i) end")
            .arg(0)
            .arg(first)
            .arg(last)
            .query_async(admin)
            .await
            .unwrap();
    }
    assert_eq!(dbsize(admin).await, n);
}

async fn client_list(admin: &mut MultiplexedConnection) -> String {
    redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap()
}

/// 5. The pool's only connection held by a slow `clear_cache` while the shared connection is
/// killed, so that cached calls must go back to the pool and find it exhausted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_fails_open_within_the_pool_wait() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let mut admin = server.client().await;
    // Foreign keys, never touched by a clear, but scanned by `Scope::all()`.
    const FOREIGN: u64 = 500_000;
    let filling = Instant::now();
    fill_foreign(&mut admin, FOREIGN).await;
    let filled_in = filling.elapsed();
    let pool_wait = Duration::from_millis(100);
    let connect_timeout = Duration::from_secs(1);
    cache_runtime::init(
        CacheConfig::redis(server.url())
            .pool_size(1)
            .pool_wait_timeout(pool_wait)
            .connect_timeout(connect_timeout)
            // Generous, so that on a busy machine a slow GET is not mistaken in phase A
            // for a failure to get a connection; no call below waits on a command.
            .command_timeout(Duration::from_secs(2))
            .breaker_cooldown(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    const IDS: u64 = 200;
    // A call that goes back to the pool waits at most `pool_wait` for the slot; if it gets
    // one whose connection is dead, the pool opens a new one (the connect timeout). Then the
    // body. The slack also absorbs a queue the runtime forms: callers waiting for the
    // runtime's reconnect lock each take their own pool wait in turn until the circuit opens
    // (seen here: about 3 x `pool_wait`, with 2 of the 5 failures already counted).
    let bound = pool_wait + connect_timeout + ITEM_BODY + SLACK;
    let load = Load {
        tasks: 32,
        ids: IDS,
        iterations: 1_000_000,
        limit: Duration::from_secs(5),
        bound,
        slow: pool_wait,
    };
    let bodies = ITEM_BODIES.load(Ordering::SeqCst);
    let mut tally = Tally::default();
    for _ in 0..2 {
        tally.add(
            &run_load(
                Load {
                    iterations: IDS / 32 + 1,
                    ..load
                },
                Arc::new(AtomicBool::new(false)),
                item_ok,
            )
            .await,
        );
    }

    // A. The clear holds the pool's only connection; cached calls share the multiplexed
    // connection and never wait on the pool.
    let quiet = stats();
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(run_load(load, Arc::clone(&stop), item_ok));
    let cleared = Instant::now();
    let removed = clear_cache(Scope::all()).await.expect("the clear works");
    let clear_a = cleared.elapsed();
    stop.store(true, Ordering::Relaxed);
    let a = running.await.unwrap();
    let after_a = stats();
    tally.add(&a);
    assert_eq!(
        (
            after_a.bypassed - quiet.bypassed,
            after_a.errors - quiet.errors
        ),
        (0, 0),
        "while a clear held the pool's only connection, no cached call failed to reach Redis"
    );
    assert!(
        clear_a > pool_wait * 3,
        "the clear of {FOREIGN} foreign keys took {clear_a:?}: too short to hold the pool"
    );

    // B. Kill every client connection: the shared one dies. A clear takes the pool's slot
    // (its recycle check finds the old connection dead and opens a new one) and holds it.
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the shared connection was killed");
    let clearing = tokio::spawn(async {
        let started = Instant::now();
        let removed = clear_cache(Scope::all()).await;
        (removed, started.elapsed())
    });
    let watching = Instant::now();
    while !client_list(&mut admin).await.contains("cmd=scan") {
        assert!(
            watching.elapsed() < Duration::from_secs(3) && !clearing.is_finished(),
            "the clear is scanning on the pool's connection"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let before_probe = stats();
    // The first call meets the dead shared connection and drops it.
    assert!(item_ok(1).await);
    // The second goes back to the pool, whose only slot the clear holds.
    let t0 = Instant::now();
    assert!(item_ok(2).await);
    let pool_wait_call = t0.elapsed();
    let after_probe = stats();
    assert!(
        !clearing.is_finished(),
        "the clear still held the pool while the second call ran"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(run_load(load, Arc::clone(&stop), item_ok));
    let (cleared_b, clear_b) = clearing.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let b = running.await.unwrap();
    let after_b = stats();
    tally.add(&b);
    tally.calls += 2;
    tally.max_latency = tally.max_latency.max(pool_wait_call);
    let answered = until_redis_answers(Duration::from_secs(3)).await;
    let bodies = ITEM_BODIES.load(Ordering::SeqCst) - bodies;
    report(
        "5 pool (size 1) held by clear, shared conn killed",
        &tally,
        bodies,
        &format!(
            "{FOREIGN} foreign keys (filled in {}); A: clear {} removed {removed}, {} calls, max {}, 0 pool waits; B: killed {killed}, clear {} ({}), call needing the pool took {}, then {} calls, {} of them >= pool wait {}, max {}, trips +{}; reconnected {} after",
            ms(filled_in),
            ms(clear_a),
            a.calls,
            ms(a.max_latency),
            ms(clear_b),
            if cleared_b.is_ok() { "ok" } else { "failed" },
            ms(pool_wait_call),
            b.calls,
            b.slow,
            ms(pool_wait),
            ms(b.max_latency),
            after_b.circuit_trips - quiet.circuit_trips,
            answered.map_or("never".into(), ms),
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert_eq!(
        after_probe.bypassed - before_probe.bypassed,
        2,
        "both calls ran uncached"
    );
    assert_eq!(
        after_probe.hits + after_probe.misses,
        before_probe.hits + before_probe.misses,
        "neither reached Redis"
    );
    assert!(
        pool_wait_call >= pool_wait,
        "the call needing a connection waited for the pool's slot: {pool_wait_call:?}"
    );
    assert!(
        pool_wait_call <= bound,
        "and no longer than the pool wait allows: {pool_wait_call:?}"
    );
    cleared_b.expect("the clear holding the pool succeeded");
    assert!(answered.is_some(), "cached calls reached Redis again");
}

/// 6. 1,000 concurrent callers of one cold key: single-flight runs the body once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_of_one_cold_key() {
    let _turn = exclusive().await;
    let server = RedisServer::start();
    let command_timeout = Duration::from_millis(500);
    cache_runtime::init(CacheConfig::redis(server.url()).command_timeout(command_timeout))
        .await
        .unwrap();
    // Connect first, so the callers race for the key and not for the connection.
    assert!(until_redis_answers(Duration::from_secs(5)).await.is_some());
    let bodies = COLD_BODIES.load(Ordering::SeqCst);
    let start = stats();
    // One GET, the wait for the leader's body and its SET, plus scheduling 1,000 tasks.
    let bound = command_timeout * 2 + COLD_BODY + SLACK;
    let load = Load {
        tasks: 1_000,
        ids: 1,
        iterations: 1,
        limit: Duration::from_secs(10),
        bound,
        slow: bound,
    };
    let tally = run_load(load, Arc::new(AtomicBool::new(false)), |id| async move {
        cold(id + 7).await == (id + 7) * 3 + 1
    })
    .await;
    let end = stats();
    let bodies = COLD_BODIES.load(Ordering::SeqCst) - bodies;
    report(
        "6 1,000 callers, one cold key",
        &tally,
        bodies,
        &format!(
            "body {}; coalesced +{}, misses +{}, hits +{}",
            ms(COLD_BODY),
            end.coalesced - start.coalesced,
            end.misses - start.misses,
            end.hits - start.hits,
        ),
    );
    assert_eq!(tally.errors(), 0, "callers saw errors: {tally:?}");
    assert_eq!(tally.calls, 1_000);
    assert_eq!(bodies, 1, "single-flight ran the body once");
    assert_eq!(stats().circuit, Circuit::Closed);
}
