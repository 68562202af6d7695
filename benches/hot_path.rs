//! `cargo bench --bench hot_path`: the pieces of a cache hit, on the in-memory backend.
//!
//! - `key/hashed`: the ticket of a call (MD5 of the JSON of `[id]`, the key string, the
//!   backend handle), exactly what `#[cache]` computes before it looks anything up in a store
//!   (on a backend with hot sets, only once the thread's hot set did not have it);
//! - `codec/from_slice`: decoding the ~150-byte JSON value;
//! - `hit/memory`: a whole `#[cache]` hit on the memory backend, served by the thread's hot
//!   set, one `block_on` per call; `hit/memory_store`: the same with hot sets off, so that the
//!   store (moka) serves it; next to `hit/block_on_baseline`, the same `block_on` around the
//!   uncached function. That function formats a new product, which costs more than a hot-set
//!   hit's clone, so the baseline bounds the runtime's cost rather than subtracting it out.
//!
//! Short measurement windows keep the whole run under a minute.

mod common;

use std::hint::black_box;
use std::time::Duration;

use cache_runtime::__private::{arg, hashed_typed, Spec};
use cache_runtime::CacheConfig;
use common::{make_product, Product};
use criterion::{criterion_group, criterion_main, Criterion};

#[cache_runtime::cache(expire = 600, namespace = "bench")]
async fn get_product(id: u64) -> Product {
    make_product(id)
}

/// The same function without the cache, for the `block_on` baseline.
async fn get_product_uncached(id: u64) -> Product {
    make_product(id)
}

static SPEC: Spec = Spec {
    function: "hot_path::get_product",
    namespace: "bench",
    expire: 600,
    ..Spec::DEFAULT
};

fn runtime(config: CacheConfig) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(cache_runtime::init(config))
        .expect("init the memory backend");
    rt
}

fn key(c: &mut Criterion) {
    let _rt = runtime(CacheConfig::memory().hot_set(0));
    let id = 4_242u64;
    c.bench_function("key/hashed", |b| {
        b.iter(|| black_box(hashed_typed(&SPEC, &[], &[arg::<(), _>(black_box(&id))])))
    });
}

fn codec(c: &mut Criterion) {
    let bytes = serde_json::to_vec(&make_product(4_242)).expect("json");
    assert!((140..=170).contains(&bytes.len()), "{} bytes", bytes.len());
    c.bench_function("codec/from_slice", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Product>(black_box(&bytes)).expect("decode")))
    });
}

fn hit(c: &mut Criterion) {
    for (name, config) in [
        ("hit/memory", CacheConfig::memory()),
        ("hit/memory_store", CacheConfig::memory().hot_set(0)),
    ] {
        let rt = runtime(config);
        // Warm: the first call is a miss that stores the entry.
        rt.block_on(get_product(4_242));
        c.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(get_product(black_box(4_242)))))
        });
    }
    let rt = runtime(CacheConfig::memory());
    c.bench_function("hit/block_on_baseline", |b| {
        b.iter(|| black_box(rt.block_on(get_product_uncached(black_box(4_242)))))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = key, codec, hit
}
criterion_main!(benches);
