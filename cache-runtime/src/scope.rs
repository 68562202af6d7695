//! [`Scope`]: what a clear removes.

use crate::error::CacheError;
use crate::keys::{self, ScopeKind};

/// What a clear ([`Cache::clear`](crate::Cache::clear), [`clear_cache`](crate::clear_cache))
/// removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(ScopeKind);

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

    pub(crate) fn kind(&self) -> &ScopeKind {
        &self.0
    }

    pub(crate) fn validate(&self) -> Result<(), CacheError> {
        let bad = |ns: &str| CacheError::InvalidNamespace(ns.to_owned());
        match &self.0 {
            ScopeKind::Key { namespace, .. } => {
                keys::check_namespace(namespace).map_err(|_| bad(namespace))
            }
            ScopeKind::Namespace(ns) if ns.is_empty() => Err(bad(ns)),
            ScopeKind::Namespace(ns) => keys::check_namespace(ns).map_err(|_| bad(ns)),
            ScopeKind::All => Ok(()),
        }
    }
}
