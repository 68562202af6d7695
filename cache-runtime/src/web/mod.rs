//! axum integration (the `axum` feature): the response types `#[cache]` stores by their inner
//! value. With the feature on, `#[cache]` on a handler leaves `State<_>` out of the key,
//! hashes `Path`, `Query`, `Json`, `Form` and `Extension` by their inner value, and stores
//! `Json<T>`, `Html<T>`, `(StatusCode, _)` and `Result`/`Option` of those by what they carry:
//! `Err`, `None` and a non-2xx status are not stored.

mod admin;
mod response;
pub(crate) mod shape;

pub use admin::{admin_router, bearer, Admin};
pub use response::{ResponseCache, ResponseCacheLayer, X_CACHE};
