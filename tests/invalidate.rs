//! `#[invalidate]` on writes and `evict` of one call's entry, on the memory store and on
//! Redis: targets cleared after a success and not after an `Err`, a panic or a cancellation;
//! a read that began before the write stores nothing after it, and the write's own re-read
//! never waits for it; a clear that cannot run never fails the write. Each test has caches
//! of its own (no turns); every wait is bounded.

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{cache, evict, invalidate, Cache, CacheConfig, CacheError};
use support::RedisServer;
use tokio::sync::Notify;
use tokio::time::timeout;

/// A repository: a "database" of article titles and the cache in front of it.
#[derive(Clone)]
struct Repo {
    cache: Cache,
    db: Arc<Mutex<HashMap<u64, String>>>,
    reads: Arc<AtomicUsize>,
    /// When armed, the next read stops after its query until released.
    hold: Arc<Mutex<bool>>,
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl Repo {
    async fn new(config: CacheConfig) -> Self {
        let db = HashMap::from([(1, "first".to_owned()), (2, "second".to_owned())]);
        Repo {
            cache: Cache::new(config).await.unwrap(),
            db: Arc::new(Mutex::new(db)),
            reads: Arc::default(),
            hold: Arc::default(),
            started: Arc::default(),
            release: Arc::default(),
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    #[cache(namespace = "articles", cache = &self.cache, skip = [self])]
    async fn title(&self, id: u64) -> Option<String> {
        let title = self.db.lock().unwrap().get(&id).cloned();
        self.reads.fetch_add(1, Ordering::SeqCst);
        if std::mem::take(&mut *self.hold.lock().unwrap()) {
            self.started.notify_one();
            self.release.notified().await;
        }
        title
    }

    #[cache(namespace = "counts", key = "articles", cache = &self.cache, skip = [self])]
    async fn count(&self) -> usize {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.db.lock().unwrap().len()
    }

    /// A write that answers with the article re-read, as an API handler does.
    #[invalidate(namespace = "articles", key = "counts:articles", cache = &self.cache)]
    async fn rename(&self, id: u64, title: &str) -> Result<Option<String>, String> {
        if title.is_empty() {
            return Err("empty title".into());
        }
        self.db.lock().unwrap().insert(id, title.to_owned());
        Ok(self.title(id).await)
    }

    /// Clears only the one entry of `title(id)`, found from the call itself.
    #[invalidate(entry = self.title(id))]
    async fn retitle(&self, id: u64, title: &str) -> Result<(), String> {
        self.db.lock().unwrap().insert(id, title.to_owned());
        Ok(())
    }

    #[invalidate(namespace = "articles", cache = &self.cache)]
    async fn rename_then_panic(&self, id: u64) {
        self.db.lock().unwrap().insert(id, "panicked".to_owned());
        panic!("the write failed half way");
    }

    #[invalidate(namespace = "articles", cache = &self.cache)]
    async fn slow_rename(&self, id: u64) -> Result<(), String> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.db.lock().unwrap().insert(id, "slow".to_owned());
        Ok(())
    }
}

async fn a_successful_write_clears_and_a_failed_one_does_not(config: CacheConfig) {
    let repo = Repo::new(config).await;
    assert_eq!(repo.title(1).await.as_deref(), Some("first"));
    assert_eq!(repo.count().await, 2);
    assert_eq!(repo.reads(), 2);
    // `Err`: nothing is cleared.
    assert!(repo.rename(1, "").await.is_err());
    assert_eq!(repo.title(1).await.as_deref(), Some("first"));
    assert_eq!(repo.count().await, 2);
    assert_eq!(repo.reads(), 2, "still cached");
    // `Ok`: the namespace and the key are cleared; the write's own re-read is fresh.
    assert_eq!(repo.rename(1, "renamed").await, Ok(Some("renamed".into())));
    assert_eq!(repo.title(1).await.as_deref(), Some("renamed"));
    assert_eq!(repo.count().await, 2);
    // The re-read inside the write read the database and stored nothing (the write clears
    // after it); the reads after it ran once more each.
    assert_eq!(repo.reads(), 5, "the re-read, the read and the count ran");
    assert_eq!(
        repo.title(1).await.as_deref(),
        Some("renamed"),
        "and are cached again"
    );
    assert_eq!(repo.reads(), 5);
}

async fn a_panic_or_a_cancellation_clears_nothing(config: CacheConfig) {
    let repo = Repo::new(config).await;
    repo.title(2).await;
    let panicked = tokio::spawn({
        let repo = repo.clone();
        async move { repo.rename_then_panic(2).await }
    })
    .await;
    assert!(panicked.is_err(), "the panic reaches the caller");
    assert_eq!(
        repo.title(2).await.as_deref(),
        Some("second"),
        "not cleared"
    );
    let cancelled = timeout(Duration::from_millis(50), repo.slow_rename(2)).await;
    assert!(cancelled.is_err(), "cancelled mid-write");
    assert_eq!(
        repo.title(2).await.as_deref(),
        Some("second"),
        "not cleared"
    );
    assert_eq!(repo.reads(), 1);
}

/// The scene found on a real application: a slow read misses; meanwhile a write commits,
/// re-reads to answer and invalidates; then the slow read finishes. The write's answer is
/// fresh (its re-read did not join the slow read), nothing stale is stored, and every later
/// read is fresh.
async fn a_read_from_before_the_write_stores_nothing_and_the_write_reads_fresh(
    config: CacheConfig,
) {
    let repo = Repo::new(config).await;
    *repo.hold.lock().unwrap() = true;
    let slow = tokio::spawn({
        let repo = repo.clone();
        async move { repo.title(1).await }
    });
    timeout(Duration::from_secs(5), repo.started.notified())
        .await
        .expect("the slow read started");
    let written = timeout(Duration::from_secs(3), repo.rename(1, "favorited")).await;
    assert_eq!(
        written.ok(),
        Some(Ok(Some("favorited".into()))),
        "the write answered at once, with its own write"
    );
    repo.release.notify_one();
    assert_eq!(
        slow.await.unwrap().as_deref(),
        Some("first"),
        "it began before the write"
    );
    assert_eq!(repo.title(1).await.as_deref(), Some("favorited"));
    assert_eq!(repo.title(1).await.as_deref(), Some("favorited"));
}

async fn an_entry_is_removed_exactly(config: CacheConfig) {
    let repo = Repo::new(config).await;
    repo.title(1).await;
    repo.title(2).await;
    assert_eq!(repo.reads(), 2);
    repo.retitle(1, "again").await.unwrap();
    assert_eq!(repo.title(1).await.as_deref(), Some("again"));
    assert_eq!(repo.title(2).await.as_deref(), Some("second"));
    assert_eq!(repo.reads(), 3, "only the entry of title(1) went");
    assert_eq!(evict(repo.title(2)).await.unwrap(), 1);
    assert_eq!(evict(repo.title(2)).await.unwrap(), 0);
    assert_eq!(repo.reads(), 3, "evict runs no body");
    repo.title(2).await;
    assert_eq!(repo.reads(), 4);
    assert_eq!(
        evict(repo.count()).await.unwrap(),
        0,
        "a static key: not stored yet"
    );
    repo.count().await;
    assert_eq!(evict(repo.count()).await.unwrap(), 1);
    assert!(matches!(
        evict(async { 1 }).await,
        Err(CacheError::NotCached)
    ));
}

on_both_stores!(
    a_successful_write_clears_and_a_failed_one_does_not,
    a_panic_or_a_cancellation_clears_nothing,
    a_read_from_before_the_write_stores_nothing_and_the_write_reads_fresh,
    an_entry_is_removed_exactly
);

/// Redis down: the write still succeeds; the failed invalidation is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_succeeds_when_its_invalidation_cannot_run() {
    let mut server = RedisServer::start();
    let config = CacheConfig::redis(server.url())
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200));
    let repo = Repo::new(config).await;
    repo.title(1).await;
    server.kill();
    let written = timeout(Duration::from_secs(5), repo.rename(1, "offline")).await;
    assert_eq!(written.ok(), Some(Ok(Some("offline".into()))));
    assert!(repo.cache.stats().invalidation_failures >= 1);
}
