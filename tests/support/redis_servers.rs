//! Real Redis servers for the tests, started by the tests on free loopback
//! ports (`redis-server` from Debian's packages; `scripts/test` installs it),
//! and `MONITOR` to count the commands a client sends.
//!
//! A test binary starts its servers once and shares them ([`RedisServer::shared`]);
//! tests keep apart by key prefix. Tests that count round trips hold
//! [`quiet`] so that no other test's traffic falls into their count; every
//! other test on a shared server holds [`traffic`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::demo::free_port;
use super::process;

/// A redis-server process on a loopback port, killed on drop.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    /// The `requirepass` of the server, if it has one.
    password: Option<String>,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A server without persistence.
    pub(crate) fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server that writes every change to its append-only file before
    /// answering, so a `kill -9` loses nothing it acknowledged.
    pub(crate) fn start_durable() -> RedisServer {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// A server with extra `redis-server` arguments.
    pub(crate) fn start_with(args: &[&str]) -> RedisServer {
        Self::start_on_free_port(args, None, free_port)
    }

    /// A server with extra arguments and a password (`--requirepass`), on a
    /// port from `port`; another port is tried when one turns out taken.
    pub(super) fn start_on_free_port(
        args: &[&str],
        password: Option<&str>,
        port: impl Fn() -> u16,
    ) -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            if let Some(password) = password {
                args.extend(["--requirepass".into(), password.into()]);
            }
            let port = port();
            let dir = std::env::temp_dir().join(format!("vs-redis-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the server's directory");
            let mut server = RedisServer {
                port,
                password: password.map(str::to_owned),
                dir,
                args,
                child: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// The server this test binary shares between its tests (started once).
    pub(crate) fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(RedisServer::start)
    }

    /// Starts the server again on the same port and directory after [`stop`](Self::stop).
    pub(crate) fn start_again(&mut self) {
        if let Err(e) = self.launch() {
            panic!(
                "redis-server did not start again on port {}: {e}",
                self.port
            );
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is already running");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = process::spawn(command).unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): install it with `apt-get install redis-server`, \
                 or run `bash scripts/test`, which installs it"
            )
        });
        self.child = Some(child);
        let ready = wait_until_serving(&self.url(), self.child.as_mut().expect("just started"));
        if ready.is_err() {
            self.stop();
        }
        ready
    }

    /// Kills the server, as a crash would (`kill -9`: no shutdown, no save).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A plain redis-rs connection, for looking into the server.
    pub(crate) fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test's redis-server")
    }

    /// Runs one command and converts its answer.
    pub(crate) fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the server at `url` answers, and is `child` (another process
/// may hold the port): `Err` when the child exits or never answers.
fn wait_until_serving(url: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server exited at start-up ({status})"));
        }
        let info = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c));
        if let Ok(info) = info {
            let pid = format!("process_id:{}", child.id());
            return if info.lines().any(|l| l.trim() == pid) {
                Ok(())
            } else {
                Err("another server answers on this port".into())
            };
        }
        if Instant::now() > deadline {
            return Err("no answer within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A unique key prefix per call, so tests sharing a server keep apart.
pub(crate) fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("t{}-{name}:", NEXT.fetch_add(1, Ordering::Relaxed))
}

static TRAFFIC: RwLock<()> = RwLock::const_new(());

/// Held by every test that sends traffic to a shared server.
pub(crate) async fn traffic() -> RwLockReadGuard<'static, ()> {
    TRAFFIC.read().await
}

/// [`traffic`] for a test that is not async.
pub(crate) fn traffic_blocking() -> RwLockReadGuard<'static, ()> {
    TRAFFIC.blocking_read()
}

/// Held by a test that counts round trips: no other test sends meanwhile.
pub(crate) async fn quiet() -> RwLockWriteGuard<'static, ()> {
    TRAFFIC.write().await
}

/// `MONITOR` on one server: every command it receives, as it receives it.
/// Closed on drop.
pub(crate) struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stream: TcpStream,
    /// Sends the markers and asks who the clients are; opened before any
    /// counting, so its own set-up never falls into a count.
    marker: Mutex<redis::Connection>,
    /// The marker connection's address, as `MONITOR` shows it.
    marker_addr: String,
}

impl Monitor {
    pub(crate) fn start(server: &RedisServer) -> Monitor {
        let mut stream =
            TcpStream::connect(("127.0.0.1", server.port)).expect("connect for MONITOR");
        if let Some(password) = &server.password {
            write!(stream, "AUTH {password}\r\n").expect("send AUTH");
        }
        stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
        if server.password.is_some() {
            let mut ok = String::new();
            reader.read_line(&mut ok).expect("AUTH answers");
            assert_eq!(ok.trim_end(), "+OK", "AUTH refused");
        }
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR answers");
        assert_eq!(ok.trim_end(), "+OK", "MONITOR refused");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut marker = server.conn();
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query(&mut marker)
            .expect("CLIENT INFO");
        Monitor {
            lines,
            stream,
            marker: Mutex::new(marker),
            marker_addr: client_field(&info, "addr").expect("addr").to_owned(),
        }
    }

    /// Sends a marker the monitor will see, and waits until it has.
    fn mark(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let marker = format!("monitor-mark-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query(&mut *self.marker.lock().unwrap())
            .expect("ECHO");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("\"{marker}\"")))
        {
            assert!(Instant::now() < deadline, "MONITOR never showed {marker}");
            std::thread::sleep(Duration::from_millis(2));
        }
        marker
    }

    /// The addresses of clients that are not the application: this
    /// monitor's marker, Sentinels, and replication links.
    fn others(&self) -> Vec<String> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut *self.marker.lock().unwrap())
            .expect("CLIENT LIST");
        let mut others: Vec<String> = list
            .lines()
            .filter(|l| {
                client_field(l, "name").is_some_and(|n| n.starts_with("sentinel-"))
                    || client_field(l, "flags").is_some_and(|f| f.contains(['S', 'M']))
            })
            .filter_map(|l| client_field(l, "addr").map(str::to_owned))
            .collect();
        others.push(self.marker_addr.clone());
        others
    }

    /// The lines received between two markers.
    fn between(&self, start: &str, end: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        let at = |m: &str| {
            lines
                .iter()
                .position(|l| l.contains(&format!("\"{m}\"")))
                .unwrap()
        };
        lines[at(start) + 1..at(end)].to_vec()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A `name=value` field of a `CLIENT LIST` / `CLIENT INFO` line.
fn client_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// The client address of a `MONITOR` line (`<time> [<db> <addr>] ...`).
fn client_of(line: &str) -> Option<&str> {
    let inside = &line[line.find('[')? + 1..line.find(']')?];
    inside.split(' ').nth(1)
}

/// The command of a `MONITOR` line (`<time> [<db> <client>] "cmd" "arg"...`),
/// lowercased.
pub(crate) fn command_of(line: &str) -> Option<String> {
    let rest = &line[line.find("] \"")? + 3..];
    Some(rest[..rest.find('"')?].to_ascii_lowercase())
}

/// Whether a `MONITOR` line is a command a script ran inside Redis.
pub(crate) fn is_script_internal(line: &str) -> bool {
    line.contains(" lua] ")
}

/// What a client sent to a set of servers while a piece of work ran.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Commands sent by clients, by name (lowercase), over all servers.
    pub(crate) commands: BTreeMap<String, u64>,
    /// Commands run inside scripts, by name, over all servers.
    pub(crate) script_internal: BTreeMap<String, u64>,
    /// Client commands per server, in the order the monitors were given.
    pub(crate) per_server: Vec<u64>,
}

impl Sent {
    /// Client commands over all servers: the round trips.
    pub(crate) fn round_trips(&self) -> u64 {
        self.commands.values().sum()
    }
}

/// Runs `work` and returns what clients sent to the monitored servers
/// meanwhile. Hold [`quiet`] around it.
pub(crate) async fn count<F: std::future::Future>(
    monitors: &[&Monitor],
    work: F,
) -> (F::Output, Sent) {
    let starts: Vec<String> = monitors.iter().map(|m| m.mark()).collect();
    let output = work.await;
    let ends: Vec<String> = monitors.iter().map(|m| m.mark()).collect();
    let mut sent = Sent::default();
    for ((monitor, start), end) in monitors.iter().zip(&starts).zip(&ends) {
        let others = monitor.others();
        let mut here = 0;
        for line in monitor.between(start, end) {
            if client_of(&line).is_some_and(|c| others.iter().any(|o| o == c)) {
                continue;
            }
            let Some(command) = command_of(&line) else {
                continue;
            };
            if is_script_internal(&line) {
                *sent.script_internal.entry(command).or_default() += 1;
            } else {
                here += 1;
                *sent.commands.entry(command).or_default() += 1;
            }
        }
        sent.per_server.push(here);
    }
    (output, sent)
}

/// A free loopback port whose cluster bus port (+10000) is free too.
pub(crate) fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A Redis Cluster of 3 primaries with one replica each, on loopback.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six nodes and joins them (`redis-cli --cluster create
    /// --cluster-replicas 1`). A node silent for `node_timeout` is failed
    /// (and its replica promoted); a cluster with a failed primary keeps
    /// serving the other slots.
    pub(crate) fn start(node_timeout: Duration) -> RedisCluster {
        let node_timeout = node_timeout.as_millis().to_string();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_on_free_port(
                    &[
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        &node_timeout,
                        "--cluster-require-full-coverage",
                        "no",
                        // Replicas sync at once instead of after 5 s.
                        "--repl-diskless-sync-delay",
                        "0",
                    ],
                    None,
                    free_cluster_port,
                )
            })
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    /// The cluster this test binary shares between its tests (started once;
    /// slow to fail a node, so a busy machine never triggers a failover).
    pub(crate) fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start(Duration::from_secs(5)))
    }

    /// Waits until every running node reports the cluster ok, agrees on
    /// three primaries with slots and no failed node, and every replica is
    /// linked to its primary.
    pub(crate) fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self
            .running()
            .all(|n| node_ready(n, self.running().count()))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The running nodes that are primaries now.
    pub(crate) fn primaries(&self) -> Vec<&RedisServer> {
        self.running()
            .filter(|n| {
                let role: Vec<redis::Value> = n.query(&["ROLE"]);
                matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
            })
            .collect()
    }

    /// The primary that serves `key` now, as the first running node sees it.
    pub(crate) fn primary_for(&self, key: &str) -> &RedisServer {
        let node = self.running().next().expect("a running node");
        let slot: i64 = node.query(&["CLUSTER", "KEYSLOT", key]);
        // Each entry: start slot, end slot, [ip, port, id, ...], replicas...
        let port = node
            .query::<Vec<Vec<redis::Value>>>(&["CLUSTER", "SLOTS"])
            .into_iter()
            .find_map(|range| {
                let int = |v: &redis::Value| match v {
                    redis::Value::Int(i) => Some(*i),
                    _ => None,
                };
                let (lo, hi) = (int(range.first()?)?, int(range.get(1)?)?);
                let redis::Value::Array(primary) = range.get(2)? else {
                    return None;
                };
                (lo..=hi)
                    .contains(&slot)
                    .then(|| int(primary.get(1)?))
                    .flatten()
            })
            .expect("every slot is served");
        self.nodes
            .iter()
            .find(|n| i64::from(n.port) == port)
            .expect("the primary is one of the nodes")
    }

    /// Kills the node on `port`, as a crash would.
    pub(crate) fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
            .stop();
    }

    /// Waits until every replica has received everything its primary wrote.
    pub(crate) fn wait_replicated(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.primaries().iter().all(|p| replicas_caught_up(p)) {
            assert!(Instant::now() < deadline, "the replicas did not catch up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A redis-rs cluster connection, for looking into the cluster.
    pub(crate) fn conn(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .and_then(|c| c.get_connection())
            .expect("connect to the test cluster")
    }
}

/// Whether every replica of `primary` has acknowledged all it wrote.
pub(crate) fn replicas_caught_up(primary: &RedisServer) -> bool {
    let info: String = primary.query(&["INFO", "replication"]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let Some(written) = field("master_repl_offset:").and_then(|v| v.parse::<i64>().ok()) else {
        return false;
    };
    let replicas: Vec<i64> = info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains("offset="))
        .filter_map(|l| l.split("offset=").nth(1)?.split(',').next()?.parse().ok())
        .collect();
    !replicas.is_empty() && replicas.iter().all(|&acked| acked >= written)
}

fn node_ready(node: &RedisServer, running: usize) -> bool {
    let Ok(mut conn) = redis::Client::open(node.url()).and_then(|c| c.get_connection()) else {
        return false;
    };
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut conn)
        .unwrap_or_default();
    if !info.contains("cluster_state:ok") {
        return false;
    }
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut conn)
        .unwrap_or_default();
    let live: Vec<&str> = nodes
        .lines()
        .filter(|l| !l.contains("fail") && !l.contains("handshake") && !l.contains("noaddr"))
        .collect();
    let primaries_with_slots = live
        .iter()
        .filter(|l| l.contains("master") && l.split(' ').count() >= 9)
        .count();
    if live.len() < running || primaries_with_slots != 3 {
        return false;
    }
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .unwrap_or_default();
    !replication.contains("role:slave") || replication.contains("master_link_status:up")
}

/// A primary, its replica, and one Sentinel monitoring them as `mymaster`.
pub(crate) struct RedisSentinel {
    pub(crate) servers: Vec<RedisServer>,
    pub(crate) sentinel_port: u16,
    /// The password of the primary and its replica.
    pub(crate) password: String,
    sentinel: Option<Child>,
    dir: PathBuf,
}

pub(crate) const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    /// A primary and a replica, both requiring `password`, and a Sentinel
    /// that fails the primary over when it was silent for `down_after`.
    pub(crate) fn start(down_after: Duration, password: &str) -> RedisSentinel {
        let common = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--masterauth",
            password,
        ];
        let primary = RedisServer::start_on_free_port(&common, Some(password), free_port);
        let primary_port = primary.port.to_string();
        let mut replica_args = common.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::start_on_free_port(&replica_args, Some(password), free_port);
        let mut last_error = String::new();
        for _ in 0..5 {
            let sentinel_port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "vs-sentinel-{}-{sentinel_port}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the Sentinel's directory");
            let conf = dir.join("sentinel.conf");
            // Sentinel rewrites its configuration file, so it gets a fresh one.
            std::fs::write(
                &conf,
                format!(
                    "bind 127.0.0.1\nport {sentinel_port}\ndir {}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 1\n\
                     sentinel auth-pass {SENTINEL_MASTER} {password}\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} {}\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                    dir.display(),
                    down_after.as_millis()
                ),
            )
            .expect("write sentinel.conf");
            let mut command = Command::new("redis-server");
            command
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let mut sentinel = process::spawn(command).expect("start redis-server --sentinel");
            let url = format!("redis://127.0.0.1:{sentinel_port}");
            match wait_until_serving(&url, &mut sentinel) {
                Ok(()) => {
                    let setup = RedisSentinel {
                        servers: vec![primary, replica],
                        sentinel_port,
                        password: password.to_owned(),
                        sentinel: Some(sentinel),
                        dir,
                    };
                    setup.wait_for_replica_known(Duration::from_secs(20));
                    return setup;
                }
                Err(e) => {
                    let _ = sentinel.kill();
                    let _ = sentinel.wait();
                    let _ = std::fs::remove_dir_all(&dir);
                    last_error = e;
                }
            }
        }
        panic!("the Sentinel did not start: {last_error}");
    }

    /// The setup this test binary shares between its tests (started once;
    /// slow to declare the primary down, so a busy machine never triggers a
    /// failover).
    pub(crate) fn shared() -> &'static RedisSentinel {
        static SHARED: OnceLock<RedisSentinel> = OnceLock::new();
        SHARED.get_or_init(|| RedisSentinel::start(Duration::from_secs(10), "shared-secret"))
    }

    pub(crate) fn sentinel_urls(&self) -> Vec<String> {
        vec![format!("redis://127.0.0.1:{}", self.sentinel_port)]
    }

    fn sentinel_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port))?
            .get_connection()?;
        redis::cmd(args[0]).arg(&args[1..]).query(&mut conn)
    }

    /// The port of the primary, as the Sentinel names it now.
    pub(crate) fn primary_port(&self) -> u16 {
        let (_, port): (String, u16) = self
            .sentinel_query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER])
            .expect("the Sentinel knows the primary");
        port
    }

    /// The server that is the primary now.
    pub(crate) fn primary(&self) -> &RedisServer {
        let port = self.primary_port();
        self.servers
            .iter()
            .find(|s| s.port == port)
            .expect("the primary is one of the two servers")
    }

    /// Waits until the Sentinel sees a replica it could promote.
    fn wait_for_replica_known(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let replicas: redis::RedisResult<Vec<Vec<String>>> =
                self.sentinel_query(&["SENTINEL", "REPLICAS", SENTINEL_MASTER]);
            let usable = replicas.is_ok_and(|list| {
                list.iter().any(|fields| {
                    let field = |name: &str| {
                        fields
                            .iter()
                            .position(|f| f == name)
                            .and_then(|i| fields.get(i + 1))
                    };
                    field("flags").is_some_and(|f| f == "slave")
                        && field("master-link-status").is_some_and(|s| s == "ok")
                })
            });
            if usable {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel never saw a usable replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `SENTINEL FAILOVER`, then waits until the Sentinel names the replica
    /// as the primary. Returns the new primary's port. A Sentinel may abandon
    /// a failover it started (a replica it judged not ready on a busy
    /// machine): then it is asked again, up to three times.
    pub(crate) fn failover(&self) -> u16 {
        let old = self.primary_port();
        for _attempt in 0..3 {
            self.wait_for_replica_known(Duration::from_secs(20));
            // Refused while an earlier attempt is still in progress: wait for it.
            let _: Result<String, _> =
                self.sentinel_query(&["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let now = self.primary_port();
                if now != old {
                    return now;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("the failover did not happen after three SENTINEL FAILOVER");
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.sentinel.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
