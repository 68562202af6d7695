//! Key derivation, through the public macro API, as properties: two distinct argument tuples
//! never share an entry, equal ones always do (in one process, on the memory backend, by
//! counting bodies; across processes, with `key_probe` against a real Redis), and every key
//! written is `cache:{namespace}:{module path}::{fn}:{md5 hex of the JSON array of the args}`.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
use md5::{Digest, Md5};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use support::{exclusive, RedisServer};

/// Body runs, one counter per function below.
static RUNS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn ran(i: usize) {
    RUNS[i].fetch_add(1, Ordering::SeqCst);
}

// Each returns (something derived from) its arguments, so a call served another
// argument's entry returns a wrong value as well as skipping its body.

#[cache(namespace = "props")]
async fn by_string(s: String) -> String {
    ran(0);
    s
}

#[cache(namespace = "props")]
async fn by_u64(n: u64) -> u64 {
    ran(1);
    n
}

#[cache(namespace = "props")]
async fn by_vec(v: Vec<String>) -> Vec<String> {
    ran(2);
    v
}

/// Returns a plain value, so `None` is cached like `Some` (an `Option` return would not be).
#[cache(namespace = "props")]
async fn by_option(o: Option<i32>) -> String {
    ran(3);
    format!("{o:?}")
}

#[cache(namespace = "props")]
async fn by_tuple(t: (String, u64)) -> (String, u64) {
    ran(4);
    t
}

#[cache(namespace = "props")]
async fn by_pair(a: String, b: String) -> (String, String) {
    ran(5);
    (a, b)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // No regression files written next to the sources; a failure prints its input.
        failure_persistence: None,
        ..Config::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Characters that have a meaning somewhere: in JSON (quotes, backslashes, commas, control
/// characters), in the key layout (`:`), in Redis glob patterns (`* ? [ ]`), plus unicode.
const TRICKY: &[char] = &[
    'a', 'b', ':', ',', '"', '\'', '\\', '\n', '\r', '\t', '\0', '\u{7f}', '*', '?', '[', ']', '{',
    '}', ' ', 'é', 'ß', '😀', '\u{2028}', '\u{feff}', '/',
];

/// Short strings over [`TRICKY`] (so equal strings and concatenation-equal pairs are
/// frequent), or any unicode string.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(TRICKY), 0..5)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0..4u64, any::<u64>(), Just(u64::MAX)]
}

fn maybe() -> impl Strategy<Value = Option<i32>> {
    prop::option::of(prop_oneof![-2..2i32, any::<i32>()])
}

fn words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

/// `a` and `b` split one string at two places: `("ab", "c")` against `("a", "bc")`.
fn split_pairs() -> impl Strategy<Value = ((String, String), (String, String))> {
    (
        prop::collection::vec(prop::sample::select(TRICKY), 0..6),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(chars, i, j)| {
            let split = |at: usize| {
                (
                    chars[..at].iter().collect::<String>(),
                    chars[at..].iter().collect::<String>(),
                )
            };
            (
                split(i.index(chars.len() + 1)),
                split(j.index(chars.len() + 1)),
            )
        })
}

/// Holds the turn and the runtime of a test on the memory backend.
struct Memory {
    rt: tokio::runtime::Runtime,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

fn memory() -> Memory {
    let rt = runtime();
    let turn = rt.block_on(exclusive());
    rt.block_on(cache_runtime::init(
        CacheConfig::memory().max_capacity(100_000),
    ))
    .unwrap();
    Memory { rt, _turn: turn }
}

/// On an empty cache: `f(a)` runs the body; `f(a)` again (a clone) does not; `f(b)` runs it
/// exactly when `b != a`, and returns `b`'s value; `f(b)` again does not.
fn distinct_never_share_equal_always_do<T, R, Fut>(
    m: &Memory,
    runs: usize,
    f: impl Fn(T) -> Fut,
    expect: impl Fn(&T) -> R,
    a: T,
    b: T,
) -> Result<(), TestCaseError>
where
    T: Clone + PartialEq + Debug,
    R: PartialEq + Debug,
    Fut: Future<Output = R>,
{
    m.rt.block_on(async {
        clear_cache(Scope::all()).await.unwrap();
        let body = || RUNS[runs].load(Ordering::SeqCst);
        let call = async |x: &T, want_runs: u64, what: &str| {
            let before = body();
            let got = f(x.clone()).await;
            prop_assert_eq!(&got, &expect(x), "{} returned another value", what);
            prop_assert_eq!(body() - before, want_runs, "{}: body runs", what);
            Ok(())
        };
        call(&a, 1, "first call of a").await?;
        call(&a, 0, "a again").await?;
        let distinct = a != b;
        call(&b, u64::from(distinct), "first call of b").await?;
        call(&b, 0, "b again").await?;
        call(&a, 0, "a after b").await
    })
}

#[test]
fn strings_share_an_entry_exactly_when_equal() {
    let m = memory();
    proptest!(config(256), |(a in text(), b in text())| {
        distinct_never_share_equal_always_do(&m, 0, by_string, String::clone, a, b)?;
    });
}

#[test]
fn integers_share_an_entry_exactly_when_equal() {
    let m = memory();
    proptest!(config(256), |(a in number(), b in number())| {
        distinct_never_share_equal_always_do(&m, 1, by_u64, |n| *n, a, b)?;
    });
}

#[test]
fn vectors_share_an_entry_exactly_when_equal() {
    let m = memory();
    proptest!(config(256), |(a in words(), b in words())| {
        distinct_never_share_equal_always_do(&m, 2, by_vec, Vec::clone, a, b)?;
    });
    // The joins that a separator-based key would confuse.
    let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (a, b) in [
        (v(&["a,b"]), v(&["a", "b"])),
        (v(&["a\",\"b"]), v(&["a", "b"])),
        (v(&[""]), v(&[])),
        (v(&["", ""]), v(&[""])),
        (v(&["a:b"]), v(&["a", "b"])),
    ] {
        distinct_never_share_equal_always_do(&m, 2, by_vec, Vec::clone, a, b).unwrap();
    }
}

#[test]
fn options_share_an_entry_exactly_when_equal() {
    let m = memory();
    proptest!(config(256), |(a in maybe(), b in maybe())| {
        distinct_never_share_equal_always_do(&m, 3, by_option, |o| format!("{o:?}"), a, b)?;
    });
    distinct_never_share_equal_always_do(&m, 3, by_option, |o| format!("{o:?}"), None, Some(0))
        .unwrap();
}

#[test]
fn tuples_share_an_entry_exactly_when_equal() {
    let m = memory();
    proptest!(config(256), |(a in (text(), number()), b in (text(), number()))| {
        distinct_never_share_equal_always_do(&m, 4, by_tuple, Clone::clone, a, b)?;
    });
}

#[test]
fn argument_lists_share_an_entry_exactly_when_equal() {
    let m = memory();
    let pair = |(a, b): (String, String)| by_pair(a, b);
    proptest!(config(256), |((a, b) in split_pairs())| {
        distinct_never_share_equal_always_do(&m, 5, pair, Clone::clone, a, b)?;
    });
    proptest!(config(256), |(a in (text(), text()), b in (text(), text()))| {
        distinct_never_share_equal_always_do(&m, 5, pair, Clone::clone, a, b)?;
    });
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    for (a, b) in [
        (s("ab", "c"), s("a", "bc")),
        (s("a,b", ""), s("a", "b")),
        (s("a\",\"b", ""), s("a", "b")),
        (s("a:", "b"), s("a", ":b")),
        (s("", ""), s("", " ")),
    ] {
        distinct_never_share_equal_always_do(&m, 5, pair, Clone::clone, a, b).unwrap();
    }
}

/// `md5` hex of the JSON array of `args` (a tuple serializes as that array).
fn md5_of_args(args: &impl Serialize) -> String {
    let json = serde_json::to_vec(args).unwrap();
    format!("{:x}", Md5::digest(&json))
}

fn expected_key(namespace: &str, function: &str, args: &impl Serialize) -> String {
    format!("cache:{namespace}:{function}:{}", md5_of_args(args))
}

async fn exists(conn: &mut MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u64>(conn)
        .await
        .unwrap()
        == 1
}

#[test]
fn keys_written_to_redis_have_the_documented_layout() {
    let rt = runtime();
    let _turn = rt.block_on(exclusive());
    let server = RedisServer::start();
    rt.block_on(cache_runtime::init(CacheConfig::redis(server.url())))
        .unwrap();
    let admin = rt.block_on(server.client());
    let function = |name: &str| format!("{}::{name}", module_path!());
    proptest!(config(64), |(s in text(), n in number(), v in words(), o in maybe(), t in (text(), number()))| {
        let mut admin = admin.clone();
        rt.block_on(async {
            let _: () = redis::cmd("FLUSHALL").query_async(&mut admin).await.unwrap();
            by_string(s.clone()).await;
            by_u64(n).await;
            by_vec(v.clone()).await;
            by_option(o).await;
            by_tuple(t.clone()).await;
            by_pair(s.clone(), t.0.clone()).await;
            let expected: BTreeSet<String> = [
                expected_key("props", &function("by_string"), &(&s,)),
                expected_key("props", &function("by_u64"), &(n,)),
                expected_key("props", &function("by_vec"), &(&v,)),
                expected_key("props", &function("by_option"), &(o,)),
                expected_key("props", &function("by_tuple"), &(&t,)),
                expected_key("props", &function("by_pair"), &(&s, &t.0)),
            ]
            .into();
            for key in &expected {
                prop_assert!(exists(&mut admin, key).await, "missing {}", key);
            }
            let mut written: Vec<String> = redis::cmd("KEYS").arg("cache:*").query_async(&mut admin).await.unwrap();
            written.retain(|k| k != "cache:props");
            let written: BTreeSet<String> = written.into_iter().collect();
            prop_assert_eq!(written, expected);
            Ok(())
        })?;
    });
}

type ProbeArgs = (String, u64, Vec<String>, Option<i32>, (String, u64));

fn probe_args() -> impl Strategy<Value = ProbeArgs> {
    (text(), number(), words(), maybe(), (text(), number()))
}

/// Runs `key_probe` on `input` (one JSON array per line) against `url`; its outcomes.
fn run_probe(url: &str, input: &str) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_key_probe"))
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start key_probe");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(input.as_bytes())
        .expect("write to key_probe");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("key_probe did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "key_probe failed: {status}");
    let out = reader.join().unwrap().expect("key_probe's output");
    out.lines().map(str::to_owned).collect()
}

async fn entries(admin: &mut MultiplexedConnection) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cache:*")
        .query_async(admin)
        .await
        .unwrap();
    // The namespace's index is not an entry.
    keys.into_iter().filter(|k| k != "cache:probe").collect()
}

#[test]
fn processes_derive_the_same_keys() {
    let rt = runtime();
    let _turn = rt.block_on(exclusive());
    let server = RedisServer::start();
    let url = server.url();
    let admin = rt.block_on(server.client());
    let cases = (
        prop::collection::vec(probe_args(), 1..20),
        any::<prop::sample::Index>(),
    );
    proptest!(config(6), |((mut calls, repeat) in cases)| {
        let mut admin = admin.clone();
        // Some arguments twice: equal arguments share a key within the process too.
        let again = calls[repeat.index(calls.len())].clone();
        calls.push(again);
        let input: String = calls
            .iter()
            .map(|args| serde_json::to_string(args).unwrap() + "\n")
            .collect();
        let expected_keys: BTreeSet<String> = calls
            .iter()
            .map(|args| expected_key("probe", "key_probe::probe_key", args))
            .collect();
        let mut seen = HashSet::new();
        let expected_outcomes: Vec<&str> = calls
            .iter()
            .map(|args| if seen.insert(args.clone()) { "miss" } else { "hit" })
            .collect();
        rt.block_on(async {
            let _: () = redis::cmd("FLUSHALL").query_async(&mut admin).await.unwrap();
        });

        // A first process on an empty Redis: misses, and writes the documented keys.
        let first = run_probe(&url, &input);
        prop_assert_eq!(&first, &expected_outcomes);
        let written = rt.block_on(entries(&mut admin));
        prop_assert_eq!(&written, &expected_keys);

        // A second process finds every entry the first wrote.
        let second = run_probe(&url, &input);
        prop_assert!(second.iter().all(|o| o == "hit"), "{:?}", second);
        prop_assert_eq!(second.len(), calls.len());
        prop_assert_eq!(&rt.block_on(entries(&mut admin)), &written);

        // A third, on an emptied Redis, derives the same keys on its own.
        rt.block_on(async {
            let _: () = redis::cmd("FLUSHALL").query_async(&mut admin).await.unwrap();
        });
        let third = run_probe(&url, &input);
        prop_assert_eq!(&third, &expected_outcomes);
        prop_assert_eq!(&rt.block_on(entries(&mut admin)), &written);
    });
}
