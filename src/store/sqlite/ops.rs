//! The store's operations, each run inside one transaction on the store's
//! connection (see `worker.rs`): the SQL twin of `MemoryStore`, on the
//! layout of the module docs.
//!
//! Expiry is wall-clock time in milliseconds since the Unix epoch, read
//! when the transaction runs (`now`); a row whose `expires_ms` is not after
//! `now` is gone for every operation, whether or not the sweep has removed
//! it yet. Times an access records (`seen_ms`, the IP log, statistics) are
//! the access's own (`Access::at_ms`), as in the other stores.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::super::{
    Access, Changes, Committed, CreateLimit, Created, DataSize, IpLog, IpLogEntry, NetworkStats,
    Removed, SessionData, SessionRecord, SessionState, StorePolicy, TokenBinding, TokenHash,
};
use super::blob;
use super::sql::Statements;
use crate::client_ip::client_network;
use crate::id::SessionId;

type Result<T> = rusqlite::Result<T>;

/// A session id as the tables key it: the UUID's 16 bytes.
pub(super) type Key = [u8; 16];

/// IP-log entries past their retention that one access drops at most (the
/// rest go with the next accesses: each entry is dropped once), as in Redis.
const IP_EXPIRE_BATCH: i64 = 16;

/// An [`Access`] that owns what it borrows, to travel to the store's thread.
#[derive(Debug, Clone)]
pub(super) struct Visit {
    pub(super) ip: Option<IpAddr>,
    pub(super) at_ms: u64,
    pub(super) token: Option<TokenHash>,
    pub(super) policy: StorePolicy,
}

impl Visit {
    pub(super) fn of(access: &Access<'_>) -> Self {
        Self {
            ip: access.ip,
            at_ms: access.at_ms,
            token: access.token.copied(),
            policy: access.policy.clone(),
        }
    }

    fn access(&self) -> Access<'_> {
        Access::new(self.ip, self.at_ms, &self.policy).token(self.token.as_ref())
    }

    fn at(&self) -> i64 {
        sql_ms(self.at_ms)
    }
}

/// The time of a transaction: wall-clock milliseconds since the epoch, and
/// the step that sweep times are rounded up to.
///
/// Each expiring row keeps its exact expiry (`expires_ms`, checked by every
/// call) and, indexed for the sweep, that expiry rounded up to the step
/// (`sweep_ms`, the sweep interval): an access that slides the expiry
/// rewrites the index only when the rounded time moves, about once per
/// step per session, not on every request. The sweep removes a row once
/// its rounded time has passed, at most one step after it expired.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    pub(super) ms: i64,
    pub(super) step: i64,
}

impl Now {
    /// When a row expiring at `expires` is swept.
    fn sweep_at(self, expires: Option<i64>) -> Option<i64> {
        let step = self.step.max(1);
        expires.map(|at| match at.rem_euclid(step) {
            0 => at,
            r => at.saturating_add(step - r),
        })
    }
}

/// Milliseconds since the epoch as SQLite keeps them (a signed 64-bit integer).
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// `now + d`; a duration too long for the clock is kept as long as it goes.
fn later(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// An IP address as the tables keep it: its 4 or 16 bytes.
#[derive(Clone, Copy)]
pub(super) struct IpBytes {
    buf: [u8; 16],
    len: usize,
}

impl IpBytes {
    pub(super) fn of(ip: IpAddr) -> Self {
        let mut buf = [0u8; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                buf[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                buf = v6.octets();
                16
            }
        };
        Self { buf, len }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// An IP address read back from its bytes.
struct Ip(IpAddr);

impl FromSql for Ip {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = value.as_blob()?;
        match bytes.len() {
            4 => Ok(Self(
                Ipv4Addr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes")).into(),
            )),
            16 => Ok(Self(
                Ipv6Addr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")).into(),
            )),
            n => Err(FromSqlError::InvalidBlobSize {
                expected_size: 16,
                blob_size: n,
            }),
        }
    }
}

/// A session state as the tables keep it.
fn state_code(state: SessionState) -> i64 {
    match state {
        SessionState::Temporary => 0,
        SessionState::Permanent => 1,
    }
}

struct State(SessionState);

impl FromSql for State {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_i64()? {
            0 => Ok(Self(SessionState::Temporary)),
            1 => Ok(Self(SessionState::Permanent)),
            n => Err(FromSqlError::OutOfRange(n)),
        }
    }
}

/// A session id read back from its UUID bytes.
struct Id(SessionId);

impl FromSql for Id {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = <[u8; 16]>::column_result(value)?;
        SessionId::from_uuid_bytes(bytes)
            .map(Self)
            .ok_or_else(|| FromSqlError::Other("not a UUID v4".into()))
    }
}

/// What the store reads of a session before it decides.
struct Head {
    state: SessionState,
    created_ms: u64,
    expires_ms: Option<i64>,
    sweep_ms: Option<i64>,
    token: Option<TokenHash>,
    ip_count: u64,
    ip_dropped: u64,
}

impl Head {
    fn is_live(&self, now: Now) -> bool {
        self.expires_ms.is_none_or(|at| now.ms < at)
    }

    /// The columns `sql::HEAD` (and `HEAD_AND_DATA`) start with.
    fn read(row: &rusqlite::Row<'_>) -> Result<Self> {
        Ok(Head {
            state: row.get::<_, State>(0)?.0,
            created_ms: unsigned(row.get(1)?),
            expires_ms: row.get(2)?,
            sweep_ms: row.get(3)?,
            token: row
                .get::<_, Option<[u8; 32]>>(4)?
                .map(TokenHash::from_bytes),
            ip_count: unsigned(row.get(5)?),
            ip_dropped: unsigned(row.get(6)?),
        })
    }
}

/// The row of session `id`, live or not.
fn head(st: &mut Statements<'_>, id: &Key) -> Result<Option<Head>> {
    st.head.query_row([id], Head::read).optional()
}

/// The live session `id`.
fn live(st: &mut Statements<'_>, id: &Key, now: Now) -> Result<Option<Head>> {
    Ok(head(st, id)?.filter(|h| h.is_live(now)))
}

/// The live session `id` with its data.
fn live_with_data(
    st: &mut Statements<'_>,
    id: &Key,
    now: Now,
) -> Result<Option<(Head, SessionData)>> {
    let found = st
        .head_and_data
        .query_row([id], |row| {
            let head = Head::read(row)?;
            if !head.is_live(now) {
                return Ok(None);
            }
            let data = match row.get_ref(7)?.as_blob_or_null()? {
                None => SessionData::new(),
                Some(blob) => blob::decode(blob).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        7,
                        rusqlite::types::Type::Blob,
                        "session data this store did not write".into(),
                    )
                })?,
            };
            Ok(Some((head, data)))
        })
        .optional()?;
    Ok(found.flatten())
}

/// When a session in `state` expires, from `now` (`None`: never).
fn session_expiry(state: SessionState, policy: &StorePolicy, now: Now) -> Option<i64> {
    match state {
        SessionState::Temporary => Some(later(now.ms, policy.idle_ttl)),
        SessionState::Permanent => policy.permanent_retention.map(|r| later(now.ms, r)),
    }
}

/// Removes session `id` with its data and IP log.
fn remove(st: &mut Statements<'_>, id: &Key) -> Result<()> {
    st.remove_ip_log.execute([id])?;
    st.remove_session.execute([id])?;
    Ok(())
}

/// Records `visit` on session `id` (SPEC §3.1, §3.3): its time, IP and TTL,
/// and, if it is permanent, its IP log.
fn record_access(
    st: &mut Statements<'_>,
    id: &Key,
    head: &Head,
    visit: &Visit,
    now: Now,
) -> Result<()> {
    let ip = visit.ip.map(IpBytes::of);
    let ip = ip.as_ref().map(IpBytes::as_slice);
    let expires = session_expiry(head.state, &visit.policy, now);
    let sweep = now.sweep_at(expires);
    if sweep == head.sweep_ms {
        st.record_access
            .execute(params![id, visit.at(), ip, expires])?;
    } else {
        st.record_access_reswept
            .execute(params![id, visit.at(), ip, expires, sweep])?;
    }
    if head.state == SessionState::Permanent {
        log_ip(st, id, head, visit)?;
    }
    Ok(())
}

/// Records the visit's IP in the IP log of permanent session `id`: at most
/// `ip_log_max_entries` addresses, the least recently seen giving way
/// (counted); then drops entries last seen longer ago than the IP-log
/// retention. O(log n) in the log's size: every step is an index lookup.
fn log_ip(st: &mut Statements<'_>, id: &Key, head: &Head, visit: &Visit) -> Result<()> {
    let policy = &visit.policy;
    let (mut count, mut dropped) = (head.ip_count, head.ip_dropped);
    let mut counts_changed = false;
    if let Some(ip) = visit.ip.map(IpBytes::of) {
        let at = visit.at();
        let added = st.ip_log_add.execute(params![id, ip.as_slice(), at])? == 1;
        if added {
            count += 1;
            counts_changed = true;
            let max = u64::from(policy.ip_log_max_entries.max(1));
            if count > max {
                let gone = st
                    .ip_log_drop_least_recent
                    .execute(params![id, sql_ms(count - max)])? as u64;
                count -= gone;
                dropped += gone;
            }
        } else {
            // A late access never moves an address's last seen time back.
            st.ip_log_seen_again
                .execute(params![id, ip.as_slice(), at])?;
        }
    }
    if let Some(retention) = policy.ip_log_retention {
        let cutoff = visit.at().saturating_sub(later(0, retention));
        let gone = st
            .ip_log_expire
            .execute(params![id, cutoff, IP_EXPIRE_BATCH])? as u64;
        if gone > 0 {
            count = count.saturating_sub(gone);
            counts_changed = true;
        }
    }
    if counts_changed {
        st.ip_log_counts
            .execute(params![id, sql_ms(count), sql_ms(dropped)])?;
    }
    Ok(())
}

/// Loads session `id` for `visit` and records the access; `None` when it is
/// gone or not the visit's to open (then nothing is recorded).
pub(super) fn touch(
    st: &mut Statements<'_>,
    id: &SessionId,
    visit: &Visit,
    now: Now,
) -> Result<Option<SessionRecord>> {
    let key = id.uuid_bytes();
    let Some((head, data)) = live_with_data(st, &key, now)? else {
        return Ok(None);
    };
    if !visit.access().may_open(head.token.as_ref()) {
        return Ok(None);
    }
    record_access(st, &key, &head, visit, now)?;
    Ok(Some(SessionRecord::new(
        head.state,
        head.created_ms,
        visit.at_ms,
        visit.ip,
        data,
    )))
}

/// Counts `created` sessions and `conversations` in the statistics of the
/// visit's network (SPEC §3.6); counts past their retention start afresh.
fn count_network(
    st: &mut Statements<'_>,
    visit: &Visit,
    now: Now,
    created: i64,
    conversations: i64,
) -> Result<()> {
    let Some(ip) = visit.ip.filter(|_| visit.policy.count_networks) else {
        return Ok(());
    };
    let network = IpBytes::of(client_network(ip));
    let network = network.as_slice();
    let expires = later(now.ms, visit.policy.network_retention);
    let sweep = now.sweep_at(Some(expires));
    // The usual case, one statement: counted within the retention, in the
    // same sweep step as the latest event.
    let added = st.network_add.execute(params![
        network,
        created,
        conversations,
        visit.at(),
        expires,
        sweep,
        now.ms
    ])?;
    if added == 1 {
        return Ok(());
    }
    let until: Option<i64> = st
        .network_head
        .query_row([network], |row| row.get(0))
        .optional()?;
    let statement = match until {
        Some(until) if now.ms < until => &mut st.network_add_reswept,
        // New, or past its retention: counted afresh.
        _ => &mut st.count_network,
    };
    statement.execute(params![
        network,
        created,
        conversations,
        visit.at(),
        expires,
        sweep
    ])?;
    Ok(())
}

/// Applies the new-session limit to one creation: `Some(wait)` when refused.
fn admit(st: &mut Statements<'_>, limit: &CreateLimit, now: Now) -> Result<Option<Duration>> {
    let network = IpBytes::of(limit.network);
    let network = network.as_slice();
    let current: Option<(i64, i64)> = st
        .creations
        .query_row([network], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match current {
        Some((admitted, end)) if now.ms < end => {
            if admitted >= i64::from(limit.max) {
                return Ok(Some(Duration::from_millis(unsigned(end - now.ms).max(1))));
            }
            st.admit_more.execute([network])?;
        }
        // A new window, with this creation the first of it.
        _ if limit.max == 0 => {
            let wait = later(0, limit.window);
            return Ok(Some(Duration::from_millis(unsigned(wait).max(1))));
        }
        _ => {
            let end = later(now.ms, limit.window);
            st.admit.execute(params![network, end])?;
        }
    }
    Ok(None)
}

/// What a creation did, and whether it started a conversation.
pub(super) struct Creation {
    pub(super) created: Created,
    pub(super) promoted: bool,
}

/// Creates session `id` with `changes` as its first data (SPEC §3.2),
/// unless the id names a live session or `limit` refuses it.
pub(super) fn create(
    st: &mut Statements<'_>,
    id: &SessionId,
    visit: &Visit,
    changes: &Changes,
    limit: Option<&CreateLimit>,
    now: Now,
) -> Result<Creation> {
    let key = id.uuid_bytes();
    let answer = |created| Creation {
        created,
        promoted: false,
    };
    let state = if changes.promote {
        SessionState::Permanent
    } else {
        SessionState::Temporary
    };
    let mut data = SessionData::new();
    data.apply(changes);
    let ip = visit.ip.map(IpBytes::of);
    let expires = session_expiry(state, &visit.policy, now);
    let insert = |st: &mut Statements<'_>| -> Result<bool> {
        let inserted = st.create.execute(params![
            &key,
            state_code(state),
            visit.at(),
            ip.as_ref().map(IpBytes::as_slice),
            expires,
            now.sweep_at(expires),
            visit.token.as_ref().map(TokenHash::as_bytes),
            blob::encode(&data),
        ])?;
        Ok(inserted == 1)
    };
    // The usual case, without a limit to apply first: a fresh id, inserted.
    let inserted = limit.is_none() && insert(st)?;
    if !inserted {
        if let Some(existing) = head(st, &key)? {
            if existing.is_live(now) {
                // The same call run again after its reply was lost: it did
                // create. Not with a token: the id was reserved in the
                // token's binding, and another browser of the same user may
                // have created it (the caller then commits).
                let same = visit.token.is_none() && existing.created_ms == visit.at_ms;
                return Ok(answer(if same {
                    Created::Created
                } else {
                    Created::Exists
                }));
            }
            // Expired and not swept yet: it names nothing.
            remove(st, &key)?;
        }
        if let Some(retry_after) = match limit {
            Some(limit) => admit(st, limit, now)?,
            None => None,
        } {
            return Ok(answer(Created::Limited { retry_after }));
        }
        insert(st)?;
    }
    if state == SessionState::Permanent {
        let head = Head {
            state,
            created_ms: visit.at_ms,
            expires_ms: expires,
            sweep_ms: now.sweep_at(expires),
            token: visit.token,
            ip_count: 0,
            ip_dropped: 0,
        };
        log_ip(st, &key, &head, visit)?;
    }
    count_network(st, visit, now, 1, i64::from(changes.promote))?;
    Ok(Creation {
        created: Created::Created,
        promoted: changes.promote,
    })
}

/// What a commit did, and whether it started a conversation.
pub(super) struct Commit {
    pub(super) committed: Committed,
    pub(super) promoted: bool,
}

/// Writes the changed keys (and promotion) of live session `id`, all or
/// nothing: refused when the result would break the visit's data limits.
pub(super) fn commit(
    st: &mut Statements<'_>,
    id: &SessionId,
    visit: &Visit,
    changes: &Changes,
    now: Now,
) -> Result<Commit> {
    let key = id.uuid_bytes();
    let answer = |committed| Commit {
        committed,
        promoted: false,
    };
    let Some((head, mut data)) = live_with_data(st, &key, now)? else {
        // Gone: nothing written, no resurrection.
        return Ok(answer(Committed::Missing));
    };
    // The rule every store applies (`store::limits`), to what it holds now.
    let before = DataSize::of(&data);
    let after = before.with_changes(&data, changes);
    if visit.policy.limits.check(before, after).is_err() {
        return Ok(answer(Committed::OverLimit));
    }
    data.apply(changes);
    let promote = changes.promote && head.state == SessionState::Temporary;
    if promote {
        let expires = session_expiry(SessionState::Permanent, &visit.policy, now);
        st.promote.execute(params![
            &key,
            blob::encode(&data),
            state_code(SessionState::Permanent),
            expires,
            now.sweep_at(expires),
        ])?;
        let head = Head {
            state: SessionState::Permanent,
            ..head
        };
        log_ip(st, &key, &head, visit)?;
        count_network(st, visit, now, 0, 1)?;
    } else if !changes.data.is_empty() {
        st.write_data.execute(params![&key, blob::encode(&data)])?;
    }
    Ok(Commit {
        committed: Committed::Applied,
        promoted: promote,
    })
}

/// Renames live session `old` to `new` (SPEC §3.5, §3.7), keeping
/// everything, then touches it; see `SessionStore::cycle`.
pub(super) fn cycle(
    st: &mut Statements<'_>,
    old: &SessionId,
    new: &SessionId,
    visit: &Visit,
    now: Now,
) -> Result<Option<SessionRecord>> {
    let (old_key, new_key) = (old.uuid_bytes(), new.uuid_bytes());
    let Some(current) = live(st, &old_key, now)? else {
        // Gone, or renamed already by this same call (a retry): `new` is it.
        return touch(st, new, visit, now);
    };
    if !visit.access().may_open(current.token.as_ref()) {
        return Ok(None);
    }
    if let Some(taken) = head(st, &new_key)? {
        if taken.is_live(now) {
            return Ok(None);
        }
        remove(st, &new_key)?;
    }
    // The IP log is keyed by the id too: it moves in the same transaction
    // (bounded by the IP-log cap).
    st.cycle_session.execute(params![
        &old_key,
        &new_key,
        visit.token.as_ref().map(TokenHash::as_bytes)
    ])?;
    st.cycle_ip_log.execute(params![&old_key, &new_key])?;
    touch(st, new, visit, now)
}

/// Deletes session `id` if it is live and temporary (`Session::reset`).
pub(super) fn reset(st: &mut Statements<'_>, id: &SessionId, now: Now) -> Result<Removed> {
    let key = id.uuid_bytes();
    match live(st, &key, now)? {
        Some(head) if head.state == SessionState::Temporary => {
            remove(st, &key)?;
            Ok(Removed::session(head.token))
        }
        _ => Ok(Removed::nothing()),
    }
}

/// Agent deletion: removes session `id`, its data and IP log.
pub(super) fn delete(st: &mut Statements<'_>, id: &SessionId, now: Now) -> Result<Removed> {
    let key = id.uuid_bytes();
    let Some(head) = head(st, &key)? else {
        return Ok(Removed::nothing());
    };
    remove(st, &key)?;
    // An expired session is removed as the sweep would, but was gone already.
    Ok(if head.is_live(now) {
        Removed::session(head.token)
    } else {
        Removed::nothing()
    })
}

/// The IP log of live session `id` (empty while it is temporary).
pub(super) fn ip_log(st: &mut Statements<'_>, id: &SessionId, now: Now) -> Result<Option<IpLog>> {
    let key = id.uuid_bytes();
    let Some(head) = live(st, &key, now)? else {
        return Ok(None);
    };
    let stmt = &mut st.ip_log;
    let entries = stmt
        .query_map([&key], |row| {
            Ok(IpLogEntry::new(
                row.get::<_, Ip>(0)?.0,
                unsigned(row.get(1)?),
                unsigned(row.get(2)?),
            ))
        })?
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(IpLog::new(entries, head.ip_dropped)))
}

/// The statistics of the network of `ip`, unless past their retention.
pub(super) fn network_stats(
    st: &mut Statements<'_>,
    ip: IpAddr,
    now: Now,
) -> Result<Option<NetworkStats>> {
    let network = client_network(ip);
    st.network_stats
        .query_row(params![IpBytes::of(network).as_slice(), now.ms], |row| {
            Ok(NetworkStats::new(
                network,
                unsigned(row.get(0)?),
                unsigned(row.get(1)?),
                unsigned(row.get(2)?),
                unsigned(row.get(3)?),
            ))
        })
        .optional()
}

/// When a token binding in `state` expires, from `now` (SPEC §3.7: like its
/// session).
fn binding_expiry(state: SessionState, policy: &StorePolicy, now: Now) -> Option<i64> {
    session_expiry(state, policy, now)
}

/// The live binding of `token`, with its sweep time.
fn binding(
    st: &mut Statements<'_>,
    token: &TokenHash,
    now: Now,
) -> Result<Option<(TokenBinding, Option<i64>)>> {
    st.binding
        .query_row(params![token.as_bytes(), now.ms], |row| {
            let binding = TokenBinding::new(row.get::<_, Id>(0)?.0, row.get::<_, State>(1)?.0);
            Ok((binding, row.get(2)?))
        })
        .optional()
}

/// The binding of `token`, kept alive by this visit with the token.
pub(super) fn token_session(
    st: &mut Statements<'_>,
    token: &TokenHash,
    policy: &StorePolicy,
    now: Now,
) -> Result<Option<TokenBinding>> {
    let Some((found, swept)) = binding(st, token, now)? else {
        return Ok(None);
    };
    let expires = binding_expiry(found.state, policy, now);
    let sweep = now.sweep_at(expires);
    if sweep == swept {
        st.binding_keep
            .execute(params![token.as_bytes(), expires])?;
    } else {
        st.binding_keep_reswept
            .execute(params![token.as_bytes(), expires, sweep])?;
    }
    Ok(Some(found))
}

/// Binds `token` to `id` unless it is bound to a session other than
/// `expected` and `id` (compare and set); answers the session bound.
pub(super) fn bind_token(
    st: &mut Statements<'_>,
    token: &TokenHash,
    expected: Option<&SessionId>,
    id: &SessionId,
    state: SessionState,
    policy: &StorePolicy,
    now: Now,
) -> Result<SessionId> {
    let current = binding(st, token, now)?.map(|(binding, _)| binding);
    if let Some(current) = current {
        if Some(&current.id) != expected && current.id != *id {
            return Ok(current.id);
        }
    }
    // A binding made permanent meanwhile stays permanent.
    let state = match current {
        Some(c) if c.id == *id && c.state == SessionState::Permanent => c.state,
        _ => state,
    };
    let expires = binding_expiry(state, policy, now);
    st.bind.execute(params![
        token.as_bytes(),
        &id.uuid_bytes(),
        state_code(state),
        expires,
        now.sweep_at(expires),
    ])?;
    Ok(*id)
}

/// Drops `token`'s binding if it names `id`.
pub(super) fn unbind_token(
    st: &mut Statements<'_>,
    token: &TokenHash,
    id: &SessionId,
) -> Result<()> {
    st.unbind
        .execute(params![token.as_bytes(), &id.uuid_bytes()])?;
    Ok(())
}

/// One batch of the sweep: at most `batch` rows of each kind whose sweep
/// time has passed (sessions with their data and IP log, token bindings,
/// network statistics, new-session windows), the soonest first. Returns
/// the rows removed, and whether a kind had more than the batch.
pub(super) fn sweep_batch(st: &mut Statements<'_>, now: Now, batch: u32) -> Result<(u64, bool)> {
    let batch = i64::from(batch);
    let expired: Vec<Key> = st
        .sweep_sessions
        .query_map(params![now.ms, batch, now.step], |row| row.get(0))?
        .collect::<Result<_>>()?;
    for id in &expired {
        remove(st, id)?;
    }
    let mut removed = expired.len() as u64;
    let mut more = expired.len() as i64 == batch;
    let mut count = |n: usize| {
        removed += n as u64;
        more |= n as i64 == batch;
    };
    for statement in [&mut st.sweep_tokens, &mut st.sweep_networks] {
        count(statement.execute(params![now.ms, batch, now.step])?);
    }
    count(st.sweep_creations.execute(params![now.ms, batch])?);
    Ok((removed, more))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::TABLES).unwrap();
        conn
    }

    fn visit(idle_ms: u64) -> Visit {
        let policy = StorePolicy::default().idle_ttl(Duration::from_millis(idle_ms));
        Visit::of(&Access::new(
            Some("192.0.2.1".parse().unwrap()),
            1_000,
            &policy,
        ))
    }

    /// `ms` as a transaction's time, sweep times rounded to the ms.
    fn at(ms: i64) -> Now {
        Now { ms, step: 1 }
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_sweep_batch_removes_at_most_its_size_soonest_expired_first() {
        let conn = db();
        let st = &mut Statements::prepare(&conn).unwrap();
        let data = Changes::default().set("k", "1");
        // Sessions created at `now` 0 expiring after 10, 20, ... 50 ms, and one live.
        let mut ids = Vec::new();
        for ttl in [30, 10, 50, 20, 40, 1_000_000] {
            let id = SessionId::generate();
            let created = create(st, &id, &visit(ttl), &data, None, at(0)).unwrap();
            assert_eq!(created.created, Created::Created);
            ids.push((ttl, id));
        }
        let gone = |st: &mut Statements<'_>| -> Vec<u64> {
            ids.iter()
                .filter(|(_, id)| head(st, &id.uuid_bytes()).unwrap().is_none())
                .map(|(ttl, _)| *ttl)
                .collect()
        };
        // A token binding, expired too (the network's statistics live a year).
        let token = TokenHash::from_bytes([7; 32]);
        let short = visit(5).policy;
        bind_token(
            st,
            &token,
            None,
            &ids[0].1,
            SessionState::Temporary,
            &short,
            at(0),
        )
        .unwrap();

        let now = at(60);
        assert_eq!(sweep_batch(st, now, 2).unwrap(), (2 + 1, true));
        assert_eq!(gone(st), [10, 20], "the soonest expired first");
        assert_eq!(sweep_batch(st, now, 2).unwrap(), (2, true));
        assert_eq!(sweep_batch(st, now, 2).unwrap(), (1, false));
        assert_eq!(gone(st), [30, 10, 50, 20, 40]);
        assert_eq!(count(&conn, "vs_sessions"), 1, "the live one is left");
        assert_eq!(count(&conn, "vs_tokens"), 0);
        assert_eq!(count(&conn, "vs_networks"), 1, "statistics live a year");
        assert_eq!(sweep_batch(st, now, 2).unwrap(), (0, false));
    }

    #[test]
    fn an_expired_row_is_gone_for_every_call_before_the_sweep() {
        let conn = db();
        let st = &mut Statements::prepare(&conn).unwrap();
        let id = SessionId::generate();
        let v = visit(10);
        create(st, &id, &v, &Changes::default().set("k", "1"), None, at(0)).unwrap();
        assert!(touch(st, &id, &v, at(9)).unwrap().is_some(), "live at 9 ms");
        // That touch slid the expiry to 19 ms.
        assert!(touch(st, &id, &v, at(18)).unwrap().is_some());
        assert_eq!(touch(st, &id, &v, at(28 + 1)).unwrap(), None);
        let late = commit(st, &id, &v, &Changes::default().set("k", "2"), at(30)).unwrap();
        assert_eq!(late.committed, Committed::Missing);
        assert_eq!(ip_log(st, &id, at(30)).unwrap(), None);
        assert_eq!(reset(st, &id, at(30)).unwrap(), Removed::nothing());
        assert_eq!(
            cycle(st, &id, &SessionId::generate(), &v, at(30)).unwrap(),
            None
        );
        assert_eq!(
            count(&conn, "vs_sessions"),
            1,
            "still in the file until swept"
        );
        // The same id created again (a retry much later) starts afresh.
        let again = create(st, &id, &v, &Changes::default(), None, at(30)).unwrap();
        assert_eq!(again.created, Created::Created);
        let record = touch(st, &id, &v, at(31)).unwrap().unwrap();
        assert!(
            record.data.is_empty(),
            "nothing of the expired session came back"
        );
    }
}
