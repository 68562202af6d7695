//! The behavioural suite, run against every backend (see `tests/memory.rs`, `tests/redis.rs`).
//! Each case assumes `init` was just called with a fresh, empty backend.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{cache, clear_cache, CacheError, Scope};
use serde::{Deserialize, Serialize};

static RUNS: Runs = Runs::new();

/// Body-run counters, one per function of this suite.
pub struct Runs([AtomicUsize; 32]);

impl Runs {
    const fn new() -> Self {
        Self([const { AtomicUsize::new(0) }; 32])
    }
    fn bump(&self, i: usize) {
        self.0[i].fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self, i: usize) -> usize {
        self.0[i].load(Ordering::SeqCst)
    }
}

/// Runs `f` and returns its result with how many times body `i` ran meanwhile.
async fn counting<T>(i: usize, f: impl std::future::Future<Output = T>) -> (T, usize) {
    let before = RUNS.get(i);
    let out = f.await;
    (out, RUNS.get(i) - before)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price_cents: u64,
    pub tags: Vec<String>,
}

#[cache(expire = 300, namespace = "catalog")]
pub async fn get_product(product_id: u64) -> Product {
    RUNS.bump(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Product {
        id: product_id,
        name: format!("product {product_id}"),
        price_cents: product_id * 100,
        tags: vec!["a".into(), "b".into()],
    }
}

pub async fn miss_then_hit() {
    let (first, runs) = counting(0, get_product(42)).await;
    assert_eq!(runs, 1, "a miss runs the body");
    let (second, runs) = counting(0, get_product(42)).await;
    assert_eq!(runs, 0, "a hit does not run the body");
    assert_eq!(first, second);
    assert_eq!(second.id, 42);
}

/// A database handle: not serializable, so it must be skipped.
pub struct Db {
    pub name: &'static str,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub struct AppError(pub String);

#[cache(expire = 60, namespace = "users", skip = [db])]
pub async fn get_user(db: &Db, user_id: u64) -> Result<User, AppError> {
    RUNS.bump(1);
    if user_id == 0 {
        return Err(AppError(format!("no user 0 in {}", db.name)));
    }
    Ok(User {
        id: user_id,
        name: format!("user {user_id}"),
    })
}

pub async fn arguments_make_the_key_and_skipped_ones_do_not() {
    let (a, b) = (Db { name: "a" }, Db { name: "b" });
    let (u, runs) = counting(1, get_user(&a, 1)).await;
    assert_eq!((u.unwrap().id, runs), (1, 1));
    let (u, runs) = counting(1, get_user(&b, 1)).await;
    assert_eq!(
        (u.unwrap().id, runs),
        (1, 0),
        "a skipped argument is not in the key"
    );
    let (u, runs) = counting(1, get_user(&a, 2)).await;
    assert_eq!(
        (u.unwrap().id, runs),
        (2, 1),
        "another argument is another entry"
    );
    let (u, runs) = counting(1, get_user(&a, 2)).await;
    assert_eq!((u.unwrap().name, runs), ("user 2".to_string(), 0));
}

#[cache(namespace = "strings")]
pub async fn concat(a: String, b: String) -> String {
    RUNS.bump(2);
    format!("{a}|{b}")
}

pub async fn hash_input_is_injective() {
    let (x, runs) = counting(2, concat("ab".into(), "c".into())).await;
    assert_eq!((x.as_str(), runs), ("ab|c", 1));
    let (y, runs) = counting(2, concat("a".into(), "bc".into())).await;
    assert_eq!(
        (y.as_str(), runs),
        ("a|bc", 1),
        "(ab, c) and (a, bc) share no key"
    );
}

pub async fn err_and_none_are_not_cached() {
    let db = Db { name: "main" };
    for _ in 0..2 {
        let (r, runs) = counting(1, get_user(&db, 0)).await;
        assert!(r.is_err());
        assert_eq!(runs, 1, "Err is not cached");
    }
    for _ in 0..2 {
        let (r, runs) = counting(3, maybe(0)).await;
        assert_eq!((r, runs), (None, 1), "None is not cached");
    }
    let (r, runs) = counting(3, maybe(7)).await;
    assert_eq!((r, runs), (Some(7), 1));
    let (r, runs) = counting(3, maybe(7)).await;
    assert_eq!((r, runs), (Some(7), 0), "Some is cached");
}

#[cache(namespace = "maybe")]
pub async fn maybe(n: u32) -> Option<u32> {
    RUNS.bump(3);
    (n != 0).then_some(n)
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub title: String,
}

#[cache(namespace = "config", key = "site")]
pub async fn site_config() -> Config {
    RUNS.bump(4);
    Config {
        title: "shop".into(),
    }
}

#[cache(namespace = "posts", key_builder = |user: &String, page: &u32| format!("{user}:{page}"))]
pub async fn posts(user: String, page: u32) -> Vec<String> {
    RUNS.bump(5);
    (0..3).map(|i| format!("{user}-{page}-{i}")).collect()
}

#[cache(namespace = "products", key = "product_{id}")]
pub async fn product_by_template(id: u64) -> u64 {
    RUNS.bump(6);
    id * 2
}

#[cache(namespace = "by_db", key_builder = |db: &Db, id: &u64| format!("{}-{id}", db.name))]
pub async fn keyed_by_db(db: &Db, id: u64) -> String {
    RUNS.bump(7);
    format!("{}:{id}", db.name)
}

pub async fn static_keys_and_key_builders() {
    let (c, runs) = counting(4, site_config()).await;
    assert_eq!((c.title.as_str(), runs), ("shop", 1));
    let (_, runs) = counting(4, site_config()).await;
    assert_eq!(runs, 0);

    let (p, runs) = counting(5, posts("alice".into(), 1)).await;
    assert_eq!((p.len(), runs), (3, 1));
    let (_, runs) = counting(5, posts("alice".into(), 1)).await;
    assert_eq!(runs, 0);
    let (_, runs) = counting(5, posts("alice".into(), 2)).await;
    assert_eq!(runs, 1);

    // Scope::key names exactly what `key` or `key_builder` produced.
    assert_eq!(clear_cache(Scope::key("config", "site")).await.unwrap(), 1);
    assert_eq!(
        clear_cache(Scope::key("posts", "alice:1")).await.unwrap(),
        1
    );
    assert_eq!(
        clear_cache(Scope::key("posts", "alice:1")).await.unwrap(),
        0
    );
    let (_, runs) = counting(4, site_config()).await;
    assert_eq!(runs, 1, "cleared by Scope::key");
    let (_, runs) = counting(5, posts("alice".into(), 1)).await;
    assert_eq!(runs, 1, "cleared by Scope::key");
    let (_, runs) = counting(5, posts("alice".into(), 2)).await;
    assert_eq!(runs, 0, "another key of the namespace survives");

    let (v, runs) = counting(6, product_by_template(123)).await;
    assert_eq!((v, runs), (246, 1));
    assert_eq!(
        clear_cache(Scope::key("products", "product_123"))
            .await
            .unwrap(),
        1
    );

    let (a, b) = (Db { name: "a" }, Db { name: "b" });
    let (v, runs) = counting(7, keyed_by_db(&a, 5)).await;
    assert_eq!((v.as_str(), runs), ("a:5", 1));
    let (_, runs) = counting(7, keyed_by_db(&b, 5)).await;
    assert_eq!(
        runs, 1,
        "the key builder saw the db, passed as the reference it is"
    );
    assert_eq!(clear_cache(Scope::key("by_db", "a-5")).await.unwrap(), 1);
}

#[cache(namespace = "ns_a")]
pub async fn in_a(n: u32) -> u32 {
    RUNS.bump(8);
    n
}

#[cache(namespace = "ns_b")]
pub async fn in_b(n: u32) -> u32 {
    RUNS.bump(9);
    n
}

#[cache]
pub async fn no_namespace(n: u32) -> u32 {
    RUNS.bump(10);
    n
}

#[cache(namespace = "user*")]
pub async fn in_user_glob(n: u32) -> u32 {
    RUNS.bump(11);
    n
}

#[cache(namespace = "users")]
pub async fn in_users(n: u32) -> u32 {
    RUNS.bump(12);
    n
}

pub async fn namespaces_are_isolated() {
    for n in 0..3 {
        in_a(n).await;
        in_b(n).await;
    }
    assert_eq!(clear_cache(Scope::namespace("ns_a")).await.unwrap(), 3);
    let (_, runs) = counting(8, in_a(1)).await;
    assert_eq!(runs, 1, "namespace a was cleared");
    let (_, runs) = counting(9, in_b(1)).await;
    assert_eq!(runs, 0, "namespace b survives");
}

pub async fn glob_characters_are_escaped() {
    in_user_glob(1).await;
    in_users(1).await;
    assert_eq!(clear_cache(Scope::namespace("user*")).await.unwrap(), 1);
    let (_, runs) = counting(12, in_users(1)).await;
    assert_eq!(runs, 0, "clearing `user*` leaves `users` alone");
    let (_, runs) = counting(11, in_user_glob(1)).await;
    assert_eq!(runs, 1);
    assert_eq!(clear_cache(Scope::namespace("*")).await.unwrap(), 0);
    assert_eq!(clear_cache(Scope::namespace("user?")).await.unwrap(), 0);
    assert_eq!(clear_cache(Scope::namespace("[u]sers")).await.unwrap(), 0);
    let (_, runs) = counting(12, in_users(1)).await;
    assert_eq!(runs, 0);
}

pub async fn namespace_less_entries_survive_namespace_clears() {
    no_namespace(5).await;
    in_a(5).await;
    for ns in ["ns_a", "ns_b", "*", "cache", "suite", "?"] {
        clear_cache(Scope::namespace(ns)).await.unwrap();
    }
    let (_, runs) = counting(10, no_namespace(5)).await;
    assert_eq!(runs, 0, "no namespace clear reaches a namespace-less entry");
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 1);
    let (_, runs) = counting(10, no_namespace(5)).await;
    assert_eq!(runs, 1, "Scope::all does");
}

pub async fn scope_all_clears_everything() {
    get_product(1).await;
    in_a(1).await;
    site_config().await;
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 3);
    assert_eq!(clear_cache(Scope::all()).await.unwrap(), 0);
    let (_, runs) = counting(0, get_product(1)).await;
    assert_eq!(runs, 1);
}

pub async fn invalid_namespaces_are_refused() {
    for scope in [
        Scope::namespace("x:y"),
        Scope::namespace(""),
        Scope::key("a:b", "k"),
    ] {
        let err = clear_cache(scope).await.unwrap_err();
        assert!(matches!(err, CacheError::InvalidNamespace(_)), "{err}");
        assert!(err.to_string().contains("may not contain `:`"), "{err}");
    }
    // A namespace-less static key is addressed with the empty namespace.
    assert_eq!(clear_cache(Scope::key("", "nothing")).await.unwrap(), 0);
}

#[cache(expire = 1, namespace = "short")]
pub async fn short_lived(n: u32) -> u32 {
    RUNS.bump(13);
    n
}

pub async fn entries_expire_after_their_ttl() {
    let (_, runs) = counting(13, short_lived(1)).await;
    assert_eq!(runs, 1);
    let (_, runs) = counting(13, short_lived(1)).await;
    assert_eq!(runs, 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, runs) = counting(13, short_lived(1)).await;
    assert_eq!(runs, 1, "expired after `expire` seconds");
}

#[cache(namespace = "shape", key = "shared")]
pub async fn shape_number() -> u64 {
    RUNS.bump(14);
    7
}

#[cache(namespace = "shape", key = "shared")]
pub async fn shape_text() -> String {
    RUNS.bump(15);
    "seven".into()
}

pub async fn a_value_of_the_wrong_shape_is_a_miss() {
    assert_eq!(shape_number().await, 7);
    let (t, runs) = counting(15, shape_text()).await;
    assert_eq!(
        (t.as_str(), runs),
        ("seven", 1),
        "a number does not decode as text"
    );
    let (t, runs) = counting(15, shape_text()).await;
    assert_eq!(
        (t.as_str(), runs),
        ("seven", 0),
        "the entry was overwritten"
    );
}

#[cache(namespace = "many")]
pub async fn slow_square(n: u64) -> u64 {
    RUNS.bump(16);
    tokio::time::sleep(Duration::from_millis(2)).await;
    n * n
}

pub async fn concurrent_callers_get_their_own_results() {
    let tasks: Vec<_> = (0..200u64)
        .map(|i| tokio::spawn(async move { (i, slow_square(i % 20).await) }))
        .collect();
    for task in tasks {
        let (i, got) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("bounded")
            .expect("no panic");
        assert_eq!(
            got,
            (i % 20) * (i % 20),
            "caller {i} got another caller's value"
        );
    }
    let (v, runs) = counting(16, slow_square(3)).await;
    assert_eq!((v, runs), (9, 0));
}

#[derive(Serialize)]
pub struct Repo {
    pub region: String,
}

impl Repo {
    #[cache(namespace = "methods")]
    pub async fn hashed_self(&self, id: u32) -> String {
        RUNS.bump(17);
        format!("{}:{id}", self.region)
    }

    #[cache(namespace = "methods", skip = [self])]
    pub async fn skipped_self(&self, id: u32) -> String {
        RUNS.bump(18);
        format!("{}:{id}", self.region)
    }
}

/// Two types with a method of the same name in one module.
pub struct Users;
pub struct Orders;

impl Users {
    #[cache(namespace = "same_name", skip = [self])]
    pub async fn find(&self, id: u32) -> String {
        format!("user {id}")
    }
}

impl Orders {
    #[cache(namespace = "same_name", skip = [self])]
    pub async fn find(&self, id: u32) -> String {
        format!("order {id}")
    }
}

#[cache(namespace = "generic")]
pub async fn parse_as<T: std::str::FromStr + Serialize + serde::de::DeserializeOwned>(
    text: String,
) -> Option<T> {
    text.parse().ok()
}

#[cache(namespace = "generic")]
pub async fn generic_len<T: Serialize + Send + Sync>(items: Vec<T>) -> usize {
    RUNS.bump(19);
    items.len()
}

/// Stands in for a web framework's extractor.
#[derive(Serialize)]
pub struct Path<T>(pub T);

#[cache(namespace = "handlers")]
pub async fn handler(Path(id): Path<u64>, (page, _size): (u32, u32)) -> String {
    RUNS.bump(20);
    format!("{id}/{page}")
}

#[cache(namespace = "handlers", skip = [page])]
pub async fn handler_skipping(Path(id): Path<u64>, (page, _size): (u32, u32)) -> String {
    RUNS.bump(21);
    format!("{id}/{page}")
}

#[cache(namespace = "io")]
pub async fn io_result(n: u32) -> std::io::Result<u32> {
    RUNS.bump(22);
    if n == 0 {
        return Err(std::io::Error::other("zero"));
    }
    let parsed: u32 = format!("{n}").parse().map_err(std::io::Error::other)?;
    Ok(parsed)
}

pub async fn methods_generics_patterns_and_aliases() {
    let eu = Repo {
        region: "eu".into(),
    };
    let us = Repo {
        region: "us".into(),
    };
    let (v, runs) = counting(17, eu.hashed_self(1)).await;
    assert_eq!((v.as_str(), runs), ("eu:1", 1));
    let (v, runs) = counting(17, us.hashed_self(1)).await;
    assert_eq!((v.as_str(), runs), ("us:1", 1), "self is hashed");
    let (v, runs) = counting(18, eu.skipped_self(1)).await;
    assert_eq!((v.as_str(), runs), ("eu:1", 1));
    let (v, runs) = counting(18, us.skipped_self(1)).await;
    assert_eq!((v.as_str(), runs), ("eu:1", 0), "a skipped self is not");

    let (n, runs) = counting(19, generic_len(vec![1, 2, 3])).await;
    assert_eq!((n, runs), (3, 1));
    let (n, runs) = counting(19, generic_len(vec![1, 2, 3])).await;
    assert_eq!((n, runs), (3, 0));
    let (n, runs) = counting(19, generic_len(vec!["x"])).await;
    assert_eq!((n, runs), (1, 1));

    let (v, runs) = counting(20, handler(Path(9), (1, 10))).await;
    assert_eq!((v.as_str(), runs), ("9/1", 1));
    let (_, runs) = counting(20, handler(Path(9), (1, 20))).await;
    assert_eq!(runs, 1, "every bound name is hashed");
    let (_, runs) = counting(20, handler(Path(9), (1, 10))).await;
    assert_eq!(runs, 0);
    let (_, runs) = counting(21, handler_skipping(Path(9), (1, 10))).await;
    assert_eq!(runs, 1);
    let (v, runs) = counting(21, handler_skipping(Path(9), (2, 10))).await;
    assert_eq!(
        (v.as_str(), runs),
        ("9/1", 0),
        "a bound name can be skipped"
    );

    assert_eq!(Users.find(1).await, "user 1");
    assert_eq!(
        Orders.find(1).await,
        "order 1",
        "methods of two types share no entry"
    );
    assert_eq!(Users.find(1).await, "user 1");
    assert_eq!(parse_as::<u8>("300".into()).await, None);
    assert_eq!(parse_as::<u16>("300".into()).await, Some(300));
    assert_eq!(parse_as::<f32>("1.5".into()).await, Some(1.5));
    assert_eq!(
        parse_as::<u16>("1.5".into()).await,
        None,
        "instantiations share no entry"
    );

    let (r, runs) = counting(22, io_result(0)).await;
    assert!(r.is_err() && runs == 1);
    let (_, runs) = counting(22, io_result(0)).await;
    assert_eq!(runs, 1, "Err of io::Result is not cached");
    let (_, runs) = counting(22, io_result(4)).await;
    assert_eq!(runs, 1);
    let (r, runs) = counting(22, io_result(4)).await;
    assert_eq!((r.unwrap(), runs), (4, 0));
}

/// Every case of the suite; the backend test files generate one test per name.
#[macro_export]
macro_rules! suite_cases {
    ($setup:path) => {
        $crate::suite_cases!($setup;
            miss_then_hit,
            arguments_make_the_key_and_skipped_ones_do_not,
            hash_input_is_injective,
            err_and_none_are_not_cached,
            static_keys_and_key_builders,
            namespaces_are_isolated,
            glob_characters_are_escaped,
            namespace_less_entries_survive_namespace_clears,
            scope_all_clears_everything,
            invalid_namespaces_are_refused,
            entries_expire_after_their_ttl,
            a_value_of_the_wrong_shape_is_a_miss,
            concurrent_callers_get_their_own_results,
            methods_generics_patterns_and_aliases,
            concurrent_misses_of_one_key_run_the_body_once,
            a_panicking_leader_does_not_strand_the_others,
            caching_can_be_switched_off_and_on,
            oversized_values_are_not_stored,
            entries_near_expiry_are_refreshed_by_one_caller,
            a_stale_copy_is_served_when_the_body_fails,
            a_key_shared_by_two_types_never_crosses,
            a_copy_on_another_thread_never_outlives_a_change
        );
        #[tokio::test(flavor = "current_thread")]
        async fn busy_callers_do_not_starve_other_tasks() {
            let _fixture = $setup().await;
            suite::busy_callers_do_not_starve_other_tasks().await;
        }
    };
    ($setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let _fixture = $setup().await;
                suite::$case().await;
            }
        )*
    };
}

/// A body that never yields: only the cache can.
#[cache(namespace = "instant")]
pub async fn instant(n: u64) -> u64 {
    n * n
}

/// A task calling cached functions in a busy loop, with nothing but cache hits (or a Redis
/// known to be down), still lets the other tasks of its thread run.
pub async fn busy_callers_do_not_starve_other_tasks() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    instant(4).await; // a hit from now on, where the backend is up
    let other_ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&other_ran);
    // On a current-thread runtime the spawned task runs only when the loop yields.
    let rt = tokio::runtime::Handle::current();
    let other = rt.spawn(async move { flag.store(true, Ordering::SeqCst) });
    let mut calls = 0;
    while !other_ran.load(Ordering::SeqCst) && calls < 100_000 {
        assert_eq!(instant(4).await, 16);
        calls += 1;
    }
    other.await.unwrap();
    assert!(
        calls < 100_000,
        "the other task never ran during {calls} cached calls"
    );
}

#[cache(namespace = "flight")]
pub async fn cold(n: u32) -> u32 {
    RUNS.bump(23);
    tokio::time::sleep(Duration::from_millis(200)).await;
    n + 1
}

/// Concurrent misses of one key run the body once; the others get its result.
pub async fn concurrent_misses_of_one_key_run_the_body_once() {
    let before = RUNS.get(23);
    let callers: Vec<_> = (0..1000).map(|_| tokio::spawn(cold(1))).collect();
    for caller in callers {
        let got = tokio::time::timeout(Duration::from_secs(30), caller)
            .await
            .expect("bounded")
            .expect("no panic");
        assert_eq!(got, 2);
    }
    assert_eq!(
        RUNS.get(23) - before,
        1,
        "1,000 callers of a cold key, one body"
    );
}

#[cache(namespace = "flight")]
pub async fn first_one_panics(n: u32) -> u32 {
    let run = RUNS.0[24].fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if run == 0 {
        panic!("the first run fails");
    }
    n
}

/// A leader that panics (or is cancelled) does not leave its followers hanging.
pub async fn a_panicking_leader_does_not_strand_the_others() {
    RUNS.0[24].store(0, Ordering::SeqCst);
    let leader = tokio::spawn(first_one_panics(5));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let followers: Vec<_> = (0..20).map(|_| tokio::spawn(first_one_panics(5))).collect();
    assert!(
        leader.await.is_err(),
        "the leader's panic reaches its own caller"
    );
    for follower in followers {
        let got = tokio::time::timeout(Duration::from_secs(10), follower)
            .await
            .expect("followers are not stranded")
            .expect("no panic");
        assert_eq!(got, 5);
    }
    assert_eq!(
        RUNS.get(24),
        2,
        "one more run after the panic, shared by the rest"
    );

    // Cancelled instead of panicking.
    let cancelled = tokio::spawn(cold(77));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiter = tokio::spawn(cold(77));
    tokio::time::sleep(Duration::from_millis(20)).await;
    cancelled.abort();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("not stranded by a cancelled leader")
        .unwrap();
    assert_eq!(got, 78);
}

/// Caching can be switched off and on at run time.
pub async fn caching_can_be_switched_off_and_on() {
    let (_, runs) = counting(2, concat("on".into(), "off".into())).await;
    assert_eq!(runs, 1);
    cache_runtime::set_enabled(false);
    let (_, off) = counting(2, concat("on".into(), "off".into())).await;
    let (_, off_again) = counting(2, concat("on".into(), "off".into())).await;
    cache_runtime::set_enabled(true);
    assert_eq!((off, off_again), (1, 1), "off: every call runs");
    assert!(cache_runtime::stats().enabled);
    let (_, on) = counting(2, concat("on".into(), "off".into())).await;
    assert_eq!(on, 0, "on again: the entry stored before is served");
}

#[cache(namespace = "big")]
pub async fn sized(len: usize) -> String {
    RUNS.bump(25);
    "x".repeat(len)
}

/// Values above `max_value_size` (1 MiB by default) are returned but not stored; arguments of
/// any size and content make valid keys.
pub async fn oversized_values_are_not_stored() {
    let (v, runs) = counting(25, sized(2 << 20)).await;
    assert_eq!((v.len(), runs), (2 << 20, 1));
    let (_, runs) = counting(25, sized(2 << 20)).await;
    assert_eq!(runs, 1, "not stored");
    let (_, runs) = counting(25, sized(10)).await;
    assert_eq!(runs, 1);
    let (_, runs) = counting(25, sized(10)).await;
    assert_eq!(runs, 0, "small values are");

    let huge = "ü\n*?[]{}:\\\"".repeat(100_000);
    for arg in [huge, String::new(), "\0".into(), "user*".into()] {
        let (n, runs) = counting(19, generic_len(vec![arg.clone(), arg.clone()])).await;
        assert_eq!((n, runs), (2, 1));
        let (_, runs) = counting(19, generic_len(vec![arg.clone(), arg])).await;
        assert_eq!(runs, 0, "a hit, whatever the argument");
    }
}

#[cache(expire = 3, refresh = 2, namespace = "refresh")]
pub async fn refreshed(n: u32) -> usize {
    let run = RUNS.0[26].fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    run + usize::try_from(n).unwrap()
}

/// `refresh = N`: a hit with at most N seconds left is recomputed by one caller while the
/// others keep getting the cached value.
pub async fn entries_near_expiry_are_refreshed_by_one_caller() {
    let first = refreshed(0).await;
    assert_eq!(refreshed(0).await, first, "a fresh hit");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = RUNS.get(26);
    let refresher = tokio::spawn(refreshed(0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(
            refreshed(0).await,
            first,
            "the others keep the cached value"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "they did not wait for the refresh"
    );
    let fresh = refresher.await.unwrap();
    assert_ne!(fresh, first, "the refresher got a recomputed value");
    assert_eq!(RUNS.get(26) - before, 1, "one refresh");
    assert_eq!(refreshed(0).await, fresh, "and stored it");
}

static FAIL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cache(expire = 1, stale_if_error = 60, namespace = "stale")]
pub async fn flaky(n: u32) -> Result<String, String> {
    let run = RUNS.0[27].fetch_add(1, Ordering::SeqCst);
    match FAIL.load(Ordering::SeqCst) {
        0 => Ok(format!("{n}:{run}")),
        1 => Err("database down".into()),
        _ => panic!("database exploded"),
    }
}

/// `stale_if_error = N`: a copy outlives the TTL by N seconds and is served when the body
/// fails (an `Err` or a panic).
pub async fn a_stale_copy_is_served_when_the_body_fails() {
    FAIL.store(0, Ordering::SeqCst);
    let good = flaky(1).await.unwrap();
    assert_eq!(flaky(1).await.unwrap(), good, "a hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    FAIL.store(1, Ordering::SeqCst);
    assert_eq!(
        flaky(1).await,
        Ok(good.clone()),
        "an Err gets the stale copy"
    );
    FAIL.store(2, Ordering::SeqCst);
    assert_eq!(flaky(1).await, Ok(good.clone()), "so does a panic");
    assert!(cache_runtime::stats().stale_served >= 2);
    FAIL.store(1, Ordering::SeqCst);
    assert!(
        flaky(2).await.is_err(),
        "without a copy the error is the caller's"
    );
    FAIL.store(0, Ordering::SeqCst);
    let fresh = flaky(1).await.unwrap();
    assert_ne!(
        fresh, good,
        "a stale copy is recomputed when the body works"
    );
    assert_eq!(
        flaky(1).await.unwrap(),
        fresh,
        "and the new value is stored"
    );
}

// ---------------------------------------------------------------------------------------------
// Decoded copies: the memory store and the near-cache keep the decoded value of a type that
// can be cloned, and later hits clone it instead of parsing JSON.

static DECODES: AtomicUsize = AtomicUsize::new(0);
static DECODES_NOT_CLONE: AtomicUsize = AtomicUsize::new(0);

/// A value that counts its decodings, and can be cloned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cloneable(pub u64, pub String);

impl<'de> Deserialize<'de> for Cloneable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        let (n, s) = <(u64, String)>::deserialize(d)?;
        Ok(Cloneable(n, s))
    }
}

/// A value that counts its decodings, and cannot be cloned.
#[derive(Debug, PartialEq, Serialize)]
pub struct NotClone(pub u64, pub String);

impl<'de> Deserialize<'de> for NotClone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES_NOT_CLONE.fetch_add(1, Ordering::SeqCst);
        let (n, s) = <(u64, String)>::deserialize(d)?;
        Ok(NotClone(n, s))
    }
}

#[cache(expire = 60, namespace = "reuse")]
pub async fn cloneable(n: u64) -> Cloneable {
    Cloneable(n, format!("value {n}"))
}

#[cache(expire = 60, namespace = "reuse")]
pub async fn cloneable_result(n: u64) -> Result<Cloneable, String> {
    Ok(Cloneable(n, format!("ok {n}")))
}

#[cache(expire = 60, namespace = "reuse")]
pub async fn cloneable_option(n: u64) -> Option<Cloneable> {
    Some(Cloneable(n, format!("some {n}")))
}

#[cache(expire = 60, namespace = "reuse")]
pub async fn not_clone(n: u64) -> NotClone {
    NotClone(n, format!("value {n}"))
}

/// A miss and three hits of each kind of function; returns how many times JSON was decoded
/// for the three functions of a type that can be cloned, and for the one of a type that
/// cannot. Every hit returns the stored value, whichever way it was made.
pub async fn decodes_of_a_miss_and_three_hits(n: u64) -> (usize, usize) {
    let cloned = DECODES.load(Ordering::SeqCst);
    let not_cloned = DECODES_NOT_CLONE.load(Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(cloneable(n).await, Cloneable(n, format!("value {n}")));
    }
    for _ in 0..4 {
        assert_eq!(
            cloneable_result(n).await,
            Ok(Cloneable(n, format!("ok {n}")))
        );
    }
    for _ in 0..4 {
        assert_eq!(
            cloneable_option(n).await,
            Some(Cloneable(n, format!("some {n}")))
        );
    }
    for _ in 0..4 {
        assert_eq!(not_clone(n).await, NotClone(n, format!("value {n}")));
    }
    (
        DECODES.load(Ordering::SeqCst) - cloned,
        DECODES_NOT_CLONE.load(Ordering::SeqCst) - not_cloned,
    )
}

#[cache(expire = 60, namespace = "reuse", key = "shared")]
pub async fn shared_key_as_pair() -> (u64, u64) {
    (1, 2)
}

#[cache(expire = 60, namespace = "reuse", key = "shared")]
pub async fn shared_key_as_text() -> String {
    "text".to_owned()
}

/// Two functions of different types under one key: neither is ever handed the other's
/// value, decoded copy or not; each finds the other's JSON, counts it a miss, overwrites it.
pub async fn a_key_shared_by_two_types_never_crosses() {
    for _ in 0..3 {
        assert_eq!(shared_key_as_pair().await, (1, 2));
        assert_eq!(shared_key_as_pair().await, (1, 2));
        assert_eq!(shared_key_as_text().await, "text");
        assert_eq!(shared_key_as_text().await, "text");
    }
}

// ---------------------------------------------------------------------------------------------
// Hot sets: each thread keeps decoded copies of what it read from the memory store or the
// near-cache. A copy on one thread is never served after another thread changed the entry.

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A thread of its own with a current-thread runtime, running what it is given in order: the
/// calls it makes go through its own hot set, which lives as long as the thread.
pub struct OtherThread {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtherThread {
    pub fn start() -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the other thread");
            // Ends when the sender is dropped.
            while let Ok(job) = queue.recv() {
                runtime.block_on(job);
            }
        });
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` on the other thread and returns its output.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .expect("running")
            .send(Box::pin(async move {
                let _ = tx.send(f.await);
            }))
            .expect("the other thread is running");
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the other thread answers within 10 s")
            .expect("the other thread ran the job")
    }
}

impl Drop for OtherThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

static VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A new number every time its body runs.
#[cache(expire = 60, namespace = "hot", key = "pinned")]
pub async fn versioned() -> u64 {
    VERSION.fetch_add(1, Ordering::SeqCst) + 1
}

/// The same, keyed by its argument.
#[cache(expire = 60, namespace = "hot")]
pub async fn versioned_by(n: u64) -> (u64, u64) {
    (n, VERSION.fetch_add(1, Ordering::SeqCst) + 1)
}

/// Calls `f` four times on `thread` (a miss or a store hit, then copies from its hot set) and
/// returns the last result, checking that all four agree.
pub async fn warm_on<T, F>(thread: &OtherThread, f: fn() -> F) -> T
where
    T: PartialEq + std::fmt::Debug + Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    thread
        .run(async move {
            let first = f().await;
            for _ in 0..3 {
                assert_eq!(f().await, first);
            }
            first
        })
        .await
}

pub async fn a_copy_on_another_thread_never_outlives_a_change() {
    let other = OtherThread::start();
    // A static key, cleared by key.
    let first = warm_on(&other, versioned).await;
    assert_eq!(
        versioned().await,
        first,
        "one entry, seen from both threads"
    );
    clear_cache(Scope::key("hot", "pinned")).await.unwrap();
    let second = versioned().await;
    assert_ne!(second, first, "recomputed after the clear");
    assert_eq!(other.run(versioned()).await, second, "after a key clear");
    // Hashed arguments, cleared by namespace, then everything.
    let first = warm_on(&other, || versioned_by(1)).await;
    clear_cache(Scope::namespace("hot")).await.unwrap();
    let second = versioned_by(1).await;
    assert_ne!(second, first);
    assert_eq!(
        other.run(versioned_by(1)).await,
        second,
        "after a namespace clear"
    );
    warm_on(&other, || versioned_by(1)).await;
    clear_cache(Scope::all()).await.unwrap();
    let third = versioned_by(1).await;
    assert_ne!(third, second);
    assert_eq!(
        other.run(versioned_by(1)).await,
        third,
        "after a full clear"
    );
    // Switched off, nothing is served from anywhere; switched on again, the copies taken
    // before are still the entry's (nothing changed it).
    cache_runtime::set_enabled(false);
    assert_ne!(
        other.run(versioned_by(1)).await,
        third,
        "off means uncached"
    );
    cache_runtime::set_enabled(true);
    assert_eq!(other.run(versioned_by(1)).await, third);
}
