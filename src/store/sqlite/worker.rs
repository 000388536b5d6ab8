//! The store's thread: it owns the one connection to the file, runs the
//! calls in the order they come, each as one transaction, and the sweep
//! between them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::ops::{self, Now};
use super::sql::Statements;
use crate::store::Access;

/// A call for the store's thread.
pub(super) type Job = Box<dyn FnOnce(&mut Db<'_>) + Send>;

/// Calls the thread runs between two batches of a sweep, at most: requests
/// wait for one batch at a time, and the sweep goes on under load.
const JOBS_BETWEEN_BATCHES: usize = 64;
/// Free pages below which the file is not shrunk (1 MiB of 4 KiB pages):
/// pages freed by a sweep are reused by the next visitors.
const SHRINK_ABOVE_PAGES: i64 = 256;
/// Pages one sweep run gives back to the file system at most.
const SHRINK_PAGES_PER_RUN: i64 = 4096;

/// Where a transaction failed: before its writes, in them, or in the commit
/// (whose outcome is then unknown).
#[derive(Debug)]
pub(super) enum Stage {
    Begin,
    Body,
    Commit,
}

/// The connection, its prepared statements, and what the sweep needs to know.
pub(super) struct Db<'c> {
    conn: &'c Connection,
    statements: Statements<'c>,
    sweep_batch: u32,
    /// Sweep times are rounded up to this, in ms (see `ops::Now`).
    sweep_step: i64,
}

impl<'c> Db<'c> {
    /// `conn` with every statement prepared.
    pub(super) fn new(
        conn: &'c Connection,
        sweep_batch: u32,
        sweep_interval: Duration,
    ) -> rusqlite::Result<Self> {
        let sweep_step = i64::try_from(sweep_interval.as_millis()).unwrap_or(i64::MAX);
        Ok(Self {
            conn,
            statements: Statements::prepare(conn)?,
            sweep_batch,
            sweep_step: sweep_step.max(1),
        })
    }

    /// Runs `body` in one transaction (`BEGIN IMMEDIATE` when it writes: it
    /// takes the write lock at once, so it never fails half-way on a lock),
    /// with the wall-clock time in ms; rolled back unless `body` succeeds.
    pub(super) fn transaction<T>(
        &mut self,
        writes: bool,
        body: impl FnOnce(&mut Statements<'c>, Now) -> rusqlite::Result<T>,
    ) -> Result<T, (Stage, rusqlite::Error)> {
        let st = &mut self.statements;
        let begin = if writes {
            &mut st.begin_write
        } else {
            &mut st.begin_read
        };
        begin.execute([]).map_err(|e| (Stage::Begin, e))?;
        let mut open = Open {
            conn: self.conn,
            committed: false,
        };
        let now = Now {
            ms: i64::try_from(Access::now_ms()).unwrap_or(i64::MAX),
            step: self.sweep_step,
        };
        let value = body(st, now).map_err(|e| (Stage::Body, e))?;
        st.commit.execute([]).map_err(|e| (Stage::Commit, e))?;
        open.committed = true;
        Ok(value)
    }

    /// One batch of the sweep, as its own transaction: whether there is more.
    pub(super) fn sweep_batch(&mut self) -> Result<(u64, bool), (Stage, rusqlite::Error)> {
        let batch = self.sweep_batch;
        self.transaction(true, |tx, now| ops::sweep_batch(tx, now, batch))
    }

    /// Gives free pages back to the file system when many are free (after
    /// a flood was swept), a bounded number per call.
    fn shrink(&mut self) -> rusqlite::Result<()> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            self.conn.pragma_query_value(None, name, |row| row.get(0))
        };
        let (free, pages) = (pragma("freelist_count")?, pragma("page_count")?);
        if free > SHRINK_ABOVE_PAGES && free * 4 > pages {
            let n = (free - SHRINK_ABOVE_PAGES / 2).min(SHRINK_PAGES_PER_RUN);
            self.conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({n})"))?;
        }
        Ok(())
    }

    /// Runs `job`; a panic in it (a bug) fails that call only.
    fn run(&mut self, job: Job) {
        if catch_unwind(AssertUnwindSafe(|| job(self))).is_err() {
            tracing::error!("a SQLite store call panicked; the call failed, the store goes on");
            // The transaction the job held is rolled back by `Open`'s drop.
        }
    }
}

/// An open transaction: rolled back when dropped before its commit (a
/// failed body, a failed commit, or a panic).
struct Open<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The store's thread: prepares the statements on `conn` (answering
/// `ready` whether that worked), then runs the calls as they come, and the
/// sweep every `interval` (the first at once, for rows that expired while
/// the service was down), even under load.
pub(super) fn run(
    conn: Connection,
    sweep_batch: u32,
    interval: Duration,
    jobs: Receiver<Job>,
    ready: std::sync::mpsc::Sender<rusqlite::Result<()>>,
) {
    let mut db = match Db::new(&conn, sweep_batch, interval) {
        Ok(db) => {
            let _ = ready.send(Ok(()));
            db
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    serve(&mut db, &jobs, interval);
}

fn serve(db: &mut Db<'_>, jobs: &Receiver<Job>, interval: Duration) {
    let mut next_sweep = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_sweep {
            if !sweep(db, jobs) {
                return;
            }
            next_sweep = Instant::now() + interval;
            continue;
        }
        match jobs.recv_timeout(next_sweep - now) {
            Ok(job) => db.run(job),
            Err(RecvTimeoutError::Timeout) => {}
            // Every handle on the store is gone: close the file.
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One sweep run: batches until none is full, with the calls that queued
/// meanwhile run between two batches; then the file is shrunk if much of it
/// is free. `false` when every handle on the store is gone.
fn sweep(db: &mut Db<'_>, jobs: &Receiver<Job>) -> bool {
    loop {
        match db.sweep_batch() {
            Ok((_, true)) => {}
            Ok((_, false)) => break,
            Err((_, error)) => {
                tracing::warn!(%error, "sweeping expired sessions failed; trying again later");
                return true;
            }
        }
        for _ in 0..JOBS_BETWEEN_BATCHES {
            match jobs.try_recv() {
                Ok(job) => db.run(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }
    if let Err(error) = db.shrink() {
        tracing::warn!(%error, "giving free pages back to the file system failed");
    }
    true
}
