//! Redis behind Sentinel: the primary is found through the sentinels each time a connection
//! is made (and checked with `ROLE`, so a replica is never taken for it), and a failover is
//! followed without a restart: on a broken connection or a `READONLY` answer the shared
//! connection is dropped, and on the sentinels' `+switch-master` every connection to the old
//! primary is too, so that the next call connects to the new one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisError, RedisResult};

use super::errors;
use crate::error::{CacheError, ConfigError};
use crate::throttle::throttled;

/// The sentinels of one primary, and how to reach it once they named it.
pub(super) struct Resolver {
    sentinel: tokio::sync::Mutex<Sentinel>,
    /// The name the sentinels monitor the primary under.
    master: String,
    /// The database, user and password (and TLS) of the primary: those of the first
    /// sentinel's URL.
    node: SentinelNodeConnectionInfo,
    /// The sentinels' URLs, for the `+switch-master` subscription.
    urls: Vec<String>,
    connection: AsyncConnectionConfig,
    connect_timeout: Duration,
}

impl Resolver {
    pub(super) fn new(
        urls: &[String],
        master: &str,
        connection: AsyncConnectionConfig,
        connect_timeout: Duration,
    ) -> Result<Self, CacheError> {
        let invalid = |url: &str, e: RedisError| {
            ConfigError::new(
                "sentinel",
                format!("invalid sentinel URL {}", errors::redact(url)),
            )
            .caused_by(e)
        };
        if master.trim().is_empty() {
            return Err(ConfigError::new("sentinel", "the master name is empty").into());
        }
        let Some(first) = urls.first() else {
            return Err(ConfigError::new("sentinel", "no sentinel URL given").into());
        };
        let info = first
            .as_str()
            .into_connection_info()
            .map_err(|e| invalid(first, e))?;
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(info.redis_settings().clone());
        #[cfg(feature = "tls")]
        let node = match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => node.set_tls_mode(match insecure {
                true => redis::TlsMode::Insecure,
                false => redis::TlsMode::Secure,
            }),
            _ => node,
        };
        let infos = urls
            .iter()
            .map(|url| {
                url.as_str()
                    .into_connection_info()
                    .map_err(|e| invalid(url, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sentinel = Sentinel::build(infos).map_err(|e| invalid(first, e))?;
        Ok(Self {
            sentinel: tokio::sync::Mutex::new(sentinel),
            master: master.to_owned(),
            node,
            urls: urls.to_vec(),
            connection,
            connect_timeout,
        })
    }

    /// A connection to the primary the sentinels name now.
    pub(super) async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        self.primary()
            .await?
            .get_multiplexed_async_connection_with_config(&self.connection)
            .await
    }

    /// A client of the primary the sentinels name now, within the connect timeout.
    pub(super) async fn primary(&self) -> RedisResult<redis::Client> {
        let asked = async {
            let mut sentinel = self.sentinel.lock().await;
            sentinel
                .async_master_for(&self.master, Some(&self.node))
                .await
        };
        match tokio::time::timeout(self.connect_timeout, asked).await {
            Ok(found) => found,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sentinels did not name a primary in time",
            ))),
        }
    }
}

/// Follows the sentinels' `+switch-master` announcements for as long as the store lives (a
/// background task it aborts), and calls `switched` on each one for this primary: the store
/// then drops every connection to the old one, so that the next call connects to the new one
/// at once instead of after its next failure, and closes the circuit the failover opened.
pub(super) async fn follow(
    resolver: Arc<Resolver>,
    switched: impl Fn() + Send + 'static,
    retry: Duration,
) {
    loop {
        for url in &resolver.urls {
            let subscribed = async {
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe("+switch-master").await?;
                Ok::<_, RedisError>(pubsub)
            };
            let pubsub = match tokio::time::timeout(resolver.connect_timeout, subscribed).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(e)) => {
                    tracing::debug!(sentinel = %errors::redact(url), "cannot subscribe to +switch-master: {e}");
                    continue;
                }
                Err(_) => continue,
            };
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                // `<master name> <old ip> <old port> <new ip> <new port>`
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                if payload.split(' ').next() == Some(resolver.master.as_str()) {
                    tracing::info!(switch = %payload, "the sentinels switched the primary; reconnecting");
                    switched();
                }
            }
            throttled!(
                warn,
                "the subscription to a sentinel's +switch-master was lost; resubscribing"
            );
        }
        tokio::time::sleep(retry).await;
    }
}
