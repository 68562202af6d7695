//! TLS (`rediss://`, the `tls` feature): a `redis-server` with a certificate signed by a CA
//! this test generates (with the `openssl` command line tool), trusted through
//! `SSL_CERT_FILE`, which the platform verifier (rustls-native-certs) honours.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cache_runtime::{cache, CacheConfig};

#[cache(namespace = "tls")]
async fn over_tls(n: u32) -> u32 {
    n * 2
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line tool");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=cache-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

#[test]
fn rediss_urls_cache_over_tls_with_a_verified_certificate() {
    let dir = std::env::temp_dir().join(format!("cache-test-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    // Before any thread exists: the verifier reads it when it builds its root store.
    std::env::set_var("SSL_CERT_FILE", path("ca.crt"));

    let port = support::free_port();
    let server = support::RedisServer::start_on(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Plain text to a TLS port is an outage like any other: the function still answers.
        cache_runtime::init(
            CacheConfig::redis(format!("redis://127.0.0.1:{port}/"))
                .connect_timeout(Duration::from_millis(300))
                .command_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let before = cache_runtime::stats().hits;
        for _ in 0..3 {
            assert_eq!(over_tls(1).await, 2);
        }
        assert_eq!(
            cache_runtime::stats().hits,
            before,
            "nothing cached without TLS"
        );

        cache_runtime::init(CacheConfig::redis(format!("rediss://127.0.0.1:{port}/")))
            .await
            .unwrap();
        assert_eq!(over_tls(2).await, 4);
        let before = cache_runtime::stats().hits;
        assert_eq!(over_tls(2).await, 4);
        assert_eq!(cache_runtime::stats().hits, before + 1, "a hit over TLS");
        assert_eq!(
            cache_runtime::clear_cache(cache_runtime::Scope::namespace("tls"))
                .await
                .unwrap(),
            1
        );
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
