//! The admin API through a real `Router`, on the memory store and on Redis: refused without
//! the guard (touching nothing), keys listed with TTLs and pages, one key removed, a
//! namespace or a pattern cleared (never beyond the namespace), stats, health, metrics.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use cache_runtime::web::{bearer, Admin};
use cache_runtime::{cache, Cache, CacheConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use support::RedisServer;
use tower::ServiceExt;

#[cache(namespace = "users", key = "user:{id}", cache = cache, skip = [cache])]
async fn user(cache: &Cache, id: u64) -> String {
    format!("user {id}")
}

#[cache(namespace = "users", key = "admin:{id}", cache = cache, skip = [cache])]
async fn admin_user(cache: &Cache, id: u64) -> String {
    format!("admin {id}")
}

#[cache(namespace = "usersx", key = "user:{id}", cache = cache, skip = [cache])]
async fn lookalike(cache: &Cache, id: u64) -> String {
    format!("lookalike {id}")
}

async fn call(app: &Router, method: Method, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

async fn fill(cache: &Cache) {
    for id in 0..5 {
        user(cache, id).await;
    }
    admin_user(cache, 1).await;
    lookalike(cache, 1).await;
}

async fn the_admin_api(config: CacheConfig) {
    let cache = Cache::new(config).await.unwrap();
    fill(&cache).await;
    let app = Admin::new(cache.clone(), bearer("s3cret"))
        .metrics(|| "cache_hits_total 1\n".to_owned())
        .router();
    // Refused without (or with a wrong) token, and nothing is touched.
    for token in [None, Some("wrong")] {
        let (status, _) = call(&app, Method::POST, "/clear", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&app, Method::GET, "/keys?namespace=users", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let token = Some("s3cret");
    // Pages of keys with their TTLs.
    let mut seen = Vec::new();
    let mut cursor = 0;
    for _ in 0..20 {
        let uri = format!("/keys?namespace=users&count=2&cursor={cursor}");
        let (status, page) = call(&app, Method::GET, &uri, token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for key in page["keys"].as_array().unwrap() {
            assert!(key["ttl_ms"].as_u64().unwrap() > 50_000, "{key}");
            seen.push(key["key"].as_str().unwrap().to_owned());
        }
        cursor = page["cursor"].as_u64().unwrap();
        if cursor == 0 {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "5 users and 1 admin: {seen:?}");
    assert!(
        seen.iter().all(|k| k.starts_with("cache:users:")),
        "{seen:?}"
    );
    let (_, only) = call(
        &app,
        Method::GET,
        "/keys?namespace=users&pattern=admin:*",
        token,
    )
    .await;
    assert_eq!(only["keys"].as_array().unwrap().len(), 1, "{only}");
    // One key.
    let (status, removed) = call(&app, Method::DELETE, "/keys/users/user:0", token).await;
    assert_eq!(
        (status, removed["removed"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    // A pattern: only the matching keys of the namespace, never of a lookalike namespace.
    let (status, removed) = call(
        &app,
        Method::POST,
        "/clear?namespace=users&pattern=user:*",
        token,
    )
    .await;
    assert_eq!(
        (status, removed["removed"].as_u64()),
        (StatusCode::OK, Some(4))
    );
    let (_, left) = call(&app, Method::GET, "/keys?namespace=users", token).await;
    assert_eq!(
        left["keys"].as_array().unwrap().len(),
        1,
        "the admin entry stays: {left}"
    );
    let (_, other) = call(&app, Method::GET, "/keys?namespace=usersx", token).await;
    assert_eq!(other["keys"].as_array().unwrap().len(), 1, "{other}");
    // Glob characters other than * and ? are literal; a namespace with `:` is refused.
    let (_, none) = call(
        &app,
        Method::POST,
        "/clear?namespace=users&pattern=[a]*",
        token,
    )
    .await;
    assert_eq!(none["removed"].as_u64(), Some(0));
    let (status, _) = call(&app, Method::POST, "/clear?namespace=us:ers", token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, Method::GET, "/keys?namespace=a:b", token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A whole namespace.
    let (_, removed) = call(&app, Method::POST, "/clear?namespace=usersx", token).await;
    assert_eq!(removed["removed"].as_u64(), Some(1));
    // Stats, health, metrics.
    let (status, stats) = call(&app, Method::GET, "/stats", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["misses"].as_u64(), Some(7), "{stats}");
    assert_eq!(stats["circuit"], "closed");
    let (status, health) = call(&app, Method::GET, "/health", token).await;
    assert_eq!(
        (status, health["reachable"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, text) = call(&app, Method::GET, "/metrics", token).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, Some("cache_hits_total 1\n"))
    );
}

#[tokio::test]
async fn the_admin_api_on_memory() {
    the_admin_api(CacheConfig::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_on_redis() {
    let server = RedisServer::start();
    the_admin_api(CacheConfig::redis(server.url())).await;
    // Nothing outside the prefix was touched.
    let mut conn = server.client().await;
    let _: () = redis::AsyncCommands::set(&mut conn, "foreign:users:user:1", "x")
        .await
        .unwrap();
    let cache = Cache::new(CacheConfig::redis(server.url())).await.unwrap();
    let app = Admin::new(cache, bearer("t")).router();
    call(
        &app,
        Method::POST,
        "/clear?namespace=users&pattern=*",
        Some("t"),
    )
    .await;
    call(&app, Method::POST, "/clear", Some("t")).await;
    let kept: Option<String> = redis::AsyncCommands::get(&mut conn, "foreign:users:user:1")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_redis_is_down() {
    let mut server = RedisServer::start();
    let cache = Cache::new(
        CacheConfig::redis(server.url())
            .connect_timeout(std::time::Duration::from_millis(200))
            .pool_wait_timeout(std::time::Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let app = Admin::new(cache, bearer("t")).router();
    server.kill();
    let (status, health) = call(&app, Method::GET, "/health", Some("t")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["reachable"].as_bool(), Some(false));
}
