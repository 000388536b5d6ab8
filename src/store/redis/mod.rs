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
//! | `vs:{<uuid>}` | hash | `m`: `<state>,<created>,<keys>,<bytes>` (state `t` temporary or `p` permanent; creation time in ms since the Unix epoch; size of the data, kept up to date by every write); `i`: the client IP of the latest access (written when it changes); `s`: permanent sessions only, the time of the latest access (a temporary session's is its expiry time minus the idle TTL, slid by every access); `t`: the keyed hash of the continuity token the session is bound to, if any; `d:<key>` per handler key, holding JSON | temporary: `idle_ttl`, slid by every access; permanent: none, or the configured retention |
//! | `vs:{<uuid>}:ips` | hash | permanent sessions only, the IP log: `<ip>` → first seen (ms); `#dropped` → how many addresses gave way to newer ones past `ip_log_max_entries` | as the session |
//! | `vs:{<uuid>}:ipz` | sorted set | permanent sessions only, the IP log: `<ip>` scored by last seen (ms), so the least recently seen is found in O(log n) | as the session |
//! | `vs:tok:{<hmac hex>}` | string | a continuity token's binding (SPEC §3.7): `<t\|p>:<session id>`, named by the token's keyed hash (never the token) | as its session: `idle_ttl` slid by each visit with the token while temporary; none, or the retention, once permanent |
//! | `vs:new:{<network>}` | set | with a new-session limit only: the creations admitted from an IPv4 address or IPv6 /64 in the current window (random tokens, not session ids) | the window |
//! | `vs:net:{<network>}` | hash | the network's statistics (SPEC §3.6): `c` sessions created, `v` conversations started, `f` first and `l` last seen (ms); no session id, no full address beyond the network itself | `network_retention`, from the latest event counted |
//!
//! # Scripts
//!
//! Each operation is one Lua script (`src/store/redis/lua/`), called by SHA
//! (`EVALSHA`). A server without the script cached (restart, `SCRIPT FLUSH`,
//! a freshly promoted replica) answers `NOSCRIPT`; the call is then sent
//! once more with the whole script (`EVAL`), which caches it again.
//! [`RedisStore::load_scripts`] loads them all ahead of traffic. Every
//! script on a session takes the same first eight arguments, the access
//! (`lua/lib/session.lua`).
//!
//! | operation | keys | what the script does |
//! |---|---|---|
//! | touch | the session's three | nothing if the session is gone or bound to a token the access may not open; else slide the TTL and record a changed IP if temporary (two commands for a visitor who stays on one address), record IP, time and IP log if permanent; return the metadata and the data |
//! | create | the session's three (standalone: + the network's statistics and the limit's set) | answer "exists" for a taken id (but "created" for its own retry, without a token); admit under the new-session limit; write metadata, first data, size and token; TTL if temporary; count the creation in the network's statistics |
//! | commit | the session's three (standalone, when promoting: + the network's statistics) | nothing if the session is gone (no resurrection) or if the result would break the data limits (checked against the kept size, O(changed keys)); else `HSET` the changed keys, `HDEL` the removed ones; promote with `PERSIST` and a first IP-log entry, and count the conversation |
//! | cycle | the old id's three and the new id's three (one slot) | `RENAME` the session and its IP log to the new id (refused when the access may not open it or the new id is taken), bind it to the access's token if it had none, then touch it |
//! | network | the network's statistics (+ the limit's set) | Redis Cluster only, where a network's keys live in another slot than the session: the limit (before a create) and the counting, as their own call |
//! | reset | the session's three | delete them if the session is temporary; answer its token |
//! | delete | the session's three | delete them; answer its token |
//! | token_session, bind_token, unbind_token | the token's key (its own slot) | read (and keep alive), compare-and-set, or drop a continuity token's binding |
//! | IP log | the session's three | the log, if the session exists |
//! | network stats | the network's statistics | read them |
//!
//! On a single server (or through Sentinel) every operation is one call. On
//! Redis Cluster, a creation costs one more call for the network (two in
//! all, limit or not), and so does the commit that starts a conversation;
//! the counting call comes after a creation without a limit and before one
//! with a limit (which it admits). If that extra call fails after the
//! session was written, the session stands and the statistics miss one
//! event (logged as a warning). A `cycle` stays one call on a cluster: the
//! new id is drawn in the old one's slot ([`SessionStore::next_id`]).
//!
//! Every script has the same effect when run twice with the same arguments,
//! so a call retried after a lost reply is correct (a retried reset or
//! delete then answers that nothing was left, a retried cycle answers the
//! renamed session).
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
#[cfg(feature = "cluster")]
mod slot;
mod source;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, Value};

pub use config::RedisConfig;
use connection::{Connections, Op};
use scripts::{LuaScript, Scripts};
pub use source::{ConnectionSource, SourcedConnection};

use super::limits::DataSize;
use super::{
    Access, Changes, Committed, CreateLimit, Created, IpLog, IpLogEntry, NetworkStats, Removed,
    SessionData, SessionRecord, SessionState, SessionStore, StoreFuture, StorePolicy, TokenBinding,
    TokenHash,
};
use crate::client_ip::client_network;
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::observe::{self, Event};

const TOUCH: Op = Op::read("touch");
const CREATE: Op = Op::write("create");
const COMMIT: Op = Op::write("commit");
const CYCLE: Op = Op::write("cycle");
const RESET: Op = Op::write("reset");
const DELETE: Op = Op::write("delete");
const IP_LOG: Op = Op::read("ip_log");
const NETWORK: Op = Op::write("network");
const NETWORK_STATS: Op = Op::read("network_stats");
const TOKEN_SESSION: Op = Op::read("token_session");
const BIND_TOKEN: Op = Op::write("bind_token");
const UNBIND_TOKEN: Op = Op::write("unbind_token");
const LOAD_SCRIPTS: Op = Op::read("load_scripts");

/// The replies of `create.lua` (`{code, ms}`).
mod create_reply {
    pub(super) const EXISTS: i64 = 0;
    pub(super) const CREATED: i64 = 1;
    pub(super) const LIMITED: i64 = 2;
}

/// The replies of `commit.lua`.
mod commit_reply {
    pub(super) const MISSING: i64 = 0;
    pub(super) const APPLIED: i64 = 1;
    pub(super) const OVER_LIMIT: i64 = 2;
    pub(super) const PROMOTED: i64 = 3;
}

/// The arguments every session script starts with (`lua/lib/session.lua`).
const ACCESS_ARGS: usize = 4;

/// The field of a session's `ips` hash that counts the addresses that gave
/// way (`lua/lib/permanent.lua`).
const DROPPED_FIELD: &str = "#dropped";

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
    /// Redis Cluster: a network's keys (limit, statistics) are in another
    /// slot than the session's, so the work on them is a call of its own;
    /// and a cycled session's new id is drawn in the old one's slot.
    cluster: bool,
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
        config.validate()?;
        let cluster = config.servers.is_cluster();
        Ok(Self {
            inner: Arc::new(Inner {
                connections: Connections::new(&config)?,
                scripts: Scripts::new(),
                prefix: config.key_prefix.clone(),
                cluster,
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

/// The three keys of one session, `<prefix>{<uuid>}` and its `:ips` and
/// `:ipz`, written on the stack for usual prefixes.
struct SessionKeys {
    /// `<prefix>{<uuid>}:ips<prefix>{<uuid>}:ipz`
    buf: KeyBuf,
    /// Length of `<prefix>{<uuid>}`.
    base: usize,
}

enum KeyBuf {
    Stack([u8; 192], usize),
    Heap(Vec<u8>),
}

impl SessionKeys {
    fn new(prefix: &str, id: &SessionId) -> Self {
        use std::io::Write;
        let base = prefix.len() + id.uuid_str().len() + 2;
        let len = 2 * (base + 4);
        let write = |out: &mut dyn Write| {
            // Writing to memory with room enough cannot fail.
            for suffix in [&b":ips"[..], b":ipz"] {
                let _ = write!(out, "{prefix}{{{}}}", id.uuid_str());
                let _ = out.write_all(suffix);
            }
        };
        let buf = if len <= 192 {
            let mut stack = [0u8; 192];
            write(&mut &mut stack[..]);
            KeyBuf::Stack(stack, len)
        } else {
            let mut heap = Vec::with_capacity(len);
            write(&mut heap);
            KeyBuf::Heap(heap)
        };
        Self { buf, base }
    }

    fn bytes(&self) -> &[u8] {
        match &self.buf {
            KeyBuf::Stack(stack, len) => &stack[..*len],
            KeyBuf::Heap(heap) => heap,
        }
    }

    /// The session's hash, its first-seen log and its last-seen log.
    fn all(&self) -> [&[u8]; 3] {
        let bytes = self.bytes();
        let half = self.base + 4;
        [&bytes[..self.base], &bytes[..half], &bytes[half..]]
    }
}

impl Inner {
    /// The new-session limit's set of a client network.
    fn limit_key(&self, network: IpAddr) -> String {
        format!("{}new:{{{network}}}", self.prefix)
    }

    /// The statistics of the client network of `ip`; same hash tag as its
    /// limit's set, so one call can do both on a cluster.
    fn network_key(&self, ip: IpAddr) -> String {
        format!("{}net:{{{}}}", self.prefix, client_network(ip))
    }

    /// The key of a continuity token's binding.
    fn token_key(&self, token: &TokenHash) -> String {
        format!("{}tok:{{{}}}", self.prefix, token.to_hex())
    }

    /// `script` on the keys of session `id` and `extra` keys, with the
    /// access as its first arguments and room for `args` more of about `bytes`.
    fn session_call(
        &self,
        script: &LuaScript,
        id: &SessionId,
        extra: &[&[u8]],
        access: Option<&Access<'_>>,
        (args, bytes): (usize, usize),
    ) -> redis::Cmd {
        let keys = SessionKeys::new(&self.prefix, id);
        let mut all = Vec::with_capacity(3 + extra.len());
        all.extend(keys.all());
        all.extend_from_slice(extra);
        let mut cmd = script.call(&all, ACCESS_ARGS + args, 160 + bytes);
        if let Some(access) = access {
            push_access(&mut cmd, access);
        }
        cmd
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

    /// The commit script for `changes` to session `id` (`lua/commit.lua`):
    /// only the keys and arguments this commit needs.
    fn commit_cmd(&self, id: &SessionId, access: &Access<'_>, changes: &Changes) -> redis::Cmd {
        let policy = access.policy;
        // Counting a conversation joins the call on one server.
        let counters = access
            .ip
            .filter(|_| !self.cluster && changes.promote && policy.count_networks)
            .map(|ip| self.network_key(ip));
        let keys = SessionKeys::new(&self.prefix, id);
        let parts = Parts::new(&keys, counters.as_deref(), None, changes.promote);
        let mut cmd = parts.call(&self.scripts.commit, 8 + 2 * changes.data.len(), changes);
        let sets = changes.data.values().filter(|v| v.is_some()).count();
        cmd.arg(policy.limits.max_keys())
            .arg(policy.limits.max_bytes())
            .arg(sets);
        parts.push_args(&mut cmd, access, None);
        push_sets(&mut cmd, changes);
        let mut field = Vec::new();
        for (key, _) in changes.data.iter().filter(|(_, v)| v.is_none()) {
            cmd.arg(data_field(&mut field, key));
        }
        cmd
    }

    /// The create script for session `id` (`lua/create.lua`): only the keys
    /// and arguments this creation needs, the session's fields built here.
    fn create_cmd(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<(&CreateLimit, &str)>,
    ) -> redis::Cmd {
        let policy = access.policy;
        // On one server, the network's keys join the session's call.
        let counters = access
            .ip
            .filter(|_| !self.cluster && policy.count_networks)
            .map(|ip| self.network_key(ip));
        let limit = limit.filter(|_| !self.cluster);
        let limit_key = limit.map(|(l, _)| self.limit_key(l.network));
        let keys = SessionKeys::new(&self.prefix, id);
        let parts = Parts::new(
            &keys,
            counters.as_deref(),
            limit_key.as_deref(),
            changes.promote,
        );
        let mut cmd = parts.call(&self.scripts.create, 16 + 2 * changes.data.len(), changes);
        let token = access.token.map(TokenHash::to_hex);
        cmd.arg(access.at_ms)
            .arg(token.as_deref().unwrap_or(""))
            .arg(millis(policy.idle_ttl));
        parts.push_args(&mut cmd, access, limit);
        // The session's fields: its metadata (the data's size counted by the
        // rule every store shares), IP, token, last seen, data.
        let size = DataSize::default().with_changes(&SessionData::new(), changes);
        let state = if changes.promote {
            SessionState::Permanent
        } else {
            SessionState::Temporary
        };
        let meta = Meta {
            state,
            created_ms: access.at_ms,
            keys: size.keys as u64,
            bytes: size.bytes as u64,
        };
        // Its metadata and IP are the script's fixed fields ('m', 'i'), so
        // their names are not sent.
        cmd.arg(meta.to_string().as_str());
        push_ip(&mut cmd, access.ip);
        if let Some(token) = &token {
            cmd.arg("t").arg(token.as_str());
        }
        if changes.promote {
            cmd.arg("s").arg(access.at_ms);
        }
        push_sets(&mut cmd, changes);
        cmd
    }
}

/// The keys of a create or commit call: the session's hash, then only the
/// optional parts this call has, each named by a letter of the script's
/// first argument (`lua/create.lua`, `lua/commit.lua`): `n` the client
/// network's counters, `l` its new-session limit, `p` the session's IP log
/// (a conversation started).
struct Parts<'k> {
    keys: Vec<&'k [u8]>,
    flags: String,
    counted: bool,
    promote: bool,
}

impl<'k> Parts<'k> {
    fn new(
        session: &'k SessionKeys,
        counters: Option<&'k str>,
        limit: Option<&'k str>,
        promote: bool,
    ) -> Self {
        let [hash, ips, ipz] = session.all();
        let mut parts = Self {
            keys: vec![hash],
            flags: String::new(),
            counted: counters.is_some(),
            promote,
        };
        for (flag, key) in [('n', counters), ('l', limit)] {
            if let Some(key) = key {
                parts.flags.push(flag);
                parts.keys.push(key.as_bytes());
            }
        }
        if promote {
            parts.flags.push('p');
            parts.keys.extend([ips, ipz]);
        }
        parts
    }

    /// `script` on these keys, its first argument the flags (room is made
    /// for `args` more arguments and the data of `changes`).
    fn call(&self, script: &LuaScript, args: usize, changes: &Changes) -> redis::Cmd {
        let mut cmd = script.call(&self.keys, args, 100 + data_bytes(changes));
        cmd.arg(self.flags.as_str());
        cmd
    }

    /// The arguments of the optional parts, in the flags' order: for `n`
    /// the counters' retention; for `l` the limit's max, window and member;
    /// for `p` the client IP and what a permanent session needs.
    fn push_args(
        &self,
        cmd: &mut redis::Cmd,
        access: &Access<'_>,
        limit: Option<(&CreateLimit, &str)>,
    ) {
        if self.counted {
            cmd.arg(millis(access.policy.network_retention));
        }
        if let Some((limit, member)) = limit {
            cmd.arg(limit.max).arg(millis(limit.window)).arg(member);
        }
        if self.promote {
            push_ip(cmd, access.ip);
            push_permanent(cmd, access);
        }
    }
}

impl SessionStore for RedisStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(&inner.scripts.touch, id, &[], Some(access), (0, 0));
        let (at_ms, ip) = (access.at_ms, access.ip);
        StoreFuture::new(async move {
            let reply = inner
                .connections
                .run(TOUCH, &inner.scripts.touch, &cmd)
                .await?;
            parse_record("touch", reply, at_ms, ip)
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
        // Names this creation in the limit's set, so that a retry counts once.
        let member = limit.map(|_| creation_token());
        let cmd = inner.create_cmd(id, access, changes, limit.as_ref().zip(member.as_deref()));
        let promoted = changes.promote;
        let apart = NetworkEvent::of(access, 1, u64::from(promoted)).filter(|_| inner.cluster);
        StoreFuture::new(async move {
            let mut counted = false;
            if let (Some(event), Some(limit), Some(member)) = (&apart, &limit, &member) {
                // Boxed (a cluster's extra call): room for it is not
                // carried by every creation's future.
                let call = Box::pin(inner.network_call(event, Some((limit, member))));
                if let Some(retry_after) = call.await? {
                    return Ok(Created::Limited { retry_after });
                }
                counted = true;
            }
            let (code, retry_ms): (i64, u64) =
                inner.run(CREATE, &inner.scripts.create, &cmd).await?;
            match code {
                create_reply::EXISTS => Ok(Created::Exists),
                create_reply::CREATED => {
                    if promoted {
                        observe::count(Event::Promoted);
                    }
                    if let (Some(event), false) = (&apart, counted) {
                        Box::pin(inner.count_after(event)).await;
                    }
                    Ok(Created::Created)
                }
                create_reply::LIMITED => Ok(Created::Limited {
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
        let cmd = inner.commit_cmd(id, access, changes);
        let apart = NetworkEvent::of(access, 0, 1).filter(|_| inner.cluster);
        StoreFuture::new(async move {
            let code: i64 = inner.run(COMMIT, &inner.scripts.commit, &cmd).await?;
            match code {
                commit_reply::MISSING => Ok(Committed::Missing),
                commit_reply::APPLIED => Ok(Committed::Applied),
                commit_reply::OVER_LIMIT => Ok(Committed::OverLimit),
                commit_reply::PROMOTED => {
                    observe::count(Event::Promoted);
                    if let Some(event) = &apart {
                        Box::pin(inner.count_after(event)).await;
                    }
                    Ok(Committed::Applied)
                }
                other => Err(protocol("commit", format!("unexpected answer {other}"))),
            }
        })
    }

    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>> {
        let inner = self.inner.clone();
        let new_keys = SessionKeys::new(&inner.prefix, new);
        let cmd = inner.session_call(
            &inner.scripts.cycle,
            old,
            &new_keys.all(),
            Some(access),
            (0, 0),
        );
        let (at_ms, ip) = (access.at_ms, access.ip);
        StoreFuture::new(async move {
            let reply = inner
                .connections
                .run(CYCLE, &inner.scripts.cycle, &cmd)
                .await?;
            parse_record("cycle", reply, at_ms, ip)
        })
    }

    /// On Redis Cluster, an id in the slot of `old`, so that the rename is
    /// one script on one node (the id keeps 102 random bits; see `slot.rs`).
    fn next_id(&self, old: &SessionId) -> SessionId {
        #[cfg(feature = "cluster")]
        if self.inner.cluster {
            return slot::id_in_slot(slot::slot_of(old));
        }
        let _ = old;
        SessionId::generate()
    }

    fn reset(&self, id: &SessionId) -> StoreFuture<Removed> {
        self.remove(RESET, |s| &s.reset, id)
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<Removed> {
        self.remove(DELETE, |s| &s.delete, id)
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(&inner.scripts.ip_log, id, &[], None, (0, 0));
        StoreFuture::new(async move {
            type Reply = Option<(HashMap<String, String>, Vec<(String, u64)>)>;
            let reply: Reply = inner.run(IP_LOG, &inner.scripts.ip_log, &cmd).await?;
            Ok(reply.map(|(first, last)| parse_ip_log(&first, &last)))
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

    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>> {
        let inner = self.inner.clone();
        let key = inner.token_key(token);
        let mut cmd = inner.scripts.token_session.call(&[key.as_bytes()], 2, 40);
        cmd.arg(millis(policy.idle_ttl))
            .arg(optional_millis(policy.permanent_retention));
        StoreFuture::new(async move {
            let reply: Option<(String, String)> = inner
                .run(TOKEN_SESSION, &inner.scripts.token_session, &cmd)
                .await?;
            let Some((state, id)) = reply else {
                return Ok(None);
            };
            let id = SessionId::parse(&id)
                .ok_or_else(|| protocol("token_session", "a binding that is not a session id"))?;
            Ok(Some(TokenBinding {
                id,
                state: parse_state(state.as_bytes())
                    .ok_or_else(|| protocol("token_session", "an unknown binding state"))?,
            }))
        })
    }

    fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<&SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> StoreFuture<SessionId> {
        let inner = self.inner.clone();
        let key = inner.token_key(token);
        let mut cmd = inner.scripts.bind_token.call(&[key.as_bytes()], 5, 140);
        cmd.arg(expected.map_or("", SessionId::as_str))
            .arg(id.as_str())
            .arg(state_code(state))
            .arg(millis(policy.idle_ttl))
            .arg(optional_millis(policy.permanent_retention));
        StoreFuture::new(async move {
            let bound: String = inner
                .run(BIND_TOKEN, &inner.scripts.bind_token, &cmd)
                .await?;
            SessionId::parse(&bound)
                .ok_or_else(|| protocol("bind_token", "a binding that is not a session id"))
        })
    }

    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()> {
        let inner = self.inner.clone();
        let key = inner.token_key(token);
        let mut cmd = inner.scripts.unbind_token.call(&[key.as_bytes()], 1, 50);
        cmd.arg(id.as_str());
        StoreFuture::new(async move {
            let _: i64 = inner
                .run(UNBIND_TOKEN, &inner.scripts.unbind_token, &cmd)
                .await?;
            Ok(())
        })
    }
}

impl RedisStore {
    /// `reset` or `delete` (`op`, `script`) of session `id`: both answer
    /// `{removed, token}`.
    fn remove(
        &self,
        op: Op,
        script: fn(&Scripts) -> &LuaScript,
        id: &SessionId,
    ) -> StoreFuture<Removed> {
        let inner = self.inner.clone();
        let cmd = inner.session_call(script(&inner.scripts), id, &[], None, (0, 0));
        StoreFuture::new(async move {
            let script = script(&inner.scripts);
            let (removed, token): (i64, String) = inner.run(op, script, &cmd).await?;
            if removed > 0 && op.name == "delete" {
                observe::count(Event::Deleted);
            }
            Ok(Removed {
                removed: removed > 0,
                token: TokenHash::from_hex(&token),
            })
        })
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

/// Appends the access, the first arguments of the session scripts that
/// record one (`lua/lib/session.lua`).
fn push_access(cmd: &mut redis::Cmd, access: &Access<'_>) {
    let policy = access.policy;
    push_ip(cmd, access.ip);
    cmd.arg(millis(policy.idle_ttl));
    match access.token {
        Some(token) => cmd.arg(token.to_hex()),
        None if policy.token_required => cmd.arg("-"),
        None => cmd.arg(""),
    };
    push_permanent(cmd, access);
}

/// Appends what only a permanent session needs, in one argument formatted
/// on the stack: `<now ms>,<retention ms, 0: none>,<IP-log retention ms,
/// 0: keep>,<most IP-log entries>` (`with_permanent` in
/// `lua/lib/permanent.lua`).
fn push_permanent(cmd: &mut redis::Cmd, access: &Access<'_>) {
    use std::io::Write;
    let policy = access.policy;
    let mut buf = [0u8; 80];
    let mut out = &mut buf[..];
    let _ = write!(
        out,
        "{},{},{},{}",
        access.at_ms,
        optional_millis(policy.permanent_retention),
        optional_millis(policy.ip_log_retention),
        policy.ip_log_max_entries.max(1)
    );
    let len = 80 - out.len();
    cmd.arg(&buf[..len]);
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

/// The one-letter code of a session state in metadata and bindings.
fn state_code(state: SessionState) -> &'static str {
    match state {
        SessionState::Temporary => "t",
        SessionState::Permanent => "p",
    }
}

fn parse_state(code: &[u8]) -> Option<SessionState> {
    match code {
        b"t" => Some(SessionState::Temporary),
        b"p" => Some(SessionState::Permanent),
        _ => None,
    }
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

/// About how many bytes the data of `changes` takes as arguments.
fn data_bytes(changes: &Changes) -> usize {
    changes
        .data
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 16)
        .sum()
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

/// The session answered by the touch (or cycle) script: its metadata (`m`)
/// followed by its data fields and values (`d:<key>`, JSON), or nil when
/// it is gone.
fn parse_record(
    op: &'static str,
    reply: Value,
    at_ms: u64,
    ip: Option<IpAddr>,
) -> Result<Option<SessionRecord>, StoreError> {
    let bad = |what: &str| protocol(op, format!("unexpected answer: {what}"));
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(bad("not a list of fields")),
    };
    // The session's hash as HGETALL gives it: the metadata `m`, the data
    // fields `d:<key>`, and the fields only the scripts read (`i`, `s`, `t`).
    let mut meta = None;
    let mut data = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        let (Value::BulkString(field), Value::BulkString(value)) = (field, value) else {
            return Err(bad("a field that is not a string"));
        };
        match field.as_slice() {
            b"m" => meta = Some(value),
            b"i" | b"s" | b"t" => {}
            _ => {
                let key = field
                    .strip_prefix(b"d:")
                    .and_then(|key| std::str::from_utf8(key).ok())
                    .ok_or_else(|| bad("a field that is neither known nor `d:` and UTF-8"))?;
                let value =
                    String::from_utf8(value).map_err(|_| bad("a value that is not UTF-8"))?;
                data.push((key.to_owned(), value));
            }
        }
    }
    let meta = meta.ok_or_else(|| bad("no metadata"))?;
    let meta = Meta::parse(&meta).ok_or_else(|| bad("metadata of an unknown form"))?;
    Ok(Some(SessionRecord {
        state: meta.state,
        created_ms: meta.created_ms,
        // The script recorded this access.
        last_seen_ms: at_ms,
        ip,
        data: data.into_iter().collect(),
    }))
}

/// A session's metadata field `m`: `<state>,<created ms>,<keys>,<bytes>`
/// (`lua/lib/data.lua`); the one reader and writer of its format on this
/// side.
#[derive(Debug, PartialEq, Eq)]
struct Meta {
    state: SessionState,
    created_ms: u64,
    keys: u64,
    bytes: u64,
}

/// The metadata as the scripts read it (`lua/lib/data.lua`).
impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = state_code(self.state);
        write!(
            f,
            "{state},{},{},{}",
            self.created_ms, self.keys, self.bytes
        )
    }
}

impl Meta {
    fn parse(m: &[u8]) -> Option<Self> {
        let mut parts = m.split(|&b| b == b',');
        let state = parse_state(parts.next()?)?;
        let mut number =
            || -> Option<u64> { std::str::from_utf8(parts.next()?).ok()?.parse().ok() };
        let (created_ms, keys, bytes) = (number()?, number()?, number()?);
        Some(Self {
            state,
            created_ms,
            keys,
            bytes,
        })
    }
}

/// The IP log from its two keys: first seen times (and the dropped count)
/// and last seen times.
fn parse_ip_log(first: &HashMap<String, String>, last: &[(String, u64)]) -> IpLog {
    let entries = last
        .iter()
        .filter_map(|(ip, last_seen_ms)| {
            Some(IpLogEntry {
                ip: ip.parse().ok()?,
                first_seen_ms: first.get(ip)?.parse().ok()?,
                last_seen_ms: *last_seen_ms,
            })
        })
        .collect();
    let dropped = first
        .get(DROPPED_FIELD)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    IpLog::new(entries, dropped)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The values a Lua file gives the names of one `local A, B = 1, 2` line.
    fn lua_constants(source: &str, first: &str) -> Vec<(String, String)> {
        let line = source
            .lines()
            .find(|l| l.starts_with(&format!("local {first}")))
            .unwrap_or_else(|| panic!("no `local {first}` line"));
        let (names, values) = line["local ".len()..].split_once(" = ").unwrap();
        names
            .split(", ")
            .zip(values.split(", "))
            .map(|(n, v)| (n.to_owned(), v.trim_matches('\'').to_owned()))
            .collect()
    }

    #[test]
    fn reply_codes_and_shared_names_are_the_same_in_lua_and_rust() {
        let create = lua_constants(include_str!("lua/create.lua"), "CREATED");
        let commit = lua_constants(include_str!("lua/commit.lua"), "MISSING");
        let ours = [
            ("CREATED", create_reply::CREATED, &create),
            ("EXISTS", create_reply::EXISTS, &create),
            ("LIMITED", create_reply::LIMITED, &create),
            ("MISSING", commit_reply::MISSING, &commit),
            ("APPLIED", commit_reply::APPLIED, &commit),
            ("OVER_LIMIT", commit_reply::OVER_LIMIT, &commit),
            ("PROMOTED", commit_reply::PROMOTED, &commit),
        ];
        for (name, code, lua) in ours {
            let theirs = lua.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            assert_eq!(theirs, Some(&code.to_string()), "{name}");
        }
        assert_eq!(
            create.len() + commit.len(),
            ours.len(),
            "a reply code without a twin"
        );
        let session = include_str!("lua/lib/session.lua");
        assert_eq!(
            lua_constants(session, "ACCESS_ARGS"),
            [("ACCESS_ARGS".to_owned(), ACCESS_ARGS.to_string())]
        );
        assert_eq!(
            lua_constants(include_str!("lua/lib/permanent.lua"), "DROPPED"),
            [("DROPPED".to_owned(), DROPPED_FIELD.to_owned())]
        );
        // `network.lua` answers 0 when it counted, a wait otherwise.
        assert_eq!(
            lua_constants(include_str!("lua/network.lua"), "COUNTED"),
            [("COUNTED".to_owned(), "0".to_owned())]
        );
    }

    #[test]
    fn metadata_parses_every_field_and_refuses_other_forms() {
        assert_eq!(
            Meta::parse(b"p,1700000000000,3,120"),
            Some(Meta {
                state: SessionState::Permanent,
                created_ms: 1_700_000_000_000,
                keys: 3,
                bytes: 120
            })
        );
        for bad in [&b"x,1,2,3"[..], b"t,1,2", b"t,a,2,3", b""] {
            assert_eq!(Meta::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn metadata_is_written_in_the_form_it_is_read() {
        let meta = Meta {
            state: SessionState::Temporary,
            created_ms: 1_700_000_000_000,
            keys: 1,
            bytes: 2,
        };
        assert_eq!(meta.to_string(), "t,1700000000000,1,2");
        assert_eq!(Meta::parse(meta.to_string().as_bytes()), Some(meta));
    }

    /// Every store call's future is allocated, and moved, on every call:
    /// the rare paths (a check by the pool, the retry, the `EVAL` fallback)
    /// are boxed so that it stays small (it was 6.9 KB with them inline).
    /// Past 1 KB, glibc serves an allocation outside its per-thread cache.
    #[test]
    fn a_store_calls_future_stays_under_a_kilobyte() {
        let store = RedisStore::new(RedisConfig::new("redis://127.0.0.1:1")).unwrap();
        let inner = &store.inner;
        let id = SessionId::generate();
        let policy = StorePolicy::default();
        let access = Access::new(None, 1, &policy);
        let cmd = inner.session_call(&inner.scripts.touch, &id, &[], Some(&access), (0, 0));
        let run = inner.connections.run(TOUCH, &inner.scripts.touch, &cmd);
        assert!(
            std::mem::size_of_val(&run) < 1024,
            "{} bytes",
            std::mem::size_of_val(&run)
        );
    }

    #[test]
    fn session_keys_share_one_hash_tag() {
        let id = SessionId::generate();
        let keys = SessionKeys::new("vs:", &id);
        let tag = format!("vs:{{{}}}", id.uuid_str());
        let [hash, ips, ipz] = keys.all();
        assert_eq!(hash, tag.as_bytes());
        assert_eq!(ips, format!("{tag}:ips").as_bytes());
        assert_eq!(ipz, format!("{tag}:ipz").as_bytes());
        let long = "p".repeat(200);
        let keys = SessionKeys::new(&long, &id);
        assert_eq!(
            keys.all()[2],
            format!("{long}{{{}}}:ipz", id.uuid_str()).as_bytes()
        );
    }
}
