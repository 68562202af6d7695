//! `lock = true`: N processes missing the same key at once run the body once.

mod support;

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use support::RedisServer;

/// Starts `n` peers that call the function at the same instant; returns how many ran the body
/// and the results they printed.
fn race(server: &RedisServer, n: usize, which: &str) -> (usize, Vec<String>) {
    let go_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1_500;
    let peers: Vec<_> = (0..n)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_lock_peer"))
                .args([server.url(), go_at.to_string(), which.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a peer")
        })
        .collect();
    let mut bodies = 0;
    let mut results = Vec::new();
    for peer in peers {
        let out = peer.wait_with_output().expect("peer output");
        assert!(out.status.success(), "peer failed: {out:?}");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line == "body" {
                bodies += 1;
            } else if let Some(result) = line.strip_prefix("result ") {
                results.push(result.to_string());
            }
        }
    }
    (bodies, results)
}

#[test]
fn processes_missing_one_key_at_once_run_the_body_once_with_the_lock() {
    let server = RedisServer::start();
    let (bodies, results) = race(&server, 4, "locked");
    assert_eq!(results, vec!["report"; 4]);
    assert_eq!(bodies, 1, "one body for four processes");

    // Without the lock each process runs its own: what the lock is for.
    let (bodies, results) = race(&server, 4, "unlocked");
    assert_eq!(results, vec!["report"; 4]);
    assert!(bodies > 1, "without the lock, {bodies} bodies ran");
}
