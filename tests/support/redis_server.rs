//! A real `redis-server` per test, on a free loopback port, stopped on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::demo::free_port;

/// Commands that only the store's Lua scripts issue. Redis counts them in
/// `INFO commandstats` when a script calls them, so they are left out when
/// counting what the client sent.
const SCRIPT_INTERNAL: &[&str] = &[
    "hget", "hset", "hdel", "hgetall", "pexpire", "persist", "exists", "incr", "pttl", "del",
];

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` (installed by `scripts/test` from Debian's packages).
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.start_again();
        server
    }

    /// Starts the server again on the same port after [`stop`](Self::stop).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", std::env::temp_dir().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with `apt-get install redis-server`, \
                     or run `bash scripts/test`, which installs it"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.raw(&["PING"]).is_some_and(|r| r.starts_with("+PONG")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (as a crash would: no shutdown handshake).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command on a fresh connection and returns the raw RESP reply
    /// (the connection sends nothing else, so it does not disturb the counts).
    pub fn raw(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = stream.read(&mut buf).ok()?;
            reply.extend_from_slice(&buf[..n]);
            if n == 0 || complete(&reply) {
                break;
            }
        }
        Some(String::from_utf8_lossy(&reply).into_owned())
    }

    /// An integer reply (`:N`).
    pub fn int(&self, args: &[&str]) -> i64 {
        let reply = self.raw(args).expect("redis answers");
        reply
            .trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: not an integer reply: {reply:?}"))
    }

    /// Number of keys in the database.
    pub fn dbsize(&self) -> i64 {
        self.int(&["DBSIZE"])
    }

    /// `INFO commandstats` as command name -> calls.
    pub fn command_calls(&self) -> HashMap<String, u64> {
        let info = self
            .raw(&["INFO", "commandstats"])
            .expect("redis answers INFO");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// The commands the client sent since `before` (script-internal calls and
    /// the measuring `INFO` left out), with their counts.
    pub fn sent_since(&self, before: &HashMap<String, u64>) -> HashMap<String, u64> {
        self.command_calls()
            .into_iter()
            .filter(|(name, _)| name != "info" && !SCRIPT_INTERNAL.contains(&name.as_str()))
            .map(|(name, calls)| {
                let delta = calls - before.get(&name).copied().unwrap_or(0);
                (name, delta)
            })
            .filter(|(_, delta)| *delta > 0)
            .collect()
    }
}

/// Whether `reply` holds one whole RESP value (enough for the replies used here).
fn complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    match text.as_bytes().first() {
        Some(b'$') => {
            let Some((len, rest)) = text[1..].split_once("\r\n") else {
                return false;
            };
            match len.parse::<i64>() {
                Ok(n) if n < 0 => true,
                Ok(n) => rest.len() >= n as usize + 2,
                Err(_) => true,
            }
        }
        Some(b'*') => {
            // Arrays are only read for small replies; wait for the final CRLF.
            text.ends_with("\r\n") && text.lines().count() > 1
        }
        Some(_) => text.ends_with("\r\n"),
        None => false,
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
