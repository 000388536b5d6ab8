//! `SqliteStore` on a temporary file (SPEC §4): the store conformance suite
//! in real time with a short idle TTL, then what a file adds: expiry of rows
//! the sweep has not reached yet, rows that expired while the store was
//! closed, everything durable across a reopen, the sweep, and files that are
//! not what the store expects.
#![cfg(feature = "sqlite")]

mod support;

store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    support::sqlite::Sqlite
);
