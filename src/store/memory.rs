//! [`MemoryStore`]: the embedded store, with Redis's TTL semantics on tokio's clock.

use std::collections::{HashMap, hash_map::Entry};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustc_hash::FxBuildHasher;
use tokio::time::Instant;

use super::{
    Access, Changes, Committed, CreateLimit, Created, DataSize, IpLogEntry, NetworkStats,
    SessionData, SessionRecord, SessionState, SessionStore, StoreFuture, TokenHash, TokenTouch,
};
use crate::client_ip::client_network;
use crate::id::SessionId;
use crate::observe::{self, Event};

/// How often, at most, a write sweeps out expired sessions and counters.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// An in-process session store: the embedded default for examples,
/// development, tests and single-instance deployments.
///
/// Expiry runs on [`tokio::time::Instant`], so a test with paused time
/// (`#[tokio::test(start_paused = true)]` and `tokio::time::advance`) sees a
/// temporary session vanish exactly `idle_ttl` after its last access. Expired
/// sessions are invisible at once and their memory is reclaimed by a sweep
/// that runs at most once a minute, during writes.
///
/// Cloning is cheap and every clone shares the same sessions.
///
/// ```
/// use visitor_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// let store = MemoryStore::new();
/// let layer = SessionLayer::new(store.clone(), SessionConfig::new()).unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MemoryStore {
    /// The number of sessions held (live or awaiting the sweep), never their contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.lock().sessions.len();
        f.debug_struct("MemoryStore")
            .field("sessions_held", &held)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// Keyed by ids the store generated (random), so a fast hash cannot be
    /// steered by clients: a forged id only costs one failed lookup.
    sessions: HashMap<SessionId, Stored, FxBuildHasher>,
    /// New-session counters per client network: (count, end of window).
    created_per_network: HashMap<IpAddr, (u32, Instant)>,
    /// Aggregate counters per client network, with their expiry.
    networks: HashMap<IpAddr, (NetworkStats, Instant)>,
    /// The session of each continuity token; an entry whose session is gone
    /// (or bound elsewhere) is stale and ignored.
    tokens: HashMap<TokenHash, SessionId>,
    next_sweep: Option<Instant>,
}

struct Stored {
    record: SessionRecord,
    /// `(ip, first seen, last seen)` for a permanent session, in first-seen order.
    ip_log: Vec<IpLogEntry>,
    /// `None`: no TTL.
    expires_at: Option<Instant>,
    /// The continuity token the session is bound to (boxed: most sessions
    /// have none, and each idle session's size counts).
    token: Option<Box<TokenHash>>,
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
        if let Some(ip) = access.ip {
            match self.ip_log.iter_mut().find(|e| e.ip == ip) {
                Some(entry) => entry.last_seen_ms = access.at_ms,
                None => self.ip_log.push(IpLogEntry {
                    ip,
                    first_seen_ms: access.at_ms,
                    last_seen_ms: access.at_ms,
                }),
            }
        }
        if let Some(retention) = access.policy.ip_log_retention {
            let cutoff = access.at_ms.saturating_sub(retention.as_millis() as u64);
            self.ip_log.retain(|e| e.last_seen_ms >= cutoff);
        }
    }

    /// Whether the data after `changes` stays within the access's limits.
    fn fits(&self, changes: &Changes, access: &Access<'_>) -> bool {
        let data = &self.record.data;
        let before = DataSize::of(data);
        let after = before.with_changes(data, changes);
        access.policy.limits.check(before, after).is_ok()
    }

    fn apply(&mut self, changes: &Changes) {
        if !changes.data.is_empty() {
            let data = self.record.data.make_mut();
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
        if changes.promote {
            self.record.state = SessionState::Permanent;
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
    pub fn peek(&self, id: &SessionId) -> Option<(SessionState, Option<IpAddr>)> {
        let now = Instant::now();
        self.lock()
            .sessions
            .get(id)
            .filter(|s| s.is_live(now))
            .map(|s| (s.record.state, s.record.ip))
    }

    /// Whether any live session recorded `ip` as its current address.
    pub fn holds_ip(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock().sessions.values().any(|s| {
            s.is_live(now) && (s.record.ip == Some(ip) || s.ip_log.iter().any(|e| e.ip == ip))
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

    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.sessions.retain(|_, s| s.is_live(now));
        self.created_per_network.retain(|_, (_, end)| now < *end);
        self.networks.retain(|_, (_, end)| now < *end);
        let sessions = &self.sessions;
        self.tokens.retain(|_, id| sessions.contains_key(id));
        self.next_sweep = Some(now + SWEEP_EVERY);
    }
}

impl Inner {
    /// The live session bound to `token`, if any.
    fn token_session(&mut self, token: &TokenHash, now: Instant) -> Option<SessionId> {
        let id = *self.tokens.get(token)?;
        let bound = self
            .live(&id, now)
            .is_some_and(|s| s.token.as_deref() == Some(token));
        if !bound {
            self.tokens.remove(token);
        }
        bound.then_some(id)
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

    /// Ends session `id`'s token binding with the session.
    fn unbind_token(&mut self, id: &SessionId, token: Option<TokenHash>) {
        if let Some(token) = token {
            if self.tokens.get(&token) == Some(id) {
                self.tokens.remove(&token);
            }
        }
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
        // A retention too long for the clock is kept as long as the clock goes.
        *expires_at = now
            .checked_add(access.policy.network_retention)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600));
    }
}

fn ready<T>(value: T) -> StoreFuture<T> {
    StoreFuture::ready(Ok(value))
}

impl SessionStore for MemoryStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let record = inner.live(id, now).map(|stored| stored.touch(now, access));
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
            let same = existing.record.created_ms == access.at_ms;
            return ready(if same {
                Created::Created
            } else {
                Created::Exists
            });
        }
        // Bind the new session to the token, unless the token's live session
        // could not take the changes (they stay in the new one).
        let mut bind = true;
        if let Some(token) = &changes.token {
            if let Some(joined) = inner.token_session(token, now) {
                // Another browser of this user created it a moment ago.
                if inner.commit(&joined, access, changes, now) == Committed::Applied {
                    if let Some(stored) = inner.live(&joined, now) {
                        stored.touch(now, access);
                    }
                    return ready(Created::Joined { id: joined });
                }
                tracing::warn!(session = %joined, "a token's session could not take a new browser's changes");
                bind = false;
            }
        }
        if let Some(limit) = limit {
            let counter = inner
                .created_per_network
                .entry(limit.network)
                .or_insert((0, now + limit.window));
            if now >= counter.1 {
                *counter = (0, now + limit.window);
            }
            if counter.0 >= limit.max {
                return ready(Created::Limited {
                    retry_after: counter.1 - now,
                });
            }
            counter.0 += 1;
        }
        let mut stored = Stored {
            record: SessionRecord {
                state: SessionState::Temporary,
                created_ms: access.at_ms,
                last_seen_ms: access.at_ms,
                ip: access.ip,
                data: SessionData::new(),
            },
            ip_log: Vec::new(),
            expires_at: None,
            token: changes.token.filter(|_| bind).map(Box::new),
        };
        stored.apply(changes);
        stored.refresh_ttl(now, access);
        stored.log_ip(access);
        inner.sessions.insert(*id, stored);
        if let Some(token) = changes.token.filter(|_| bind) {
            inner.tokens.insert(token, *id);
        }
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

    fn reset(&self, id: &SessionId) -> StoreFuture<bool> {
        let now = Instant::now();
        let mut inner = self.lock();
        let temporary = inner
            .live(id, now)
            .is_some_and(|s| s.record.state == SessionState::Temporary);
        if temporary {
            let token = inner.sessions.remove(id).and_then(|s| s.token);
            inner.unbind_token(id, token.map(|t| *t));
        }
        ready(temporary)
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<bool> {
        let now = Instant::now();
        let mut inner = self.lock();
        let existed = inner.live(id, now).is_some();
        if existed {
            observe::count(Event::Deleted);
        }
        let token = inner.sessions.remove(id).and_then(|s| s.token);
        inner.unbind_token(id, token.map(|t| *t));
        ready(existed)
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<Vec<IpLogEntry>>> {
        let now = Instant::now();
        let mut inner = self.lock();
        ready(inner.live(id, now).map(|s| s.ip_log.clone()))
    }

    fn touch_token(
        &self,
        token: &TokenHash,
        cookie: Option<&SessionId>,
        access: &Access<'_>,
    ) -> StoreFuture<TokenTouch> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(id) = inner.token_session(token, now) {
            let stored = inner
                .live(&id, now)
                .expect("token_session checked it is live");
            let record = stored.touch(now, access);
            return ready(TokenTouch::Bound { id, record });
        }
        if let Some(id) = cookie {
            if let Some(stored) = inner.live(id, now) {
                if stored.token.as_deref().is_none_or(|t| t == token) {
                    stored.token = Some(Box::new(*token));
                    let record = stored.touch(now, access);
                    inner.tokens.insert(*token, *id);
                    return ready(TokenTouch::Bound { id: *id, record });
                }
            }
        }
        ready(TokenTouch::Unbound)
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
}
