//! [`RedisStore`]: sessions in Redis (a single server, Sentinel, or Redis
//! Cluster), one round trip per store operation (SPEC §4).
//!
//! # Data layout
//!
//! Every key of one session carries the session's UUID as its hash tag, so
//! each operation is a script on one slot: on Redis Cluster it runs on one
//! node, as on a single server. With the default prefix `vs:`:
//!
//! | key | type | content | TTL |
//! |---|---|---|---|
//! | `vs:{<uuid>}` | hash | `m`: `<state>,<created>,<keys>,<bytes>` (state `t` temporary or `p` permanent; creation time in ms since the Unix epoch; size of the data, kept up to date by every write); `i`: the client IP of the latest access (written when it changes); `s`: permanent sessions only, the time of the latest access (a temporary session's is its expiry time minus the idle TTL, slid by every access); `d:<key>` per handler key, holding JSON | temporary: `idle_ttl`, slid by every access; permanent: none, or the configured retention |
//! | `vs:{<uuid>}:ips` | hash | permanent sessions only: `<ip>` → `<first seen ms>,<last seen ms>` | as the session |
//! | `vs:new:{<network>}` | set | with a new-session limit only: the creations admitted from an IPv4 address or IPv6 /64 in the current window (random tokens, not session ids) | the window |
//! | `vs:net:{<network>}` | hash | the network's statistics (SPEC §3.6): `c` sessions created, `v` conversations started, `f` first and `l` last seen (ms); no session id, no full address beyond the network itself | `network_retention`, from the latest event counted |
//!
//! # Scripts
//!
//! Each operation is one Lua script (`src/store/redis/lua/`), called by SHA
//! (`EVALSHA`). A server without the script cached (restart, `SCRIPT FLUSH`,
//! a freshly promoted replica) answers `NOSCRIPT`; the call is then sent
//! once more with the whole script (`EVAL`), which caches it again.
//! [`RedisStore::load_scripts`] loads them all ahead of traffic.
//!
//! | operation | keys | what the script does |
//! |---|---|---|
//! | touch | session, IP log | nothing if the session is gone; else slide the TTL and record a changed IP if temporary (two commands for a visitor who stays on one address), record IP, time and IP log if permanent; return the metadata and the data |
//! | create | session, IP log (standalone: + the network's statistics and the limit's set) | answer "exists" for a taken id (but "created" for its own retry); admit under the new-session limit; write metadata, first data and size; TTL if temporary; count the creation in the network's statistics |
//! | commit | session, IP log (standalone, when promoting: + the network's statistics) | nothing if the session is gone (no resurrection) or if the result would break the data limits (checked against the kept size, O(changed keys)); else `HSET` the changed keys, `HDEL` the removed ones; promote with `PERSIST` and a first IP-log entry, and count the conversation |
//! | network | the network's statistics (+ the limit's set) | Redis Cluster only, where a network's keys live in another slot than the session: the limit (before a create) and the counting, as their own call |
//! | reset | session, IP log | delete both if the session is temporary |
//! | bound token | session | the hash of the continuity token the session is bound to, read before an agent deletion so the binding goes first |
//! | delete | session, IP log | delete both |
//! | token | the token's key (its own slot) | resolve, bind (compare-and-set), keep alive, make permanent or drop a continuity token's binding |
//! | IP log | session, IP log | the log, if the session exists |
//! | network stats | the network's statistics | read them |
//!
//! On a single server (or through Sentinel) every operation is one call. On
//! Redis Cluster, a creation costs one more call for the network (two in
//! all, limit or not), and so does the commit that starts a conversation;
//! the counting call comes after a creation without a limit and before one
//! with a limit (which it admits). If that extra call fails after the
//! session was written, the session stands and the statistics miss one
//! event (logged as a warning).
//!
//! Every script has the same effect when run twice with the same arguments,
//! so a call retried after a lost reply is correct (a retried reset or
//! delete then answers that nothing was left).
//!
//! # Connections and timeouts
//!
//! See [`RedisConfig`] for the settings and the `connection` module for the
//! rules: concurrent calls share multiplexed connections; a broken connection
//! is replaced and its call retried once; a write whose reply was lost fails
//! with [`StoreErrorKind::OutcomeUnknown`](crate::StoreErrorKind::OutcomeUnknown).

mod config;
mod connection;
mod scripts;
#[cfg(feature = "sentinel")]
mod sentinel;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, Value};

pub use config::RedisConfig;
use connection::{Connections, Op};
use scripts::{LuaScript, Scripts};

use super::{
    Access, Changes, Committed, CreateLimit, Created, IpLogEntry, NetworkStats, SessionRecord,
    SessionState, SessionStore, StoreFuture, StorePolicy, TokenHash, TokenTouch,
};
use crate::client_ip::client_network;
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::observe::{self, Event};

const TOUCH: Op = Op::read("touch");
const CREATE: Op = Op::write("create");
const COMMIT: Op = Op::write("commit");
const RESET: Op = Op::write("reset");
const DELETE: Op = Op::write("delete");
const IP_LOG: Op = Op::read("ip_log");
const NETWORK: Op = Op::write("network");
const NETWORK_STATS: Op = Op::read("network_stats");
const TOKEN: Op = Op::write("token");
const BOUND_TOKEN: Op = Op::read("bound_token");
const LOAD_SCRIPTS: Op = Op::read("load_scripts");

/// A [`SessionStore`] on Redis: a single server, a primary found through
/// Sentinel (feature `sentinel`), or Redis Cluster (feature `cluster`).
///
/// Building it does no I/O: a server that is down at start-up only makes the
/// first requests fail (fail-open or fail-closed, as the layer is configured),
/// and the store recovers by itself when the server comes back. Clones share
/// the connections.
///
/// ```no_run
/// use visitor_session::{SessionConfig, SessionLayer};
/// use visitor_session::store::{RedisConfig, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::new(RedisConfig::new("redis://127.0.0.1:6379"))?;
/// store.load_scripts().await?; // optional: saves a NOSCRIPT retry on first use
/// let layer = SessionLayer::new(store, SessionConfig::new())?;
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Connections,
    scripts: Scripts,
    prefix: String,
    /// A network's keys (limit, statistics) are in another slot than the
    /// session's (Redis Cluster): the work on them is a call of its own.
    network_apart: bool,
    config: RedisConfig,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .field("pool", &self.inner.connections.status())
            .finish()
    }
}

impl RedisStore {
    /// A store for `config`; checks the settings, connects lazily.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting when a URL does not parse, the key
    /// prefix contains `{` or `}`, a timeout is zero or the pool is empty.
    pub fn new(config: RedisConfig) -> Result<Self, ConfigError> {
        if config.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "key_prefix",
                "the key prefix may not contain `{` or `}`: they delimit the hash tag",
            ));
        }
        for (name, value) in [
            ("connect_timeout", config.connect_timeout),
            ("wait_timeout", config.wait_timeout),
            ("command_timeout", config.command_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(name, "Redis timeouts are above 0"));
            }
        }
        if config.pool_size == 0 {
            return Err(ConfigError::new(
                "pool_size",
                "the pool holds at least one connection",
            ));
        }
        let network_apart = config.servers.is_cluster();
        Ok(Self {
            inner: Arc::new(Inner {
                connections: Connections::new(&config)?,
                scripts: Scripts::new(),
                prefix: config.key_prefix.clone(),
                network_apart,
                config,
            }),
        })
    }

    /// Loads every script into the server's cache (`SCRIPT LOAD`; on a
    /// cluster, into every primary), so that the first calls need no `EVAL`.
    ///
    /// # Errors
    ///
    /// The [`StoreError`] of the first script that could not be loaded.
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        for script in self.inner.scripts.all() {
            self.inner
                .connections
                .load(LOAD_SCRIPTS, script)
                .await
                .map_err(|e| {
                    tracing::debug!(script = script.name(), error = %e, "loading a script failed");
                    e
                })?;
        }
        Ok(())
    }
}

impl Inner {
    /// The keys of session `id`: `<prefix>{<uuid>}:ips`, whose first part
    /// (`..hash`) is the session's hash and the whole its IP log.
    fn session_keys(&self, id: &SessionId) -> (Vec<u8>, usize) {
        let mut keys = Vec::with_capacity(self.prefix.len() + 42);
        write_session_keys(&mut keys, &self.prefix, id);
        (keys, self.prefix.len() + 38)
    }

    /// The new-session limit's set of a client network.
    fn limit_key(&self, network: IpAddr) -> String {
        format!("{}new:{{{network}}}", self.prefix)
    }

    /// The statistics of the client network of `ip`; same hash tag as its
    /// limit's set, so one call can do both on a cluster.
    fn network_key(&self, ip: IpAddr) -> String {
        format!("{}net:{{{}}}", self.prefix, client_network(ip))
    }

    /// `script` called with the two keys of session `id` (its hash and its
    /// IP log), with room for `args` arguments of about `bytes`.
    fn session_call(
        &self,
        script: &LuaScript,
        id: &SessionId,
        args: usize,
        bytes: usize,
    ) -> redis::Cmd {
        // Usual prefixes fit on the stack.
        let mut stack = [0u8; 96];
        let len = self.prefix.len() + 42;
        let hash = len - ":ips".len();
        if len <= stack.len() {
            let mut out = &mut stack[..len];
            write_session_keys(&mut out, &self.prefix, id);
            script.call(&[&stack[..hash], &stack[..len]], args, bytes)
        } else {
            let (keys, hash) = self.session_keys(id);
            script.call(&[&keys[..hash], &keys], args, bytes)
        }
    }

    async fn run<T: FromRedisValue>(
        &self,
        op: Op,
        script: &LuaScript,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let value = self.connections.run(op, script, cmd).await?;
        T::from_redis_value(value).map_err(|e| {
            StoreError::new(StoreErrorKind::Protocol, op.name, "unexpected answer").with_source(e)
        })
    }

    /// The per-network work of a create or commit as its own call (Redis
    /// Cluster): the limit, if given, then counting `event`. `Some(wait)`
    /// when the limit refused (nothing counted).
    async fn network_call(
        &self,
        event: &NetworkEvent,
        limit: Option<(&CreateLimit, &str)>,
    ) -> Result<Option<Duration>, StoreError> {
        let script = &self.scripts.network;
        let counters = self.network_key(event.ip);
        let limit_key = limit.map(|(l, _)| self.limit_key(l.network));
        let mut keys = vec![counters.as_bytes()];
        keys.extend(limit_key.as_ref().map(String::as_bytes));
        let mut cmd = script.call(&keys, 7, 80);
        cmd.arg(event.at_ms)
            .arg(event.created)
            .arg(event.conversations)
            .arg(millis(event.retention));
        if let Some((limit, member)) = limit {
            cmd.arg(limit.max).arg(millis(limit.window)).arg(member);
        }
        let wait_ms: u64 = self.run(NETWORK, script, &cmd).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    /// Counts an event whose session write already succeeded (Redis
    /// Cluster): a failure costs the statistics one event, never the request.
    async fn count_after(&self, event: &NetworkEvent) {
        if !event.counts() {
            return;
        }
        if let Err(error) = self.network_call(event, None).await {
            tracing::warn!(%error, "a network's statistics missed an event");
        }
    }
}

/// A commit, ready to send: its command, its session, and the network
/// event to count apart (Redis Cluster) if it starts a conversation.
struct CommitCall {
    cmd: redis::Cmd,
    id: SessionId,
    apart: Option<NetworkEvent>,
}

impl Inner {
    /// The touch script for session `id`; with a continuity token, `mode`
    /// `'v'` touches only a session bound to it, `'c'` also claims an
    /// unbound one.
    fn touch_cmd(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        token: Option<(&TokenHash, char)>,
    ) -> redis::Cmd {
        let mut cmd = self.session_call(&self.scripts.touch, id, 7, 160);
        cmd.arg(access.at_ms);
        push_ip(&mut cmd, access.ip);
        cmd.arg(millis(access.policy.idle_ttl))
            .arg(optional_millis(access.policy.permanent_retention))
            .arg(optional_millis(access.policy.ip_log_retention));
        if let Some((token, mode)) = token {
            let mut buf = [0u8; 4];
            cmd.arg(token.to_hex())
                .arg(mode.encode_utf8(&mut buf).as_bytes());
        }
        cmd
    }

    /// Touches session `id` for continuity token `token` (see [`touch_cmd`](Self::touch_cmd)).
    async fn touch_bound(
        &self,
        id: &SessionId,
        token: &TokenHash,
        mode: char,
        access: &Access<'_>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let cmd = self.touch_cmd(id, access, Some((token, mode)));
        let reply = self
            .connections
            .run(TOUCH, &self.scripts.touch, &cmd)
            .await?;
        parse_record(reply, access.at_ms, access.ip)
    }

    fn commit_cmd(&self, id: &SessionId, access: &Access<'_>, changes: &Changes) -> CommitCall {
        let data_bytes: usize = changes
            .data
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 16)
            .sum();
        let args = 9 + 2 * changes.data.len();
        // Counting a conversation joins the call on one server.
        let here = !self.network_apart;
        let counters = access
            .ip
            .filter(|_| here && changes.promote && access.policy.count_networks)
            .map(|ip| self.network_key(ip));
        let mut cmd = match &counters {
            Some(counters) => {
                let (keys, hash) = self.session_keys(id);
                let all = [&keys[..hash], &keys[..], counters.as_bytes()];
                self.scripts.commit.call(&all, args, 120 + data_bytes)
            }
            None => self.session_call(&self.scripts.commit, id, args, 80 + data_bytes),
        };
        let sets = changes.data.values().filter(|v| v.is_some()).count();
        cmd.arg(access.at_ms);
        push_ip(&mut cmd, access.ip);
        cmd.arg(optional_millis(access.policy.permanent_retention))
            .arg(optional_millis(access.policy.ip_log_retention))
            .arg(if changes.promote { "1" } else { "0" })
            .arg(access.policy.limits.max_keys())
            .arg(access.policy.limits.max_bytes())
            .arg(sets)
            .arg(if counters.is_some() {
                millis(access.policy.network_retention)
            } else {
                0
            });
        push_sets(&mut cmd, changes);
        let mut field = Vec::new();
        for (key, _) in changes.data.iter().filter(|(_, v)| v.is_none()) {
            cmd.arg(data_field(&mut field, key));
        }
        CommitCall {
            cmd,
            id: *id,
            apart: NetworkEvent::of(access, 0, 1).filter(|_| !here),
        }
    }

    /// Sends a commit; a conversation it starts is counted apart (Redis
    /// Cluster), and the session's token binding made permanent with it.
    async fn run_commit(
        &self,
        call: CommitCall,
        retention: Option<Duration>,
    ) -> Result<Committed, StoreError> {
        let id = call.id;
        let reply = self
            .connections
            .run(COMMIT, &self.scripts.commit, &call.cmd)
            .await?;
        match reply {
            Value::Int(0) => Ok(Committed::Missing),
            Value::Int(1) => Ok(Committed::Applied),
            Value::Int(2) => Ok(Committed::OverLimit),
            Value::Array(items) if matches!(items.first(), Some(Value::Int(3 | 4))) => {
                // Applied with a promotion: 3 if a conversation started now.
                if items.first() == Some(&Value::Int(3)) {
                    observe::count(Event::Promoted);
                    if let Some(event) = &call.apart {
                        self.count_after(event).await;
                    }
                }
                // The token binding lives like the session, now permanent.
                // Also on a repeat: a first reply may have been lost before
                // its binding was made permanent (the operation is idempotent).
                if let Some(Value::BulkString(token)) = items.get(1) {
                    if !token.is_empty() {
                        let mut cmd = self.token_cmd(token, 4);
                        cmd.arg("persist")
                            .arg(id.as_str())
                            .arg(optional_millis(retention));
                        self.best_effort(
                            "persist",
                            self.run::<i64>(TOKEN, &self.scripts.token, &cmd).await,
                        );
                    }
                }
                Ok(Committed::Applied)
            }
            other => Err(protocol("commit", format!("unexpected answer {other:?}"))),
        }
    }

    /// `changes` committed to `id`, the token's session (without creating).
    async fn join(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> Result<Committed, StoreError> {
        if changes.is_empty() {
            return Ok(Committed::Applied);
        }
        let call = self.commit_cmd(id, access, changes);
        let committed = self
            .run_commit(call, access.policy.permanent_retention)
            .await?;
        if committed != Committed::Applied {
            tracing::warn!(session = %id, ?committed, "changes for a token's session were not kept");
        }
        Ok(committed)
    }

    /// The outcome of a call on a token binding made after its session's own
    /// write succeeded: a failure is logged, and the write stands as done.
    /// (A binding left behind leads nowhere: every use of a binding checks
    /// that its session is live and bound to the token.)
    fn best_effort<T>(&self, what: &'static str, result: Result<T, StoreError>) {
        if let Err(error) = result {
            tracing::warn!(%error, what, "a continuity token's binding was not updated");
        }
    }

    /// The token script on the key of token hash `hex`.
    fn token_cmd(&self, hex: &[u8], args: usize) -> redis::Cmd {
        let mut key = Vec::with_capacity(self.prefix.len() + 70);
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(b"tok:{");
        key.extend_from_slice(hex);
        key.push(b'}');
        self.scripts.token.call(&[&key], args, 120)
    }

    /// The session bound to `token`, if any (the binding is slid like its session).
    async fn token_target(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> Result<Option<SessionId>, StoreError> {
        let mut cmd = self.token_cmd(token.to_hex().as_bytes(), 3);
        cmd.arg("get")
            .arg(millis(policy.idle_ttl))
            .arg(optional_millis(policy.permanent_retention));
        let bound: Option<String> = self.run(TOKEN, &self.scripts.token, &cmd).await?;
        Ok(bound.as_deref().and_then(SessionId::parse))
    }

    /// Binds `token` to `id` unless a session other than `expected` was bound
    /// meanwhile; the session bound afterwards.
    async fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> Result<SessionId, StoreError> {
        let mut cmd = self.token_cmd(token.to_hex().as_bytes(), 6);
        cmd.arg("bind")
            .arg(expected.as_ref().map_or("", SessionId::as_str))
            .arg(id.as_str())
            .arg(match state {
                SessionState::Temporary => "t",
                SessionState::Permanent => "p",
            })
            .arg(millis(policy.idle_ttl))
            .arg(optional_millis(policy.permanent_retention));
        let bound: String = self.run(TOKEN, &self.scripts.token, &cmd).await?;
        SessionId::parse(&bound)
            .ok_or_else(|| protocol("token", "a binding that is not a session id"))
    }

    /// Keeps the binding of token hash `hex` to `id` alive like its session,
    /// in its session's `state`.
    async fn keep_token(
        &self,
        hex: &[u8],
        id: &SessionId,
        state: SessionState,
        (idle, retention): (Duration, Option<Duration>),
    ) -> Result<(), StoreError> {
        let mut cmd = self.token_cmd(hex, 5);
        cmd.arg("keep")
            .arg(id.as_str())
            .arg(match state {
                SessionState::Temporary => "t",
                SessionState::Permanent => "p",
            })
            .arg(millis(idle))
            .arg(optional_millis(retention));
        let _: i64 = self.run(TOKEN, &self.scripts.token, &cmd).await?;
        Ok(())
    }

    /// Ends the binding of token hash `hex` (as stored on the session) to `id`.
    async fn unbind_token(&self, id: &SessionId, hex: &str) -> Result<(), StoreError> {
        if hex.is_empty() {
            return Ok(());
        }
        let mut cmd = self.token_cmd(hex.as_bytes(), 2);
        cmd.arg("drop").arg(id.as_str());
        let _: i64 = self.run(TOKEN, &self.scripts.token, &cmd).await?;
        Ok(())
    }

    /// [`SessionStore::touch_token`]: the token's session if it has a live
    /// one; else the cookie's, claimed for the token; else unbound.
    async fn touch_token(
        &self,
        token: &TokenHash,
        cookie: Option<SessionId>,
        access: &Access<'_>,
    ) -> Result<TokenTouch, StoreError> {
        let target = self.token_target(token, access.policy).await?;
        if let Some(id) = target {
            if let Some(record) = self.touch_bound(&id, token, 'v', access).await? {
                return Ok(TokenTouch::Bound { id, record });
            }
        }
        let Some(id) = cookie.filter(|c| Some(*c) != target) else {
            return Ok(TokenTouch::Unbound);
        };
        let Some(record) = self.touch_bound(&id, token, 'c', access).await? else {
            return Ok(TokenTouch::Unbound);
        };
        let bound = self
            .bind_token(token, target, &id, record.state, access.policy)
            .await?;
        if bound != id {
            // Another browser bound the token a moment ago: its session wins.
            if let Some(record) = self.touch_bound(&bound, token, 'v', access).await? {
                return Ok(TokenTouch::Bound { id: bound, record });
            }
        }
        Ok(TokenTouch::Bound { id, record })
    }
}

/// What a create or commit counts in its network's statistics.
struct NetworkEvent {
    ip: IpAddr,
    at_ms: u64,
    retention: Duration,
    created: u64,
    conversations: u64,
}

impl NetworkEvent {
    /// The event of `access`, if it has a client IP (counting nothing when
    /// the statistics are off: a limit may still need the network's call).
    fn of(access: &Access<'_>, created: u64, conversations: u64) -> Option<Self> {
        let count = u64::from(access.policy.count_networks);
        Some(Self {
            ip: access.ip?,
            at_ms: access.at_ms,
            retention: access.policy.network_retention,
            created: created * count,
            conversations: conversations * count,
        })
    }

    fn counts(&self) -> bool {
        self.created + self.conversations > 0
    }
}

/// Writes `<prefix>{<uuid>}:ips` (the IP log's key; the session's hash is
/// the same without `:ips`).
fn write_session_keys(out: &mut impl std::io::Write, prefix: &str, id: &SessionId) {
    // Writing to memory with room enough cannot fail.
    let _ = out
        .write_all(prefix.as_bytes())
        .and_then(|()| out.write_all(b"{"))
        .and_then(|()| out.write_all(id.uuid_str().as_bytes()))
        .and_then(|()| out.write_all(b"}:ips"));
}

/// Appends the client IP as a script argument (empty for none), formatted
/// on the stack.
fn push_ip(cmd: &mut redis::Cmd, ip: Option<IpAddr>) {
    use std::io::Write;
    // The longest IP text, an IPv4-mapped IPv6 address, is 45 bytes.
    let mut buf = [0u8; 45];
    let len = match ip {
        Some(ip) => {
            let mut out = &mut buf[..];
            let _ = write!(out, "{ip}");
            45 - out.len()
        }
        None => 0,
    };
    cmd.arg(&buf[..len]);
}

/// Milliseconds for a script argument; at least 1, since 0 means "none" there.
fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

fn optional_millis(d: Option<Duration>) -> u64 {
    d.map_or(0, millis)
}

/// A random token naming one creation in the new-session limit's set.
fn creation_token() -> String {
    format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0)
}

/// Appends the data fields a creation or commit sets (removals left out).
fn push_sets(cmd: &mut redis::Cmd, changes: &Changes) {
    let mut field = Vec::new();
    for (key, value) in &changes.data {
        if let Some(value) = value {
            cmd.arg(data_field(&mut field, key)).arg(value.as_str());
        }
    }
}

/// `d:<key>`, the hash field of a handler key, written into `buf`.
fn data_field<'b>(buf: &'b mut Vec<u8>, key: &str) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(b"d:");
    buf.extend_from_slice(key.as_bytes());
    buf
}

fn protocol(op: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Protocol, op, what)
}

/// The session answered by the touch script: its metadata (`m`) followed by
/// its data fields and values (`d:<key>`, JSON), or nil when it is gone.
fn parse_record(
    reply: Value,
    at_ms: u64,
    ip: Option<IpAddr>,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(parse_touch(reply, at_ms, ip)?.map(|(record, _)| record))
}

/// A session as the touch script answered it, and the hash of the continuity
/// token it is bound to when the script names it (a touch without the token).
type Touched = (SessionRecord, Option<Vec<u8>>);

/// The session answered by the touch script (see [`Touched`]).
fn parse_touch(
    reply: Value,
    at_ms: u64,
    ip: Option<IpAddr>,
) -> Result<Option<Touched>, StoreError> {
    let bad = |what: &str| protocol("touch", format!("unexpected answer: {what}"));
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(bad("not a list of fields")),
    };
    let mut items = items.into_iter();
    let Some(Value::BulkString(meta)) = items.next() else {
        return Err(bad("no metadata"));
    };
    let mut data = Vec::with_capacity(items.len() / 2);
    let mut token = None;
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        let (Value::BulkString(field), Value::BulkString(value)) = (field, value) else {
            return Err(bad("a field that is not a string"));
        };
        if field == b"t" {
            token = Some(value);
            continue;
        }
        let key = field
            .strip_prefix(b"d:")
            .and_then(|key| std::str::from_utf8(key).ok())
            .ok_or_else(|| bad("a data field that is not `d:` and UTF-8"))?;
        let value = String::from_utf8(value).map_err(|_| bad("a value that is not UTF-8"))?;
        data.push((key.to_owned(), value));
    }
    let mut parts = meta.split(|&b| b == b',');
    let state = match parts.next() {
        Some(b"t") => SessionState::Temporary,
        Some(b"p") => SessionState::Permanent,
        _ => return Err(bad("an unknown session state")),
    };
    let created_ms = parts
        .next()
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
        .unwrap_or(0);
    let record = SessionRecord {
        state,
        created_ms,
        // The script recorded this access.
        last_seen_ms: at_ms,
        ip,
        data: data.into_iter().collect(),
    };
    Ok(Some((record, token)))
}

fn parse_ip_log(fields: HashMap<String, String>) -> Vec<IpLogEntry> {
    let mut log: Vec<IpLogEntry> = fields
        .into_iter()
        .filter_map(|(ip, seen)| {
            let (first, last) = seen.split_once(',')?;
            Some(IpLogEntry {
                ip: ip.parse().ok()?,
                first_seen_ms: first.parse().ok()?,
                last_seen_ms: last.parse().ok()?,
            })
        })
        .collect();
    log.sort_by_key(|e| (e.first_seen_ms, e.ip));
    log
}

impl SessionStore for RedisStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        let inner = self.inner.clone();
        let cmd = inner.touch_cmd(id, access, None);
        let (at_ms, ip) = (access.at_ms, access.ip);
        let lifetimes = (access.policy.idle_ttl, access.policy.permanent_retention);
        let id = *id;
        StoreFuture::new(async move {
            let reply = inner
                .connections
                .run(TOUCH, &inner.scripts.touch, &cmd)
                .await?;
            let Some((record, token)) = parse_touch(reply, at_ms, ip)? else {
                return Ok(None);
            };
            if let Some(token) = token {
                // Bound to a continuity token, visited without it: the
                // binding lives on with the session (SPEC §3.7).
                let kept = inner.keep_token(&token, &id, record.state, lifetimes).await;
                inner.best_effort("keep", kept);
            }
            Ok(Some(record))
        })
    }

    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created> {
        let inner = self.inner.clone();
        let limit = limit.copied();
        let token = limit.map(|_| creation_token());
        let script = &inner.scripts.create;
        let data_bytes: usize = changes
            .data
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 16)
            .sum();
        let args = 10 + 2 * changes.data.len();
        // On one server, the network's keys join the session's call.
        let here = !inner.network_apart;
        let counters = access
            .ip
            .filter(|_| here && access.policy.count_networks)
            .map(|ip| inner.network_key(ip));
        let limit_here = limit.filter(|_| here);
        let mut cmd = if counters.is_some() || limit_here.is_some() {
            let (keys, hash) = inner.session_keys(id);
            let limit_key = limit_here.map(|l| inner.limit_key(l.network));
            let mut all = vec![&keys[..hash], &keys[..]];
            all.extend(counters.as_ref().map(String::as_bytes));
            all.extend(limit_key.as_ref().map(String::as_bytes));
            script.call(&all, args, 160 + data_bytes)
        } else {
            inner.session_call(script, id, args, 120 + data_bytes)
        };
        cmd.arg(access.at_ms);
        push_ip(&mut cmd, access.ip);
        cmd.arg(millis(access.policy.idle_ttl))
            .arg(optional_millis(access.policy.permanent_retention))
            .arg(optional_millis(access.policy.ip_log_retention))
            .arg(if changes.promote { "1" } else { "0" })
            .arg(limit_here.map_or(0, |l| l.max))
            .arg(limit_here.map_or(0, |l| millis(l.window)))
            .arg(token.as_deref().unwrap_or(""))
            .arg(if counters.is_some() {
                millis(access.policy.network_retention)
            } else {
                0
            });
        let token_hex = changes.token.map(|t| t.to_hex());
        cmd.arg(token_hex.as_deref().unwrap_or(""));
        push_sets(&mut cmd, changes);
        let conversations = u64::from(changes.promote);
        // With a continuity token, what a racing browser of the same user may
        // have created meanwhile (SPEC §3.7).
        let joining = changes.token.map(|token| {
            let policy = access.policy.clone();
            (token, policy, access.ip, access.at_ms, changes.clone(), *id)
        });
        let apart = NetworkEvent::of(access, 1, conversations).filter(|_| !here);
        StoreFuture::new(async move {
            let mut expected = None;
            // Bind the new session to the token: not when the token's live
            // session could not take the changes (they stay in this one).
            let mut bind = true;
            if let Some((token, policy, ip, at_ms, changes, _)) = &joining {
                let access = Access {
                    ip: *ip,
                    at_ms: *at_ms,
                    policy,
                };
                expected = inner.token_target(token, policy).await?;
                if let Some(joined) = expected {
                    if inner
                        .touch_bound(&joined, token, 'v', &access)
                        .await?
                        .is_some()
                    {
                        match inner.join(&joined, &access, changes).await? {
                            Committed::Applied => return Ok(Created::Joined { id: joined }),
                            // Gone meanwhile: create, and bind in its place.
                            Committed::Missing => {}
                            // Over its limits together: a session of its own
                            // keeps them; the token stays with its session.
                            _ => bind = false,
                        }
                    }
                }
            }
            let mut counted = false;
            if let (Some(event), Some(limit), Some(token)) = (&apart, &limit, &token) {
                let wait = inner.network_call(event, Some((limit, token))).await?;
                if let Some(retry_after) = wait {
                    return Ok(Created::Limited { retry_after });
                }
                counted = true;
            }
            let (code, retry_ms): (i64, u64) =
                inner.run(CREATE, &inner.scripts.create, &cmd).await?;
            match code {
                0 => Ok(Created::Exists),
                1 => {
                    if conversations > 0 {
                        observe::count(Event::Promoted);
                    }
                    if let (Some(event), false) = (&apart, counted) {
                        inner.count_after(event).await;
                    }
                    if let (Some((token, policy, ip, at_ms, changes, id)), true) = (&joining, bind)
                    {
                        let access = Access {
                            ip: *ip,
                            at_ms: *at_ms,
                            policy,
                        };
                        let state = if changes.promote {
                            SessionState::Permanent
                        } else {
                            SessionState::Temporary
                        };
                        // The session is created: what follows cannot undo
                        // that, so its failures are logged, not returned.
                        let bound = match inner.bind_token(token, expected, id, state, policy).await
                        {
                            Ok(bound) => bound,
                            Err(error) => {
                                inner.best_effort("bind", Err::<(), _>(error));
                                return Ok(Created::Created);
                            }
                        };
                        if bound != *id {
                            // Another browser of this user won the race: its
                            // session takes the changes, this one goes.
                            if let Ok(Committed::Applied) =
                                inner.join(&bound, &access, changes).await
                            {
                                let cmd = inner.session_call(&inner.scripts.delete, id, 0, 0);
                                let deleted =
                                    inner.run::<i64>(DELETE, &inner.scripts.delete, &cmd).await;
                                inner.best_effort("delete the race's loser", deleted);
                                return Ok(Created::Joined { id: bound });
                            }
                        }
                    }
                    Ok(Created::Created)
                }
                2 => Ok(Created::Limited {
                    retry_after: Duration::from_millis(retry_ms.max(1)),
                }),
                other => Err(protocol("create", format!("unexpected answer {other}"))),
            }
        })
    }

    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed> {
        let inner = self.inner.clone();
        let commit = inner.commit_cmd(id, access, changes);
        let retention = access.policy.permanent_retention;
        StoreFuture::new(async move { inner.run_commit(commit, retention).await })
    }

    fn reset(&self, id: &SessionId) -> StoreFuture<bool> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(&inner.scripts.reset, id, 0, 0);
        let id = *id;
        StoreFuture::new(async move {
            let (deleted, token): (i64, String) =
                inner.run(RESET, &inner.scripts.reset, &cmd).await?;
            // A temporary session's binding expires with its idle TTL anyway.
            inner.best_effort("unbind", inner.unbind_token(&id, &token).await);
            Ok(deleted == 1)
        })
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<bool> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(&inner.scripts.delete, id, 0, 0);
        let read = inner.session_call(&inner.scripts.bound_token, id, 0, 0);
        let id = *id;
        StoreFuture::new(async move {
            // The binding first: a deletion that fails halfway and is run
            // again still finds it (SPEC §3.7: gone with its session).
            let token: String = inner
                .run(BOUND_TOKEN, &inner.scripts.bound_token, &read)
                .await?;
            inner.unbind_token(&id, &token).await?;
            let deleted: i64 = inner.run(DELETE, &inner.scripts.delete, &cmd).await?;
            if deleted > 0 {
                observe::count(Event::Deleted);
            }
            Ok(deleted > 0)
        })
    }

    fn touch_token(
        &self,
        token: &TokenHash,
        cookie: Option<&SessionId>,
        access: &Access<'_>,
    ) -> StoreFuture<TokenTouch> {
        let inner = self.inner.clone();
        let (token, cookie) = (*token, cookie.copied());
        let (ip, at_ms, policy) = (access.ip, access.at_ms, access.policy.clone());
        StoreFuture::new(async move {
            let access = Access {
                ip,
                at_ms,
                policy: &policy,
            };
            inner.touch_token(&token, cookie, &access).await
        })
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<Vec<IpLogEntry>>> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(&inner.scripts.ip_log, id, 0, 0);
        StoreFuture::new(async move {
            let fields: Option<HashMap<String, String>> =
                inner.run(IP_LOG, &inner.scripts.ip_log, &cmd).await?;
            Ok(fields.map(parse_ip_log))
        })
    }

    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>> {
        let inner = self.inner.clone();
        let script = &inner.scripts.network_stats;
        let key = inner.network_key(ip);
        let cmd = script.call(&[key.as_bytes()], 0, 0);
        StoreFuture::new(async move {
            let fields: HashMap<String, u64> = inner
                .run(NETWORK_STATS, &inner.scripts.network_stats, &cmd)
                .await?;
            Ok(parse_network_stats(client_network(ip), &fields))
        })
    }
}

/// The statistics hash of `network`; `None` when it holds nothing.
fn parse_network_stats(network: IpAddr, fields: &HashMap<String, u64>) -> Option<NetworkStats> {
    let field = |name: &str| fields.get(name).copied().unwrap_or(0);
    (!fields.is_empty()).then(|| NetworkStats {
        network,
        sessions_created: field("c"),
        conversations_started: field("v"),
        first_seen_ms: field("f"),
        last_seen_ms: field("l"),
    })
}
