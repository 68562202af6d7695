//! The admin API: an axum `Router` over a [`Cache`], behind a guard the application supplies.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /keys?namespace=&pattern=&cursor=&count=` | a page of the namespace's entries (key, milliseconds left), found through its index; `cursor` is the next page's, 0 after the last |
//! | `DELETE /keys/{namespace}/{key}` | removes one entry |
//! | `POST /clear?namespace=&pattern=` | removes a namespace's entries, or those matching `pattern`; without a namespace, everything under the prefix |
//! | `GET /stats` | [`Stats`](crate::Stats) as JSON |
//! | `GET /metrics` | what the application's metrics renderer gives (Prometheus text), if it gave one |
//! | `GET /health` | whether the store answers, its circuit, and a `PING`'s latency |
//!
//! In a pattern only `*` and `?` are wildcards; every other glob character is escaped, and a
//! pattern only ever matches keys under `{prefix}:{namespace}:`. A request the guard refuses
//! gets `401` and touches nothing.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::error::CacheError;
use crate::scope::Scope;

type Guard = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;
type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API of a cache; build it with a guard, then turn it into a `Router` to nest.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::web::{bearer, Admin};
/// use cache_runtime::{Cache, CacheConfig};
///
/// let cache = Cache::new(CacheConfig::memory()).await?;
/// let app: axum::Router = axum::Router::new()
///     .nest("/admin/cache", Admin::new(cache, bearer("s3cret")).router());
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub struct Admin {
    cache: Cache,
    guard: Guard,
    metrics: Option<Render>,
}

impl Admin {
    /// The admin API of `cache`; `guard` decides, from a request's parts, whether it may
    /// use it (see [`bearer`]).
    pub fn new(cache: Cache, guard: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        Self {
            cache,
            guard: Arc::new(guard),
            metrics: None,
        }
    }

    /// Serves `GET /metrics` with what `render` returns (for example
    /// `move || prometheus_handle.render()` of `metrics-exporter-prometheus`).
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// The routes, behind the guard.
    pub fn router(self) -> Router {
        let guard = Arc::clone(&self.guard);
        let state = Arc::new(self);
        Router::new()
            .route("/keys", get(list))
            .route("/keys/{namespace}/{key}", delete(remove))
            .route("/clear", post(clear))
            .route("/stats", get(stats))
            .route("/metrics", get(metrics))
            .route("/health", get(health))
            .with_state(state)
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let guard = Arc::clone(&guard);
                async move {
                    let (parts, body) = request.into_parts();
                    if !guard(&parts) {
                        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
                    }
                    next.run(Request::from_parts(parts, body)).await
                }
            }))
    }
}

/// [`Admin::new`]`(cache, guard).router()`.
pub fn admin_router(
    cache: Cache,
    guard: impl Fn(&Parts) -> bool + Send + Sync + 'static,
) -> Router {
    Admin::new(cache, guard).router()
}

/// A guard that lets through requests with `Authorization: Bearer {token}`, compared in
/// constant time. An empty token lets nothing through.
pub fn bearer(token: impl Into<String>) -> impl Fn(&Parts) -> bool + Send + Sync + 'static {
    let expected = format!("Bearer {}", token.into()).into_bytes();
    let usable = expected.len() > "Bearer ".len();
    move |parts: &Parts| {
        let Some(given) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return false;
        };
        let given = given.as_bytes();
        let mut differ = u8::from(given.len() != expected.len());
        for (i, byte) in expected.iter().enumerate() {
            differ |= byte ^ given.get(i).copied().unwrap_or(0);
        }
        usable && differ == 0
    }
}

type Shared = State<Arc<Admin>>;

/// An admin error as a response: a bad request, or the store failing.
struct Failed(CacheError);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            CacheError::InvalidNamespace(_) | CacheError::InvalidConfig(_) => {
                StatusCode::BAD_REQUEST
            }
            CacheError::Connect(_) | CacheError::Timeout(_) | CacheError::Closed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = Json(serde_json::json!({ "error": self.0.to_string() }));
        (status, body).into_response()
    }
}

impl From<CacheError> for Failed {
    fn from(e: CacheError) -> Self {
        Failed(e)
    }
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    cursor: u64,
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Serialize)]
struct Listed {
    keys: Vec<ListedKey>,
    /// The next page's cursor; 0 after the last page.
    cursor: u64,
}

#[derive(Serialize)]
struct ListedKey {
    key: String,
    /// Milliseconds left; `null` for no expiry.
    ttl_ms: Option<u64>,
}

async fn list(
    State(admin): Shared,
    Query(query): Query<ListQuery>,
) -> Result<Json<Listed>, Failed> {
    let count = query.count.unwrap_or(100).clamp(1, 1_000);
    let pattern = query.pattern.as_deref().unwrap_or("*");
    let page = admin
        .cache
        .keys(&query.namespace, pattern, query.cursor, count)
        .await?;
    Ok(Json(Listed {
        keys: page
            .keys
            .into_iter()
            .map(|(key, left)| ListedKey {
                key,
                ttl_ms: left.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
        cursor: page.next_cursor,
    }))
}

#[derive(Serialize)]
struct Removed {
    removed: u64,
}

async fn remove(
    State(admin): Shared,
    Path((ns, key)): Path<(String, String)>,
) -> Result<Json<Removed>, Failed> {
    let removed = admin.cache.clear(Scope::key(ns, key)).await?;
    Ok(Json(Removed { removed }))
}

#[derive(Deserialize)]
struct ClearQuery {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    pattern: Option<String>,
}

async fn clear(
    State(admin): Shared,
    Query(query): Query<ClearQuery>,
) -> Result<Json<Removed>, Failed> {
    let removed = match (query.namespace, query.pattern) {
        (None, None) => admin.cache.clear(Scope::all()).await?,
        (Some(ns), None) => admin.cache.clear(Scope::namespace(ns)).await?,
        (Some(ns), Some(pattern)) => admin.cache.clear_matching(&ns, &pattern).await?,
        (None, Some(_)) => {
            return Err(Failed(CacheError::InvalidNamespace(String::new())));
        }
    };
    Ok(Json(Removed { removed }))
}

async fn stats(State(admin): Shared) -> Json<crate::Stats> {
    Json(admin.cache.stats())
}

async fn metrics(State(admin): Shared) -> Response {
    match &admin.metrics {
        Some(render) => render().into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics renderer was given").into_response(),
    }
}

#[derive(Serialize)]
struct Health {
    reachable: bool,
    circuit: crate::Circuit,
    ping_ms: Option<f64>,
    error: Option<String>,
}

async fn health(State(admin): Shared) -> Response {
    let ping = admin.cache.ping().await;
    let health = Health {
        reachable: ping.is_ok(),
        circuit: admin.cache.stats().circuit,
        ping_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1e3),
        error: ping.err().map(|e| e.to_string()),
    };
    let status = match health.reachable {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(health)).into_response()
}
