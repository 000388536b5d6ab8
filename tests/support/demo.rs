//! Running the chatbox example as a black box: spawn the built binary on a
//! free port, talk HTTP/1.1 to it over a plain TCP socket.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::temp::TempDir;

/// The chatbox binary that `cargo test --all-features` built next to this test.
pub(crate) fn chatbox_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .join("examples")
        .join("chatbox");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --all-features` so the example is built",
        path.display()
    );
    path
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The variables that choose the demo's store (SPEC §6).
const STORE_VARS: [&str; 5] = [
    "SESSION_STORE",
    "SESSION_DB",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINEL_NODES",
];

/// A database of its own for a demo whose `env` chooses no store: the
/// default store is a SQLite file, which demos must not share (nor leave in
/// the working directory).
fn own_database(env: &[(&str, &str)]) -> Option<(TempDir, String)> {
    if env.iter().any(|(k, _)| STORE_VARS.contains(k)) {
        return None;
    }
    let dir = TempDir::new("chatbox");
    let path = dir.file("chatbox.db");
    Some((dir, path))
}

/// A running chatbox demo, killed on drop.
///
/// Its log (stderr) goes to a file, shown only when the test fails: the
/// outage tests make the demo log errors on purpose, and those lines in a
/// passing run would read as failures.
pub(crate) struct Demo {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    /// The database of a demo started without a store of the test's choice.
    _database: Option<TempDir>,
}

impl Demo {
    /// Starts the demo with `env` on a free port and waits until it accepts
    /// connections. Without a store in `env`, the demo runs on its default
    /// store, a SQLite file in a temporary directory of its own.
    pub(crate) fn start(env: &[(&str, &str)]) -> Demo {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::env::temp_dir().join(format!(
            "vs-demo-{}-{}.log",
            std::process::id(),
            addr.port()
        ));
        let log_file = std::fs::File::create(&log).expect("create the demo's log file");
        let mut cmd = Command::new(chatbox_binary());
        cmd.env_clear()
            .env("BIND", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let database = own_database(env).map(|(dir, path)| {
            cmd.env("SESSION_DB", path);
            dir
        });
        let mut child = super::process::spawn(cmd).expect("spawn the chatbox example");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("chatbox exited at start-up with {status}:\n{said}");
            }
            assert!(
                Instant::now() < deadline,
                "chatbox did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Demo {
            child,
            addr,
            log,
            _database: database,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: the process ends at once, wherever it is.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the demo as Ctrl-C does (`SIGINT`: a graceful shutdown) and
    /// waits for it to exit.
    pub(crate) fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid, with a valid signal number.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let said = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- the demo's log ({}) ---\n{said}", self.addr);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs the demo with `env` expecting it to refuse to start; returns its stderr.
pub(crate) fn start_fails(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(chatbox_binary());
    cmd.env_clear()
        .env("BIND", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let database = own_database(env);
    if let Some((_, path)) = &database {
        cmd.env("SESSION_DB", path);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the chatbox example");
    // Bounded: a demo that starts despite `env` serves until killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo started despite {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("the demo's output");
    assert!(!output.status.success(), "the demo started despite {env:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A browser-like client: keeps the cookies the server sets and sends them back.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) jar: HashMap<String, String>,
    pub(crate) extra_headers: Vec<(String, String)>,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            jar: HashMap::new(),
            extra_headers: Vec::new(),
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None)
    }

    pub(crate) fn post_json(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(body))
    }

    pub(crate) fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.try_send(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`send`](Self::send), with a connection that failed (the server died
    /// meanwhile) as an error instead of a panic.
    pub(crate) fn try_send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Reply> {
        let reply = try_request(self.addr, method, path, &self.headers(), body)?;
        for c in reply.set_cookies() {
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || c.contains("Max-Age=0") {
                    self.jar.remove(name);
                } else {
                    self.jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(reply)
    }

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = self.extra_headers.clone();
        if !self.jar.is_empty() {
            let cookie: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            headers.push(("cookie".into(), cookie.join("; ")));
        }
        headers
    }

    /// The session id the jar holds, if any.
    pub(crate) fn session_cookie(&self) -> Option<&str> {
        self.jar
            .iter()
            .find(|(k, _)| k.starts_with("crisp-client%2Fsession"))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole reply.
pub(crate) fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Reply {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} to the demo: {e}"))
}

/// [`raw_request`], failing instead of panicking when the connection does:
/// a reply is returned only if it came whole (its head and all the body
/// its `content-length` announces).
pub(crate) fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "a cut reply"))
}

pub(crate) fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if length.is_some_and(|n| body.len() < n) {
        return None;
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// The body of a chunked reply; `None` when it was cut before its last chunk.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        if rest.len() < n {
            return None;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    None
}
