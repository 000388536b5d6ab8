//! Session stores: the [`SessionStore`] trait and its implementations.
//!
//! The trait is shaped around what one request needs, not around records:
//! each method is one atomic operation of the store (one script, one
//! transaction), and a networked store performs it in a single round trip
//! (SPEC §4). What needs several operations (session continuity tokens,
//! SPEC §3.7) is composed once, above the trait, by the layer.
//!
//! | request | store calls |
//! |---|---|
//! | returning visitor | [`touch`](SessionStore::touch) |
//! | ... whose handler changed data or promoted | + [`commit`](SessionStore::commit) |
//! | new visitor (standard mode), with or without data | [`create`](SessionStore::create) |
//! | privacy-mode visitor without cookie | none |
//! | `reset()` of a temporary session | + [`reset`](SessionStore::reset) (+ [`unbind_token`](SessionStore::unbind_token) if it had a token) |
//! | `cycle_id()` | + [`cycle`](SessionStore::cycle) (+ [`bind_token`](SessionStore::bind_token) if it has a token) |
//! | with a continuity token, returning | [`token_session`](SessionStore::token_session) + [`touch`](SessionStore::touch) |
//! | with a continuity token, first visit | [`token_session`](SessionStore::token_session) + [`bind_token`](SessionStore::bind_token) + [`cycle`](SessionStore::cycle) (adopting the browser's session) or [`create`](SessionStore::create) |

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::id::SessionId;
pub use crate::token::TokenHash;

mod limits;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use limits::DataLimits;
pub(crate) use limits::{DataSize, OverLimit};
pub use memory::{DEFAULT_MEMORY_CAPACITY, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::{ConnectionSource, RedisConfig, RedisStore, SourcedConnection};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{
    DEFAULT_SWEEP_BATCH, DEFAULT_SWEEP_INTERVAL, Durability, SqliteConfig, SqliteStore,
};

/// The future of a [`SessionStore`] operation: either ready at once (a store
/// that answers without I/O, like [`MemoryStore`], costs no allocation) or
/// a boxed future that owns what it needs (`'static`, so the layer can keep
/// it without boxing it again).
///
/// ```
/// use visitor_session::store::StoreFuture;
///
/// let answered: StoreFuture<bool> = StoreFuture::ready(Ok(true));
/// let later: StoreFuture<bool> = StoreFuture::new(async { Ok(false) });
/// # let _ = (answered, later);
/// ```
#[must_use = "a store operation does nothing unless its future is awaited"]
pub struct StoreFuture<T> {
    state: FutureState<T>,
}

enum FutureState<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>),
}

impl<T> StoreFuture<T> {
    /// A future that is already done.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            state: FutureState::Ready(Some(result)),
        }
    }

    /// The result, if the future is already done (nothing to wait for).
    pub(crate) fn take_ready(&mut self) -> Option<Result<T, StoreError>> {
        match &mut self.state {
            FutureState::Ready(result) => result.take(),
            FutureState::Pending(_) => None,
        }
    }

    /// A future that does the work of `future` (boxed).
    pub fn new(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        Self {
            state: FutureState::Pending(Box::pin(future)),
        }
    }
}

// The ready value is only ever moved out, never pinned; the pending future
// is boxed.
impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.get_mut().state {
            FutureState::Ready(result) => std::task::Poll::Ready(
                result
                    .take()
                    .expect("StoreFuture polled after it completed"),
            ),
            FutureState::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            FutureState::Ready(Some(_)) => "ready",
            FutureState::Ready(None) => "done",
            FutureState::Pending(_) => "pending",
        };
        f.debug_struct("StoreFuture")
            .field("state", &state)
            .finish()
    }
}

/// The lifecycle state of a session (SPEC §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Expires `idle_ttl` after the last access.
    Temporary,
    /// Has a conversation; kept until deleted (or its configured retention).
    Permanent,
}

impl SessionState {
    /// `"temporary"` or `"permanent"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temporary => "temporary",
            Self::Permanent => "permanent",
        }
    }
}

/// How a store treats sessions: their lifetimes and data limits. The layer
/// builds one from its [`SessionConfig`](crate::SessionConfig) and passes it
/// with every access.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct StorePolicy {
    /// TTL a temporary session gets from each access.
    pub idle_ttl: Duration,
    /// TTL a permanent session gets from each access, if any.
    pub permanent_retention: Option<Duration>,
    /// IP-log entries last seen longer ago than this are dropped, if set.
    pub ip_log_retention: Option<Duration>,
    /// The most addresses one IP log holds; past it the least recently seen
    /// gives way and is counted in [`IpLog::dropped`] (SPEC §3.3).
    pub ip_log_max_entries: u32,
    /// What a session's data may hold after a commit.
    pub limits: DataLimits,
    /// How long a client network's [`NetworkStats`] are kept after the
    /// latest event they count.
    pub network_retention: Duration,
    /// Whether creations and promotions are counted in [`NetworkStats`] at all.
    pub count_networks: bool,
    /// Whether a session bound to a continuity token opens only for an
    /// access carrying that token (SPEC §3.7; `true` unless the site chose
    /// the weaker rule).
    pub token_required: bool,
}

impl Default for StorePolicy {
    /// The defaults of [`SessionConfig::new`](crate::SessionConfig::new).
    fn default() -> Self {
        crate::SessionConfig::new().store_policy()
    }
}

impl StorePolicy {
    /// The default policy with another idle TTL.
    pub fn idle_ttl(mut self, idle_ttl: Duration) -> Self {
        self.idle_ttl = idle_ttl;
        self
    }

    /// The policy with other data limits.
    pub fn limits(mut self, limits: DataLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The policy with another IP-log bound.
    pub fn ip_log_max_entries(mut self, max: u32) -> Self {
        self.ip_log_max_entries = max;
        self
    }

    /// The policy with an IP-log retention.
    pub fn ip_log_retention(mut self, retention: Option<Duration>) -> Self {
        self.ip_log_retention = retention;
        self
    }

    /// The policy with the per-network statistics on or off.
    pub fn network_statistics(mut self, on: bool) -> Self {
        self.count_networks = on;
        self
    }

    /// The policy with another retention of the per-network statistics.
    pub fn network_retention(mut self, retention: Duration) -> Self {
        self.network_retention = retention;
        self
    }
}

/// One access to a session: who and when, under the layer's policy.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Access<'a> {
    /// The resolved client IP, if the request had a peer address.
    pub ip: Option<IpAddr>,
    /// Wall-clock time of the access, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The lifetimes and limits to apply.
    pub policy: &'a StorePolicy,
    /// The keyed hash of the continuity token the request carries (SPEC
    /// §3.7): a session bound to a token opens only for an access with it
    /// (see [`StorePolicy::token_required`]), and a session created or
    /// cycled by this access is bound to it.
    pub token: Option<&'a TokenHash>,
}

impl<'a> Access<'a> {
    /// An access from `ip` at `at_ms` (ms since the Unix epoch), under `policy`, without a token.
    pub fn new(ip: Option<IpAddr>, at_ms: u64, policy: &'a StorePolicy) -> Self {
        Self {
            ip,
            at_ms,
            policy,
            token: None,
        }
    }

    /// An access from `ip`, now, under `policy`, without a token.
    pub fn now(ip: Option<IpAddr>, policy: &'a StorePolicy) -> Self {
        Self::new(ip, Self::now_ms(), policy)
    }

    /// The same access carrying the continuity token `token`.
    pub fn token(mut self, token: Option<&'a TokenHash>) -> Self {
        self.token = token;
        self
    }

    /// Whether this access may open a session bound to `bound` (SPEC §3.7):
    /// one bound to no token opens for anyone; one bound to a token for
    /// accesses with that token, and, where the site chose the weaker rule,
    /// for accesses without any token.
    pub fn may_open(&self, bound: Option<&TokenHash>) -> bool {
        match (bound, self.token) {
            (None, _) => true,
            (Some(bound), Some(token)) => bound == token,
            (Some(_), None) => !self.policy.token_required,
        }
    }

    /// The current wall-clock time in milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A session's data: each handler key with its JSON text.
///
/// Cloning is cheap: clones share the map until one of them changes it, so a
/// store can hand a session to a request without copying it.
#[derive(Clone, Debug, Default)]
pub struct SessionData(Option<Arc<DataMap>>);

/// The map behind [`SessionData`]. A fast hash: a session holds at most
/// `max_keys` keys, so even chosen keys cannot make a lookup slow.
type DataMap = HashMap<String, String, rustc_hash::FxBuildHasher>;

impl SessionData {
    /// No data (nothing allocated).
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Option<&DataMap> {
        self.0.as_deref()
    }

    /// The JSON text stored under `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map()?.get(key)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map().is_some_and(|m| m.contains_key(key))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map().map_or(0, DataMap::len)
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.map().into_iter().flat_map(DataMap::keys)
    }

    /// The keys with their JSON texts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map().into_iter().flatten()
    }

    /// The map, to change it (copied first if another clone shares it).
    pub(crate) fn make_mut(&mut self) -> &mut DataMap {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default))
    }

    /// Sets and removes the keys `changes` lists (its promotion aside).
    pub(crate) fn apply(&mut self, changes: &Changes) {
        if changes.data.is_empty() {
            return;
        }
        let data = self.make_mut();
        for (key, value) in &changes.data {
            match value {
                Some(v) => {
                    data.insert(key.clone(), v.clone());
                }
                None => {
                    data.remove(key);
                }
            }
        }
    }
}

impl PartialEq for SessionData {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for SessionData {}

impl From<HashMap<String, String>> for SessionData {
    fn from(map: HashMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl FromIterator<(String, String)> for SessionData {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let map: DataMap = iter.into_iter().collect();
        Self((!map.is_empty()).then(|| Arc::new(map)))
    }
}

/// A session as loaded by [`SessionStore::touch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// Temporary or permanent.
    pub state: SessionState,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Time of this access, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// The client IP recorded by this access.
    pub ip: Option<IpAddr>,
    /// The handler's keys, each holding a JSON text.
    pub data: SessionData,
}

impl SessionRecord {
    /// A session in `state`, created at `created_ms`, as accessed at
    /// `last_seen_ms` from `ip`, holding `data`.
    pub fn new(
        state: SessionState,
        created_ms: u64,
        last_seen_ms: u64,
        ip: Option<IpAddr>,
        data: SessionData,
    ) -> Self {
        Self {
            state,
            created_ms,
            last_seen_ms,
            ip,
            data,
        }
    }
}

/// What a request changed, written back in one call.
///
/// ```
/// use visitor_session::store::Changes;
///
/// let changes = Changes::default()
///     .set("plan", r#""pro""#) // a JSON text
///     .remove("draft")
///     .promoted();
/// assert!(!changes.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changes {
    /// Keys to set (`Some(json)`) or remove (`None`). Keys not listed are left
    /// as they are, so concurrent requests changing different keys both keep
    /// their change.
    pub data: BTreeMap<String, Option<String>>,
    /// Make the session permanent (idempotent), logging the access's IP.
    pub promote: bool,
}

impl Changes {
    /// These changes, also setting `key` to the JSON text `json`.
    pub fn set(mut self, key: impl Into<String>, json: impl Into<String>) -> Self {
        self.data.insert(key.into(), Some(json.into()));
        self
    }

    /// These changes, also removing `key`.
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.data.insert(key.into(), None);
        self
    }

    /// These changes, also making the session permanent.
    pub fn promoted(mut self) -> Self {
        self.promote = true;
        self
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && !self.promote
    }
}

/// A limit applied atomically when creating a session (SPEC §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateLimit {
    /// The client network: an IPv4 address or an IPv6 address masked to /64.
    pub network: IpAddr,
    /// Sessions allowed per window.
    pub max: u32,
    /// The window length.
    pub window: Duration,
}

impl CreateLimit {
    /// At most `max` creations from `network` per `window`.
    pub fn new(network: IpAddr, max: u32, window: Duration) -> Self {
        Self {
            network,
            max,
            window,
        }
    }
}

/// The result of [`SessionStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Created {
    /// The session now exists.
    Created,
    /// A session with this id exists already; nothing was written.
    Exists,
    /// The network is over its new-session limit; nothing was written.
    Limited {
        /// When the window that refused it ends.
        retry_after: Duration,
    },
    /// The store holds as many sessions as it may (a [`MemoryStore`]'s
    /// capacity); nothing was written.
    Full,
}

/// A continuity token's binding, as [`SessionStore::token_session`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenBinding {
    /// The session the token is bound to. It may be gone (a binding whose
    /// session ended is stale and leads nowhere: every use of a session
    /// checks its own token), or not created yet (reserved by a first visit).
    pub id: SessionId,
    /// Whether the binding lives like a permanent session (no idle TTL).
    pub state: SessionState,
}

impl TokenBinding {
    /// A binding to session `id`, living like a session in `state`.
    pub fn new(id: SessionId, state: SessionState) -> Self {
        Self { id, state }
    }
}

/// What [`SessionStore::reset`] or [`SessionStore::delete`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Removed {
    /// Whether a session was removed.
    pub removed: bool,
    /// The continuity token the removed session was bound to: its binding
    /// is to be dropped with [`SessionStore::unbind_token`].
    pub token: Option<TokenHash>,
}

impl Removed {
    /// A session was removed, bound to `token` if any.
    pub fn session(token: Option<TokenHash>) -> Self {
        Self {
            removed: true,
            token,
        }
    }

    /// Nothing was removed.
    pub fn nothing() -> Self {
        Self::default()
    }
}

/// The result of [`SessionStore::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// The changes were written.
    Applied,
    /// The session expired or was deleted meanwhile; nothing was written (no resurrection).
    Missing,
    /// The changes, together with what concurrent requests stored meanwhile,
    /// would exceed the [`StorePolicy::limits`]; nothing was written.
    OverLimit,
}

/// One entry of a permanent session's IP log (SPEC §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IpLogEntry {
    /// The client IP.
    pub ip: IpAddr,
    /// First access from it, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Latest access from it, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

impl IpLogEntry {
    /// `ip`, first seen at `first_seen_ms` and last at `last_seen_ms`.
    pub fn new(ip: IpAddr, first_seen_ms: u64, last_seen_ms: u64) -> Self {
        Self {
            ip,
            first_seen_ms,
            last_seen_ms,
        }
    }
}

/// A permanent session's IP log, as exported for a legal request (SPEC §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IpLog {
    /// The addresses kept, oldest first seen first.
    pub entries: Vec<IpLogEntry>,
    /// How many addresses gave way to newer ones once the log held
    /// [`StorePolicy::ip_log_max_entries`] (the least recently seen first).
    pub dropped: u64,
}

impl IpLog {
    /// A log of `entries` (sorted here, oldest first seen first) after
    /// `dropped` addresses gave way.
    pub fn new(mut entries: Vec<IpLogEntry>, dropped: u64) -> Self {
        entries.sort_by_key(|e| (e.first_seen_ms, e.ip));
        Self { entries, dropped }
    }
}

/// The aggregate counters of one client network (SPEC §3.6): what is left
/// of its visitors once their temporary sessions are gone.
///
/// A network is an IPv4 address or an IPv6 /64 (see
/// [`client_network`](crate::client_ip::client_network)). The counters are
/// updated by the same store call as the creation or promotion they count,
/// and kept for [`StorePolicy::network_retention`] after the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkStats {
    /// The network: an IPv4 address, or an IPv6 address with its last 64 bits zero.
    pub network: IpAddr,
    /// Sessions created from it.
    pub sessions_created: u64,
    /// Conversations started from it: sessions made permanent.
    pub conversations_started: u64,
    /// The first event counted, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// The latest event counted, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

impl NetworkStats {
    /// The counters of `network` (see [`client_network`](crate::client_ip::client_network)):
    /// `sessions_created` and `conversations_started` between `first_seen_ms`
    /// and `last_seen_ms`.
    pub fn new(
        network: IpAddr,
        sessions_created: u64,
        conversations_started: u64,
        first_seen_ms: u64,
        last_seen_ms: u64,
    ) -> Self {
        Self {
            network,
            sessions_created,
            conversations_started,
            first_seen_ms,
            last_seen_ms,
        }
    }
}

/// A server-side session store.
///
/// # Implementing a store
///
/// This trait is written for someone adding a store for another database
/// (Postgres, DynamoDB, ...): its docs and the conformance suite
/// (`visitor_session::conformance`, feature `test-support`) are the whole
/// contract; no store's source needs reading.
///
/// - **Every method is one atomic operation** of your database: one
///   transaction, one script, one conditional write. Nothing another request
///   does may interleave with it. What needs several operations (continuity
///   tokens, agent deletion with its binding) is composed by the layer and
///   [`delete_session`], not by you.
/// - **Time.** [`Access::at_ms`] is the request's wall-clock time: record it
///   as last seen and in IP logs. Expiry (`idle_ttl`, retentions) is yours to
///   keep, on your own clock: a session must be invisible to every method
///   the moment it has expired, whether or not a sweep has removed it yet.
/// - **State rules (SPEC §3).** A session is temporary (expires
///   [`StorePolicy::idle_ttl`] after its last `touch`, `create` or `cycle`)
///   or permanent (no expiry, or [`StorePolicy::permanent_retention`] after
///   its last access). `promote` in [`Changes`] makes it permanent, once.
///   A temporary session's IP lives only in it; a permanent one keeps an IP
///   log capped at [`StorePolicy::ip_log_max_entries`] (the least recently
///   seen address gives way, counted in [`IpLog::dropped`]), pruned of
///   entries last seen longer than [`StorePolicy::ip_log_retention`] ago;
///   recording an access must cost O(log n) in the log's size.
/// - **Data.** [`commit`](Self::commit) writes only the keys in
///   [`Changes::data`], so two requests changing different keys both keep
///   theirs; it checks [`StorePolicy::limits`] against what is stored at
///   that moment ([`DataLimits::allows`] holds the rule, also for a store
///   that keeps the data's size: [`DataLimits::allows_sizes`]) and never
///   recreates a session that is gone.
/// - **Tokens (SPEC §3.7).** A session may be bound to a continuity token
///   ([`TokenHash`]): `create` binds it to [`Access::token`], `cycle` binds an
///   unbound one to it, and `touch` and `cycle` open a bound session only
///   when [`Access::may_open`] says so. Bindings (token to session) are
///   their own small records, read, compared-and-set and dropped by
///   [`token_session`](Self::token_session),
///   [`bind_token`](Self::bind_token) and
///   [`unbind_token`](Self::unbind_token), and expire like their session.
/// - **Statistics and limits (SPEC §3.6).** `create` applies the
///   [`CreateLimit`], if any, and counts the creation (and a conversation,
///   when promoted) in the [`NetworkStats`] of the access's network, when
///   [`StorePolicy::count_networks`]; a `commit` that makes a session
///   permanent counts a conversation.
/// - **Retries.** A method run twice with the same arguments has the effect
///   of one run (see each method), so the layer may retry after a lost reply.
///
/// The returned [`StoreFuture`] owns what it needs (the arguments are
/// borrowed only while the method runs); a store that answers without I/O
/// returns [`StoreFuture::ready`], which costs no allocation.
///
/// # Errors
///
/// Every method's future fails with a [`StoreError`] whose
/// [`kind`](StoreError::kind) tells the layer what it may assume:
/// [`Timeout`](crate::StoreErrorKind::Timeout) and
/// [`Unavailable`](crate::StoreErrorKind::Unavailable) changed nothing,
/// [`OutcomeUnknown`](crate::StoreErrorKind::OutcomeUnknown) is a write that
/// may have been applied, [`Protocol`](crate::StoreErrorKind::Protocol) an
/// answer the store did not expect.
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live session and records the access in the same operation:
    /// slides a temporary session's TTL, records IP and last-seen time, and
    /// appends to the IP log of a permanent session. `None` when the session
    /// does not exist (expired, deleted, unknown) or is bound to a continuity
    /// token that `access` [may not open](Access::may_open) (then nothing is
    /// recorded: the session is not this visitor's).
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>>;

    /// Creates a session with `changes` as its first data, unless the id is
    /// taken (never overwrites) or `limit` refuses it. The new session is
    /// temporary unless `changes.promote`, and bound to `access.token`, if
    /// any. Counts the creation (and a conversation, if promoted) in the
    /// [`NetworkStats`] of the access's IP.
    ///
    /// Run again with the same arguments after it succeeded (a lost reply),
    /// a creation without a token answers [`Created::Created`] again; with a
    /// token it answers [`Created::Exists`] (the layer then commits the
    /// changes: the id was reserved in the token's binding, and another
    /// browser of the same user may have created it).
    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created>;

    /// Writes only the changed keys (and promotion) of a live session, all or
    /// nothing: refused when the result would exceed the access's data limits.
    /// Making a temporary session permanent counts a conversation started in
    /// the [`NetworkStats`] of the access's IP.
    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed>;

    /// Renames the live session `old` to `new` (SPEC §3.5 `cycle_id`, §3.7
    /// adoption), if `access` [may open](Access::may_open) it and `new` names
    /// nothing: data, state, creation time, IP log, TTL and token binding
    /// move; a session bound to no token is bound to `access.token`; the
    /// access is recorded as by [`touch`](Self::touch). Afterwards `old`
    /// names nothing, so a commit still running on it answers
    /// [`Committed::Missing`]. Returns the session as `touch` loads it;
    /// `None` when `old` is gone or not this access's to open (nothing
    /// changed). Run again after it succeeded (a lost reply), it finds `new`
    /// and answers it.
    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>>;

    /// A fresh id for [`cycle`](Self::cycle) to rename `old` to. The default,
    /// [`SessionId::generate`], fits every store whose operations can reach
    /// any two ids at once; a store that shards by id (Redis Cluster) answers
    /// an id its shard of `old` holds.
    fn next_id(&self, old: &SessionId) -> SessionId {
        let _ = old;
        SessionId::generate()
    }

    /// Ends a browser's binding (`Session::reset`): deletes the session if it is
    /// temporary, keeps it if it is permanent.
    fn reset(&self, id: &SessionId) -> StoreFuture<Removed>;

    /// Agent deletion: removes the session, its data and its IP log.
    /// [`delete_session`] also drops its token binding.
    fn delete(&self, id: &SessionId) -> StoreFuture<Removed>;

    /// The IP log of a session (empty for a temporary session); `None` when
    /// the session does not exist.
    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>>;

    /// The aggregate counters of the network of `ip` (any address in it);
    /// `None` when none are kept.
    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>>;

    /// The binding of continuity token `token` (SPEC §3.7), if it has one.
    /// Reading it is a visit with the token: a temporary binding is kept
    /// `policy.idle_ttl` from now, a permanent one its retention, if any.
    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>>;

    /// Binds `token` to session `id` in `state`, unless it is bound to a
    /// session other than `expected` and `id` meanwhile (compare and set);
    /// a binding to `id` that is permanent stays permanent. Answers the
    /// session bound afterwards: `id`, or the one that won the race.
    fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<&SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> StoreFuture<SessionId>;

    /// Drops `token`'s binding if it is bound to `id` (its session ended).
    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()>;
}

/// Agent deletion of session `id` (SPEC §3.5): the session, its data and IP
/// log, then its continuity token's binding. Returns whether a session existed.
///
/// # Errors
///
/// The [`StoreError`] of the failed operation. When the session was deleted
/// and only the binding could not be dropped, the binding is stale and
/// leads nowhere (every use of a session checks its token); running the
/// deletion again is safe.
pub async fn delete_session<S: SessionStore + ?Sized>(
    store: &S,
    id: &SessionId,
) -> Result<bool, StoreError> {
    let removed = store.delete(id).await?;
    if let Some(token) = &removed.token {
        store.unbind_token(token, id).await?;
    }
    Ok(removed.removed)
}

/// A shared store is a store: the layer and an admin API can hold one
/// `Arc<dyn SessionStore>`.
impl<S: SessionStore + ?Sized> SessionStore for std::sync::Arc<S> {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        (**self).touch(id, access)
    }

    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created> {
        (**self).create(id, access, changes, limit)
    }

    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed> {
        (**self).commit(id, access, changes)
    }

    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>> {
        (**self).cycle(old, new, access)
    }

    fn next_id(&self, old: &SessionId) -> SessionId {
        (**self).next_id(old)
    }

    fn reset(&self, id: &SessionId) -> StoreFuture<Removed> {
        (**self).reset(id)
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<Removed> {
        (**self).delete(id)
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>> {
        (**self).ip_log(id)
    }

    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>> {
        (**self).network_stats(ip)
    }

    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>> {
        (**self).token_session(token, policy)
    }

    fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<&SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> StoreFuture<SessionId> {
        (**self).bind_token(token, expected, id, state, policy)
    }

    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()> {
        (**self).unbind_token(token, id)
    }
}
