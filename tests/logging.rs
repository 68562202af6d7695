//! What an outage looks like in the log: a handful of clear lines, not one per call.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{cache, CacheConfig};
use support::RedisServer;

#[cache(namespace = "log")]
async fn work(n: u64) -> u64 {
    n * 3
}

/// Collects everything logged, one string per line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn capture() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(move || writer.clone())
        .init();
    captured
}

// One test in this binary: the subscriber is process-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_log_a_handful_of_clear_lines() {
    let log = capture();

    // A wrong password: callers get their results, the log gets one clear error.
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let config =
        CacheConfig::redis(server.url_with("", "wrong")).breaker_cooldown(Duration::from_millis(1));
    cache_runtime::init(config).await.unwrap();
    for n in 0..300 {
        assert_eq!(work(n).await, n * 3);
    }
    let lines = log.lines();
    let errors: Vec<_> = lines.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(errors[0].contains("credentials"), "{}", errors[0]);
    assert!(
        !errors[0].contains("wrong"),
        "the password is not logged: {}",
        errors[0]
    );
    assert!(
        lines.len() <= 4,
        "a handful of lines for 300 calls: {lines:#?}"
    );

    // Redis killed under load: a handful of warnings for hundreds of failing calls.
    let mut server = RedisServer::start();
    cache_runtime::init(
        CacheConfig::redis(server.url()).breaker_cooldown(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    work(1).await;
    let _ = log.lines();
    server.kill();
    for n in 0..500 {
        assert_eq!(work(n % 7).await, (n % 7) * 3);
    }
    let lines = log.lines();
    assert!(!lines.is_empty(), "the outage is logged");
    assert!(
        lines.len() <= 4,
        "{} lines for 500 calls: {lines:#?}",
        lines.len()
    );
}
