//! [`Scope`] and [`clear_cache`]: explicit removal of entries, which reports its errors.

use crate::{backend, key, CacheError};

/// What [`clear_cache`] removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(pub(crate) ScopeKind);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Key { namespace: String, key: String },
    Namespace(String),
    All,
}

impl Scope {
    /// The one entry that `key = "..."` (or a `key_builder` returning `key`) made in
    /// `namespace`. Use `""` for a function without a namespace.
    ///
    /// ```
    /// let scope = cache_runtime::Scope::key("catalog", "product_123");
    /// # let _ = scope;
    /// ```
    pub fn key(namespace: impl Into<String>, key: impl Into<String>) -> Self {
        Self(ScopeKind::Key {
            namespace: namespace.into(),
            key: key.into(),
        })
    }

    /// Every entry of a namespace. Entries of other namespaces (`users` when clearing
    /// `user*`) and of functions without a namespace are left alone.
    ///
    /// On Redis the entries are found through the namespace's index, to which every write
    /// of this crate adds its key, so the clear costs time in proportion to the namespace,
    /// not to the database. A key put under `{prefix}:{namespace}:` by other means (another
    /// tool, or a version of this crate from before the index) is not in it: it expires on
    /// its own, or [`Scope::key`] or [`Scope::all`] removes it.
    ///
    /// ```
    /// let scope = cache_runtime::Scope::namespace("catalog");
    /// # let _ = scope;
    /// ```
    pub fn namespace(namespace: impl Into<String>) -> Self {
        Self(ScopeKind::Namespace(namespace.into()))
    }

    /// Every entry under the configured prefix; nothing outside it is touched.
    pub fn all() -> Self {
        Self(ScopeKind::All)
    }

    pub(crate) fn validate(&self) -> Result<(), CacheError> {
        let bad = |ns: &str| CacheError::InvalidNamespace(ns.to_owned());
        match &self.0 {
            ScopeKind::Key { namespace, .. } => {
                key::check_namespace(namespace).map_err(|_| bad(namespace))
            }
            ScopeKind::Namespace(ns) if ns.is_empty() => Err(bad(ns)),
            ScopeKind::Namespace(ns) => key::check_namespace(ns).map_err(|_| bad(ns)),
            ScopeKind::All => Ok(()),
        }
    }
}

/// Removes the entries of `scope` and returns how many there were.
///
/// Unlike a cached call, this reports failures: the caller asked for the removal and must
/// know whether it happened. On Redis it uses `UNLINK` for a key and `SCAN` + `UNLINK` in
/// batches for a namespace or everything, only ever under the prefix.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{clear_cache, CacheConfig, Scope};
/// cache_runtime::init(CacheConfig::memory()).await?;
/// let removed = clear_cache(Scope::namespace("catalog")).await?;
/// assert_eq!(removed, 0);
/// assert!(clear_cache(Scope::namespace("a:b")).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn clear_cache(scope: Scope) -> Result<u64, CacheError> {
    scope.validate()?;
    let backend = backend::current_arc().ok_or(CacheError::NotInitialized)?;
    backend.clear(&scope.0).await
}
