//! What a redis-rs or deadpool error means to the caller: which [`CacheError`] it is, whether
//! it broke the connection, and how it may be shown (never with the password of a URL).

use deadpool_redis::PoolError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::error::CacheError;

/// The [`CacheError`] of a failed command of an explicit action (a clear).
pub(super) fn command(e: RedisError) -> CacheError {
    if e.is_timeout() {
        CacheError::Timeout(Box::new(e))
    } else if refused(&e) {
        CacheError::Refused(Box::new(e))
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        CacheError::Connect(Box::new(e))
    } else {
        CacheError::Server(Box::new(e))
    }
}

/// The [`CacheError`] of a connection that could not be taken from the pool.
pub(super) fn pool(e: PoolError) -> CacheError {
    match e {
        PoolError::Timeout(_) => CacheError::Timeout(Box::new(e)),
        PoolError::Backend(e) => command(e),
        PoolError::Closed => CacheError::Closed,
        other => CacheError::Connect(Box::new(other)),
    }
}

/// Whether Redis refused the credentials or, for an ACL user, a command or a key.
fn refused(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// Whether a failed connection attempt was a refusal of the credentials.
pub(super) fn is_auth_error(e: &PoolError) -> bool {
    match e {
        PoolError::Backend(e) => {
            refused(e) || e.to_string().contains("WRONGPASS") || e.to_string().contains("NOAUTH")
        }
        _ => false,
    }
}

/// Whether the connection a command failed on is broken, so that it is replaced. A timeout
/// is not: the connection is fine and late replies are matched to their requests, while
/// replacing it would make the next caller wait for a new connection to a server that is
/// slow to answer anyway.
///
/// A `READONLY` answer breaks it too: the server it leads to is a replica now (a failover
/// demoted it), and a new connection goes to the primary.
pub(super) fn breaks_connection(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
        || !e.is_timeout()
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error())
}

/// The URL without its password, for messages.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn a_readonly_answer_breaks_the_connection_and_a_timeout_does_not() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY",
            "You can't write against a read only replica.".to_owned(),
        ));
        assert_eq!(readonly.code(), Some("READONLY"));
        assert!(breaks_connection(&readonly));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!breaks_connection(&timeout));
        let other = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "ERR"));
        assert!(!breaks_connection(&other));
    }

    #[test]
    fn errors_say_what_happened() {
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(command(timeout), CacheError::Timeout(_)));
        let refused_conn =
            RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(command(refused_conn), CacheError::Connect(_)));
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        let err = command(auth);
        assert!(matches!(err, CacheError::Refused(_)), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the chain is kept"
        );
    }
}
