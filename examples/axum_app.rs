//! A typical service on axum: users, posts and products, read through `#[cache]` and
//! invalidated by the writes, per-user pages keyed by the signed-in user, HTML pages under
//! `/pages` cached whole by `ResponseCacheLayer` (with `X-Cache`, `ETag` and 304s; a write
//! to a page clears it and its parents), and the admin API behind a bearer token. The
//! "database" is a map behind a 200 ms sleep, so the cache shows.
//!
//! ```sh
//! cargo run --example axum_app                  # the in-memory cache
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example axum_app
//! ADMIN_TOKEN=s3cret cargo run --example axum_app   # the admin API under /admin/cache
//! ```
//!
//! It listens on 127.0.0.1:3000 (`PORT` for another). The signed-in user is the `x-user`
//! header (a stand-in for real authentication middleware).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use cache_runtime::web::{bearer, Admin, ResponseCacheLayer};
use cache_runtime::{cache, invalidate, Cache, CacheConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Post {
    id: u64,
    author: u64,
    title: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
}

#[derive(Deserialize)]
struct NewPost {
    author: u64,
    title: String,
}

#[derive(Deserialize)]
struct PriceUpdate {
    price_cents: u64,
}

#[derive(Deserialize)]
struct UserUpdate {
    name: String,
}

/// The signed-in user, put in the request's extensions by [`sign_in`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SignedIn(String);

#[derive(Default)]
struct Db {
    users: BTreeMap<u64, User>,
    posts: BTreeMap<u64, Post>,
    products: BTreeMap<u64, Product>,
}

#[derive(Clone)]
struct AppState {
    cache: Cache,
    db: Arc<Mutex<Db>>,
}

impl AppState {
    /// A slow query.
    async fn query<T>(&self, read: impl FnOnce(&Db) -> T) -> T {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        read(&db)
    }

    fn write<T>(&self, write: impl FnOnce(&mut Db) -> T) -> T {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        write(&mut db)
    }
}

enum AppError {
    NotFound,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
        }
    }
}

#[cache(expire = 120, namespace = "users", key = "user:{id}", cache = &state.cache)]
async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<User>, AppError> {
    let user = state.query(|db| db.users.get(&id).cloned()).await;
    user.map(Json).ok_or(AppError::NotFound)
}

#[invalidate(key = "users:user:{id}", namespace = "posts", cache = &state.cache)]
async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Json(update): Json<UserUpdate>,
) -> Result<Json<User>, AppError> {
    let user = state.write(|db| {
        let user = db.users.get_mut(&id)?;
        user.name = update.name;
        Some(user.clone())
    });
    user.map(Json).ok_or(AppError::NotFound)
}

#[cache(expire = 60, namespace = "posts", cache = &state.cache)]
async fn list_posts(State(state): State<AppState>) -> Json<Vec<Post>> {
    Json(state.query(|db| db.posts.values().cloned().collect()).await)
}

#[invalidate(namespace = "posts", cache = &state.cache)]
async fn create_post(
    State(state): State<AppState>,
    Json(new): Json<NewPost>,
) -> (StatusCode, Json<Post>) {
    let post = state.write(|db| {
        let id = db.posts.len() as u64 + 1;
        let post = Post {
            id,
            author: new.author,
            title: new.title,
        };
        db.posts.insert(id, post.clone());
        post
    });
    (StatusCode::CREATED, Json(post))
}

/// A per-user page: the signed-in user is part of the key, so no user sees another's.
#[cache(expire = 60, namespace = "feeds", cache = &state.cache)]
async fn my_feed(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
) -> Json<Vec<String>> {
    let titles = state
        .query(|db| {
            db.posts
                .values()
                .map(|p| p.title.clone())
                .collect::<Vec<_>>()
        })
        .await;
    Json(
        titles
            .into_iter()
            .map(|t| format!("{t} (for {})", me.0))
            .collect(),
    )
}

#[cache(expire = 300, namespace = "products", cache = &state.cache)]
async fn get_product(State(state): State<AppState>, Path(id): Path<u64>) -> Option<Json<Product>> {
    state
        .query(|db| db.products.get(&id).cloned())
        .await
        .map(Json)
}

/// The product list page, cached whole by the layer (the handler knows nothing of it).
async fn products_page(State(state): State<AppState>) -> axum::response::Html<String> {
    let products = state
        .query(|db| db.products.values().cloned().collect::<Vec<_>>())
        .await;
    let items: String = products
        .iter()
        .map(|p| {
            format!(
                "<li>{}: {}.{:02}</li>",
                p.name,
                p.price_cents / 100,
                p.price_cents % 100
            )
        })
        .collect();
    axum::response::Html(format!("<ul>{items}</ul>"))
}

/// One product's page.
async fn product_page(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<axum::response::Html<String>, AppError> {
    let product = state.query(|db| db.products.get(&id).cloned()).await;
    let product = product.ok_or(AppError::NotFound)?;
    Ok(axum::response::Html(format!(
        "<h1>{}</h1><p>{} cents</p>",
        product.name, product.price_cents
    )))
}

/// A write under `/pages`: when it succeeds, the layer clears `/pages/products/{id}`,
/// `/pages/products` and `/pages`; `#[invalidate]` clears what `#[cache]` keeps of products.
#[invalidate(namespace = "products", cache = &state.cache)]
async fn update_price(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Json(update): Json<PriceUpdate>,
) -> Result<Json<Product>, AppError> {
    let product = state.write(|db| {
        let product = db.products.get_mut(&id)?;
        product.price_cents = update.price_cents;
        Some(product.clone())
    });
    product.map(Json).ok_or(AppError::NotFound)
}

/// A page for the signed-in user, cached per user by the layer (`vary_by`).
async fn my_page(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
) -> axum::response::Html<String> {
    let posts = state.query(|db| db.posts.len()).await;
    axum::response::Html(format!("<p>Hello {}, {posts} posts today</p>", me.0))
}

/// Reads the signed-in user from the `x-user` header (real middleware checks a session).
async fn sign_in(mut request: Request, next: Next) -> Response {
    let who = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned();
    request.extensions_mut().insert(SignedIn(who));
    next.run(request).await
}

fn seed() -> Db {
    let mut db = Db::default();
    for (id, name) in [(1, "ann"), (2, "bob")] {
        db.users.insert(
            id,
            User {
                id,
                name: name.into(),
            },
        );
    }
    db.posts.insert(
        1,
        Post {
            id: 1,
            author: 1,
            title: "hello".into(),
        },
    );
    for id in 1..=3 {
        let name = format!("product {id}");
        db.products.insert(
            id,
            Product {
                id,
                name,
                price_cents: 999 * id,
            },
        );
    }
    db
}

fn app(state: AppState, admin_token: Option<String>) -> Router {
    // Whole responses, kept 60 s: the product pages are the same for everyone (a request with
    // a cookie or an Authorization header is not served a shared copy), and `/pages/me` is
    // kept per signed-in user.
    let pages = Router::new()
        .route("/pages/products", get(products_page))
        .route("/pages/products/{id}", get(product_page).put(update_price))
        .layer(
            ResponseCacheLayer::new("pages")
                .cache(state.cache.clone())
                .ttl(Duration::from_secs(60)),
        );
    let per_user = Router::new().route("/pages/me", get(my_page)).layer(
        ResponseCacheLayer::new("my_pages")
            .cache(state.cache.clone())
            .ttl(Duration::from_secs(60))
            .vary_by(|parts| parts.extensions.get::<SignedIn>().map(|me| me.0.clone())),
    );
    let mut app = Router::new()
        .route("/users/{id}", get(get_user).put(update_user))
        .route("/posts", get(list_posts).post(create_post))
        .route("/me/feed", get(my_feed))
        .route(
            "/products/{id}",
            get(|state: State<AppState>, id: Path<u64>| async move {
                get_product(state, id).await.ok_or(AppError::NotFound)
            }),
        )
        .merge(pages)
        .merge(per_user)
        .layer(middleware::from_fn(sign_in))
        .with_state(state.clone());
    // The admin API only exists with a token to guard it.
    if let Some(token) = admin_token.filter(|t| !t.is_empty()) {
        app = app.nest(
            "/admin/cache",
            Admin::new(state.cache, bearer(token)).router(),
        );
    }
    app
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::new(CacheConfig::from_env()).await?;
    let state = AppState {
        cache,
        db: Arc::new(Mutex::new(seed())),
    };
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, app(state, std::env::var("ADMIN_TOKEN").ok())).await?;
    Ok(())
}
