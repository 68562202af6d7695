//! `bash scripts/http-bench.sh` (or `cargo bench --bench http` with `wrk` installed): hot GETs
//! over real HTTP through one axum server, at 64 connections, for four handlers that serve the
//! same JSON:
//!
//! - `cache`: `/cache/{id}`, a handler with `#[cache(expire = 600, namespace = "bench")]` on a
//!   [`Cache`] of its own over Redis, returning `Json<Product>`;
//! - `layer`: `/layer/{id}`, a plain handler returning `Json<Product>` behind
//!   `ResponseCacheLayer::new("pages")` (TTL 600 s) on the same [`Cache`];
//! - `hand`: `/hand/{id}`, cache-aside written by hand on one redis-rs
//!   `MultiplexedConnection` (cloned per request): `GET` the key (MD5 of the id, like
//!   `#[cache]` derives its keys), the stored bytes as `application/json` on a hit, else the
//!   "database" call, `SET .. EX 600` and its JSON;
//! - `uncached`: `/uncached/{id}`, the "database" call on every request.
//!
//! The workload: `Product` (about 150 bytes of JSON) for an id in 1..=1000; the "database"
//! call, the same for all four (and what the cached ones run on a miss), sleeps 1 ms and
//! builds the product. All 1000 ids of each cached variant are requested once before anything
//! is measured, then every id of every variant is checked for the same body (and `X-Cache:
//! HIT` from the layer), and each variant gets an unrecorded 1 s run of `wrk`.
//!
//! Method: the server runs in this process on a tokio multi-thread runtime with 2 workers,
//! on 127.0.0.1 at a free port. `wrk -t2 -c64 -d{secs}s --latency` drives it with a Lua script
//! that picks a random id in 1..=1000 for every request (each wrk thread seeded apart). In each
//! of `HTTP_BENCH_ROUNDS` rounds the four variants run back to back, in an order rotated by one
//! each round, so the machine's slow spells fall on all of them alike. Requests/s and the p99
//! come from wrk's `Requests/sec:` and the `99%` line of its latency distribution. The summary
//! gives each variant's median requests/s and median p99, and the ratios `cache/hand` and
//! `layer/hand` both as ratios of the medians and as medians of the per-round ratios (the
//! variants of one round ran back to back), next to the targets of the issue (throughput
//! ≥ 0.95×, p99 ≤ 1.1× of hand-cached) and how many rounds met each. Every wrk run must report
//! no socket errors and no non-2xx responses; the ones that did are listed. The "database"
//! calls during the measured runs are counted per variant (0 for the cached ones: every
//! request a hit).
//!
//! On a 2-core machine, wrk's two threads, the server's two workers and redis-server share
//! the cores: the numbers are those of the whole box, as in the issue's reference.
//!
//! Environment: `HTTP_BENCH_ROUNDS` (default 5, at most 50), `HTTP_BENCH_SECS` (seconds per
//! run, default 5, at most 120), `WRK` (the wrk binary, default `wrk`), `REDIS_SERVER` (the
//! redis-server binary).
//!
//! The bench starts its own `redis-server` on a free loopback port (never 6379) and stops it
//! when done, on panic too. Every loop is bounded; each wrk run is killed if it overruns its
//! duration by 30 s, and a watchdog kills redis-server and wrk and exits if the whole run
//! takes longer than its rounds should.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cache_runtime::web::ResponseCacheLayer;
use cache_runtime::{Cache, CacheConfig};
use common::{make_product, Product, RedisServer};
use md5::{Digest, Md5};
use redis::aio::MultiplexedConnection;

/// Ids served; every request asks for one of these.
const IDS: u64 = 1_000;
/// Expiry of every entry, in seconds (far longer than a run).
const TTL: u64 = 600;
/// wrk's threads and connections.
const WRK_THREADS: usize = 2;
const CONNECTIONS: usize = 64;
/// The unrecorded run of each variant before the rounds.
const WARM_SECS: u64 = 1;
/// A wrk run is killed if it is still running this long after its duration.
const WRK_GRACE: Duration = Duration::from_secs(30);
/// Bounds of the environment's settings.
const MAX_ROUNDS: usize = 50;
const MAX_SECS: u64 = 120;
/// Pid of the wrk run in progress (0: none), for the watchdog.
static WRK_PID: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------------------------
// The server

/// "Database" calls per variant.
#[derive(Default)]
struct Calls {
    cache: AtomicU64,
    layer: AtomicU64,
    hand: AtomicU64,
    uncached: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    cache: Cache,
    /// The hand-written variant's one connection, cloned per request.
    conn: MultiplexedConnection,
    calls: Arc<Calls>,
}

/// The "database" call of every variant: 1 ms of query, then the product.
async fn database(id: u64, calls: &AtomicU64) -> Product {
    calls.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    make_product(id)
}

#[cache_runtime::cache(expire = 600, namespace = "bench", cache = &state.cache)]
async fn cache_handler(State(state): State<AppState>, Path(id): Path<u64>) -> Json<Product> {
    Json(database(id, &state.calls.cache).await)
}

/// Behind `ResponseCacheLayer`.
async fn layer_handler(State(state): State<AppState>, Path(id): Path<u64>) -> Json<Product> {
    Json(database(id, &state.calls.layer).await)
}

async fn uncached_handler(State(state): State<AppState>, Path(id): Path<u64>) -> Json<Product> {
    Json(database(id, &state.calls.uncached).await)
}

/// The hand-written variant's key: MD5 hex of the JSON array of the arguments, like `#[cache]`
/// derives its own, so key derivation costs about the same.
fn hand_key(id: u64) -> String {
    let json = serde_json::to_vec(&[id]).expect("a u64 serializes");
    format!("bench-hand:{:x}", Md5::digest(&json))
}

/// Cache-aside by hand on one `MultiplexedConnection`: the stored JSON as it is on a hit; on a
/// miss (or a Redis error: it fails open) the "database" call, stored unless Redis failed.
async fn hand_handler(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    let key = hand_key(id);
    let mut conn = state.conn.clone();
    let cached: redis::RedisResult<Option<Vec<u8>>> =
        redis::cmd("GET").arg(&key).query_async(&mut conn).await;
    if let Ok(Some(bytes)) = cached {
        return ([(CONTENT_TYPE, JSON)], bytes).into_response();
    }
    let product = database(id, &state.calls.hand).await;
    let json = serde_json::to_vec(&product).expect("a product serializes");
    if cached.is_ok() {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(&json)
            .arg("EX")
            .arg(TTL)
            .query_async(&mut conn)
            .await;
    }
    ([(CONTENT_TYPE, JSON)], json).into_response()
}

fn app(state: AppState) -> Router {
    let layered = Router::new()
        .route("/layer/{id}", get(layer_handler))
        .layer(
            ResponseCacheLayer::new("pages")
                .cache(state.cache.clone())
                .ttl(Duration::from_secs(TTL)),
        );
    Router::new()
        .route("/cache/{id}", get(cache_handler))
        .route("/hand/{id}", get(hand_handler))
        .route("/uncached/{id}", get(uncached_handler))
        .merge(layered)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// The variants

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Cache,
    Layer,
    Hand,
    Uncached,
}

const VARIANTS: [Variant; 4] = [
    Variant::Cache,
    Variant::Layer,
    Variant::Hand,
    Variant::Uncached,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Cache => "cache",
            Variant::Layer => "layer",
            Variant::Hand => "hand",
            Variant::Uncached => "uncached",
        }
    }

    fn prefix(self) -> String {
        format!("/{}/", self.name())
    }

    fn index(self) -> usize {
        VARIANTS.iter().position(|v| *v == self).expect("listed")
    }

    fn calls(self, calls: &Calls) -> u64 {
        match self {
            Variant::Cache => &calls.cache,
            Variant::Layer => &calls.layer,
            Variant::Hand => &calls.hand,
            Variant::Uncached => &calls.uncached,
        }
        .load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client for warming and checking (one keep-alive connection)

struct Client {
    reader: BufReader<TcpStream>,
    host: String,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the bench server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
            // What wrk sends, so that the layer's keys (which include the host) are the same.
            host: format!("127.0.0.1:{}", addr.port()),
        }
    }

    fn get(&mut self, path: &str) -> Reply {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send a request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?} for {path}"));
        let mut headers = Vec::new();
        for _ in 0..100 {
            line.clear();
            self.reader.read_line(&mut line).expect("a header line");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = reply
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no content-length from {path}"));
        assert!(length <= 1 << 20, "{path}: a body of {length} bytes");
        reply.body = vec![0; length];
        self.reader
            .read_exact(&mut reply.body)
            .expect("the body of a response");
        reply
    }
}

// ---------------------------------------------------------------------------------------------
// wrk

/// Picks a random id in 1..=IDS for every request, under the path prefix given after `--`.
fn lua_script() -> String {
    format!(
        r#"-- written by benches/http.rs
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("seed", threads)
end
function init(args)
   prefix = args[1]
   math.randomseed(os.time() * 1000 + seed * 7919)
end
request = function()
   return wrk.format("GET", prefix .. math.random(1, {IDS}))
end
"#
    )
}

/// What one wrk run reported.
#[derive(Clone, Debug, Default)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    non_2xx: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
}

impl Run {
    fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors.iter().sum::<u64>()
    }
}

/// wrk's durations: `987.00us`, `2.60ms`, `1.02s`, `1.50m`; in microseconds.
fn parse_duration_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3_600e6,
        _ => return None,
    };
    Some(number * scale)
}

fn parse_wrk(output: &str) -> Result<Run, String> {
    let mut run = Run::default();
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    let mut in_distribution = false;
    for line in output.lines() {
        let line = line.trim();
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some(rest) = line.strip_prefix("50%") {
                p50 = parse_duration_us(rest);
                continue;
            }
            if let Some(rest) = line.strip_prefix("99%") {
                p99 = parse_duration_us(rest);
                in_distribution = false;
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = rest.trim().parse().unwrap_or(u64::MAX);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (slot, part) in run.socket_errors.iter_mut().zip(rest.split(',')) {
                *slot = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u64::MAX);
            }
        } else if line.contains(" requests in ") {
            requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        }
    }
    match (rps, p50, p99, requests) {
        (Some(rps), Some(p50), Some(p99), Some(requests)) => {
            run.rps = rps;
            run.p50_us = p50;
            run.p99_us = p99;
            run.requests = requests;
            Ok(run)
        }
        _ => Err(format!("could not read wrk's output:\n{output}")),
    }
}

/// One wrk run of `variant` for `secs` seconds; killed if it overruns by `WRK_GRACE`.
fn wrk(bin: &str, addr: SocketAddr, script: &FsPath, variant: Variant, secs: u64) -> Run {
    let out_path = script.with_extension(format!("{}.out", variant.name()));
    let out = std::fs::File::create(&out_path).expect("wrk's output file");
    let mut child = Command::new(bin)
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}"))
        .arg("--")
        .arg(variant.prefix())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin}: {e} (bash scripts/http-bench.sh installs it)")
        });
    WRK_PID.store(child.id(), Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(secs) + WRK_GRACE;
    let status = loop {
        match child.try_wait().expect("wait for wrk") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                WRK_PID.store(0, Ordering::SeqCst);
                panic!(
                    "wrk on {} overran {secs} s by {WRK_GRACE:?}",
                    variant.name()
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    WRK_PID.store(0, Ordering::SeqCst);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        status.success(),
        "wrk on {} failed ({status}):\n{output}{stderr}",
        variant.name()
    );
    parse_wrk(&output).unwrap_or_else(|e| panic!("{e}{stderr}"))
}

// ---------------------------------------------------------------------------------------------
// Run control

/// A temp dir of this run (the Lua script, wrk's output), removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env_number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    name: &str,
    default: T,
    min: T,
    max: T,
) -> T {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => panic!("{name}={text:?}: expected a number in {min}..={max}"),
        },
        Err(_) => default,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

fn wrk_version(bin: &str) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|| "?".into())
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The machine's busy and total CPU time so far (`/proc/stat`, in ticks).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// This process's CPU time so far (user + system, both workers), in ticks.
fn self_cpu() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses): state, ppid, ..., utime (the 12th), stime.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| -> u64 {
        rest.split_whitespace()
            .nth(n)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let rounds: usize = env_number("HTTP_BENCH_ROUNDS", 5, 1, MAX_ROUNDS);
    let secs: u64 = env_number("HTTP_BENCH_SECS", 5, 1, MAX_SECS);
    let wrk_bin = std::env::var("WRK").unwrap_or_else(|_| "wrk".into());
    let wall = Instant::now();

    let server = RedisServer::start();
    let runs = (rounds * VARIANTS.len()) as u64;
    let limit = Duration::from_secs(120 + VARIANTS.len() as u64 * (WARM_SECS + 5))
        + Duration::from_secs(runs * (secs + 5));
    let server_pid = server.child.id();
    let _watchdog = common::Watchdog::arm("http", limit, move || {
        vec![server_pid, WRK_PID.load(Ordering::SeqCst)]
    });
    let url = server.url();

    let dir =
        TempDir(std::env::temp_dir().join(format!("cache-bench-http-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let script = dir.0.join("random-id.lua");
    std::fs::write(&script, lua_script()).expect("write the Lua script");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let calls = Arc::new(Calls::default());
    let (addr, serving) = rt.block_on(async {
        let cache = Cache::new(CacheConfig::redis(url.clone()))
            .await
            .expect("a Cache on the bench's redis-server");
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("a multiplexed connection");
        let state = AppState {
            cache,
            conn,
            calls: Arc::clone(&calls),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bench server");
        let addr = listener.local_addr().expect("its address");
        let serving = tokio::spawn(async move {
            axum::serve(listener, app(state))
                .await
                .expect("the bench server");
        });
        (addr, serving)
    });

    // Warm every id of each cached variant, then check that all four serve the same body and
    // that the layer answers from its cache.
    let mut client = Client::connect(addr);
    for variant in [Variant::Cache, Variant::Layer, Variant::Hand] {
        for id in 1..=IDS {
            let reply = client.get(&format!("{}{id}", variant.prefix()));
            assert_eq!(reply.status, 200, "warming {}{id}", variant.prefix());
        }
    }
    let mut body_len = 0;
    for id in 1..=IDS {
        let expected = serde_json::to_vec(&make_product(id)).expect("json");
        body_len = body_len.max(expected.len());
        for variant in VARIANTS {
            if variant == Variant::Uncached && id % 20 != 0 {
                continue;
            }
            let path = format!("{}{id}", variant.prefix());
            let reply = client.get(&path);
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(
                reply.body,
                expected,
                "{path}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            assert!(
                reply
                    .header("content-type")
                    .is_some_and(|v| v.starts_with("application/json")),
                "{path}: content-type {:?}",
                reply.header("content-type")
            );
            if variant == Variant::Layer {
                assert_eq!(reply.header("x-cache"), Some("HIT"), "{path}");
            }
        }
    }
    drop(client);
    let warm_calls: Vec<u64> = VARIANTS.iter().map(|v| v.calls(&calls)).collect();
    for (variant, n) in VARIANTS.iter().zip(&warm_calls) {
        if *variant != Variant::Uncached {
            assert_eq!(*n, IDS, "{}: database calls while warming", variant.name());
        }
    }
    for variant in VARIANTS {
        let run = wrk(&wrk_bin, addr, &script, variant, WARM_SECS);
        assert_eq!(
            run.errors(),
            0,
            "{}: errors in the warm-up run",
            variant.name()
        );
    }
    let before: Vec<u64> = VARIANTS.iter().map(|v| v.calls(&calls)).collect();
    let load_before = loadavg();
    let (busy_before, total_before) = machine_cpu();
    let self_before = self_cpu();

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "http: {} over {} connections ({} threads), {secs} s per run, {rounds} rounds, \
         the order rotated each round",
        wrk_version(&wrk_bin),
        CONNECTIONS,
        WRK_THREADS
    );
    println!(
        "  server: axum 0.8 in this process, tokio multi-thread (2 workers), {nproc} cores, \
         redis-server of its own on 127.0.0.1:{}",
        server.port
    );
    println!(
        "  workload: GET /{{variant}}/{{id}}, a random id in 1..={IDS} per request (wrk Lua \
         script), all warmed; body: Product JSON of {body_len} bytes; the \"database\" call \
         (uncached, and every miss) sleeps 1 ms"
    );
    println!(
        "  variants: cache = #[cache] handler -> Json<Product>; layer = ResponseCacheLayer over \
         a plain Json handler; hand = cache-aside on one redis-rs MultiplexedConnection (stored \
         bytes replied as they are); uncached = the database call every time"
    );
    println!();

    let mut results: Vec<Vec<Run>> = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    let mut problems: Vec<String> = Vec::new();
    println!(
        "{:<6} {:<28} {}",
        "round",
        "order",
        VARIANTS
            .iter()
            .map(|v| format!("{:>22}", format!("{} req/s  p99", v.name())))
            .collect::<String>()
    );
    for round in 0..rounds {
        let order: Vec<Variant> = (0..VARIANTS.len())
            .map(|i| VARIANTS[(i + round) % VARIANTS.len()])
            .collect();
        let mut this_round: Vec<Option<Run>> = vec![None; VARIANTS.len()];
        for variant in &order {
            let run = wrk(&wrk_bin, addr, &script, *variant, secs);
            if run.errors() != 0 {
                problems.push(format!(
                    "round {} {}: {} non-2xx, socket errors connect {} read {} write {} \
                     timeout {} (of {} requests)",
                    round + 1,
                    variant.name(),
                    run.non_2xx,
                    run.socket_errors[0],
                    run.socket_errors[1],
                    run.socket_errors[2],
                    run.socket_errors[3],
                    run.requests
                ));
            }
            this_round[variant.index()] = Some(run);
        }
        let order_text = order.iter().map(|v| v.name()).collect::<Vec<_>>().join(",");
        let cells: String = this_round
            .iter()
            .map(|r| {
                let r = r.as_ref().expect("every variant ran");
                format!("{:>22}", format!("{:.0}  {}", r.rps, ms(r.p99_us)))
            })
            .collect();
        println!("{:<6} {:<28} {cells}", round + 1, order_text);
        for (slot, run) in results.iter_mut().zip(this_round) {
            slot.push(run.expect("every variant ran"));
        }
    }
    let load_after = loadavg();
    let (busy_after, total_after) = machine_cpu();
    let self_after = self_cpu();
    let measured_calls: Vec<u64> = VARIANTS
        .iter()
        .zip(&before)
        .map(|(v, b)| v.calls(&calls) - b)
        .collect();

    println!();
    println!(
        "{:<9} {:>13} {:>11} {:>11} {:>14} {:>15} {:>8}",
        "variant",
        "median req/s",
        "median p50",
        "median p99",
        "requests",
        "database calls",
        "errors"
    );
    let mut med_rps = [0.0; 4];
    let mut med_p99 = [0.0; 4];
    for (i, variant) in VARIANTS.iter().enumerate() {
        let runs = &results[i];
        med_rps[i] = median(&runs.iter().map(|r| r.rps).collect::<Vec<_>>());
        med_p99[i] = median(&runs.iter().map(|r| r.p99_us).collect::<Vec<_>>());
        let med_p50 = median(&runs.iter().map(|r| r.p50_us).collect::<Vec<_>>());
        println!(
            "{:<9} {:>13.0} {:>11} {:>11} {:>14} {:>15} {:>8}",
            variant.name(),
            med_rps[i],
            ms(med_p50),
            ms(med_p99[i]),
            runs.iter().map(|r| r.requests).sum::<u64>(),
            measured_calls[i],
            runs.iter().map(Run::errors).sum::<u64>()
        );
    }

    println!();
    println!(
        "{:<16} {:>16} {:>18} {:>8} {:>12}",
        "ratio", "of the medians", "median of rounds", "target", "rounds met"
    );
    let hand = Variant::Hand.index();
    for variant in [Variant::Cache, Variant::Layer] {
        let i = variant.index();
        let per_round_rps: Vec<f64> = (0..rounds)
            .map(|r| results[i][r].rps / results[hand][r].rps)
            .collect();
        let per_round_p99: Vec<f64> = (0..rounds)
            .map(|r| results[i][r].p99_us / results[hand][r].p99_us)
            .collect();
        let met_rps = per_round_rps.iter().filter(|r| **r >= 0.95).count();
        let met_p99 = per_round_p99.iter().filter(|r| **r <= 1.1).count();
        println!(
            "{:<16} {:>16.3} {:>18.3} {:>8} {:>12}",
            format!("{}/hand req/s", variant.name()),
            med_rps[i] / med_rps[hand],
            median(&per_round_rps),
            ">= 0.95",
            format!("{met_rps}/{rounds}")
        );
        println!(
            "{:<16} {:>16.3} {:>18.3} {:>8} {:>12}",
            format!("{}/hand p99", variant.name()),
            med_p99[i] / med_p99[hand],
            median(&per_round_p99),
            "<= 1.10",
            format!("{met_p99}/{rounds}")
        );
    }
    let uncached = Variant::Uncached.index();
    println!(
        "{:<16} {:>16.3} {:>18.3}",
        "uncached/hand",
        med_rps[uncached] / med_rps[hand],
        median(
            &(0..rounds)
                .map(|r| results[uncached][r].rps / results[hand][r].rps)
                .collect::<Vec<_>>()
        )
    );
    println!();
    println!(
        "the issue's reference on a 2-core machine: axum hand-cached 51-55k req/s at 64 \
         connections (p99 2.6 ms); FastAPI + fastapi-cache2 under uvicorn 1.3-1.7k req/s \
         (p99 78-90 ms)"
    );
    if problems.is_empty() {
        println!("every wrk run: 0 non-2xx responses, 0 socket errors");
    } else {
        println!("wrk runs with errors:");
        for problem in &problems {
            println!("  {problem}");
        }
    }
    let ticks = (total_after - total_before).max(1) as f64;
    println!(
        "machine over the rounds: {:.0} % of {nproc} cores busy, {:.0} % in this process (the \
         server), the rest in wrk, redis-server and anything else running; load average \
         {load_before} before, {load_after} after",
        100.0 * (busy_after - busy_before) as f64 / ticks,
        100.0 * (self_after - self_before) as f64 / ticks,
    );
    println!("wall time {:.0} s", wall.elapsed().as_secs_f64());

    serving.abort();
    drop(rt);
    drop(server);
    if !problems.is_empty() {
        std::process::exit(1);
    }
}
