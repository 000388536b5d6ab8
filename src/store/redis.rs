//! [`RedisStore`]: sessions in Redis through a deadpool-redis pool, one round
//! trip per operation (SPEC §4).
//!
//! # Data layout
//!
//! Every key of one session carries the session's UUID as its hash tag, so
//! each operation is a single-slot script (ready for Redis Cluster). With the
//! default prefix `vs:`:
//!
//! | key | type | content | TTL |
//! |---|---|---|---|
//! | `vs:{<uuid>}` | hash | `m:state` (`t` temporary, `p` permanent), `m:created` and `m:seen` (ms since the Unix epoch), `m:ip` (current client IP); `d:<key>` per handler key, holding JSON | temporary: `idle_ttl`, slid by every access; permanent: none, or the configured retention |
//! | `vs:{<uuid>}:ips` | hash | permanent sessions only: `<ip>` → `<first seen ms>,<last seen ms>` | as the session |
//! | `vs:new:{<network>}` | string | new sessions created from an IPv4 address or IPv6 /64 in the current window | the window |
//!
//! # Scripts
//!
//! Each operation is one Lua script, called by SHA (`EVALSHA`); a server that
//! lost its script cache (restart, `SCRIPT FLUSH`) answers `NOSCRIPT`, and the
//! script is loaded again and retried. [`RedisStore::load_scripts`] loads them
//! all ahead of traffic.
//!
//! | operation | keys | what the script does |
//! |---|---|---|
//! | touch | session, IP log | nothing if the session is gone; else record IP and last seen, slide the TTL if temporary, log the IP if permanent, return all fields |
//! | create | session, IP log (+ network counter with a new-session limit) | refuse an existing id; count against the new-session limit; write metadata and the first data; TTL if temporary |
//! | commit | session, IP log | nothing if the session is gone (no resurrection) or if the result would break the data limits; else `HSET` the changed keys, `HDEL` the removed ones; promote with `PERSIST` and a first IP-log entry |
//! | reset | session, IP log | delete both if the session is temporary |
//! | delete | session, IP log | delete both |
//! | IP log | session, IP log | the log, if the session exists |
//!
//! # Connections
//!
//! The pool hands out multiplexed connections. deadpool-redis's stock
//! recycling sends `UNWATCH` + `PING` on every checkout, one hidden round
//! trip per request; this store only pings a connection that sat idle longer
//! than [`RedisConfig::ping_after_idle`], and drops a connection from the pool
//! as soon as a command on it fails at the I/O level or times out, so a dead
//! connection is never handed out twice and a restarted server is picked up
//! with fresh connections.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleResult, Timeouts};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, RedisError, Script};

use super::{
    Access, Changes, Committed, CreateLimit, Created, IpLogEntry, SessionRecord, SessionState,
    SessionStore, StoreFuture,
};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::id::SessionId;

const TOUCH: &str = r#"
local state = redis.call('HGET', KEYS[1], 'm:state')
if not state then return false end
local now, ip = ARGV[1], ARGV[2]
if ip ~= '' then
  redis.call('HSET', KEYS[1], 'm:seen', now, 'm:ip', ip)
else
  redis.call('HSET', KEYS[1], 'm:seen', now)
  redis.call('HDEL', KEYS[1], 'm:ip')
end
if state == 't' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  if ip ~= '' then
    local entry = redis.call('HGET', KEYS[2], ip)
    local first = entry and string.match(entry, '^(%d+),') or now
    redis.call('HSET', KEYS[2], ip, first .. ',' .. now)
  end
  local keep = tonumber(ARGV[5])
  if keep > 0 then
    local log = redis.call('HGETALL', KEYS[2])
    local cutoff = tonumber(now) - keep
    for i = 1, #log, 2 do
      local last = tonumber(string.match(log[i + 1], ',(%d+)$') or '0')
      if last < cutoff then redis.call('HDEL', KEYS[2], log[i]) end
    end
  end
  local retention = tonumber(ARGV[4])
  if retention > 0 then
    redis.call('PEXPIRE', KEYS[1], retention)
    redis.call('PEXPIRE', KEYS[2], retention)
  end
end
return redis.call('HGETALL', KEYS[1])
"#;

const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local max = tonumber(ARGV[5])
if max > 0 then
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[6]) end
  if n > max then
    local ttl = redis.call('PTTL', KEYS[3])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[3], ARGV[6])
      ttl = tonumber(ARGV[6])
    end
    return {2, ttl}
  end
end
local now, ip = ARGV[1], ARGV[2]
local state = 't'
if ARGV[7] == '1' then state = 'p' end
redis.call('HSET', KEYS[1], 'm:state', state, 'm:created', now, 'm:seen', now)
if ip ~= '' then redis.call('HSET', KEYS[1], 'm:ip', ip) end
if #ARGV > 7 then redis.call('HSET', KEYS[1], unpack(ARGV, 8, #ARGV)) end
if state == 't' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  if ip ~= '' then redis.call('HSET', KEYS[2], ip, now .. ',' .. now) end
  local retention = tonumber(ARGV[4])
  if retention > 0 then
    redis.call('PEXPIRE', KEYS[1], retention)
    redis.call('PEXPIRE', KEYS[2], retention)
  end
end
return {1, 0}
"#;

const COMMIT: &str = r#"
local state = redis.call('HGET', KEYS[1], 'm:state')
if not state then return 0 end
local sets = tonumber(ARGV[7])
local first_removal = 8 + 2 * sets
-- The data limits hold for the result, counting what concurrent requests
-- stored since this one loaded: key bytes (without 'd:') plus value bytes.
local stored = redis.call('HGETALL', KEYS[1])
local keys, bytes, size = 0, 0, {}
for i = 1, #stored, 2 do
  if string.sub(stored[i], 1, 2) == 'd:' then
    keys = keys + 1
    bytes = bytes + #stored[i] - 2 + #stored[i + 1]
    size[stored[i]] = #stored[i + 1]
  end
end
local function drop(field)
  if size[field] then
    keys = keys - 1
    bytes = bytes - (#field - 2) - size[field]
    size[field] = nil
  end
end
for i = 8, first_removal - 1, 2 do
  drop(ARGV[i])
  keys = keys + 1
  bytes = bytes + #ARGV[i] - 2 + #ARGV[i + 1]
  size[ARGV[i]] = #ARGV[i + 1]
end
for i = first_removal, #ARGV do drop(ARGV[i]) end
if keys > tonumber(ARGV[5]) or bytes > tonumber(ARGV[6]) then return 2 end
if sets > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 8, first_removal - 1)) end
if #ARGV >= first_removal then redis.call('HDEL', KEYS[1], unpack(ARGV, first_removal, #ARGV)) end
if ARGV[4] == '1' and state == 't' then
  local now, ip = ARGV[1], ARGV[2]
  redis.call('HSET', KEYS[1], 'm:state', 'p')
  local retention = tonumber(ARGV[3])
  if ip ~= '' and not redis.call('HGET', KEYS[2], ip) then
    redis.call('HSET', KEYS[2], ip, now .. ',' .. now)
  end
  if retention > 0 then
    redis.call('PEXPIRE', KEYS[1], retention)
    redis.call('PEXPIRE', KEYS[2], retention)
  else
    redis.call('PERSIST', KEYS[1])
  end
end
return 1
"#;

const RESET: &str = r#"
if redis.call('HGET', KEYS[1], 'm:state') == 't' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"#;

const DELETE: &str = r#"
return redis.call('DEL', KEYS[1], KEYS[2])
"#;

const IP_LOG: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HGETALL', KEYS[2])
"#;

/// Settings of a [`RedisStore`], checked by [`RedisStore::new`].
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    key_prefix: String,
    pool_size: usize,
    connect_timeout: Duration,
    wait_timeout: Duration,
    command_timeout: Duration,
    ping_after_idle: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        let url = match self.url.split_once('@') {
            Some((_, host)) => format!("redis://***@{host}"),
            None => self.url.clone(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ping_after_idle", &self.ping_after_idle)
            .finish()
    }
}

impl RedisConfig {
    /// Defaults for the server at `url` (`redis://host:port/db`): key prefix
    /// `vs:`, 16 connections, 1 s to connect, 1 s to wait for a pooled
    /// connection, 1 s per command, ping after 30 s idle.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "vs:".to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            ping_after_idle: Duration::from_secs(30),
        }
    }

    /// Prefix of every key (default `vs:`); no `{` or `}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Most connections in the pool (default 16).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Upper bound on opening a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Upper bound on waiting for a free pooled connection (default 1 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Upper bound on one command, from send to answer (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// A pooled connection idle longer than this is pinged before reuse (default 30 s).
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }
}

/// Opens connections through deadpool-redis's manager; recycles them without
/// a round trip unless they sat idle (see the module docs).
struct Manager {
    inner: deadpool_redis::Manager,
    connect_timeout: Duration,
    ping_after_idle: Duration,
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        match tokio::time::timeout(self.connect_timeout, self.inner.create()).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {:?}", self.connect_timeout),
            ))),
        }
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < self.ping_after_idle {
            // In use moments ago, and dropped from the pool on any I/O error
            // since: no round trip on the hot path.
            return Ok(());
        }
        managed::Manager::recycle(&self.inner, conn, metrics).await
    }
}

struct Scripts {
    touch: Script,
    create: Script,
    commit: Script,
    reset: Script,
    delete: Script,
    ip_log: Script,
}

/// A [`SessionStore`] on Redis (standalone server), through a deadpool-redis
/// connection pool.
///
/// Building it does no I/O: a server that is down at start-up only makes the
/// first requests fail (fail-open or fail-closed, as the layer is configured),
/// and the store recovers by itself when the server comes back.
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
    pool: Pool<Manager>,
    scripts: Arc<Scripts>,
    prefix: Arc<str>,
    command_timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config`; checks the settings, connects lazily.
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
        let inner = deadpool_redis::Manager::new(config.url.as_str())
            .map_err(|e| ConfigError::new("REDIS_URL", format!("not a Redis URL: {e}")))?;
        let manager = Manager {
            inner,
            connect_timeout: config.connect_timeout,
            ping_after_idle: config.ping_after_idle,
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(config.wait_timeout),
                create: Some(config.connect_timeout),
                recycle: Some(config.command_timeout),
            })
            .build()
            .map_err(|e| ConfigError::new("pool_size", e.to_string()))?;
        Ok(Self {
            pool,
            scripts: Arc::new(Scripts {
                touch: Script::new(TOUCH),
                create: Script::new(CREATE),
                commit: Script::new(COMMIT),
                reset: Script::new(RESET),
                delete: Script::new(DELETE),
                ip_log: Script::new(IP_LOG),
            }),
            prefix: config.key_prefix.into(),
            command_timeout: config.command_timeout,
        })
    }

    /// Loads every script into the server's cache (`SCRIPT LOAD`), so that the
    /// first requests need no `NOSCRIPT` retry.
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let s = &self.scripts;
        for script in [
            &s.touch, &s.create, &s.commit, &s.reset, &s.delete, &s.ip_log,
        ] {
            let mut conn = self.connection("load_scripts").await?;
            let loaded = self
                .bounded(
                    "load_scripts",
                    script.prepare_invoke().load_async(&mut *conn),
                )
                .await;
            self.settle(conn, &loaded);
            loaded?;
        }
        Ok(())
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}{{{}}}", self.prefix, id.uuid_str())
    }

    fn ip_log_key(&self, id: &SessionId) -> String {
        format!("{}{{{}}}:ips", self.prefix, id.uuid_str())
    }

    fn network_key(&self, network: IpAddr) -> String {
        format!("{}new:{{{network}}}", self.prefix)
    }

    async fn connection(&self, op: &'static str) -> Result<Object<Manager>, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => StoreError::new(
                StoreErrorKind::Timeout,
                op,
                "no Redis connection available in time",
            ),
            PoolError::Backend(e) => redis_error(op, &e),
            other => StoreError::new(StoreErrorKind::Unavailable, op, other.to_string()),
        })
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(result) => result.map_err(|e| redis_error(op, &e)),
            Err(_) => Err(StoreError::timeout(op, self.command_timeout)),
        }
    }

    /// Returns a connection to the pool, or drops it when the call failed in a
    /// way that leaves the connection in doubt (I/O error, timeout).
    fn settle<T>(&self, conn: Object<Manager>, result: &Result<T, StoreError>) {
        if let Err(e) = result {
            if e.kind() != StoreErrorKind::Protocol {
                drop(Object::take(conn));
            }
        }
    }

    /// `script` prepared with the two keys of session `id`: its hash and its IP log.
    fn invocation<'s>(&self, script: &'s Script, id: &SessionId) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.session_key(id))
            .key(self.ip_log_key(id));
        invocation
    }

    /// Runs `invocation` of one script on a pooled connection: one round trip.
    async fn run<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection(op).await?;
        let result = self.bounded(op, invocation.invoke_async(&mut *conn)).await;
        self.settle(conn, &result);
        result
    }
}

fn redis_error(op: &'static str, e: &RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Protocol
    };
    StoreError::new(kind, op, e.to_string())
}

fn protocol(op: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Protocol, op, what)
}

fn ip_arg(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis().max(1) as u64)
}

/// The hash fields and values a commit or creation sets (removals left out).
fn data_sets(changes: &Changes) -> impl Iterator<Item = (String, &String)> {
    changes
        .data
        .iter()
        .filter_map(|(key, value)| Some((format!("d:{key}"), value.as_ref()?)))
}

fn parse_record(fields: HashMap<String, String>) -> Result<SessionRecord, StoreError> {
    let meta = |name: &str| fields.get(name).map(String::as_str);
    let state = match meta("m:state") {
        Some("t") => SessionState::Temporary,
        Some("p") => SessionState::Permanent,
        other => return Err(protocol("touch", format!("bad session state {other:?}"))),
    };
    let ms = |name: &str| meta(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let data = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("d:")?.to_owned(), v.clone())))
        .collect();
    Ok(SessionRecord {
        state,
        created_ms: ms("m:created"),
        last_seen_ms: ms("m:seen"),
        ip: meta("m:ip").and_then(|ip| ip.parse().ok()),
        data,
    })
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
    fn touch<'a>(
        &'a self,
        id: &'a SessionId,
        access: &'a Access,
    ) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let mut invocation = self.invocation(&self.scripts.touch, id);
            invocation
                .arg(access.at_ms)
                .arg(ip_arg(access.ip))
                .arg(millis(Some(access.idle_ttl)))
                .arg(millis(access.permanent_retention))
                .arg(millis(access.ip_log_retention));
            let fields: Option<HashMap<String, String>> = self.run("touch", invocation).await?;
            fields.map(parse_record).transpose()
        })
    }

    fn create<'a>(
        &'a self,
        id: &'a SessionId,
        access: &'a Access,
        changes: &'a Changes,
        limit: Option<&'a CreateLimit>,
    ) -> StoreFuture<'a, Created> {
        Box::pin(async move {
            let mut invocation = self.invocation(&self.scripts.create, id);
            if let Some(limit) = limit {
                // Only with a limit: this key is outside the session's slot.
                invocation.key(self.network_key(limit.network));
            }
            invocation
                .arg(access.at_ms)
                .arg(ip_arg(access.ip))
                .arg(millis(Some(access.idle_ttl)))
                .arg(millis(access.permanent_retention))
                .arg(limit.map_or(0, |l| l.max))
                .arg(millis(limit.map(|l| l.window)))
                .arg(if changes.promote { "1" } else { "0" });
            for (field, value) in data_sets(changes) {
                invocation.arg(field).arg(value);
            }
            let (code, retry_ms): (i64, i64) = self.run("create", invocation).await?;
            match code {
                0 => Ok(Created::Exists),
                1 => Ok(Created::Created),
                2 => Ok(Created::Limited {
                    retry_after: Duration::from_millis(retry_ms.max(1) as u64),
                }),
                other => Err(protocol("create", format!("unexpected answer {other}"))),
            }
        })
    }

    fn commit<'a>(
        &'a self,
        id: &'a SessionId,
        access: &'a Access,
        changes: &'a Changes,
    ) -> StoreFuture<'a, Committed> {
        Box::pin(async move {
            let mut invocation = self.invocation(&self.scripts.commit, id);
            let sets = data_sets(changes).count();
            invocation
                .arg(access.at_ms)
                .arg(ip_arg(access.ip))
                .arg(millis(access.permanent_retention))
                .arg(if changes.promote { "1" } else { "0" })
                .arg(access.max_keys)
                .arg(access.max_data_bytes)
                .arg(sets);
            for (field, value) in data_sets(changes) {
                invocation.arg(field).arg(value);
            }
            for (key, _) in changes.data.iter().filter(|(_, v)| v.is_none()) {
                invocation.arg(format!("d:{key}"));
            }
            match self.run::<i64>("commit", invocation).await? {
                0 => Ok(Committed::Missing),
                1 => Ok(Committed::Applied),
                2 => Ok(Committed::OverLimit),
                other => Err(protocol("commit", format!("unexpected answer {other}"))),
            }
        })
    }

    fn reset<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let invocation = self.invocation(&self.scripts.reset, id);
            let deleted: i64 = self.run("reset", invocation).await?;
            Ok(deleted == 1)
        })
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let invocation = self.invocation(&self.scripts.delete, id);
            let deleted: i64 = self.run("delete", invocation).await?;
            Ok(deleted > 0)
        })
    }

    fn ip_log<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<Vec<IpLogEntry>>> {
        Box::pin(async move {
            let invocation = self.invocation(&self.scripts.ip_log, id);
            let fields: Option<HashMap<String, String>> = self.run("ip_log", invocation).await?;
            Ok(fields.map(parse_ip_log))
        })
    }
}
