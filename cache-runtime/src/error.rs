//! The crate's one error type.

use std::borrow::Cow;
use std::error::Error as StdError;

/// What went wrong underneath, kept as the [`source`](StdError::source) of a [`CacheError`]:
/// the client library's own error, whose type is not part of this crate's API.
pub type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in an operation the caller asked for explicitly:
/// [`Cache::new`](crate::Cache::new) (and [`init`](crate::init)), and clearing
/// ([`Cache::clear`](crate::Cache::clear), [`clear_cache`](crate::clear_cache)).
///
/// A cached function never returns this: there every cache failure is a miss (fail-open).
/// The variants say what happened; the error of the Redis client underneath, when there is
/// one, is the [`source`](StdError::source), so the whole chain can be logged.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::{Cache, CacheConfig, CacheError};
/// let err = Cache::new(CacheConfig::memory().prefix("")).await.unwrap_err();
/// assert!(matches!(err, CacheError::InvalidConfig(_)));
/// assert_eq!(err.to_string(), "invalid cache configuration: prefix: may not be empty");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration is not usable: a setting out of range, a malformed URL.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(ConfigError),
    /// A namespace given to a clear is empty or contains `:`.
    #[error("invalid namespace {0:?}: a namespace is non-empty and may not contain `:`")]
    InvalidNamespace(String),
    /// A clear of the process default cache was asked for before [`init`](crate::init).
    #[error("the cache is not initialised: call `cache_runtime::init` first")]
    NotInitialized,
    /// No connection to Redis could be made: refused, unreachable, closed mid-way.
    #[error("cannot reach redis: {0}")]
    Connect(#[source] Source),
    /// Redis did not answer in time, or no connection was free in time.
    #[error("redis did not answer in time: {0}")]
    Timeout(#[source] Source),
    /// Redis refused the credentials, or the ACL user may not run a command or touch a key.
    #[error("redis refused the credentials or the command (check the user and its ACL): {0}")]
    Refused(#[source] Source),
    /// Redis answered a command with an error.
    #[error("redis answered an error: {0}")]
    Server(#[source] Source),
    /// [`evict`](crate::evict) was given a future that is not a call of a `#[cache]`
    /// function (or whose arguments do not serialize).
    #[error("not a call of a `#[cache]` function whose key can be made")]
    NotCached,
    /// The cache was shut down (the last handle to it was dropped) while the operation ran.
    #[error("the cache was shut down")]
    Closed,
}

/// A configuration that cannot be used: which setting, and why.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::{Cache, CacheConfig, CacheError};
/// let err = Cache::new(CacheConfig::memory().max_capacity(0)).await.unwrap_err();
/// let CacheError::InvalidConfig(config) = err else { unreachable!() };
/// assert_eq!(config.setting(), "max_capacity");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    setting: &'static str,
    reason: Cow<'static, str>,
    #[source]
    source: Option<Source>,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            setting,
            reason: reason.into(),
            source: None,
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn caused_by(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The name of the setting (the [`CacheConfig`](crate::CacheConfig) method, or `url`).
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl From<ConfigError> for CacheError {
    fn from(error: ConfigError) -> Self {
        CacheError::InvalidConfig(error)
    }
}
