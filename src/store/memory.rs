//! [`MemoryStore`]: sessions in the process's memory, with Redis's TTL
//! semantics on tokio's clock; lost on restart.

use std::collections::{BTreeSet, HashMap, hash_map::Entry};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustc_hash::FxBuildHasher;
use tokio::time::Instant;

use super::{
    Access, Changes, Committed, CreateLimit, Created, IpLog, IpLogEntry, NetworkStats, Removed,
    SessionData, SessionRecord, SessionState, SessionStore, StoreFuture, StorePolicy, TokenBinding,
    TokenHash,
};
use crate::client_ip::client_network;
use crate::id::SessionId;
use crate::observe::{self, Event};

/// How often, at most, a write sweeps out expired sessions and counters.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often, at most, a store at its capacity sweeps to make room.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);
/// Sessions a [`MemoryStore`] holds by default (see [`MemoryStore::with_capacity`]).
pub const DEFAULT_MEMORY_CAPACITY: usize = 100_000;

/// An in-process session store, for examples, development and tests.
///
/// **It loses everything on restart**: every session (permanent ones with
/// their conversations' bindings included), IP log, token binding and
/// statistic lives in the process's memory, and a restart or a deployment
/// forgets them all. A single-instance deployment keeps them in one file
/// with `SqliteStore` (feature `sqlite`, on by default); several instances
/// share them in Redis (`RedisStore`).
///
/// Expiry runs on [`tokio::time::Instant`], so a test with paused time
/// (`#[tokio::test(start_paused = true)]` and `tokio::time::advance`) sees a
/// temporary session vanish exactly `idle_ttl` after its last access. Expired
/// sessions are invisible at once and their memory is reclaimed by a sweep
/// that runs at most once a minute, during writes (once a second while the
/// store is full).
///
/// It holds at most [`capacity`](Self::with_capacity) sessions (default
/// 100 000): past that, new visitors are served without a session (as in
/// total privacy mode, counted as `visitor_session_store_full_total`), and no
/// session is evicted to make room, a permanent one least of all.
///
/// Cloning is cheap and every clone shares the same sessions.
///
/// ```
/// use visitor_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// let store = MemoryStore::with_capacity(10_000);
/// let layer = SessionLayer::new(store.clone(), SessionConfig::new()).unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }
}

impl std::fmt::Debug for MemoryStore {
    /// The number of sessions held (live or awaiting the sweep), never their contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("sessions_held", &inner.sessions.len())
            .field("capacity", &inner.capacity)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Keyed by ids the store generated (random), so a fast hash cannot be
    /// steered by clients: a forged id only costs one failed lookup.
    sessions: HashMap<SessionId, Stored, FxBuildHasher>,
    capacity: usize,
    /// New-session counters per client network: (count, end of window).
    created_per_network: HashMap<IpAddr, (u32, Instant)>,
    /// Aggregate counters per client network, with their expiry.
    networks: HashMap<IpAddr, (NetworkStats, Instant)>,
    /// The binding of each continuity token: its session (which may be gone,
    /// or not created yet), its state, and its expiry.
    tokens: HashMap<TokenHash, (TokenBinding, Option<Instant>)>,
    next_sweep: Option<Instant>,
    next_full_sweep: Option<Instant>,
}

struct Stored {
    record: SessionRecord,
    /// The IP log of a permanent session (boxed: temporary sessions, the
    /// most numerous, have none).
    ip_log: Option<Box<LogIndex>>,
    /// `None`: no TTL.
    expires_at: Option<Instant>,
    /// The continuity token the session is bound to (boxed: most sessions
    /// have none, and each idle session's size counts).
    token: Option<Box<TokenHash>>,
}

/// An IP log indexed both ways, so that recording an access costs
/// O(log n) and the least recently seen address is found at once.
#[derive(Default)]
struct LogIndex {
    /// `ip` -> (first seen, last seen).
    seen: HashMap<IpAddr, (u64, u64), FxBuildHasher>,
    /// (last seen, ip), least recently seen first.
    by_last: BTreeSet<(u64, IpAddr)>,
    dropped: u64,
}

impl LogIndex {
    fn record(&mut self, ip: IpAddr, at_ms: u64, max: usize) {
        match self.seen.entry(ip) {
            Entry::Occupied(mut e) => {
                let (_, last) = e.get_mut();
                self.by_last.remove(&(*last, ip));
                *last = (*last).max(at_ms);
                self.by_last.insert((*last, ip));
            }
            Entry::Vacant(e) => {
                e.insert((at_ms, at_ms));
                self.by_last.insert((at_ms, ip));
                while self.seen.len() > max {
                    self.pop_oldest();
                    self.dropped += 1;
                }
            }
        }
    }

    /// Drops the entries last seen before `cutoff`, least recent first.
    fn expire(&mut self, cutoff: u64) {
        while self.by_last.first().is_some_and(|(last, _)| *last < cutoff) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, ip)) = self.by_last.pop_first() {
            self.seen.remove(&ip);
        }
    }

    fn export(&self) -> IpLog {
        let entries = self
            .seen
            .iter()
            .map(|(ip, (first, last))| IpLogEntry {
                ip: *ip,
                first_seen_ms: *first,
                last_seen_ms: *last,
            })
            .collect();
        IpLog::new(entries, self.dropped)
    }

    #[cfg(any(test, feature = "test-support"))]
    fn holds(&self, ip: IpAddr) -> bool {
        self.seen.contains_key(&ip)
    }
}

impl Stored {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// Records an access (SPEC §3.1, §3.3) and returns the session.
    fn touch(&mut self, now: Instant, access: &Access<'_>) -> SessionRecord {
        self.record.last_seen_ms = access.at_ms;
        self.record.ip = access.ip;
        self.refresh_ttl(now, access);
        self.log_ip(access);
        self.record.clone()
    }

    /// Applies the TTL of the current state, measured from `now`.
    fn refresh_ttl(&mut self, now: Instant, access: &Access<'_>) {
        // A TTL too long for the clock is no TTL.
        self.expires_at = match self.record.state {
            SessionState::Temporary => now.checked_add(access.policy.idle_ttl),
            SessionState::Permanent => access
                .policy
                .permanent_retention
                .and_then(|r| now.checked_add(r)),
        };
    }

    fn log_ip(&mut self, access: &Access<'_>) {
        if self.record.state != SessionState::Permanent {
            return;
        }
        let log = self.ip_log.get_or_insert_default();
        if let Some(ip) = access.ip {
            let max = access.policy.ip_log_max_entries.max(1) as usize;
            log.record(ip, access.at_ms, max);
        }
        if let Some(retention) = access.policy.ip_log_retention {
            let cutoff = access.at_ms.saturating_sub(retention.as_millis() as u64);
            log.expire(cutoff);
        }
    }

    /// Whether the data after `changes` stays within the access's limits.
    fn fits(&self, changes: &Changes, access: &Access<'_>) -> bool {
        access.policy.limits.allows(&self.record.data, changes)
    }

    fn apply(&mut self, changes: &Changes) {
        self.record.data.apply(changes);
        if changes.promote {
            self.record.state = SessionState::Permanent;
        }
    }

    fn removed(self) -> Removed {
        Removed {
            removed: true,
            token: self.token.map(|t| *t),
        }
    }
}

impl MemoryStore {
    /// An empty store of the default capacity (100 000 sessions).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that holds at most `capacity` sessions, live or
    /// permanent; past that, new visitors are served without a session.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                sessions: HashMap::default(),
                capacity,
                created_per_network: HashMap::new(),
                networks: HashMap::new(),
                tokens: HashMap::new(),
                next_sweep: None,
                next_full_sweep: None,
            })),
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .sessions
            .values()
            .filter(|s| s.is_live(now))
            .count()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state and recorded IP of a live session, without touching it.
    #[cfg(any(test, feature = "test-support"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
    pub fn peek(&self, id: &SessionId) -> Option<(SessionState, Option<IpAddr>)> {
        let now = Instant::now();
        self.lock()
            .sessions
            .get(id)
            .filter(|s| s.is_live(now))
            .map(|s| (s.record.state, s.record.ip))
    }

    /// Whether any live session recorded `ip` as its current address or in its IP log.
    #[cfg(any(test, feature = "test-support"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
    pub fn holds_ip(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock().sessions.values().any(|s| {
            s.is_live(now)
                && (s.record.ip == Some(ip) || s.ip_log.as_ref().is_some_and(|l| l.holds(ip)))
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every mutation below is complete before it could panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The live session `id`, dropping it if it has expired.
    fn live(&mut self, id: &SessionId, now: Instant) -> Option<&mut Stored> {
        match self.sessions.entry(*id) {
            Entry::Occupied(e) if e.get().is_live(now) => Some(e.into_mut()),
            Entry::Occupied(e) => {
                e.remove();
                None
            }
            Entry::Vacant(_) => None,
        }
    }

    /// The live session `id`, if `access` may open it (SPEC §3.7).
    fn openable(
        &mut self,
        id: &SessionId,
        access: &Access<'_>,
        now: Instant,
    ) -> Option<&mut Stored> {
        self.live(id, now)
            .filter(|s| access.may_open(s.token.as_deref()))
    }

    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.sweep_now(now);
    }

    fn sweep_now(&mut self, now: Instant) {
        self.sessions.retain(|_, s| s.is_live(now));
        self.created_per_network.retain(|_, (_, end)| now < *end);
        self.networks.retain(|_, (_, end)| now < *end);
        self.tokens
            .retain(|_, (_, expires)| expires.is_none_or(|at| now < at));
        self.next_sweep = Some(now + SWEEP_EVERY);
    }

    /// Whether a new session fits, after sweeping (at most once a second)
    /// when the store is at its capacity.
    fn has_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.capacity {
            return true;
        }
        if self.next_full_sweep.is_none_or(|at| now >= at) {
            self.sweep_now(now);
            self.next_full_sweep = Some(now + SWEEP_WHEN_FULL_EVERY);
        }
        self.sessions.len() < self.capacity
    }

    /// Writes `changes` to the live session `id`, all or nothing.
    fn commit(
        &mut self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        now: Instant,
    ) -> Committed {
        let Some(stored) = self.live(id, now) else {
            return Committed::Missing;
        };
        if !stored.fits(changes, access) {
            return Committed::OverLimit;
        }
        let was_permanent = stored.record.state == SessionState::Permanent;
        stored.apply(changes);
        if changes.promote && !was_permanent {
            stored.refresh_ttl(now, access);
            stored.log_ip(access);
            self.count_network(access, now, 0, 1);
            observe::count(Event::Promoted);
        }
        Committed::Applied
    }

    /// Applies the new-session limit of one creation: `Some(wait)` when refused.
    fn admit(&mut self, limit: &CreateLimit, now: Instant) -> Option<Duration> {
        let counter = self
            .created_per_network
            .entry(limit.network)
            .or_insert((0, now + limit.window));
        if now >= counter.1 {
            *counter = (0, now + limit.window);
        }
        if counter.0 >= limit.max {
            return Some(counter.1 - now);
        }
        counter.0 += 1;
        None
    }

    /// Counts `created` sessions and `conversations` in the statistics of the
    /// access's network (SPEC §3.6).
    fn count_network(
        &mut self,
        access: &Access<'_>,
        now: Instant,
        created: u64,
        conversations: u64,
    ) {
        let Some(ip) = access.ip.filter(|_| access.policy.count_networks) else {
            return;
        };
        let network = client_network(ip);
        let fresh = NetworkStats {
            network,
            sessions_created: 0,
            conversations_started: 0,
            first_seen_ms: access.at_ms,
            last_seen_ms: access.at_ms,
        };
        let (stats, expires_at) = self.networks.entry(network).or_insert((fresh, now));
        if *expires_at <= now {
            // New, or past its retention: counted afresh, as in Redis.
            *stats = fresh;
        }
        stats.sessions_created += created;
        stats.conversations_started += conversations;
        stats.last_seen_ms = access.at_ms;
        *expires_at = later(now, access.policy.network_retention);
    }
}

/// `now + d`; a duration too long for the clock is kept as long as the clock goes.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// When a token binding in `state` expires, from `now` (SPEC §3.7: like its session).
fn binding_expiry(state: SessionState, policy: &StorePolicy, now: Instant) -> Option<Instant> {
    match state {
        SessionState::Temporary => Some(later(now, policy.idle_ttl)),
        SessionState::Permanent => policy.permanent_retention.map(|r| later(now, r)),
    }
}

fn ready<T>(value: T) -> StoreFuture<T> {
    StoreFuture::ready(Ok(value))
}

impl SessionStore for MemoryStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let record = inner
            .openable(id, access, now)
            .map(|stored| stored.touch(now, access));
        ready(record)
    }

    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.sweep(now);
        if let Some(existing) = inner.live(id, now) {
            // The same creation again, as after a lost reply: it did create.
            // Not with a token: the id was reserved in the token's binding,
            // and another browser of the user may have created it.
            let same = access.token.is_none() && existing.record.created_ms == access.at_ms;
            return ready(if same {
                Created::Created
            } else {
                Created::Exists
            });
        }
        if !inner.has_room(now) {
            return ready(Created::Full);
        }
        if let Some(retry_after) = limit.and_then(|limit| inner.admit(limit, now)) {
            return ready(Created::Limited { retry_after });
        }
        let mut stored = Stored {
            record: SessionRecord {
                state: SessionState::Temporary,
                created_ms: access.at_ms,
                last_seen_ms: access.at_ms,
                ip: access.ip,
                data: SessionData::new(),
            },
            ip_log: None,
            expires_at: None,
            token: access.token.map(|t| Box::new(*t)),
        };
        stored.apply(changes);
        stored.refresh_ttl(now, access);
        stored.log_ip(access);
        inner.sessions.insert(*id, stored);
        inner.count_network(access, now, 1, u64::from(changes.promote));
        if changes.promote {
            observe::count(Event::Promoted);
        }
        ready(Created::Created)
    }

    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.sweep(now);
        ready(inner.commit(id, access, changes, now))
    }

    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.openable(old, access, now).is_none() {
            // Gone, or moved already by this same call (a retry).
            let record = inner
                .openable(new, access, now)
                .map(|stored| stored.touch(now, access));
            return ready(record.filter(|_| !inner.sessions.contains_key(old)));
        }
        if inner.live(new, now).is_some() {
            return ready(None);
        }
        let mut stored = inner.sessions.remove(old).expect("checked live above");
        if stored.token.is_none() {
            stored.token = access.token.map(|t| Box::new(*t));
        }
        let record = stored.touch(now, access);
        inner.sessions.insert(*new, stored);
        ready(Some(record))
    }

    fn reset(&self, id: &SessionId) -> StoreFuture<Removed> {
        let now = Instant::now();
        let mut inner = self.lock();
        let temporary = inner
            .live(id, now)
            .is_some_and(|s| s.record.state == SessionState::Temporary);
        let removed = match temporary {
            true => inner.sessions.remove(id).map(Stored::removed),
            false => None,
        };
        ready(removed.unwrap_or_default())
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<Removed> {
        let now = Instant::now();
        let mut inner = self.lock();
        let live = inner.live(id, now).is_some();
        let removed = inner.sessions.remove(id).filter(|_| live);
        if removed.is_some() {
            observe::count(Event::Deleted);
        }
        ready(removed.map(Stored::removed).unwrap_or_default())
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let log = inner.live(id, now).map(|s| {
            s.ip_log
                .as_deref()
                .map(LogIndex::export)
                .unwrap_or_default()
        });
        ready(log)
    }

    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>> {
        let now = Instant::now();
        let inner = self.lock();
        let stats = inner
            .networks
            .get(&client_network(ip))
            .filter(|(_, expires_at)| now < *expires_at)
            .map(|(stats, _)| *stats);
        ready(stats)
    }

    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let binding = match inner.tokens.entry(*token) {
            Entry::Occupied(e) if e.get().1.is_some_and(|at| now >= at) => {
                e.remove();
                None
            }
            Entry::Occupied(mut e) => {
                let (binding, expires) = e.get_mut();
                *expires = binding_expiry(binding.state, policy, now);
                Some(*binding)
            }
            Entry::Vacant(_) => None,
        };
        ready(binding)
    }

    fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<&SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> StoreFuture<SessionId> {
        let now = Instant::now();
        let mut inner = self.lock();
        let current = inner
            .tokens
            .get(token)
            .filter(|(_, expires)| expires.is_none_or(|at| now < at))
            .map(|(binding, _)| *binding);
        if let Some(current) = current {
            if Some(&current.id) != expected && current.id != *id {
                return ready(current.id);
            }
        }
        // A binding made permanent meanwhile stays permanent.
        let state = match current {
            Some(c) if c.id == *id && c.state == SessionState::Permanent => c.state,
            _ => state,
        };
        let binding = TokenBinding { id: *id, state };
        let expires = binding_expiry(state, policy, now);
        inner.tokens.insert(*token, (binding, expires));
        ready(*id)
    }

    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()> {
        let mut inner = self.lock();
        if inner.tokens.get(token).is_some_and(|(b, _)| b.id == *id) {
            inner.tokens.remove(token);
        }
        ready(())
    }
}
