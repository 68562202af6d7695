//! `cargo bench --bench compare`: hot hits and misses of `#[cache]` over Redis against a
//! hand-written cache-aside on redis-rs, the `cached` crate's Redis store, `#[cache]` with a
//! near-cache, and `redis-benchmark -t get` (the server's own limit without pipelining).
//!
//! The workload is `get_product(id) -> Product` (about 150 bytes of JSON; the body sleeps
//! 1 ms), with 1,000 ids warmed before anything is measured. Each measurement runs `tasks`
//! tokio tasks (multi-thread runtime, 2 workers) for a fixed time over the warmed ids and
//! records every call's latency. The variants alternate, round after round, so machine noise
//! hits all of them alike; the table shows the round with the median throughput. Each ratio
//! is printed for the median rounds and as the median of the per-round ratios (the variants
//! of a round ran back to back), with the middle half of those per-round ratios and how many
//! rounds met the target that the performance issue sets for it, so a target met by a tie
//! shows as one.
//!
//! Next to throughput and latency, the table shows CPU time per call of this process (both
//! workers, user + system) and of redis-server, from `/proc/{pid}/stat`. The miss section
//! compares cold calls of `#[cache]` with the hand-written cache-aside, with the 1 ms body and
//! with a body that costs nothing, and splits each 1 ms miss into before / in / after the body.
//!
//! Timings on a shared 2-core machine swing by several per cent from one second to the next,
//! so the bench also counts instructions per hot hit of each variant with callgrind (valgrind),
//! which is the same from run to run: one task, `CALLGRIND_HITS` hits between two marker
//! functions, every thread of the process counted. The dumps stay in `target/callgrind/` for
//! `callgrind_annotate`. Without valgrind that section says so and the rest runs.
//!
//! `COMPARE_ONLY=ours,hand` (names from the table, plus `redis-b`, `miss` and `callgrind`)
//! runs a subset; `COMPARE_TASKS=4,16` measures at other numbers of tasks than 1 and 64.
//!
//! The bench starts its own `redis-server` on a free loopback port (never 6379) and stops it
//! when done, on panic too. Every loop is bounded in count and time; a watchdog ends the run
//! (and the server) if it ever takes longer than `WATCHDOG`.

mod common;

use std::hint::black_box;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_runtime::CacheConfig;
use cached::macros::concurrent_cached;
use common::{make_product, Product, RedisServer};
use md5::{Digest, Md5};
use redis::aio::MultiplexedConnection;

/// Ids warmed before measuring; hot loops only ever ask for these.
const HOT_IDS: u64 = 1_000;
/// How long one measurement runs. Short, in many rounds: the machine's slow spells last
/// about a second, and with 0.6 s in 10 rounds one spell often fell on one variant of a pair
/// and not on the other.
const MEASURE: Duration = Duration::from_millis(250);
/// An unrecorded run before each measurement, at the same concurrency.
const SETTLE: Duration = Duration::from_millis(60);
/// A pause after `cache_runtime` switches between Redis and Redis with the near-cache.
const AFTER_SWITCH: Duration = Duration::from_millis(200);
/// Rounds of the whole alternation; the table shows the median one.
const ROUNDS: usize = 24;
/// Concurrencies measured unless `COMPARE_TASKS` names others.
const CONCURRENCY: [usize; 2] = [1, 64];
/// At most this many concurrencies, each at most `MAX_TASKS`, keep a run bounded.
const MAX_CONCURRENCIES: usize = 4;
const MAX_TASKS: usize = 1024;
/// Latency samples kept per measurement, over all tasks (u32 nanoseconds: 32 MB at most).
const MAX_SAMPLES: usize = 8_000_000;
/// Cold calls per miss variant (each sleeps at least 1 ms).
const MISS_CALLS: u64 = 300;
/// The whole run is killed (server included) past this.
const WATCHDOG: Duration = Duration::from_secs(480);
/// How long one `redis-benchmark` run may take before it is killed.
const REDIS_BENCHMARK_LIMIT: Duration = Duration::from_secs(15);
/// Expiry of every entry, in seconds.
const TTL: u64 = 600;
/// Hot hits per variant counted under callgrind (one task, current-thread runtime).
const CALLGRIND_HITS: u64 = 3_000;
/// How long one callgrind run may take before it is killed.
const CALLGRIND_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The workload

/// When the last body started and ended, so the miss phase can tell the time before, in and
/// after the body apart. Only misses run a body, so the hot loops never take this lock.
static LAST_BODY: std::sync::Mutex<Option<(Instant, Instant)>> = std::sync::Mutex::new(None);

/// The slow part every variant caches: 1 ms of "query".
async fn body(id: u64) -> Product {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let product = make_product(id);
    *LAST_BODY.lock().unwrap_or_else(|e| e.into_inner()) = Some((start, Instant::now()));
    product
}

#[cache_runtime::cache(expire = 600, namespace = "bench")]
async fn ours_get_product(id: u64) -> Product {
    body(id).await
}

/// The same without a namespace: its entries are not added to a namespace index.
#[cache_runtime::cache(expire = 600)]
async fn ours_get_product_no_namespace(id: u64) -> Product {
    body(id).await
}

/// A body that costs nothing, to see what a miss adds without the timer's 1 ms granularity.
#[cache_runtime::cache(expire = 600, namespace = "bench")]
async fn ours_get_product_instant(id: u64) -> Product {
    make_product(id)
}

/// The same without a namespace: its entries are not added to a namespace index.
#[cache_runtime::cache(expire = 600)]
async fn ours_get_product_instant_no_namespace(id: u64) -> Product {
    make_product(id)
}

/// The key the hand-written variant uses: derived like `#[cache]` derives its own (MD5 hex of
/// the JSON array of the arguments), so key derivation costs the same.
fn hand_key(id: u64) -> String {
    let json = serde_json::to_vec(&[id]).expect("a u64 serializes");
    format!("bench-hand:{:x}", Md5::digest(&json))
}

/// Cache-aside as a user would write it on redis-rs: `GET`, decode, else body and `SET .. EX`.
/// Redis errors run the body (like `#[cache]`, it fails open).
async fn hand_get_product(conn: &mut MultiplexedConnection, id: u64) -> Product {
    hand_cache_aside(conn, id, || body(id)).await
}

/// [`hand_get_product`] with any body.
async fn hand_cache_aside<F: std::future::Future<Output = Product>>(
    conn: &mut MultiplexedConnection,
    id: u64,
    body: impl FnOnce() -> F,
) -> Product {
    let key = hand_key(id);
    let cached: redis::RedisResult<Option<Vec<u8>>> =
        redis::cmd("GET").arg(&key).query_async(conn).await;
    if let Ok(Some(bytes)) = &cached {
        if let Ok(product) = serde_json::from_slice::<Product>(bytes) {
            return product;
        }
    }
    let product = body().await;
    if cached.is_ok() {
        if let Ok(json) = serde_json::to_vec(&product) {
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(TTL)
                .query_async(conn)
                .await;
        }
    }
    product
}

/// Where the `cached` crate's store connects; set before its first call.
static REDIS_URL: OnceLock<String> = OnceLock::new();
/// Calls of the `cached` variant that returned a Redis error (it does not fail open).
static CACHED_ERRORS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct BenchError(#[allow(dead_code)] String);

#[concurrent_cached(
    map_error = r##"|e| BenchError(format!("{e:?}"))"##,
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = r##" {
        cached::AsyncRedisCache::builder("bench-cached")
            .ttl_secs(600)
            .connection_string(REDIS_URL.get().expect("REDIS_URL is set before use"))
            .build()
            .await
            .expect("the cached crate's redis store")
    } "##
)]
async fn cached_get_product(id: u64) -> Result<Product, BenchError> {
    Ok(body(id).await)
}

// ---------------------------------------------------------------------------------------------
// The variants

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Ours,
    Hand,
    Cached,
    OursL1,
}

const VARIANTS: [Variant; 4] = [
    Variant::Ours,
    Variant::Hand,
    Variant::Cached,
    Variant::OursL1,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Ours => "ours",
            Variant::Hand => "hand",
            Variant::Cached => "cached",
            Variant::OursL1 => "ours+l1",
        }
    }
}

/// One task's way of calling its variant; the hand-written one owns its connection clone,
/// made once before the timed loop.
enum Caller {
    Ours,
    Hand(MultiplexedConnection),
    Cached,
}

impl Caller {
    async fn call(&mut self, id: u64) -> Product {
        match self {
            Caller::Ours => ours_get_product(id).await,
            Caller::Hand(conn) => hand_get_product(conn, id).await,
            Caller::Cached => cached_get_product(id).await.unwrap_or_else(|_| {
                CACHED_ERRORS.fetch_add(1, Ordering::Relaxed);
                make_product(id)
            }),
        }
    }
}

/// Which configuration `cache_runtime` currently runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Redis,
    RedisWithL1,
}

struct Ctx {
    url: String,
    hand: MultiplexedConnection,
    admin: MultiplexedConnection,
    backend: Option<Backend>,
    server_pid: u32,
}

impl Ctx {
    fn caller(&self, variant: Variant) -> Caller {
        match variant {
            Variant::Ours | Variant::OursL1 => Caller::Ours,
            Variant::Hand => Caller::Hand(self.hand.clone()),
            Variant::Cached => Caller::Cached,
        }
    }

    /// Points `cache_runtime` at the configuration `variant` needs, warming a new one.
    async fn prepare(&mut self, variant: Variant) {
        let wanted = match variant {
            Variant::Ours => Backend::Redis,
            Variant::OursL1 => Backend::RedisWithL1,
            Variant::Hand | Variant::Cached => return,
        };
        if self.backend == Some(wanted) {
            return;
        }
        let config = match wanted {
            Backend::Redis => CacheConfig::redis(self.url.as_str()),
            Backend::RedisWithL1 => CacheConfig::redis(self.url.as_str()).local_cache(10_000),
        };
        cache_runtime::init(config)
            .await
            .expect("init cache_runtime");
        self.backend = Some(wanted);
        warm(self, variant).await;
        // The replaced backend closes its pool, connection and listener and drops its
        // entries as its last references go; let that finish before anything is measured.
        tokio::time::sleep(AFTER_SWITCH).await;
    }
}

/// Calls every hot id once (64 tasks), so Redis (and a near-cache) holds them all.
async fn warm(ctx: &Ctx, variant: Variant) {
    const WARMERS: u64 = 64;
    let handles: Vec<_> = (0..WARMERS)
        .map(|w| {
            let mut caller = ctx.caller(variant);
            tokio::spawn(async move {
                let mut id = w;
                while id < HOT_IDS {
                    black_box(caller.call(id).await);
                    id += WARMERS;
                }
            })
        })
        .collect();
    for h in handles {
        tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("warming took over 20 s")
            .expect("a warming task panicked");
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, Debug)]
struct Sample {
    ops: u64,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU time of this process (both workers, user + system) per call.
    client_cpu_us: f64,
    /// CPU time of redis-server per call.
    server_cpu_us: f64,
    capped: bool,
}

/// User + system CPU time of a process so far (`/proc/{pid}/stat`, in USER_HZ = 100 ticks/s).
fn cpu_time(pid: &str) -> Duration {
    let [utime, stime, _, _] = stat_times(pid);
    utime + stime
}

/// User + system CPU time of this process's children that have been waited for
/// (`redis-benchmark`, `nproc`).
fn children_cpu_time() -> Duration {
    let [_, _, cutime, cstime] = stat_times("self");
    cutime + cstime
}

/// utime, stime, cutime and cstime of `/proc/{pid}/stat` (fields 14 to 17, USER_HZ = 100).
fn stat_times(pid: &str) -> [Duration; 4] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses, start at field 3 (the state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    [11, 12, 13, 14].map(|i| {
        let ticks = fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    })
}

/// The clock of the measuring loops: the TSC where there is one (`quanta`), scaled to
/// nanoseconds. Reading it costs about a third of `Instant::now` here (12 ns against 33 ns),
/// which is a few per cent of a near-cache hit; the slower variants do not notice either.
fn clock() -> quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new).clone()
}

/// `tasks` tasks call `variant` over the hot ids for `duration`; every call's latency is kept.
async fn run(ctx: &Ctx, variant: Variant, tasks: usize, duration: Duration) -> Sample {
    let cap = (MAX_SAMPLES / tasks).max(1_000);
    let callers: Vec<Caller> = (0..tasks).map(|_| ctx.caller(variant)).collect();
    let server_pid = ctx.server_pid.to_string();
    let (client_cpu, server_cpu) = (cpu_time("self"), cpu_time(&server_pid));
    let clock = clock();
    let start = clock.raw();
    let limit = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let handles: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(task, mut caller)| {
            let clock = clock.clone();
            tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(cap);
                let mut i = 0u64;
                // One clock read per call: a call's latency runs from the end of the one
                // before, so it also holds this loop's few nanoseconds. Two reads per call
                // were 14 % of a near-cache hit's CPU time from 64 tasks (perf).
                let mut t0 = clock.raw();
                let end = loop {
                    let id = (task as u64 * 7919 + i) % HOT_IDS;
                    black_box(caller.call(id).await);
                    let t1 = clock.raw();
                    let nanos = clock.delta_as_nanos(t0, t1);
                    latencies.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                    t0 = t1;
                    i += 1;
                    if clock.delta_as_nanos(start, t1) >= limit || latencies.len() == cap {
                        break t1;
                    }
                };
                (latencies, end)
            })
        })
        .collect();
    let mut all: Vec<u32> = Vec::new();
    let mut last_end = start;
    let mut capped = false;
    for h in handles {
        let (latencies, end) = tokio::time::timeout(duration + Duration::from_secs(10), h)
            .await
            .expect("a measuring task overran its time by 10 s")
            .expect("a measuring task panicked");
        capped |= latencies.len() == cap;
        last_end = last_end.max(end);
        all.extend_from_slice(&latencies);
    }
    let elapsed = clock.delta(start, last_end).as_secs_f64();
    let ops = all.len() as u64;
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / ops.max(1) as f64;
    let client_cpu_us = per_call(cpu_time("self").saturating_sub(client_cpu));
    let server_cpu_us = per_call(cpu_time(&server_pid).saturating_sub(server_cpu));
    Sample {
        ops,
        client_cpu_us,
        server_cpu_us,
        ops_per_sec: ops as f64 / elapsed,
        p50_us: percentile(&mut all, 0.50) as f64 / 1_000.0,
        p99_us: percentile(&mut all, 0.99) as f64 / 1_000.0,
        capped,
    }
}

/// The nearest-rank percentile (exact, from the samples themselves).
fn percentile(samples: &mut [u32], q: f64) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    *samples.select_nth_unstable(rank - 1).1
}

/// One line of `INFO commandstats`.
struct CommandCount {
    name: String,
    calls: u64,
    /// Server time per call.
    usec_per_call: f64,
}

/// Every command's call count since the last `CONFIG RESETSTAT`, except the bench's own
/// `CONFIG` and `INFO`. `GET`, `SET` and `PING` are always listed, zero or not.
async fn command_counts(admin: &mut MultiplexedConnection) -> Vec<CommandCount> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .expect("INFO commandstats");
    let mut counts: Vec<CommandCount> = ["GET", "SET", "PING"]
        .iter()
        .map(|name| CommandCount {
            name: name.to_string(),
            calls: 0,
            usec_per_call: 0.0,
        })
        .collect();
    for line in info.lines() {
        // cmdstat_get:calls=42,usec=...
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(":calls="))
        else {
            continue;
        };
        let name = name.to_uppercase();
        if name.starts_with("CONFIG") || name == "INFO" {
            continue;
        }
        let mut fields = rest.split(',');
        let calls: u64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let usec_per_call: f64 = fields
            .find_map(|f| f.strip_prefix("usec_per_call="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        match counts.iter_mut().find(|c| c.name == name) {
            Some(entry) => {
                entry.calls = calls;
                entry.usec_per_call = usec_per_call;
            }
            None => counts.push(CommandCount {
                name,
                calls,
                usec_per_call,
            }),
        }
    }
    counts
}

fn show_counts(counts: &[CommandCount], server_time: bool) -> String {
    counts
        .iter()
        .map(|c| {
            if server_time && c.calls > 0 {
                format!("{} {} ({:.2} µs each)", c.name, c.calls, c.usec_per_call)
            } else {
                format!("{} {}", c.name, c.calls)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn reset_stats(admin: &mut MultiplexedConnection) {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(admin)
        .await
        .expect("CONFIG RESETSTAT");
}

/// `redis-benchmark -t get` at `clients` connections: requests/s, p50 and p99 in µs.
#[derive(Clone, Copy, Debug)]
struct ServerSample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU time of redis-server per request.
    server_cpu_us: f64,
}

fn redis_benchmark(server: &RedisServer, clients: usize, requests: u64) -> ServerSample {
    let port = server.port;
    let server_pid = server.child.id().to_string();
    let server_cpu = cpu_time(&server_pid);
    let mut child = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "get"])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .arg("--csv")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start redis-benchmark");
    let deadline = Instant::now() + REDIS_BENCHMARK_LIMIT;
    loop {
        if child.try_wait().expect("redis-benchmark status").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-benchmark ran over {REDIS_BENCHMARK_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("redis-benchmark output");
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
    let fields: Vec<f64> = out
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .unwrap_or_else(|| panic!("no GET line in redis-benchmark output: {out:?}"))
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().expect("a number"))
        .collect();
    let server_cpu = cpu_time(&server_pid).saturating_sub(server_cpu);
    ServerSample {
        server_cpu_us: server_cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        rps: fields[0],
        p50_us: fields[3] * 1_000.0,
        p99_us: fields[5] * 1_000.0,
    }
}

// ---------------------------------------------------------------------------------------------
// The server

// ---------------------------------------------------------------------------------------------
// Instructions per hit (callgrind)

/// Marks the start of the counted hits: callgrind zeroes its counters when it is entered.
#[inline(never)]
#[no_mangle]
extern "C" fn compare_hits_start() {
    // Bodies that differ, so that the linker cannot fold the two markers into one.
    black_box(1u32);
}

/// Marks their end: callgrind writes the counters when it is entered.
#[inline(never)]
#[no_mangle]
extern "C" fn compare_hits_end() {
    black_box(2u64);
}

/// The process callgrind runs: `CALLGRIND_HITS` hot hits of one variant on one task, between
/// the two markers. Every thread is counted (the runtime's I/O driver, redis-rs's connection
/// task), so the count is the whole cost of a hit in this process, and it is the same from
/// run to run whatever else the machine does.
fn callgrind_child(variant: &str, url: &str) {
    REDIS_URL.set(url.to_owned()).expect("set once");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut caller = match variant {
            "ours" | "ours+l1" => {
                let mut config = CacheConfig::redis(url);
                if variant == "ours+l1" {
                    config = config.local_cache(10_000);
                }
                cache_runtime::init(config)
                    .await
                    .expect("init cache_runtime");
                // The near-cache serves once its invalidation channel is subscribed.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Caller::Ours
            }
            "hand" => Caller::Hand(
                redis::Client::open(url)
                    .expect("url")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("hand connection"),
            ),
            "cached" => Caller::Cached,
            other => panic!("unknown variant {other}"),
        };
        // Two passes over the ids the parent warmed: the first connects and fills the
        // near-cache, the second its decoded copies; the counted hits are then all hot.
        for id in (0..HOT_IDS).chain(0..HOT_IDS) {
            black_box(caller.call(id).await);
        }
        compare_hits_start();
        for i in 0..CALLGRIND_HITS {
            black_box(caller.call(i % HOT_IDS).await);
        }
        compare_hits_end();
        let stats = cache_runtime::stats();
        eprintln!(
            "callgrind child {variant}: hits {}, of them near-cache {}, misses {}",
            stats.hits, stats.local_hits, stats.misses
        );
    });
}

/// Instructions per hot hit of each variant under callgrind, or why there are none.
fn instructions(url: &str, variants: &[Variant]) -> Result<Vec<(Variant, f64, PathBuf)>, String> {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(|_| "valgrind is not installed".to_owned())?;
    if !valgrind.status.success() {
        return Err("valgrind --version failed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = PathBuf::from("target/callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for &variant in variants {
        let file = dir.join(format!("compare-{}.out", variant.name()));
        let part = PathBuf::from(format!("{}.1", file.display()));
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&part);
        let mut child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg("--zero-before=compare_hits_start")
            .arg("--dump-before=compare_hits_end")
            .arg(&exe)
            .env("COMPARE_CALLGRIND_CHILD", variant.name())
            .env("COMPARE_REDIS_URL", url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let deadline = Instant::now() + CALLGRIND_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} took over {CALLGRIND_LIMIT:?}", variant.name()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            return Err(format!("the {} run failed: {status}", variant.name()));
        }
        let text = std::fs::read_to_string(&part)
            .map_err(|e| format!("no dump {}: {e}", part.display()))?;
        let total: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
            })
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no total in {}", part.display()))?;
        out.push((variant, total / CALLGRIND_HITS as f64, part));
    }
    Ok(out)
}

/// The functions with the most instructions of their own in a callgrind dump.
fn top_functions(part: &std::path::Path, n: usize) -> Vec<String> {
    let Ok(output) = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100"])
        .arg(part)
        .output()
    else {
        return Vec::new();
    };
    let count = |line: &str| -> u64 {
        let first = line.split_whitespace().next().unwrap_or("");
        first.replace(',', "").parse().unwrap_or(0)
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    // A dump taken mid-run charges the whole run to the frames still on the stack (main,
    // block_on, ...); they carry the total and are not the hit's own work.
    let total = rows.first().map_or(0, |l| count(l));
    rows.into_iter()
        .filter(|l| count(l) < total)
        .take(n)
        .map(|l| l.trim().chars().take(150).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The run

fn median_by<T: Copy>(items: &[T], key: impl Fn(&T) -> f64) -> T {
    let mut sorted = items.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2]
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 25th and 75th percentiles of `xs`, as `(q1-q3)`.
fn middle_half(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "(-)".into();
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    format!("({:.2}-{:.2})", at(0.25), at(0.75))
}

fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The numbers of tasks to measure at: `COMPARE_TASKS=4,16` (up to four, each 1 to 1,024),
/// else [`CONCURRENCY`].
fn concurrency() -> Vec<usize> {
    let asked: Vec<usize> = std::env::var("COMPARE_TASKS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|n| (1..=MAX_TASKS).contains(n))
        .take(MAX_CONCURRENCIES)
        .collect();
    if asked.is_empty() {
        CONCURRENCY.to_vec()
    } else {
        asked
    }
}

/// What to run: `COMPARE_ONLY=hand,cached` (names from the table, plus `redis-b`, `miss` and
/// `callgrind`) runs a subset; unset, everything runs.
fn selected(name: &str) -> bool {
    match std::env::var("COMPARE_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

/// The median difference of interleaved calls, call by call.
fn per_call(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())
}

/// The ratios of ours' misses (with and without a namespace) to hand's, with `note` after
/// the first line.
fn print_miss_ratios(ours: &[f64], ours_no_ns: &[f64], hand: &[f64], note: &str) {
    for (name, ours) in [
        ("ours/hand", ours),
        ("ours (no namespace)/hand", ours_no_ns),
    ] {
        let note = if name == "ours/hand" { note } else { "" };
        println!(
            "  {name:<32} mean {:>7.3}x     median {:>7.3}x     ours-hand per call: median \
             {:+.1} µs{note}",
            mean(ours) / mean(hand),
            median(ours) / median(hand),
            per_call(ours, hand),
        );
    }
}

/// Mean and median of `xs` in µs, formatted.
fn summary(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "no samples".into();
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64) as usize).min(v.len() - 1)];
    format!(
        "mean {:>7.1} µs   median {:>7.1} µs   (p10 {:.0}, p90 {:.0})",
        mean(xs),
        median(xs),
        at(0.1),
        at(0.9)
    )
}

/// One kind of cold call in the miss phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miss {
    /// `#[cache]` with the 1 ms body.
    Ours,
    /// `#[cache]` without a namespace (so without the namespace index), the 1 ms body.
    OursNoNamespace,
    /// The hand-written cache-aside with the 1 ms body.
    Hand,
    /// The 1 ms body, uncached.
    Body,
    /// `#[cache]` with a body that costs nothing.
    OursInstant,
    /// The same without a namespace (so without the namespace index).
    OursInstantNoNamespace,
    /// The hand-written cache-aside with a body that costs nothing.
    HandInstant,
}

/// The `k`-th of the orders of `n` kinds (variants, kinds of miss): every permutation in turn,
/// so that over `n!` rounds each kind runs after each other kind equally often. A rotation is
/// not enough: with the kinds in a fixed cyclic order, a kind always follows the same other
/// one, and the one after the body alone (no Redis traffic for two timer ticks) started from
/// idle cores and a cold connection, which cost it 100-200 µs more before its body on a
/// virtual machine.
fn order(n: usize, k: usize) -> Vec<usize> {
    let mut left: Vec<usize> = (0..n).collect();
    let mut code = k % (1..=n).product::<usize>().max(1);
    let mut out = Vec::with_capacity(n);
    while !left.is_empty() {
        let radix = (1..left.len()).product::<usize>();
        out.push(left.remove(code / radix));
        code %= radix;
    }
    out
}

/// Cold calls of each kind, interleaved call by call (in every order in turn), on a worker like
/// the hot loops; latencies in µs, one list per kind. A 1 ms body sleeps on tokio's
/// millisecond timer, so each of those calls first waits for a tick: they all start at the
/// same point of the millisecond, and no call's duration depends on what ran before it.
///
/// Also returns, per kind, the split of each call with a 1 ms body: µs before the body, in
/// it, and after it.
async fn misses(
    ctx: &Ctx,
    kinds: &'static [Miss],
    first_id: u64,
) -> (Vec<Vec<f64>>, Vec<Vec<[f64; 3]>>) {
    let mut conn = ctx.hand.clone();
    let task = tokio::spawn(async move {
        let mut latencies = vec![Vec::new(); kinds.len()];
        let mut splits = vec![Vec::new(); kinds.len()];
        let deadline = Instant::now() + Duration::from_secs(20);
        for k in 0..MISS_CALLS {
            if Instant::now() >= deadline {
                break;
            }
            let id = first_id + k;
            for which in order(kinds.len(), k as usize) {
                let kind = kinds[which];
                if matches!(
                    kind,
                    Miss::Ours | Miss::OursNoNamespace | Miss::Hand | Miss::Body
                ) {
                    tokio::time::sleep(Duration::from_micros(1)).await;
                }
                let t = Instant::now();
                let product = match kind {
                    Miss::Ours => ours_get_product(id).await,
                    Miss::OursNoNamespace => ours_get_product_no_namespace(id).await,
                    Miss::Hand => hand_get_product(&mut conn, id).await,
                    Miss::Body => body(id).await,
                    Miss::OursInstant => ours_get_product_instant(id).await,
                    Miss::OursInstantNoNamespace => ours_get_product_instant_no_namespace(id).await,
                    Miss::HandInstant => {
                        hand_cache_aside(&mut conn, id, || async move { make_product(id) }).await
                    }
                };
                let end = Instant::now();
                latencies[which].push((end - t).as_secs_f64() * 1e6);
                black_box(product);
                let span = LAST_BODY.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((body_start, body_end)) = span.filter(|(start, _)| *start >= t) {
                    let us = |d: Duration| d.as_secs_f64() * 1e6;
                    splits[which].push([
                        us(body_start - t),
                        us(body_end - body_start),
                        us(end - body_end),
                    ]);
                }
            }
        }
        (latencies, splits)
    });
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the miss phase overran 30 s")
        .expect("the miss task panicked")
}

/// The machine's CPU time so far from `/proc/stat` (all cores): (busy, steal, total).
fn machine_cpu() -> (Duration, Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu  user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let jiffies = |n: u64| Duration::from_millis(n * 10);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (jiffies(busy), jiffies(at(7)), jiffies(busy + at(3) + at(4)))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    if let (Ok(variant), Ok(url)) = (
        std::env::var("COMPARE_CALLGRIND_CHILD"),
        std::env::var("COMPARE_REDIS_URL"),
    ) {
        callgrind_child(&variant, &url);
        return;
    }
    let wall = Instant::now();
    let load_before = loadavg();
    let machine_before = machine_cpu();
    let self_before = cpu_time("self") + children_cpu_time();
    let variants: Vec<Variant> = VARIANTS
        .into_iter()
        .filter(|v| selected(v.name()))
        .collect();
    let server = RedisServer::start();
    let server_pid = server.child.id();
    let _watchdog = common::Watchdog::arm("compare", WATCHDOG, move || vec![server_pid]);
    let url = server.url();
    REDIS_URL.set(url.clone()).expect("set once");

    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".into());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let json_len = serde_json::to_vec(&make_product(HOT_IDS - 1))
        .expect("json")
        .len();

    let mut ctx = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("url");
        Ctx {
            hand: client
                .get_multiplexed_async_connection()
                .await
                .expect("hand connection"),
            admin: client
                .get_multiplexed_async_connection()
                .await
                .expect("admin connection"),
            url: url.clone(),
            backend: None,
            server_pid: server.child.id(),
        }
    });
    let redis_version = rt.block_on(async {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut ctx.admin)
            .await
            .expect("INFO server");
        // redis-benchmark's GET reads this key literally (no -r); give it a value of our size.
        let () = redis::cmd("SET")
            .arg("key:__rand_int__")
            .arg(serde_json::to_vec(&make_product(1)).expect("json"))
            .query_async(&mut ctx.admin)
            .await
            .expect("SET for redis-benchmark");
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned()
    });

    println!(
        "compare: nproc {nproc}, redis-server {redis_version} on 127.0.0.1:{}, \
         tokio multi-thread runtime with 2 workers",
        server.port
    );
    println!(
        "workload: get_product(id) -> Product ({json_len} bytes of JSON), body sleeps 1 ms; \
         {HOT_IDS} ids warmed; {ROUNDS} rounds of {MEASURE:?} per measurement (after \
         {SETTLE:?} unrecorded), variants alternating; the median round is shown"
    );

    // Warm every variant's Redis entries once; a re-initialised near-cache is warmed again.
    rt.block_on(async {
        ctx.prepare(Variant::Ours).await;
        warm(&ctx, Variant::Hand).await;
        warm(&ctx, Variant::Cached).await;
    });

    let concurrency = concurrency();
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); concurrency.len()]; 4];
    let mut server_samples: Vec<Vec<ServerSample>> = vec![Vec::new(); concurrency.len()];
    let mut hot_commands: Vec<(usize, u64, Vec<CommandCount>)> = Vec::new();
    let mut requests = vec![80_000u64; concurrency.len()];

    for round in 0..ROUNDS {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            // A new order each round, so no variant always runs first, last, or after the
            // same other one.
            for v in order(variants.len(), round) {
                let variant = variants[v];
                let sample = rt.block_on(async {
                    ctx.prepare(variant).await;
                    let count = round == 0 && variant == Variant::Ours;
                    if count {
                        reset_stats(&mut ctx.admin).await;
                    }
                    let settle = run(&ctx, variant, tasks, SETTLE).await;
                    let sample = run(&ctx, variant, tasks, MEASURE).await;
                    if count {
                        let counts = command_counts(&mut ctx.admin).await;
                        hot_commands.push((tasks, settle.ops + sample.ops, counts));
                    }
                    sample
                });
                samples[variant as usize][ci].push(sample);
            }
            if selected("redis-b") {
                let s = redis_benchmark(&server, tasks, requests[ci]);
                // Size the next run to take about MEASURE.
                requests[ci] = ((s.rps * MEASURE.as_secs_f64()) as u64).clamp(20_000, 1_000_000);
                server_samples[ci].push(s);
            }
        }
    }

    // Misses: ours on cold ids against the hand-written miss (GET + body + SET) and the body
    // alone; then the same with a body that costs nothing.
    let miss = selected("miss").then(|| {
        rt.block_on(async {
            ctx.prepare(Variant::Ours).await;
            reset_stats(&mut ctx.admin).await;
            let counted = tokio::spawn(async move {
                for id in 2_000_000_000..2_000_000_000 + 20 {
                    black_box(ours_get_product_instant(id).await);
                }
            });
            counted.await.expect("counting misses");
            let commands = command_counts(&mut ctx.admin).await;
            let (slow, splits) = misses(
                &ctx,
                &[Miss::Ours, Miss::OursNoNamespace, Miss::Hand, Miss::Body],
                1_000_000_000,
            )
            .await;
            let (instant, _) = misses(
                &ctx,
                &[
                    Miss::OursInstant,
                    Miss::OursInstantNoNamespace,
                    Miss::HandInstant,
                ],
                3_000_000_000,
            )
            .await;
            (commands, slow, splits, instant)
        })
    });

    // Instructions per hit, counted by callgrind: what the noisy timings cannot settle.
    let counted = selected("callgrind").then(|| instructions(&url, &variants));

    // ---- the report ----
    println!();
    println!(
        "{:<8} {:>5} {:>11} {:>9} {:>9} {:>10} {:>10}   ops/s (p50/p99 µs) by round",
        "variant", "tasks", "ops/s", "p50 µs", "p99 µs", "cpu µs/op", "srv µs/op"
    );
    let at = |v: Variant, ci: usize| median_by(&samples[v as usize][ci], |s| s.ops_per_sec);
    let legend = "cpu µs/op: this process's CPU time (user + system, all threads) per call; \
                  srv µs/op: redis-server's";
    for &variant in &variants {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            let rounds = &samples[variant as usize][ci];
            let m = at(variant, ci);
            let by_round: Vec<String> = rounds
                .iter()
                .map(|s| {
                    format!(
                        "{} ({:.0}/{:.0})",
                        grouped(s.ops_per_sec),
                        s.p50_us,
                        s.p99_us
                    )
                })
                .collect();
            println!(
                "{:<8} {:>5} {:>11} {:>9.1} {:>9.1} {:>10.2} {:>10.2}   {}{}",
                variant.name(),
                tasks,
                grouped(m.ops_per_sec),
                m.p50_us,
                m.p99_us,
                m.client_cpu_us,
                m.server_cpu_us,
                by_round.join(" / "),
                if rounds.iter().any(|s| s.capped) {
                    "  (sample cap reached)"
                } else {
                    ""
                }
            );
        }
    }
    if selected("redis-b") {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            let s = median_by(&server_samples[ci], |s| s.rps);
            let by_round: Vec<String> = server_samples[ci]
                .iter()
                .map(|s| format!("{} ({:.0}/{:.0})", grouped(s.rps), s.p50_us, s.p99_us))
                .collect();
            println!(
                "{:<8} {:>5} {:>11} {:>9.1} {:>9.1} {:>10} {:>10.2}   {}   (redis-benchmark -t get -c {tasks})",
                "redis-b",
                tasks,
                grouped(s.rps),
                s.p50_us,
                s.p99_us,
                "-",
                s.server_cpu_us,
                by_round.join(" / "),
            );
        }
    }
    println!("{legend}");

    println!();
    println!(
        "ratios: of the median rounds, and [median of the per-round ratios] (variants measured \
         back to back in each round); then the middle half of the per-round ratios, and how \
         many rounds met the target"
    );
    for (a, b, throughput_target, p99_target) in [
        (Variant::Ours, Variant::Hand, 0.95, Some(1.1)),
        (Variant::Ours, Variant::Cached, 1.0, None),
        (Variant::OursL1, Variant::Ours, 20.0, None),
    ] {
        if !(variants.contains(&a) && variants.contains(&b)) {
            continue;
        }
        for (ci, &tasks) in concurrency.iter().enumerate() {
            let (x, y) = (at(a, ci), at(b, ci));
            let (xs, ys) = (&samples[a as usize][ci], &samples[b as usize][ci]);
            let per_round = |f: fn(&Sample) -> f64| -> Vec<f64> {
                xs.iter().zip(ys).map(|(x, y)| f(x) / f(y)).collect()
            };
            let (throughput, p99) = (per_round(|s| s.ops_per_sec), per_round(|s| s.p99_us));
            let met = |ratios: &[f64], ok: &dyn Fn(f64) -> bool| {
                format!(
                    "{}/{}",
                    ratios.iter().filter(|&&r| ok(r)).count(),
                    ratios.len()
                )
            };
            let mut line = format!(
                "  {:>15} tasks {:>2}: throughput {:>5.2}x [{:>5.2}x] {} rounds >= {:.2}: {:<6}",
                format!("{}/{}", a.name(), b.name()),
                tasks,
                x.ops_per_sec / y.ops_per_sec,
                median(&throughput),
                middle_half(&throughput),
                throughput_target,
                met(&throughput, &|r| r >= throughput_target),
            );
            line.push_str(&format!(
                "   p99 {:>5.2}x [{:>5.2}x] {}",
                x.p99_us / y.p99_us,
                median(&p99),
                middle_half(&p99),
            ));
            if let Some(target) = p99_target {
                line.push_str(&format!(
                    " rounds <= {target:.2}: {}",
                    met(&p99, &|r| r <= target)
                ));
            }
            println!("{line}");
        }
    }
    if selected("redis-b") && variants.contains(&Variant::Ours) {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            let s = median_by(&server_samples[ci], |s| s.rps);
            println!(
                "  {:>15} tasks {:>2}: throughput {:>5.2}x",
                "ours/redis-b",
                tasks,
                at(Variant::Ours, ci).ops_per_sec / s.rps
            );
        }
    }

    if let Some((commands, slow, splits, instant)) = &miss {
        let (ours, ours_no_ns, hand, alone) = (&slow[0], &slow[1], &slow[2], &slow[3]);
        println!();
        println!(
            "miss (cold ids, 1 task, {} calls each, interleaved call by call, each started on a timer tick):",
            ours.len()
        );
        println!("  body alone (1 ms sleep)          {}", summary(alone));
        println!("  hand: GET + body + SET           {}", summary(hand));
        println!("  ours, namespace \"bench\"          {}", summary(ours));
        println!("  ours, no namespace               {}", summary(ours_no_ns));
        print_miss_ratios(
            ours,
            ours_no_ns,
            hand,
            "  (target: ours <= body + one GET + one SET)",
        );
        println!(
            "  where the time goes (medians, µs):   before the body     body    after the body"
        );
        for (name, split) in [
            ("ours, namespace \"bench\"", &splits[0]),
            ("ours, no namespace", &splits[1]),
            ("hand", &splits[2]),
            ("body alone", &splits[3]),
        ] {
            let part = |i: usize| median(&split.iter().map(|s| s[i]).collect::<Vec<_>>());
            println!(
                "    {name:<30} {:>15.1} {:>8.1} {:>17.1}",
                part(0),
                part(1),
                part(2)
            );
        }
        let (ours, ours_no_ns, hand) = (&instant[0], &instant[1], &instant[2]);
        println!(
            "  with a body that costs nothing ({} calls each):",
            ours.len()
        );
        println!("  hand: GET + SET                  {}", summary(hand));
        println!("  ours, namespace \"bench\"          {}", summary(ours));
        println!("  ours, no namespace               {}", summary(ours_no_ns));
        print_miss_ratios(ours, ours_no_ns, hand, "");
        println!(
            "  redis commands of 20 misses of ours (namespace \"bench\"): {}",
            show_counts(commands, true)
        );
    }

    match &counted {
        Some(Ok(rows)) if !rows.is_empty() => {
            println!();
            println!(
                "instructions per hot hit, counted by callgrind ({CALLGRIND_HITS} hits, 1 task, \
                 current-thread runtime, every thread of the process; the same from run to run):"
            );
            let of = |v: Variant| rows.iter().find(|r| r.0 == v).map(|r| r.1);
            for (variant, per_hit, _) in rows {
                let vs_hand = of(Variant::Hand)
                    .map(|hand| format!("   {:.2}x hand's", per_hit / hand))
                    .unwrap_or_default();
                println!("  {:<8} {:>9}{vs_hand}", variant.name(), grouped(*per_hit));
            }
            if let Some((_, _, part)) = rows.iter().find(|r| r.0 == Variant::Ours) {
                println!(
                    "  ours, the functions with the most instructions of their own ({}):",
                    part.display()
                );
                for line in top_functions(part, 12) {
                    println!("    {line}");
                }
            }
        }
        Some(Err(why)) => println!("\ninstructions per hit: not counted ({why})"),
        _ => {}
    }

    if !hot_commands.is_empty() {
        println!();
        println!("redis INFO commandstats during ours' hot phase (round 1, settle + measurement):");
        for (tasks, calls, counts) in &hot_commands {
            println!(
                "  tasks {tasks:>2}: {calls} calls -> {}",
                show_counts(counts, false)
            );
        }
    }
    let stats = cache_runtime::stats();
    println!(
        "cache_runtime::stats(): hits {}, misses {}, bypassed {}, errors {}, decode failures {}; \
         cached crate errors {}",
        stats.hits,
        stats.misses,
        stats.bypassed,
        stats.errors,
        stats.decode_failures,
        CACHED_ERRORS.load(Ordering::Relaxed)
    );
    let server_cpu = cpu_time(&server.child.id().to_string());
    drop(rt);
    drop(server);
    let (busy, steal, total) = machine_cpu();
    let (busy, steal, total) = (
        busy.saturating_sub(machine_before.0).as_secs_f64(),
        steal.saturating_sub(machine_before.1).as_secs_f64(),
        total
            .saturating_sub(machine_before.2)
            .as_secs_f64()
            .max(0.01),
    );
    let own = (cpu_time("self") + children_cpu_time())
        .saturating_sub(self_before)
        .as_secs_f64()
        + server_cpu.as_secs_f64();
    // Time stolen by the hypervisor is also counted in the processes' own times, so "others"
    // is what is left of the busy time after this bench's processes, at least zero.
    println!(
        "machine CPU during the run, in % of all cores: busy {:.0} (steal {:.0}); this bench \
         with its redis-server and redis-benchmark {:.0}; other processes {:.0}",
        100.0 * busy / total,
        100.0 * steal / total,
        100.0 * own / total,
        100.0 * (busy - own).max(0.0) / total,
    );
    println!(
        "load average before {load_before}, after {}; bench wall time {:.1} s",
        loadavg(),
        wall.elapsed().as_secs_f64()
    );
}
