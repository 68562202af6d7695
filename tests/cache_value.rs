//! `Cache` values: caches an application holds and names with `#[cache(cache = EXPR)]`.
//! These tests do not take turns at the process default: each makes caches of its own and
//! runs alongside the others.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cache_runtime::{cache, Cache, CacheConfig, Scope};
use redis::AsyncCommands;
use support::RedisServer;

/// An application's state: a "database" and the cache in front of it.
#[derive(Clone)]
struct App {
    cache: Cache,
    articles: Arc<Vec<String>>,
    reads: Arc<AtomicUsize>,
}

impl App {
    fn new(cache: Cache, articles: &[&str]) -> Self {
        Self {
            cache,
            articles: Arc::new(articles.iter().map(|a| a.to_string()).collect()),
            reads: Arc::default(),
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    // The data source is left out of the key; the cache of each instance keeps them apart.
    #[cache(namespace = "articles", cache = &self.cache, skip = [self])]
    async fn article(&self, id: usize) -> Option<String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.articles.get(id).cloned()
    }

    #[cache(namespace = "articles", key = "count", cache = &self.cache, skip = [self])]
    async fn count(&self) -> usize {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.articles.len()
    }
}

/// A handler-shaped function: the state arrives by value and the cache is one of its fields,
/// borrowed before the body takes the state.
#[cache(namespace = "titles", cache = &app.cache, skip = [app])]
async fn title(app: App, id: usize) -> String {
    app.reads.fetch_add(1, Ordering::SeqCst);
    app.articles.get(id).cloned().unwrap_or_default()
}

async fn memory() -> Cache {
    Cache::new(CacheConfig::memory()).await.unwrap()
}

/// Two instances of an application in one process, with two databases: before `Cache`
/// values, `skip = [self]` made them share entries and one served the other's article.
#[tokio::test]
async fn two_instances_with_a_cache_each_never_serve_each_others_data() {
    let a = App::new(memory().await, &["a0", "a1"]);
    let b = App::new(memory().await, &["b0"]);
    for _ in 0..3 {
        assert_eq!(a.article(0).await.as_deref(), Some("a0"));
        assert_eq!(b.article(0).await.as_deref(), Some("b0"));
        assert_eq!(a.count().await, 2);
        assert_eq!(b.count().await, 1);
        assert_eq!(title(a.clone(), 1).await, "a1");
        assert_eq!(title(b.clone(), 1).await, "");
    }
    assert_eq!((a.reads(), b.reads()), (3, 3), "one miss per entry");
    let (sa, sb) = (a.cache.stats(), b.cache.stats());
    assert_eq!((sa.misses, sa.hits), (3, 6), "{sa:?}");
    assert_eq!((sb.misses, sb.hits), (3, 6), "{sb:?}");
    // A clear of one cache leaves the other's entries.
    assert_eq!(
        a.cache.clear(Scope::namespace("articles")).await.unwrap(),
        2
    );
    assert_eq!(a.article(0).await.as_deref(), Some("a0"));
    assert_eq!(b.article(0).await.as_deref(), Some("b0"));
    assert_eq!((a.reads(), b.reads()), (4, 3));
}

/// Caches on one Redis see each other's entries exactly when they share the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_on_one_redis_share_entries_only_under_one_prefix() {
    let server = RedisServer::start();
    let open = |prefix: &str| Cache::new(CacheConfig::redis(server.url()).prefix(prefix));
    let (one, same, other) = (
        open("app").await.unwrap(),
        open("app").await.unwrap(),
        open("other").await.unwrap(),
    );
    let a = App::new(one, &["first"]);
    let b = App::new(same, &["second"]);
    let c = App::new(other, &["third"]);
    assert_eq!(a.article(0).await.as_deref(), Some("first"));
    assert_eq!(
        b.article(0).await.as_deref(),
        Some("first"),
        "one prefix, one entry"
    );
    assert_eq!(c.article(0).await.as_deref(), Some("third"));
    let mut conn = server.client().await;
    let mut found: Vec<String> = conn.keys("*").await.unwrap();
    found.sort();
    assert_eq!(
        found,
        [
            "app:articles",
            "app:articles:cache_value::article<cache_value::App>:8d5162ca104fa7e79fe80fd92bb657fb",
            "other:articles",
            "other:articles:cache_value::article<cache_value::App>:8d5162ca104fa7e79fe80fd92bb657fb",
        ],
        "the layout: {{prefix}}:{{namespace}}:{{module path}}::{{fn}}<{{Self}}>:{{md5 of [0]}}"
    );
}

/// Near-caches of two caches in one process (one Redis, one prefix) obey each other's
/// changes: each store tells its own invalidations apart, not the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_near_caches_in_one_process_invalidate_each_other() {
    let server = RedisServer::start();
    let open = || Cache::new(CacheConfig::redis(server.url()).local_cache(100));
    let a = App::new(open().await.unwrap(), &["x"]);
    let b = App::new(open().await.unwrap(), &["x"]);
    assert_eq!(a.count().await, 1);
    // Both near-caches hold the entry.
    assert!(
        support::eventually(Duration::from_secs(5), || async {
            b.count().await;
            b.cache.stats().local_hits > 0
        })
        .await,
        "b serves from its near-cache"
    );
    let before = b.reads();
    a.cache
        .clear(Scope::key("articles", "count"))
        .await
        .unwrap();
    assert!(
        support::eventually(Duration::from_secs(2), || async {
            b.count().await;
            b.reads() > before
        })
        .await,
        "b's copy was dropped by a's clear"
    );
}

static LATER: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = LATER.get())]
async fn maybe_cached(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n
}

/// `cache = EXPR` may name no cache (an unset `OnceLock`): the function then runs.
#[tokio::test]
async fn a_cache_not_set_yet_runs_the_function() {
    let before = RUNS.load(Ordering::SeqCst);
    maybe_cached(1).await;
    maybe_cached(1).await;
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2, "uncached");
    let cache = LATER.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(Cache::new(CacheConfig::memory()))
                .unwrap()
        })
        .join()
        .unwrap()
    });
    maybe_cached(1).await;
    maybe_cached(1).await;
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 3, "cached once set");
    assert_eq!(cache.stats().hits, 1);
}

/// The last handle dropped shuts the cache down; a call still holding it finishes, uncached.
#[tokio::test]
async fn a_dropped_cache_lets_calls_run_uncached() {
    let app = App::new(memory().await, &["a"]);
    assert_eq!(app.article(0).await.as_deref(), Some("a"));
    let detached = App {
        cache: Cache::new(CacheConfig::memory()).await.unwrap(),
        ..app.clone()
    };
    drop(app);
    assert_eq!(detached.article(0).await.as_deref(), Some("a"));
    assert_eq!(detached.article(0).await.as_deref(), Some("a"));
    assert_eq!(
        detached.reads(),
        2,
        "one read before, one for the new cache"
    );
}

#[cache(namespace = "ns_a", cache = cache, skip = [cache])]
async fn in_a(cache: &Cache, id: u64) -> u64 {
    let _ = cache;
    id
}

#[cache(namespace = "ns_b", cache = cache, skip = [cache])]
async fn in_b(cache: &Cache, id: u64) -> u64 {
    id + 1
}

/// Each namespace's hits, misses and errors are counted apart, and the most requested keys
/// are found by sampling (one call in 64 per thread), in bounded memory.
#[tokio::test]
async fn stats_per_namespace_and_the_most_requested_keys() {
    let cache = Cache::new(CacheConfig::memory()).await.unwrap();
    let other = Cache::new(CacheConfig::memory()).await.unwrap();
    for round in 0..2_000u64 {
        in_b(&cache, 7).await; // one hot key
        in_b(&cache, 1_000 + round).await; // and 2,000 cold ones
    }
    in_b(&other, 7).await;
    let stats = cache.stats();
    let b = stats
        .namespaces
        .iter()
        .find(|ns| ns.namespace == Some("ns_b"))
        .expect("ns_b is counted");
    assert_eq!((b.hits, b.misses, b.errors), (1_999, 2_001, 0), "{b:?}");
    assert!((b.hit_rate() - 1_999.0 / 4_000.0).abs() < 1e-9);
    assert!(
        stats
            .namespaces
            .iter()
            .all(|ns| ns.namespace != Some("ns_a")),
        "a namespace never called is not listed: {:?}",
        stats.namespaces
    );
    let (hot, count) = stats.top_keys.first().expect("a sampled key");
    assert!(hot.starts_with("cache:ns_b:cache_value::in_b:"), "{hot}");
    assert_eq!(
        hot,
        &format!("cache:ns_b:cache_value::in_b:{}", md5_of("[7]")),
        "the hot key leads"
    );
    // About 2,000 requests, estimated from about 31 samples.
    assert!((640..=6_400).contains(count), "{count}");
    in_a(&other, 1).await;
    // The other cache counted its own calls only.
    assert_eq!(other.stats().misses, 2);
}

fn md5_of(text: &str) -> String {
    use md5::Digest;
    format!("{:x}", md5::Md5::digest(text.as_bytes()))
}

/// A token-bearing extractor that is not `Serialize`: its user goes into the key by a path.
struct Auth {
    user_id: u64,
    #[allow(dead_code)]
    raw_token: String,
}

static PAGES: AtomicUsize = AtomicUsize::new(0);

#[cache(namespace = "pages", key = "page:{auth.user_id}:{page}", cache = cache, skip = [cache])]
async fn page_of(cache: &Cache, auth: &Auth, page: u32) -> String {
    PAGES.fetch_add(1, Ordering::SeqCst);
    format!("page {page} of {}", auth.user_id)
}

#[cache(namespace = "pages", key = "maybe:{auth.user_id}", cache = cache, skip = [cache])]
async fn page_of_maybe(cache: &Cache, auth: Option<Auth>) -> String {
    PAGES.fetch_add(1, Ordering::SeqCst);
    auth.map_or("anonymous".into(), |a| format!("user {}", a.user_id))
}

/// `{arg.field}` placeholders key by a field of an argument, also through an `Option`.
#[tokio::test]
async fn keys_from_argument_fields() {
    let cache = Cache::new(CacheConfig::memory()).await.unwrap();
    let ann = Auth {
        user_id: 1,
        raw_token: "secret-a".into(),
    };
    let ann_again = Auth {
        user_id: 1,
        raw_token: "secret-b".into(),
    };
    let bob = Auth {
        user_id: 2,
        raw_token: "secret-c".into(),
    };
    let before = PAGES.load(Ordering::SeqCst);
    assert_eq!(page_of(&cache, &ann, 3).await, "page 3 of 1");
    assert_eq!(
        page_of(&cache, &ann_again, 3).await,
        "page 3 of 1",
        "the same user: a hit"
    );
    assert_eq!(page_of(&cache, &bob, 3).await, "page 3 of 2");
    assert_eq!(PAGES.load(Ordering::SeqCst) - before, 2);
    let page = cache.keys("pages", "*", 0, 10).await.unwrap();
    let mut keys: Vec<_> = page.keys.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["cache:pages:page:1:3", "cache:pages:page:2:3"]);
    assert_eq!(page_of_maybe(&cache, None).await, "anonymous");
    assert_eq!(page_of_maybe(&cache, Some(bob)).await, "user 2");
    assert!(
        cache
            .keys("pages", "maybe:-", 0, 10)
            .await
            .unwrap()
            .keys
            .len()
            == 1
    );
    assert!(
        cache
            .keys("pages", "maybe:2", 0, 10)
            .await
            .unwrap()
            .keys
            .len()
            == 1
    );
}
