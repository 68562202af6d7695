//! The `#[cache]` attribute of [`cache-runtime`](https://docs.rs/cache-runtime).
//!
//! Use it through `cache-runtime`, which re-exports it; this crate only reads the attribute and
//! the function's signature and emits a short call into `cache_runtime`, where every decision
//! about keys, storage and failures is made. See [`macro@cache`] for the attribute's arguments.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

use proc_macro::TokenStream;

mod attr;
mod expand;
mod invalidate;
mod types;
mod web;

/// Caches the results of an `async fn`.
///
/// The first call with given arguments runs the body and stores its value; later calls with the
/// same arguments return the stored value until it expires. Every backend failure is treated as
/// a miss: the body runs and its value is returned, so the cache never makes a call fail.
///
/// ```
/// use cache_runtime::cache;
/// # mod db {
/// #   #[derive(serde::Serialize, serde::Deserialize)] pub struct Product { id: u64 }
/// #   pub async fn load_product(id: u64) -> Product { Product { id } }
/// # }
/// # use db::Product;
///
/// #[cache(expire = 300, namespace = "catalog")]
/// async fn product(id: u64) -> Product {
///     db::load_product(id).await
/// }
/// ```
///
/// The value (the `T` of `Result<T, E>` or `Option<T>`) must implement `serde::Serialize` and
/// `serde::de::DeserializeOwned` (`cache_runtime::Storable`); every argument that is hashed
/// into the key must implement `serde::Serialize`. A value that does not is one compile error
/// per function, at the type inside it that lacks the traits (`ArticleView` in
/// `Result<Option<ArticleView>, E>`).
///
/// # Arguments
///
/// All arguments are optional; `#[cache]` alone caches for 60 seconds under a key made from
/// all the arguments.
///
/// | argument | example | meaning |
/// |---|---|---|
/// | `expire` | `expire = 300` | Seconds a value is kept: an integer literal, at least 1. Default `60`. |
/// | `namespace` | `namespace = "catalog"` | A group of keys that can be cleared together. Not empty, no `:`. Default: none. |
/// | `key` | `key = "user:{id}"` | A fixed key instead of hashing the arguments; `{name}` and `{name:spec}` insert an argument as `format!` does, `{{` and `}}` are literal braces. |
/// | `key_builder` | `key_builder = \|id: &u64\| format!("p{id}")` | A closure or function path that builds the key from the (unskipped) arguments; its result must implement `Display`. |
/// | `skip` | `skip = [db, self]` | Arguments left out of the key (and not passed to `key_builder`). |
/// | `returns` | `returns = "value"` | `"value"`, `"result"` or `"option"`: overrides what the return type says (see below). |
/// | `lock` | `lock = true` | A cross-process lock in Redis around a miss: N processes missing one key run the body once. |
/// | `jitter` | `jitter = 0.1` | Shortens each entry's TTL by a random fraction of up to this (above 0, below 1). |
/// | `refresh` | `refresh = 10` | A hit with at most this many seconds left is recomputed by one caller; the others keep the cached value. |
/// | `stale_if_error` | `stale_if_error = 300` | A copy outlives the TTL by this many seconds and is served when the body returns `Err` or panics. |
/// | `cache` | `cache = &self.cache` | The `cache_runtime::Cache` to use (a `&Cache` or an `Option<&Cache>`, evaluated before the body runs; it may use the arguments). Default: the process default that `init` installs. |
///
/// `key` and `key_builder` cannot be used together.
///
/// # The key
///
/// Without `key` or `key_builder`, the key is made from the function's module path and name and
/// a hash of its arguments, in order, serialized together:
///
/// - a plain argument `id: u64` is hashed as `id`;
/// - an argument written as a pattern, such as axum's `Path(id): Path<u64>`, contributes every
///   name the pattern binds (`id` here); `_` binds nothing;
/// - `self` is hashed like any other argument (so `Self` must implement `Serialize`); add
///   `skip = [self]` when the result does not depend on the instance.
///
/// A method's key also names the type of `Self`, and a generic function's key its type
/// arguments (`module::f<u32>`), so methods of two types and two instantiations never share
/// entries. An associated function without `self` cannot be told apart from a free function
/// of the same name in the same module: give one of them a `namespace`. Keys given by `key`
/// and `key_builder` do not include the function at all, so two functions with the same key
/// in the same namespace share one entry.
///
/// ```
/// # use cache_runtime::cache;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Product;
/// # struct Db; impl Db {
/// #   async fn count_users(&self, _: u64) -> u64 { 1 }
/// #   async fn product(&self, _: u64) -> Option<Product> { None }
/// # }
/// # struct Catalog { db: Db }
/// # struct Path<T>(T);
/// # async fn render(id: u64) -> String { id.to_string() }
/// #[cache(expire = 30, skip = [db])]
/// async fn user_count(db: &Db, team: u64) -> u64 {
///     db.count_users(team).await
/// }
///
/// impl Catalog {
///     /// The result depends on `id` only, not on which `Catalog` answers.
///     #[cache(namespace = "catalog", skip = [self])]
///     async fn product(&self, id: u64) -> Option<Product> {
///         self.db.product(id).await
///     }
/// }
///
/// #[cache(expire = 120)]
/// async fn show(Path(id): Path<u64>) -> String {
///     render(id).await
/// }
/// ```
///
/// `key = "..."` names arguments (or names bound by argument patterns) in placeholders; each
/// name is checked at compile time. `{self}` is not allowed: build such keys with
/// `key_builder`.
///
/// ```
/// # use cache_runtime::cache;
/// # type Item = u8;
/// # async fn load(_: u64, _: u32) -> Vec<Item> { vec![] }
/// #[cache(key = "user:{id}:page:{page:03}")]
/// async fn page(id: u64, page: u32) -> Vec<Item> {
///     load(id, page).await
/// }
/// ```
///
/// `key_builder` is called with one argument for each name that is not skipped, in order: a
/// reference to it, except that an argument that already is a reference `&T` is passed as is
/// (`&mut T` as `&T`), and `self` is passed as `&Self`.
///
/// ```
/// # use cache_runtime::cache;
/// # type Product = u8; type Page = u8;
/// # struct Db; impl Db { fn region(&self) -> &str { "eu" } async fn product(&self, _: u64) -> u8 { 1 } }
/// # async fn load(_: &str, _: u32) -> Page { 1 }
/// #[cache(key_builder = |db: &Db, id: &u64| format!("{}:{id}", db.region()))]
/// async fn product(db: &Db, id: u64) -> Product {
///     db.product(id).await
/// }
///
/// fn page_key(user: &String, page: &u32) -> String {
///     format!("{user}:{page}")
/// }
///
/// #[cache(key_builder = page_key)]
/// async fn page(user: String, page: u32) -> Page {
///     load(&user, page).await
/// }
/// ```
///
/// # The return type
///
/// The declared return type decides what is stored:
///
/// | return type | stored |
/// |---|---|
/// | `Result<T, E>`, also `io::Result<T>`, `anyhow::Result<T>`: any path whose last segment is `Result<..>` | `Ok` values only; errors are returned and not stored |
/// | `Option<T>`, any path whose last segment is `Option<..>` | `Some` values only |
/// | anything else, including no return type | every value |
///
/// Only the name is looked at: a type of your own that is named `Result` or `Option` but is not
/// the standard one does not type-check this way; write `returns = "value"` (or `"result"`,
/// `"option"` for an alias under another name) to state the intent explicitly.
///
/// ```
/// # use cache_runtime::cache;
/// # type Rates = Vec<f64>; type Row = u8; #[derive(Debug)] struct DbError;
/// # async fn fetch(_: &str) -> Result<Rates, std::io::Error> { Ok(vec![]) }
/// # async fn query(_: u64) -> Lookup { Ok(1) }
/// #[cache(expire = 600)]
/// async fn rates(currency: String) -> Result<Rates, std::io::Error> {
///     let rates = fetch(&currency).await?;
///     Ok(rates)
/// }
///
/// type Lookup = Result<Row, DbError>;
///
/// #[cache(returns = "result")]
/// async fn lookup(id: u64) -> Lookup {
///     query(id).await
/// }
/// ```
///
/// An `impl Trait` return type cannot be stored; name a concrete type.
///
/// # Where it applies
///
/// On any `async fn` with a body: free functions, methods (with `self`, `&self` or
/// `&mut self`), associated functions, generic functions and axum handlers. Everything about
/// the function (attributes, visibility, signature) is kept; only its body is wrapped.
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache(attr.into(), item.into()).into()
}

/// Clears cached entries after a write succeeds.
///
/// Put it on the function that writes (a handler, a repository method): before its body runs,
/// the fences of the targets move, so misses under way (which may have read the data before
/// the write) store nothing and the body's own re-reads do not wait for them; after the body
/// returns a success (`Ok`, `Some`, a 2xx status or response, or any other value), the
/// targets are cleared. A body that fails, panics or is cancelled clears nothing. A clear that
/// cannot run (Redis down) is logged and counted in `Stats::invalidation_failures`, and never
/// turns the write's success into an error.
///
/// ```
/// use cache_runtime::{cache, invalidate};
///
/// #[cache(namespace = "users", key = "user:{id}")]
/// async fn user(id: u64) -> String { format!("user {id}") }
///
/// #[cache(namespace = "posts")]
/// async fn posts(author: u64) -> Vec<String> { Vec::new() }
///
/// #[invalidate(namespace = "posts", key = "users:user:{id}")]
/// async fn rename_user(id: u64, name: String) -> Result<(), String> {
///     // ... write to the database ...
///     Ok(())
/// }
/// ```
///
/// | argument | example | meaning |
/// |---|---|---|
/// | `namespace` | `namespace = "posts"`, `namespace = ["posts", "feed"]` | every entry of these namespaces |
/// | `key` | `key = "users:user:{id}"` | the entry `key` of `namespace`, written `"namespace:key"` (`":key"` without a namespace); `{arg}` placeholders as in `#[cache]`'s `key`, checked at compile time |
/// | `entry` | `entry = user(id)`, `entry = [user(id), posts(id)]` | the exact entry a `#[cache]` function stores for these arguments (in its own cache), however its key is made; the arguments are evaluated before the body, so pass copies |
/// | `cache` | `cache = &state.cache` | the `Cache` whose `namespace`s and `key`s are cleared (default: the process default) |
#[proc_macro_attribute]
pub fn invalidate(attr: TokenStream, item: TokenStream) -> TokenStream {
    invalidate::invalidate(attr.into(), item.into()).into()
}
