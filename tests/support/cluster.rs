//! Test harness: a real Redis Cluster (3 primaries, 3 replicas) of `redis-server` processes on
//! free loopback ports, owned by the test. Self-contained (no `support::` helpers) so a test
//! binary can include it alone with `#[path = "support/cluster.rs"] mod cluster;`.
//!
//! Everything here blocks on `std` (sleep, `TcpStream`, `redis-cli`) rather than async I/O, so
//! it works from a plain `#[test]` and from inside a `#[tokio::test]` without needing a runtime.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Redis Cluster listens on `port + 10000` for its node-to-node bus.
const BUS: u16 = 10000;

/// A loopback port whose cluster bus port is free too.
///
/// The bus port must fit below 65536 and be free, or the node fails to start. Ports handed out
/// before in this process are remembered, so the six nodes (and clusters started by tests
/// running in parallel) never pick each other's ports or bus ports while those are not yet bound.
fn free_port() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        if port == 6379 || port > u16::MAX - BUS {
            continue;
        }
        let bus = port + BUS;
        if taken.contains(&port)
            || taken.contains(&bus)
            || TcpListener::bind(("127.0.0.1", bus)).is_err()
        {
            continue;
        }
        taken.extend([port, bus]);
        return port;
    }
    panic!("no free loopback port with a free cluster bus port (port + {BUS}) in 1000 tries");
}

/// `redis-cli`'s stdout for a command on one node. The harness asks the servers through
/// `redis-cli`, not a client library, so that it does not depend on the crate under test.
fn cli(port: u16, args: &[&str]) -> String {
    let bin = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
    let out = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run redis-cli: is it installed? (or set REDIS_CLI)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One cluster node. It owns its process and its data directory, so that dropping it (also
/// while unwinding from a failed assertion) leaves neither a stray server nor a stale
/// `nodes.conf` behind.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl Node {
    /// Starts the server without waiting for it: the six nodes boot concurrently.
    fn spawn(port: u16) -> Node {
        assert_ne!(
            port, 6379,
            "a test cluster must never touch a developer's default Redis"
        );
        let dir =
            std::env::temp_dir().join(format!("cache-test-cluster-{port}-{}", std::process::id()));
        // A leftover `nodes.conf` would make the node rejoin an old cluster.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir for a cluster node");
        let mut node = Node {
            port,
            child: None,
            dir,
        };
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(node.dir.join("nodes.conf"))
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&node.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: is it installed? (or set REDIS_SERVER)");
        node.child = Some(child);
        node
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is still ours to talk to (not [`Cluster::kill`]ed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, not a shutdown: tests use it to simulate a crashed node, and waiting reaps the
    /// process so the port is really gone when this returns.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running 3 + 3 cluster; dropping it stops every node and removes their directories.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

/// Starts six nodes, joins them with `redis-cli --cluster create` and returns once every node
/// agrees the cluster is up, so that a test's first command cannot meet a `CLUSTERDOWN`.
///
/// Panics (stopping whatever was started) if a node does not listen within 10 s, if the create
/// fails, or if the cluster is not ok on every node within 20 s.
pub fn start() -> Cluster {
    // Built first and filled as we go, so a panic below drops (kills) what already runs.
    let mut cluster = Cluster { nodes: Vec::new() };
    for _ in 0..6 {
        cluster.nodes.push(Node::spawn(free_port()));
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &cluster.nodes {
        while TcpStream::connect(("127.0.0.1", node.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cluster node on port {} did not listen within 10 s",
                node.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Primaries otherwise hold each replica's first (diskless) sync back 5 s for company.
        let reply = cli(
            node.port,
            &["config", "set", "repl-diskless-sync-delay", "0"],
        );
        assert_eq!(reply.trim(), "OK", "CONFIG SET on port {}", node.port);
    }

    let addrs: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
    let bin = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
    let out = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A replica that has not finished its first sync never fails over (it deems its data too
    // old), so `kill` of a primary would strand its slots: wait for the replication links too.
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &cluster.nodes {
        loop {
            let info =
                cli(node.port, &["cluster", "info"]) + &cli(node.port, &["info", "replication"]);
            let has = |line: &str| info.lines().any(|l| l.trim() == line);
            if has("cluster_state:ok")
                && has("cluster_slots_assigned:16384")
                && (has("role:master") || has("master_link_status:up"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ok on port {} within 20 s:\n{info}",
                node.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cluster
}

impl Cluster {
    /// Seed URLs for a cluster client: every node, killed ones included, as a client would be
    /// configured with before a failure.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The running nodes' current primaries, asked of each node itself because failover after a
    /// [`kill`](Self::kill) changes which ones they are.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|n| cli(n.port, &["role"]).lines().next().map(str::trim) == Some("master"))
            .map(|n| n.port)
            .collect()
    }

    /// Crashes one node (SIGKILL) to exercise failover; its replica takes over after the 2 s
    /// node timeout. The node stays in [`nodes`](Self::nodes) so its port remains known.
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
            .kill();
    }
}

impl Drop for Cluster {
    /// Stops the nodes now, in order, rather than whenever the fields happen to be dropped:
    /// each `Node`'s drop kills its process and removes its directory.
    fn drop(&mut self) {
        self.nodes.clear();
    }
}
