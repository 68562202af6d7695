//! [`Storable`]: what a cached value must be.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type whose values the cache can store: it is written as JSON with `serde::Serialize` and
/// read back with `serde::Deserialize`, so every type that implements both is `Storable`.
///
/// What a `#[cache]` function stores is its return value, the `Ok` value of a `Result` or
/// the `Some` value of an `Option`. When that lacks the traits, the compiler's error names
/// the type inside it that lacks them (`ArticleView` in `Result<Option<ArticleView>, E>`).
/// A generic cached function can bound its type parameters with it:
///
/// ```
/// use cache_runtime::{cache, Storable};
///
/// #[cache(namespace = "echo")]
/// async fn echo<T: Storable>(value: T) -> Vec<T> {
///     vec![value]
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "the cache cannot store `{Self}`: it does not implement both `serde::Serialize` and `serde::Deserialize`",
    label = "the cache stores this type as JSON",
    note = "derive them (`#[derive(serde::Serialize, serde::Deserialize)]` on `{Self}`; a type of another crate may have a `serde` feature), or, when only a part of the return type is to be stored, say which with `returns = \"result\"` (the `Ok` value) or `returns = \"option\"` (the `Some` value)"
)]
pub trait Storable: Serialize + DeserializeOwned {}

// `do_not_recommend`: a type that lacks the traits is reported as not `Storable`, with the
// message above, rather than once for each of serde's traits it lacks.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Storable for T {}
