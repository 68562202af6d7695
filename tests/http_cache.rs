//! `ResponseCacheLayer` through a real `Router`: HIT/MISS/SKIP, the client's no-cache and
//! no-store, the key (host, query order, named headers, the identity, a response's `Vary`),
//! what is never stored (non-2xx, `Set-Cookie`, `private`, large and streaming bodies),
//! writes clearing their path and its parents, ETag and 304, single-flight, the stored
//! format's version, and fail-open. On the memory store and on Redis; each app has a `Cache`
//! of its own, so no test takes turns.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cache_runtime::web::ResponseCacheLayer;
use cache_runtime::{Cache, CacheConfig};
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use support::RedisServer;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The signed-in user, as auth middleware would put it in the extensions.
#[derive(Clone)]
struct User(String);

/// A page naming its URI and which run of a handler made it.
async fn page(State(runs): State<Runs>, uri: Uri) -> String {
    format!("{uri} #{}", runs.next())
}

async fn write(State(runs): State<Runs>, uri: Uri) -> Response {
    runs.next();
    match uri.query() {
        Some("fail") => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn with_headers(State(runs): State<Runs>, uri: Uri, headers: HeaderMap) -> Response {
    let run = runs.next();
    let lang = headers
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let body = format!("{} {lang} #{run}", uri.path());
    match uri.path() {
        "/cookie" => ([("set-cookie", format!("session={run}"))], body).into_response(),
        "/private" => ([("cache-control", "private")], body).into_response(),
        "/no-store" => ([("cache-control", "no-store")], body).into_response(),
        "/own-cc" => ([("cache-control", "public, max-age=600")], body).into_response(),
        "/vary" => ([("vary", "Accept-Language")], body).into_response(),
        "/vary-star" => ([("vary", "*")], body).into_response(),
        "/etag" => ([("etag", "\"v1\"")], body).into_response(),
        "/missing" => (StatusCode::NOT_FOUND, body).into_response(),
        "/broken" => (StatusCode::INTERNAL_SERVER_ERROR, body).into_response(),
        _ => body.into_response(),
    }
}

async fn large(State(runs): State<Runs>) -> Vec<u8> {
    runs.next();
    vec![b'x'; 2 << 20]
}

async fn stream(State(runs): State<Runs>) -> Body {
    runs.next();
    let chunks = (0..4).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("chunk{i};"))));
    Body::from_stream(futures_util::stream::iter(chunks))
}

async fn slow(State(runs): State<Runs>) -> String {
    let run = runs.next();
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("slow #{run}")
}

async fn whoami(State(runs): State<Runs>, user: Option<axum::Extension<User>>) -> String {
    let who = user.map_or("anonymous".to_owned(), |u| u.0 .0.clone());
    format!("page of {who} #{}", runs.next())
}

fn router(layer: ResponseCacheLayer, runs: Runs) -> Router {
    Router::new()
        .route("/spaces", get(page))
        .route("/spaces/{id}", get(page).put(write).delete(write))
        .route("/spaces/{id}/items", get(page).post(write))
        .route(
            "/spaces/{id}/items/{item}",
            get(page).put(write).post(write),
        )
        .route("/other", get(page))
        .route("/cookie", get(with_headers))
        .route("/private", get(with_headers))
        .route("/no-store", get(with_headers))
        .route("/own-cc", get(with_headers))
        .route("/vary", get(with_headers))
        .route("/vary-star", get(with_headers))
        .route("/etag", get(with_headers))
        .route("/missing", get(with_headers))
        .route("/broken", get(with_headers))
        .route("/plain", get(with_headers))
        .route("/large", get(large))
        .route("/stream", get(stream))
        .route("/slow", get(slow).put(write))
        .route("/me", get(whoami))
        .layer(layer)
        .layer(axum::middleware::from_fn(
            |mut req: Request<Body>, next: axum::middleware::Next| async move {
                let user = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(|u| User(u.to_owned()));
                if let Some(user) = user {
                    req.extensions_mut().insert(user);
                }
                next.run(req).await
            },
        ))
        .with_state(runs)
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn x_cache(&self) -> &str {
        self.header("x-cache")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Got {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

async fn get_(app: &Router, uri: &str) -> Got {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_with(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn cache_for(config: CacheConfig) -> Cache {
    Cache::new(config).await.unwrap()
}

fn layer(cache: &Cache) -> ResponseCacheLayer {
    layer_in(cache, "pages")
}

/// A layer under another namespace, for a second layer on one cache.
fn layer_in(cache: &Cache, namespace: &str) -> ResponseCacheLayer {
    ResponseCacheLayer::new(namespace).cache(cache.clone())
}

async fn miss_then_hit_and_skip(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    let first = get_(&app, "/spaces/1").await;
    assert_eq!((first.status, first.x_cache()), (StatusCode::OK, "MISS"));
    assert_eq!(first.text(), "/spaces/1 #1");
    assert_eq!(first.header("cache-control"), "no-cache");
    assert!(first.header("etag").starts_with('"'));
    let second = get_(&app, "/spaces/1").await;
    assert_eq!((second.status, second.x_cache()), (StatusCode::OK, "HIT"));
    assert_eq!(second.text(), "/spaces/1 #1");
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(second.header("content-type"), "text/plain; charset=utf-8");
    assert!(second.header("age").parse::<u64>().unwrap() <= 2);
    assert_eq!(second.header("cache-control"), "no-cache");
    assert_eq!(runs.get(), 1);
    // HEAD is answered from the GET's entry, without a body.
    let head = send(
        &app,
        Request::head("/spaces/1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "12");
    // A HEAD that misses runs the handler and stores nothing.
    let head = send(&app, Request::head("/other").body(Body::empty()).unwrap()).await;
    assert_eq!(head.x_cache(), "MISS");
    assert_eq!(get_(&app, "/other").await.x_cache(), "MISS");
    // A write passes through.
    let put = send(&app, Request::put("/spaces/9").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (put.status, put.x_cache()),
        (StatusCode::NO_CONTENT, "SKIP")
    );
    let stats = cache.stats();
    let pages = stats
        .namespaces
        .iter()
        .find(|ns| ns.namespace == Some("pages"))
        .unwrap();
    assert_eq!((pages.hits, pages.misses), (2, 3), "{stats:?}");
}

async fn client_no_cache_and_no_store(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "MISS");
    let refreshed = get_with(&app, "/spaces/1", &[("cache-control", "no-cache")]).await;
    assert_eq!(refreshed.x_cache(), "SKIP");
    assert_eq!(refreshed.text(), "/spaces/1 #2");
    // The refresh replaced the entry.
    let hit = get_(&app, "/spaces/1").await;
    assert_eq!(
        (hit.x_cache(), hit.text().as_str()),
        ("HIT", "/spaces/1 #2")
    );
    // no-store neither reads nor writes.
    let bypass = get_with(&app, "/spaces/2", &[("cache-control", "no-store")]).await;
    assert_eq!(
        (bypass.x_cache(), bypass.text().as_str()),
        ("SKIP", "/spaces/2 #3")
    );
    assert_eq!(get_(&app, "/spaces/2").await.x_cache(), "MISS");
    let bypass = get_with(&app, "/spaces/2", &[("cache-control", "no-store")]).await;
    assert_eq!(
        (bypass.x_cache(), bypass.text().as_str()),
        ("SKIP", "/spaces/2 #5")
    );
    // A layer that ignores the client's no-cache answers from the cache.
    let runs = Runs::default();
    let strict = router(
        layer_in(&cache, "strict").obey_client_no_cache(false),
        runs.clone(),
    );
    assert_eq!(get_(&strict, "/spaces/1").await.x_cache(), "MISS");
    let hit = get_with(&strict, "/spaces/1", &[("cache-control", "no-cache")]).await;
    assert_eq!((hit.x_cache(), runs.get()), ("HIT", 1));
}

async fn host_query_and_headers_in_the_key(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(
        layer(&cache).vary_by_header(axum::http::header::ACCEPT_LANGUAGE),
        runs.clone(),
    );
    let a = get_with(&app, "/spaces?a=1&b=2", &[("host", "a.example")]).await;
    assert_eq!(a.x_cache(), "MISS");
    let reordered = get_with(&app, "/spaces?b=2&a=1", &[("host", "A.example")]).await;
    assert_eq!(reordered.x_cache(), "HIT");
    assert_eq!(reordered.body, a.body);
    let other_host = get_with(&app, "/spaces?a=1&b=2", &[("host", "b.example")]).await;
    assert_eq!(other_host.x_cache(), "MISS");
    let other_query = get_with(&app, "/spaces?a=1&b=3", &[("host", "a.example")]).await;
    assert_eq!(other_query.x_cache(), "MISS");
    // A header the layer varies by.
    let en = get_with(&app, "/plain", &[("accept-language", "en")]).await;
    let fr = get_with(&app, "/plain", &[("accept-language", "fr")]).await;
    assert_eq!((en.x_cache(), fr.x_cache()), ("MISS", "MISS"));
    let en_again = get_with(&app, "/plain", &[("accept-language", " en ")]).await;
    assert_eq!(en_again.x_cache(), "HIT");
    assert_eq!(en_again.body, en.body);
    assert_eq!(runs.get(), 5);
}

async fn a_responses_vary_is_a_second_key(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    // The first request learns what the page varies by; the next one of each value stores it.
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(get_with(&app, "/vary", &en).await.x_cache(), "MISS");
    let en2 = get_with(&app, "/vary", &en).await;
    assert_eq!(
        (en2.x_cache(), en2.text().as_str()),
        ("MISS", "/vary en #2")
    );
    let en3 = get_with(&app, "/vary", &en).await;
    assert_eq!((en3.x_cache(), en3.text().as_str()), ("HIT", "/vary en #2"));
    assert_eq!(en3.header("vary"), "Accept-Language");
    let fr1 = get_with(&app, "/vary", &fr).await;
    assert_eq!(
        (fr1.x_cache(), fr1.text().as_str()),
        ("MISS", "/vary fr #3")
    );
    let fr2 = get_with(&app, "/vary", &fr).await;
    assert_eq!((fr2.x_cache(), fr2.text().as_str()), ("HIT", "/vary fr #3"));
    let en4 = get_with(&app, "/vary", &en).await;
    assert_eq!((en4.x_cache(), en4.text().as_str()), ("HIT", "/vary en #2"));
    // Vary: * is never stored.
    for _ in 0..2 {
        assert_eq!(get_(&app, "/vary-star").await.x_cache(), "MISS");
    }
    assert_eq!(runs.get(), 5);
}

async fn cache_control_kept_or_no_cache_sent(config: CacheConfig) {
    let cache = cache_for(config).await;
    let app = router(layer(&cache), Runs::default());
    for _ in 0..2 {
        let own = get_(&app, "/own-cc").await;
        assert_eq!(own.header("cache-control"), "public, max-age=600");
    }
    assert_eq!(get_(&app, "/own-cc").await.x_cache(), "HIT");
    let app = router(
        layer_in(&cache, "maxage").client_max_age(Duration::from_secs(30)),
        Runs::default(),
    );
    let page = get_(&app, "/plain").await;
    assert_eq!(page.header("cache-control"), "max-age=30");
}

async fn what_is_never_stored(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    for (path, status) in [
        ("/missing", StatusCode::NOT_FOUND),
        ("/broken", StatusCode::INTERNAL_SERVER_ERROR),
        ("/private", StatusCode::OK),
        ("/no-store", StatusCode::OK),
    ] {
        for run in 0..2 {
            let got = get_(&app, path).await;
            assert_eq!(
                (got.status, got.x_cache()),
                (status, "MISS"),
                "{path} {run}"
            );
        }
    }
    // A response that sets a cookie is passed on with its own cookie, never stored, and no
    // other request ever gets that cookie.
    let first = get_(&app, "/cookie").await;
    let second = get_(&app, "/cookie").await;
    assert_eq!((first.x_cache(), second.x_cache()), ("MISS", "MISS"));
    assert_ne!(first.header("set-cookie"), second.header("set-cookie"));
    assert_eq!(runs.get(), 10);
    assert!(cache
        .keys("pages", "*", 0, 100)
        .await
        .unwrap()
        .keys
        .is_empty());
}

async fn credentials_are_not_shared_unless_varied(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let shared = router(layer(&cache), runs.clone());
    assert_eq!(get_(&shared, "/me").await.x_cache(), "MISS");
    assert_eq!(get_(&shared, "/me").await.x_cache(), "HIT");
    for credentials in [
        ("cookie", "session=alice"),
        ("authorization", "Bearer alice"),
    ] {
        for _ in 0..2 {
            let got = get_with(&shared, "/me", &[credentials, ("x-user", "alice")]).await;
            assert_eq!((got.x_cache(), got.header("x-cache")), ("SKIP", "SKIP"));
            assert!(got.text().starts_with("page of alice"), "{}", got.text());
        }
    }
    // Varied by the signed-in user: each sees their own page, from the cache.
    let runs = Runs::default();
    let per_user = router(
        layer_in(&cache, "me").vary_by(|parts| parts.extensions.get::<User>().map(|u| u.0.clone())),
        runs.clone(),
    );
    let alice = [("cookie", "session=a"), ("x-user", "alice")];
    let bob = [("cookie", "session=b"), ("x-user", "bob")];
    let a1 = get_with(&per_user, "/me", &alice).await;
    let b1 = get_with(&per_user, "/me", &bob).await;
    let a2 = get_with(&per_user, "/me", &alice).await;
    let b2 = get_with(&per_user, "/me", &bob).await;
    assert_eq!((a1.x_cache(), b1.x_cache()), ("MISS", "MISS"));
    assert_eq!((a2.x_cache(), b2.x_cache()), ("HIT", "HIT"));
    assert_eq!(a2.text(), "page of alice #1");
    assert_eq!(b2.text(), "page of bob #2");
    // Credentials the middleware did not recognise: not answered from the cache.
    let stranger = get_with(&per_user, "/me", &[("cookie", "session=zzz")]).await;
    assert_eq!(stranger.x_cache(), "SKIP");
    // No credentials, no identity: the anonymous page, shared.
    assert_eq!(get_(&per_user, "/me").await.x_cache(), "MISS");
    assert_eq!(get_(&per_user, "/me").await.text(), "page of anonymous #4");
}

async fn large_and_streaming_bodies_pass_through(config: CacheConfig) {
    // Room in the cache for the large body: the layer's own limit is what is tested.
    let cache = cache_for(config.max_value_size(8 << 20)).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    for _ in 0..2 {
        let got = get_(&app, "/large").await;
        assert_eq!((got.status, got.x_cache()), (StatusCode::OK, "MISS"));
        assert_eq!(got.body.len(), 2 << 20);
        let got = get_(&app, "/stream").await;
        assert_eq!((got.status, got.x_cache()), (StatusCode::OK, "MISS"));
        assert_eq!(got.text(), "chunk0;chunk1;chunk2;chunk3;");
    }
    assert_eq!(runs.get(), 4);
    // A larger limit stores the large one.
    let roomy = router(
        layer_in(&cache, "roomy").max_body_size(4 << 20),
        Runs::default(),
    );
    assert_eq!(get_(&roomy, "/large").await.x_cache(), "MISS");
    let hit = get_(&roomy, "/large").await;
    assert_eq!((hit.x_cache(), hit.body.len()), ("HIT", 2 << 20));
}

async fn a_write_clears_its_path_and_parents_with_every_query(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    let cleared = [
        "/spaces",
        "/spaces?page=2",
        "/spaces/1",
        "/spaces/1/items?sort=name",
        "/spaces/1/items",
        "/spaces/1/items/2",
        "/spaces/1/items/2?view=full",
    ];
    let kept = ["/spaces/2", "/spaces/1/items/3", "/other"];
    for uri in cleared.iter().chain(&kept) {
        assert_eq!(get_(&app, uri).await.x_cache(), "MISS", "{uri}");
        assert_eq!(get_(&app, uri).await.x_cache(), "HIT", "{uri}");
    }
    // A write that fails clears nothing.
    let failed = send(
        &app,
        Request::put("/spaces/1/items/2?fail")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    for uri in cleared.iter().chain(&kept) {
        assert_eq!(
            get_(&app, uri).await.x_cache(),
            "HIT",
            "{uri} after a failed write"
        );
    }
    let write = send(
        &app,
        Request::post("/spaces/1/items/2")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (write.status, write.x_cache()),
        (StatusCode::NO_CONTENT, "SKIP")
    );
    for uri in cleared {
        assert_eq!(
            get_(&app, uri).await.x_cache(),
            "MISS",
            "{uri} after the write"
        );
    }
    for uri in kept {
        assert_eq!(
            get_(&app, uri).await.x_cache(),
            "HIT",
            "{uri} after the write"
        );
    }
}

async fn etags_and_not_modified(config: CacheConfig) {
    let cache = cache_for(config).await;
    let app = router(layer(&cache), Runs::default());
    let first = get_(&app, "/spaces/1").await;
    let etag = first.header("etag").to_owned();
    let expected = format!("\"{:x}\"", Md5::digest(&first.body));
    assert_eq!(etag, expected, "the quoted MD5 of the body");
    let revalidated = get_with(&app, "/spaces/1", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(
        (revalidated.header("etag"), revalidated.x_cache()),
        (etag.as_str(), "HIT")
    );
    let changed = get_with(&app, "/spaces/1", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);
    // A miss whose fresh body matches is a 304 too.
    let other = get_(&app, "/etag").await;
    assert_eq!(
        other.header("etag"),
        "\"v1\"",
        "the handler's own ETag is kept"
    );
    cache
        .clear(cache_runtime::Scope::namespace("pages"))
        .await
        .unwrap();
    let fresh = get_with(&app, "/etag", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(
        (fresh.status, fresh.x_cache()),
        (StatusCode::NOT_MODIFIED, "MISS")
    );
}

async fn concurrent_misses_run_the_handler_once(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    let calls = (0..16).map(|_| {
        let app = app.clone();
        tokio::spawn(async move { get_(&app, "/slow").await.text() })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap(), "slow #1");
    }
    assert_eq!(runs.get(), 1);
}

/// A GET that began before a write stores nothing after the write's clear: the next GET
/// misses and gets what the handler makes now.
async fn a_write_fences_a_slow_read_under_way(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    let reader = {
        let app = app.clone();
        tokio::spawn(async move { get_(&app, "/slow").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let write = send(&app, Request::put("/slow").body(Body::empty()).unwrap()).await;
    assert_eq!(write.status, StatusCode::NO_CONTENT);
    let stale = reader.await.unwrap();
    assert_eq!(
        (stale.x_cache(), stale.text().as_str()),
        ("MISS", "slow #1")
    );
    let next = get_(&app, "/slow").await;
    assert_eq!((next.x_cache(), next.text().as_str()), ("MISS", "slow #3"));
    assert_eq!(get_(&app, "/slow").await.x_cache(), "HIT");
}

async fn a_refused_namespace_passes_everything_through(config: CacheConfig) {
    let cache = cache_for(config).await;
    let runs = Runs::default();
    let app = router(
        ResponseCacheLayer::new("a:b").cache(cache.clone()),
        runs.clone(),
    );
    for _ in 0..2 {
        assert_eq!(get_(&app, "/spaces").await.x_cache(), "SKIP");
    }
    assert_eq!(runs.get(), 2);
}

on_both_stores!(
    miss_then_hit_and_skip,
    client_no_cache_and_no_store,
    host_query_and_headers_in_the_key,
    a_responses_vary_is_a_second_key,
    cache_control_kept_or_no_cache_sent,
    what_is_never_stored,
    credentials_are_not_shared_unless_varied,
    large_and_streaming_bodies_pass_through,
    a_write_clears_its_path_and_parents_with_every_query,
    etags_and_not_modified,
    concurrent_misses_run_the_handler_once,
    a_write_fences_a_slow_read_under_way,
    a_refused_namespace_passes_everything_through
);

/// Two caches on one Redis, as two processes would be: the same ETag, and one's write clears
/// the other's pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_entries_etags_and_clears() {
    let server = RedisServer::start();
    let one = cache_for(CacheConfig::redis(server.url())).await;
    let two = cache_for(CacheConfig::redis(server.url())).await;
    let (app_one, app_two) = (
        router(layer(&one), Runs::default()),
        router(layer(&two), Runs::default()),
    );
    let made = get_(&app_one, "/spaces/1").await;
    let served = get_(&app_two, "/spaces/1").await;
    assert_eq!((made.x_cache(), served.x_cache()), ("MISS", "HIT"));
    assert_eq!(made.header("etag"), served.header("etag"));
    let revalidated = get_with(
        &app_two,
        "/spaces/1",
        &[("if-none-match", made.header("etag"))],
    )
    .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    send(
        &app_two,
        Request::put("/spaces/1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(get_(&app_one, "/spaces/1").await.x_cache(), "MISS");
}

/// With `lock`, replicas missing one page at once run its handler once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_runs_the_handler_once_across_processes() {
    let server = RedisServer::start();
    let runs = Runs::default();
    let mut apps = Vec::new();
    for _ in 0..3 {
        let cache = cache_for(CacheConfig::redis(server.url())).await;
        apps.push(router(layer(&cache).lock(true), runs.clone()));
    }
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let app = apps[i % 3].clone();
            tokio::spawn(async move { get_(&app, "/slow").await.text() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "slow #1");
    }
    assert_eq!(runs.get(), 1);
}

/// An entry of the JSON format earlier versions wrote (format 1) is still served; one of
/// another format, or garbage, is a miss and is overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_stored_format_reads_as_a_miss() {
    let server = RedisServer::start();
    let cache = cache_for(CacheConfig::redis(server.url())).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "MISS");
    let page = cache.keys("pages", "*", 0, 10).await.unwrap();
    assert_eq!(page.keys.len(), 1);
    let key = &page.keys[0].0;
    let mut conn = server.client().await;
    let record: Vec<u8> = redis::AsyncCommands::get(&mut conn, key).await.unwrap();
    assert_eq!(&record[..4], b"\0RC\x02", "{record:?}");
    let set = |value: Vec<u8>| {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let _: () = redis::AsyncCommands::set(&mut conn, key, value)
                .await
                .unwrap();
        }
    };

    // Format 1, as the layer wrote it before: found and served.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let format_1 = format!(
        r#"{{"v":1,"status":200,"headers":[["content-type","text/plain; charset=utf-8"]],"body":"stored by format 1","etag":"\"f1\"","at":{now}}}"#
    );
    set(format_1.clone().into_bytes()).await;
    let got = get_(&app, "/spaces/1").await;
    assert_eq!(
        (got.x_cache(), got.text().as_str(), got.header("etag")),
        ("HIT", "stored by format 1", "\"f1\"")
    );

    // Format 0 (JSON), a record of a later format, garbage: misses, each overwritten.
    let mut later = record.clone();
    later[3] = 3;
    let cases = [
        format_1
            .replacen(r#"{"v":1,"#, r#"{"v":0,"#, 1)
            .into_bytes(),
        later,
        b"\0RC\x02R\x00".to_vec(),
        b"not json at all".to_vec(),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        set(case).await;
        let got = get_(&app, "/spaces/1").await;
        assert_eq!(
            (got.status, got.x_cache(), got.text()),
            (StatusCode::OK, "MISS", format!("/spaces/1 #{}", i + 2)),
            "case {i}"
        );
        assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "HIT", "case {i}");
    }
}

/// Redis down: the handler answers, with `X-Cache: SKIP`; writes still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_open_when_redis_is_down() {
    let mut server = RedisServer::start();
    let cache = cache_for(CacheConfig::redis(server.url())).await;
    let runs = Runs::default();
    let app = router(layer(&cache), runs.clone());
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "MISS");
    server.kill();
    for i in 0..3 {
        let got = get_(&app, "/spaces/2").await;
        assert_eq!((got.status, got.x_cache()), (StatusCode::OK, "SKIP"), "{i}");
    }
    let write = send(&app, Request::put("/spaces/2").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (write.status, write.x_cache()),
        (StatusCode::NO_CONTENT, "SKIP")
    );
    assert!(cache.stats().invalidation_failures >= 1);
}

/// Without `.cache(..)`, the layer uses the process default: before `init` every request
/// passes through (`SKIP`), after it the default cache answers, and writes clear it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_the_layer_uses_the_process_default() {
    let runs = Runs::default();
    let app = router(ResponseCacheLayer::new("default_pages"), runs.clone());
    for _ in 0..2 {
        assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "SKIP");
    }
    assert_eq!(runs.get(), 2);
    cache_runtime::init(CacheConfig::memory()).await.unwrap();
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "MISS");
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "HIT");
    send(&app, Request::put("/spaces/1").body(Body::empty()).unwrap()).await;
    assert_eq!(get_(&app, "/spaces/1").await.x_cache(), "MISS");
    assert_eq!(runs.get(), 5);
}
