//! `#[cache]` on axum handlers, through a real `Router`: `State` is not in the key,
//! `Extension` is, extractors are hashed by their inner value, and `Json`, `Html`, `String`,
//! `(StatusCode, Json)` and `Result`/`Option` of them are stored by their inner value and
//! rebuilt into the same response; `Err`, `None` and non-2xx statuses are not stored. On the
//! memory store and on Redis; no test takes turns (each app has a `Cache` of its own).

#[macro_use]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get as route_get;
use axum::{Extension, Json, Router};
use cache_runtime::{cache, Cache, CacheConfig};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use support::RedisServer;
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    cache: Cache,
    /// Which "database" this instance reads: part of every answer.
    db: &'static str,
    bodies: Arc<AtomicUsize>,
}

impl AppState {
    fn ran(&self) -> usize {
        self.bodies.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    db: String,
    run: usize,
    verbose: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Filter {
    verbose: Option<bool>,
}

struct AppError;

impl IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (StatusCode::NOT_FOUND, "no such user").into_response()
    }
}

#[cache(expire = 60, namespace = "users", cache = &state.cache)]
async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(filter): Query<Filter>,
) -> Result<Json<User>, AppError> {
    let run = state.ran();
    if id == 0 {
        return Err(AppError);
    }
    Ok(Json(User {
        id,
        db: state.db.to_owned(),
        run,
        verbose: filter.verbose.unwrap_or(false),
    }))
}

/// The signed-in user, put in the request's extensions by middleware.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Me(String);

#[cache(expire = 60, namespace = "me", cache = &state.cache)]
async fn my_page(State(state): State<AppState>, Extension(me): Extension<Me>) -> Html<String> {
    Html(format!("<p>{} ({})</p>", me.0, state.ran()))
}

#[cache(expire = 60, namespace = "created", cache = &state.cache)]
async fn created(State(state): State<AppState>, Path(id): Path<u64>) -> (StatusCode, Json<u64>) {
    let run = state.ran() as u64;
    match id {
        0 => (StatusCode::CONFLICT, Json(run)),
        _ => (StatusCode::CREATED, Json(run)),
    }
}

#[cache(expire = 60, namespace = "text", cache = &state.cache)]
async fn text(State(state): State<AppState>, Path(id): Path<u64>) -> String {
    format!("{id}:{}", state.ran())
}

#[cache(expire = 60, namespace = "maybe", cache = &state.cache, skip = [state])]
async fn maybe(state: AppState, id: u64) -> Option<Json<usize>> {
    let run = state.ran();
    (id != 0).then_some(Json(run))
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/users/{id}", route_get(get_user))
        .route("/me", route_get(my_page))
        .route("/created/{id}", route_get(created))
        .route("/text/{id}", route_get(text))
        .layer(axum::middleware::from_fn(
            |mut req: Request<Body>, next: axum::middleware::Next| async move {
                let who = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned();
                req.extensions_mut().insert(Me(who));
                next.run(req).await
            },
        ))
        .with_state(state)
}

/// The status, content type and body of a GET of `uri`, as `user`.
async fn get_as(app: &Router, uri: &str, user: &str) -> (StatusCode, String, String) {
    let request = Request::get(uri)
        .header("x-user", user)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String, String) {
    get_as(app, uri, "anonymous").await
}

async fn state(config: CacheConfig, db: &'static str) -> AppState {
    AppState {
        cache: Cache::new(config).await.unwrap(),
        db,
        bodies: Arc::default(),
    }
}

async fn a_handler_misses_then_hits_and_rebuilds_the_same_response(config: CacheConfig) {
    let state = state(config, "a").await;
    let app = app(state.clone());
    let first = get(&app, "/users/7?verbose=true").await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(first.1, "application/json");
    assert_eq!(
        get(&app, "/users/7?verbose=true").await,
        first,
        "the same response"
    );
    assert_eq!(
        state.bodies.load(Ordering::SeqCst),
        1,
        "the second was a hit"
    );
    // The query is part of the key.
    let other = get(&app, "/users/7?verbose=false").await;
    assert_ne!(other, first);
    assert_eq!(state.bodies.load(Ordering::SeqCst), 2);
    // An `Err` is not stored.
    assert_eq!(get(&app, "/users/0").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/users/0").await.0, StatusCode::NOT_FOUND);
    assert_eq!(state.bodies.load(Ordering::SeqCst), 4);
    let stats = state.cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 4), "{stats:?}");
}

/// `State` is never in the key: two states with the same cache share entries. With a
/// `Cache` each (the usual way: it lives in the state), they do not.
async fn state_is_not_in_the_key(config: CacheConfig) {
    let a = state(config.clone(), "a").await;
    let b = AppState {
        db: "b",
        ..a.clone()
    };
    let first = get(&app(a.clone()), "/users/1").await;
    assert!(first.2.contains(r#""db":"a""#), "{first:?}");
    assert_eq!(
        get(&app(b), "/users/1").await,
        first,
        "state is not in the key"
    );
    // A cache of its own (on Redis, under a prefix of its own: one Redis and one prefix is
    // one cache, by design).
    let c = state(config.prefix("c"), "c").await;
    let own = get(&app(c), "/users/1").await;
    assert!(own.2.contains(r#""db":"c""#), "a cache of its own: {own:?}");
}

/// `Extension` is in the key: the signed-in user's page is never served to another user.
async fn extension_is_in_the_key(config: CacheConfig) {
    let state = state(config, "a").await;
    let app = app(state.clone());
    let ann = get_as(&app, "/me", "ann").await;
    let bob = get_as(&app, "/me", "bob").await;
    assert!(
        ann.2.contains("ann") && bob.2.contains("bob"),
        "{ann:?} {bob:?}"
    );
    assert_eq!(ann.1, "text/html; charset=utf-8");
    assert_eq!(get_as(&app, "/me", "ann").await, ann, "a hit for ann");
    assert_eq!(get_as(&app, "/me", "bob").await, bob, "and one for bob");
    assert_eq!(state.bodies.load(Ordering::SeqCst), 2);
}

/// `(StatusCode, Json<T>)` keeps its status; a non-2xx status is not stored. `String` is a
/// plain value; `Option<Json<T>>` stores only `Some`.
async fn statuses_strings_and_options(config: CacheConfig) {
    let state = state(config, "a").await;
    let app = app(state.clone());
    let made = get(&app, "/created/5").await;
    assert_eq!(made.0, StatusCode::CREATED);
    assert_eq!(
        get(&app, "/created/5").await,
        made,
        "201 again, from the cache"
    );
    assert_eq!(get(&app, "/created/0").await.0, StatusCode::CONFLICT);
    let conflict = get(&app, "/created/0").await;
    assert_eq!(conflict.0, StatusCode::CONFLICT);
    assert_eq!(state.bodies.load(Ordering::SeqCst), 3, "409 is not stored");
    let text = get(&app, "/text/3").await;
    assert_eq!(text.1, "text/plain; charset=utf-8");
    assert_eq!(get(&app, "/text/3").await, text);
    assert_eq!(state.bodies.load(Ordering::SeqCst), 4);
    assert!(maybe(state.clone(), 0).await.is_none());
    assert!(maybe(state.clone(), 0).await.is_none());
    let some = maybe(state.clone(), 1).await.map(|json| json.0);
    assert_eq!(maybe(state.clone(), 1).await.map(|json| json.0), some);
    assert_eq!(state.bodies.load(Ordering::SeqCst), 7, "None is not stored");
}

/// A handler's entry is the JSON of its inner value, as any function returning it stores:
/// other services read it as they would.
async fn a_json_response_is_stored_as_its_value(server: &RedisServer) {
    let state = state(CacheConfig::redis(server.url()), "a").await;
    get(&app(state), "/created/9").await;
    let mut conn = server.client().await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "cache:created:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored: String = redis::AsyncCommands::get(&mut conn, &keys[0])
        .await
        .unwrap();
    assert_eq!(stored, "[201,1]", "[status, value]");
}

on_both_stores!(
    a_handler_misses_then_hits_and_rebuilds_the_same_response,
    state_is_not_in_the_key,
    extension_is_in_the_key,
    statuses_strings_and_options
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_value_is_the_inner_value() {
    let server = RedisServer::start();
    a_json_response_is_stored_as_its_value(&server).await;
}
