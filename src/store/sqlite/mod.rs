//! [`SqliteStore`]: the durable embedded store, one SQLite file for a
//! single-instance deployment without Redis (SPEC §4).
//!
//! Permanent sessions, IP logs, continuity-token bindings and network
//! statistics survive a restart of the service, or a `kill -9` of it: a
//! call is answered only once its transaction is committed. The rules are
//! those of every store (the trait's docs, held to the same conformance
//! suite): a sliding idle TTL on every touch, temporary → permanent, the
//! IP log capped with the least recently seen address giving way, the data
//! limits, the new-session limit and the statistics in the same call as
//! the creation or promotion they count.
//!
//! # Durability
//!
//! The file is in WAL mode (a write-ahead log beside it, `<file>-wal`), with
//! `synchronous = NORMAL` by default ([`Durability::ProcessCrash`]): a
//! transaction is committed when its pages are in the log, written to the
//! operating system. That is what survives the process dying at any point,
//! `kill -9` included: the kernel holds the written log and the next open
//! replays it (the crash test in `tests/chatbox.rs` kills the demo under
//! concurrent writes and finds every acknowledged write). It costs no disk
//! flush per request.
//!
//! A power loss or an operating-system crash is another matter: the file
//! stays consistent (never corrupt, every transaction whole or absent), but
//! the transactions committed since the log was last flushed to disk, at
//! the latest checkpoint, may be rolled back. SQLite checkpoints about
//! every 1 000 pages written: with one page per returning visit, the last
//! 1 000 or so requests that wrote (a visitor's latest IP or slid TTL, a
//! promotion, a new session). Where that matters, choose
//! [`Durability::PowerLoss`] (`synchronous = FULL`): every transaction is
//! flushed to disk (`fsync`) before it is acknowledged, at the cost of one
//! flush per write: about a third of the requests per second on a returning
//! visit in `benches/RESULTS.md`, more on a slower disk.
//!
//! # One thread, one transaction per call
//!
//! The store owns one connection, on a thread of its own
//! (`visitor-session-sqlite`), with every statement prepared once: each
//! call is sent there, run as one transaction (`BEGIN IMMEDIATE` ...
//! `COMMIT`) and answered through a channel, so the async runtime never
//! waits for the disk. Nearly every call writes (a touch slides the TTL),
//! and SQLite lets one writer in at a time: more connections would only
//! queue for its lock, in SQLite's busy handler, which sleeps.
//!
//! The thread was chosen over `tokio::task::spawn_blocking` around a mutex
//! by measuring both (commit `13c5fab` had both; `benches/RESULTS.md`):
//! with 32 callers touching sessions, the thread answered 41 000 to
//! 44 000 calls a second at 29 µs of CPU per call, the blocking pool
//! 20 000 to 21 000 at 53 to 62 µs (a pool thread woken per call, and the
//! callers' threads contending for the mutex); over HTTP, a returning
//! visitor had 41 000 to 45 000 requests a second against 18 000 to 26 000.
//!
//! A call whose caller stopped waiting (the layer's `store_timeout` ran
//! out) before the thread reached it is skipped: the layer has reported it
//! as timed out, or as of unknown outcome, already.
//!
//! # Expiry and the sweep
//!
//! Expiry is wall-clock time, read by the transaction: a row whose expiry
//! has passed is gone for every call from that moment, whether the sweep
//! has removed it yet or not, and whether it expired while the service ran
//! or while it was down. The thread removes expired rows (sessions with
//! their data and IP log, token bindings, network statistics, new-session
//! windows) every [`SqliteConfig::sweep_interval`] (1 minute; the first
//! sweep right after opening), at most [`SqliteConfig::sweep_batch`] rows
//! of each kind per transaction (500), with the calls that queued
//! meanwhile run between two batches, through an index (no scan). The
//! index holds each row's expiry rounded up to the sweep interval
//! (`sweep_ms`), not the expiry itself: a touch that slides a session's
//! TTL rewrites the index only when the rounded time moves, about once per
//! interval per session, not on every request (a touch then writes one
//! page, not two). A sweep takes the rows of the intervals that have
//! passed, and the expired ones of the current interval.
//!
//! Deleted rows are overwritten in the file (`secure_delete`), so an
//! expired visitor's IP does not linger in free pages; freed pages are
//! reused by the next visitors, and when more than a quarter of the file is
//! free after a sweep (a flood of visitors gone), pages are given back to
//! the file system (`auto_vacuum = INCREMENTAL`), 16 MiB at most per sweep.
//! The file thus settles at the size of the live sessions (the soak test
//! in `tests/sqlite_store.rs`: waves of 1 000 temporary visitors leave the
//! file at about 200 KB and its write-ahead log at about 4 MB, the same
//! after the sixth wave as after the first).
//!
//! # Layout
//!
//! Every table is named `vs_*`, so an application may keep its own tables in
//! the same file (the demo keeps its conversations there). Times are
//! milliseconds since the Unix epoch; ids are the 16 bytes of the session's
//! UUID; IPs their 4 or 16 bytes. A session is one row, its data in it, as
//! a session is one hash in Redis: a returning visitor is one row read and
//! rewritten, a new visitor one row written.
//!
//! | table | key | holds |
//! |---|---|---|
//! | `vs_sessions` | `id` | `state` (0 temporary, 1 permanent), `created_ms`, `seen_ms` and `ip` of the latest access, `expires_ms` (none for a permanent session without retention) and `sweep_ms` (the same, rounded up to the sweep interval: indexed for the sweep), `token` (the keyed hash of its continuity token), `data` (the handler's keys with their JSON texts in one blob, each as its length and bytes), `ip_count` and `ip_dropped` (its IP log's size, and how many addresses gave way) |
//! | `vs_ip_log` | `id`, `ip` | a permanent session's IP log: `first_ms`, `last_ms`, indexed by `(id, last_ms)` so that the least recently seen is found in O(log n) |
//! | `vs_tokens` | `token` | a continuity token's binding (SPEC §3.7): the keyed hash, never the token; the session `id`, its `state`, `expires_ms` and `sweep_ms` |
//! | `vs_networks` | `network` | a client network's statistics (SPEC §3.6): `sessions_created`, `conversations_started`, `first_ms`, `last_ms`, `expires_ms` (the retention after the latest event) and `sweep_ms` |
//! | `vs_creations` | `network` | with a new-session limit only: creations `admitted` in the window ending at `window_end_ms` |
//! | `vs_meta` | `name` | `schema_version`: a file of a later layout is refused |
//!
//! One file, one service: another process may read the file (a backup, the
//! `sqlite3` shell) but should not write it while the store runs; a write
//! lock it holds longer than [`SqliteConfig::busy_timeout`] fails the calls
//! that wait for it.

mod blob;
mod config;
mod ops;
mod schema;
mod sql;
mod worker;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;

pub use config::{DEFAULT_SWEEP_BATCH, DEFAULT_SWEEP_INTERVAL, Durability, SqliteConfig};
use ops::{Now, Visit};
use sql::Statements;
use worker::{Db, Job, Stage};

use super::{
    Access, Changes, Committed, CreateLimit, Created, IpLog, NetworkStats, Removed, SessionRecord,
    SessionState, SessionStore, StoreFuture, StorePolicy, TokenBinding, TokenHash,
};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::observe::{self, Event};

/// A [`SessionStore`] in one SQLite file: durable across restarts, for a
/// single-instance deployment without Redis.
///
/// Opening it creates the file and its tables if needed and starts the
/// store's thread; clones share that thread, which closes the file when the
/// last clone is dropped. The module docs say how it keeps acknowledged
/// writes, runs its calls and sweeps expired rows.
///
/// ```
/// use visitor_session::store::{SqliteConfig, SqliteStore};
/// use visitor_session::{SessionConfig, SessionLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("visitor-session-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("sessions.db");
/// let store = SqliteStore::open(SqliteConfig::new(path))?;
/// let layer = SessionLayer::new(store.clone(), SessionConfig::new())?;
/// # let _ = layer;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// // Expired rows go in the background; `sweep` runs a sweep now.
/// let removed = runtime.block_on(store.sweep())?;
/// assert_eq!(removed, 0);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Sender<Job>,
    config: SqliteConfig,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store's file and starts its thread. It does
    /// file I/O and waits for it: call it at start-up, not on a request.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting: a zero sweep interval, sweep
    /// batch or busy timeout; or `path` when the file cannot be opened or
    /// created, is not a SQLite database, lives on a file system without
    /// WAL support, or holds the layout of a later version of this crate.
    pub fn open(config: SqliteConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let conn = schema::open(&config)?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let (ready, started) = std::sync::mpsc::channel();
        let (batch, interval) = (config.sweep_batch, config.sweep_interval);
        let failed = |what: String| ConfigError::new("path", what);
        std::thread::Builder::new()
            .name("visitor-session-sqlite".into())
            .spawn(move || worker::run(conn, batch, interval, queue, ready))
            .map_err(|e| failed(format!("cannot start the store's thread: {e}")))?;
        match started.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(failed(format!(
                    "cannot prepare the store's statements: {e}"
                )));
            }
            Err(_) => return Err(failed("the store's thread ended at start-up".into())),
        }
        Ok(Self {
            inner: Arc::new(Inner { jobs, config }),
        })
    }

    /// Removes every expired row now, as the background sweep does (in
    /// batches, other calls running between them); returns how many rows
    /// went.
    ///
    /// # Errors
    ///
    /// The [`StoreError`] of the batch that failed.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let (rows, more) = self.call("sweep", |db| db.sweep_batch()).await?;
            removed += rows;
            if !more {
                return Ok(removed);
            }
        }
    }

    /// Runs `work` on the store's thread; its answer comes back through the
    /// returned future. Skipped when nobody waits for it any more.
    fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&mut Db<'_>) -> Result<T, (Stage, rusqlite::Error)> + Send + 'static,
    ) -> StoreFuture<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(work(db).map_err(|failure| store_error(op, failure)));
        });
        if self.inner.jobs.send(job).is_err() {
            return StoreFuture::ready(Err(stopped(op)));
        }
        StoreFuture::new(async move { answer.await.unwrap_or_else(|_| Err(stopped(op))) })
    }

    /// Runs `body` as one transaction on the store's thread.
    fn transaction<T: Send + 'static>(
        &self,
        op: &'static str,
        writes: bool,
        body: impl FnOnce(&mut Statements<'_>, Now) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<T> {
        self.call(op, move |db| db.transaction(writes, body))
    }
}

/// The error of a call the store's thread did not answer: it stopped, or
/// the call failed with a bug (a panic, logged).
fn stopped(op: &'static str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        op,
        "the SQLite store's thread did not answer this call",
    )
}

/// What a failed transaction tells the layer: a commit that failed may have
/// reached the file (outcome unknown); before it, nothing was applied
/// (unavailable); a row that cannot be read or a damaged file is an answer
/// the store did not expect (protocol).
fn store_error(op: &'static str, (stage, error): (Stage, rusqlite::Error)) -> StoreError {
    use rusqlite::{Error, ErrorCode};
    let unreadable = matches!(
        error,
        Error::FromSqlConversionFailure(..)
            | Error::InvalidColumnType(..)
            | Error::IntegralValueOutOfRange(..)
            | Error::Utf8Error(..)
    ) || matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    );
    let (kind, message) = match stage {
        _ if unreadable => (
            StoreErrorKind::Protocol,
            "the file holds something this store cannot read",
        ),
        Stage::Commit => (
            StoreErrorKind::OutcomeUnknown,
            "the commit failed; it may have reached the file",
        ),
        Stage::Begin | Stage::Body => (
            StoreErrorKind::Unavailable,
            "SQLite refused the call; nothing was applied",
        ),
    };
    StoreError::new(kind, op, message).with_source(error)
}

impl SessionStore for SqliteStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        let (id, visit) = (*id, Visit::of(access));
        self.transaction("touch", true, move |tx, now| {
            ops::touch(tx, &id, &visit, now)
        })
    }

    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created> {
        let (id, visit, changes, limit) = (*id, Visit::of(access), changes.clone(), limit.copied());
        self.call("create", move |db| {
            let creation = db.transaction(true, |tx, now| {
                ops::create(tx, &id, &visit, &changes, limit.as_ref(), now)
            })?;
            if creation.promoted {
                observe::count(Event::Promoted);
            }
            Ok(creation.created)
        })
    }

    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed> {
        let (id, visit, changes) = (*id, Visit::of(access), changes.clone());
        self.call("commit", move |db| {
            let commit =
                db.transaction(true, |tx, now| ops::commit(tx, &id, &visit, &changes, now))?;
            if commit.promoted {
                observe::count(Event::Promoted);
            }
            Ok(commit.committed)
        })
    }

    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>> {
        let (old, new, visit) = (*old, *new, Visit::of(access));
        self.transaction("cycle", true, move |tx, now| {
            ops::cycle(tx, &old, &new, &visit, now)
        })
    }

    fn reset(&self, id: &SessionId) -> StoreFuture<Removed> {
        let id = *id;
        self.transaction("reset", true, move |tx, now| ops::reset(tx, &id, now))
    }

    fn delete(&self, id: &SessionId) -> StoreFuture<Removed> {
        let id = *id;
        self.call("delete", move |db| {
            let removed = db.transaction(true, |tx, now| ops::delete(tx, &id, now))?;
            if removed.removed {
                observe::count(Event::Deleted);
            }
            Ok(removed)
        })
    }

    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>> {
        let id = *id;
        self.transaction("ip_log", false, move |tx, now| ops::ip_log(tx, &id, now))
    }

    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>> {
        self.transaction("network_stats", false, move |tx, now| {
            ops::network_stats(tx, ip, now)
        })
    }

    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>> {
        let (token, policy) = (*token, policy.clone());
        self.transaction("token_session", true, move |tx, now| {
            ops::token_session(tx, &token, &policy, now)
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
        let (token, expected, id, policy) = (*token, expected.copied(), *id, policy.clone());
        self.transaction("bind_token", true, move |tx, now| {
            ops::bind_token(tx, &token, expected.as_ref(), &id, state, &policy, now)
        })
    }

    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()> {
        let (token, id) = (*token, *id);
        self.transaction("unbind_token", true, move |tx, _| {
            ops::unbind_token(tx, &token, &id)
        })
    }
}
