//! `SqliteStore` on a temporary file (SPEC §4): the store conformance suite
//! in real time with a short idle TTL, then what a file adds: expiry of rows
//! the sweep has not reached yet, rows that expired while the store was
//! closed, everything durable across a reopen, the sweep, and files that are
//! not what the store expects.
#![cfg(feature = "sqlite")]

mod support;

visitor_session::store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    support::sqlite::Sqlite
);

use std::net::IpAddr;
use std::time::{Duration, Instant};

use support::sqlite::{Probe, file_size, key_of, store_in};
use support::temp::TempDir;
use visitor_session::store::{
    Access, Changes, Committed, Created, Durability, SessionStore, SqliteConfig, SqliteStore,
    StorePolicy, TokenHash,
};
use visitor_session::{SessionId, SessionState, StoreErrorKind};

const IP: &str = "198.51.100.20";

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn with_idle(idle: Duration) -> StorePolicy {
    StorePolicy::default().idle_ttl(idle)
}

/// Waits until `done` holds, checking every 20 ms; false after `within`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SPEC §4: a session that expired while the service was down is not
/// served when it comes back, and the sweep that runs at once on opening
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_expired_while_the_store_was_closed_is_never_served_and_is_swept_at_open() {
    let dir = TempDir::new("closed");
    let short = with_idle(Duration::from_millis(300));
    let id = SessionId::generate();
    {
        let (store, _) = store_in(&dir, |c| c);
        let access = Access::now(ip(IP), &short);
        let data = Changes::default().set("note", "\"kept?\"");
        assert_eq!(
            store.create(&id, &access, &data, None).await.unwrap(),
            Created::Created
        );
    }
    // The service is down past the idle TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (store, probe) = store_in(&dir, |c| c.sweep_interval(Duration::from_secs(3600)));
    let access = Access::now(ip(IP), &short);
    assert_eq!(store.touch(&id, &access).await.unwrap(), None);
    let write = Changes::default().set("late", "1");
    assert_eq!(
        store.commit(&id, &access, &write).await.unwrap(),
        Committed::Missing,
        "no resurrection"
    );
    assert!(
        eventually(Duration::from_secs(5), || !probe.holds(&id)).await,
        "the sweep at opening removed it, data included"
    );
}

/// SPEC §4: what a restart must not lose (permanent sessions with their
/// data, IP logs, token bindings, network statistics) is there after the
/// store is closed and opened again, in a file kept in WAL mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_sessions_ip_logs_tokens_and_statistics_survive_a_reopen() {
    let dir = TempDir::new("reopen");
    let policy = StorePolicy::default();
    let id = SessionId::generate();
    let token = TokenHash::from_bytes([42; 32]);
    {
        let (store, _) = store_in(&dir, |c| c.durability(Durability::PowerLoss));
        let first = Access::now(ip(IP), &policy).token(Some(&token));
        let conversation = Changes::default().set("topic", "\"billing\"").promoted();
        assert_eq!(
            store
                .create(&id, &first, &conversation, None)
                .await
                .unwrap(),
            Created::Created
        );
        let bound = store
            .bind_token(&token, None, &id, SessionState::Permanent, &policy)
            .await
            .unwrap();
        assert_eq!(bound, id);
        let later = Access::new(ip("2001:db8::5"), first.at_ms + 10, &policy).token(Some(&token));
        assert!(store.touch(&id, &later).await.unwrap().is_some());
    }
    let (store, probe) = store_in(&dir, |c| c);
    assert_eq!(probe.text("PRAGMA journal_mode"), "wal");
    let access = Access::now(ip(IP), &policy).token(Some(&token));
    let record = store.touch(&id, &access).await.unwrap().expect("kept");
    assert_eq!(record.state, SessionState::Permanent);
    assert_eq!(
        record.data.get("topic").map(String::as_str),
        Some("\"billing\"")
    );
    let log = store.ip_log(&id).await.unwrap().expect("kept");
    let ips: Vec<String> = log.entries.iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(ips, [IP, "2001:db8::5"]);
    let binding = store.token_session(&token, &policy).await.unwrap();
    assert_eq!(
        binding.map(|b| (b.id, b.state)),
        Some((id, SessionState::Permanent))
    );
    let stats = store.network_stats(IP.parse().unwrap()).await.unwrap();
    assert_eq!(
        stats.map(|s| (s.sessions_created, s.conversations_started)),
        Some((1, 1))
    );
}

/// The background sweep goes through every expired row, a bounded batch
/// per transaction (7 here: 60 sessions take 9 batches), sessions with
/// their data and token bindings, and leaves the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweep_removes_expired_rows_in_batches_and_keeps_the_live_ones() {
    let dir = TempDir::new("sweep");
    let (store, probe) = store_in(&dir, |c| {
        c.sweep_interval(Duration::from_millis(100)).sweep_batch(7)
    });
    let short = with_idle(Duration::from_millis(200));
    let data = Changes::default().set("k", "1");
    for i in 0..60u8 {
        let id = SessionId::generate();
        let token = TokenHash::from_bytes([i; 32]);
        let access = Access::now(ip(IP), &short).token(Some(&token));
        store.create(&id, &access, &data, None).await.unwrap();
        store
            .bind_token(&token, None, &id, SessionState::Temporary, &short)
            .await
            .unwrap();
    }
    let mut permanent = Vec::new();
    for _ in 0..3 {
        let id = SessionId::generate();
        let access = Access::now(ip(IP), &short);
        store
            .create(&id, &access, &data.clone().promoted(), None)
            .await
            .unwrap();
        permanent.push(id);
    }
    assert_eq!(probe.rows("vs_sessions"), 63);
    let swept = eventually(Duration::from_secs(10), || {
        probe.rows("vs_sessions") == 3 && probe.rows("vs_tokens") == 0
    })
    .await;
    assert!(swept, "{} sessions left", probe.rows("vs_sessions"));
    for id in &permanent {
        let access = Access::now(ip(IP), &short);
        let record = store.touch(id, &access).await.unwrap().expect("kept");
        assert_eq!(record.data.get("k").map(String::as_str), Some("1"));
    }
}

/// SPEC §4: the file does not grow with visitors who never came back. Six
/// waves of 1 000 temporary visitors (a first visit writing a key, a
/// return visit), each wave swept before the next: the file and its
/// write-ahead log are about the same size after every wave (freed pages
/// are reused, the log is reused after each checkpoint). Run with
/// `--nocapture` for the sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_temporary_visitors_settles_the_file_size() {
    let dir = TempDir::new("soak");
    let (store, probe) = store_in(&dir, |c| c.sweep_interval(Duration::from_millis(50)));
    let short = with_idle(Duration::from_millis(300));
    let mut sizes = Vec::<u64>::new();
    for wave in 0..6 {
        let started = Instant::now();
        for i in 0..1_000u32 {
            let id = SessionId::generate();
            // Sixteen client networks.
            let from = IpAddr::from([203, 0, 113, (i % 16) as u8]);
            let access = Access::now(Some(from), &short);
            let data = Changes::default().set("page", format!("\"/products/{i}\""));
            let created = store.create(&id, &access, &data, None).await.unwrap();
            assert_eq!(created, Created::Created);
            // The return visit; on a loaded machine it may come after the
            // idle TTL, and finds nothing: the soak is about the file.
            let again = Access::now(Some(from), &short);
            store.touch(&id, &again).await.unwrap();
        }
        let took = started.elapsed();
        let swept = eventually(Duration::from_secs(10), || probe.rows("vs_sessions") == 0).await;
        assert!(swept, "wave {wave} was not swept");
        let (file, log) = (
            file_size(&dir, "sessions.db"),
            file_size(&dir, "sessions.db-wal"),
        );
        println!(
            "wave {wave}: 1 000 visitors in {took:?}, swept; file {file} bytes, \
             write-ahead log {log} bytes"
        );
        sizes.push(file + log);
    }
    let first = sizes[0];
    for (wave, size) in sizes.iter().enumerate() {
        assert!(
            *size <= first + first / 4,
            "after wave {wave}: {size} bytes, after the first {first}"
        );
    }
    assert_eq!(
        probe.rows("vs_networks"),
        16,
        "only the networks' counts stay"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_the_path() {
    let dir = TempDir::new("not-a-db");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "a shopping list, not a database\n".repeat(200)).unwrap();
    let error = SqliteStore::open(SqliteConfig::new(&path)).unwrap_err();
    assert_eq!(error.setting(), "path");
    assert!(error.to_string().contains("notes.txt"), "{error}");
    let missing = dir.path().join("no/such/dir/sessions.db");
    let error = SqliteStore::open(SqliteConfig::new(&missing)).unwrap_err();
    assert_eq!(error.setting(), "path");
}

#[test]
fn a_file_of_a_later_layout_is_refused_naming_the_path() {
    let dir = TempDir::new("later");
    let path = dir.path().join("sessions.db");
    drop(SqliteStore::open(SqliteConfig::new(&path)).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE vs_meta SET value = 99 WHERE name = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let error = SqliteStore::open(SqliteConfig::new(&path)).unwrap_err();
    assert_eq!(error.setting(), "path");
    assert!(error.to_string().contains("version 99"), "{error}");
}

/// A row someone else damaged (a hand edit, a bad restore) fails the calls
/// that read it as an unexpected answer (`Protocol`), never a panic, and
/// every other session is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_fails_its_call_as_a_protocol_error_and_the_store_goes_on() {
    let dir = TempDir::new("damaged");
    let (store, _) = store_in(&dir, |c| c);
    let policy = StorePolicy::default();
    let access = Access::now(ip(IP), &policy);
    let (damaged, bad_log, bad_value, healthy) = (
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
    );
    for id in [&damaged, &bad_log, &bad_value, &healthy] {
        let data = Changes::default().set("k", "1").promoted();
        store.create(id, &access, &data, None).await.unwrap();
    }
    let side = rusqlite::Connection::open(dir.path().join("sessions.db")).unwrap();
    side.execute(
        "UPDATE vs_sessions SET state = 7 WHERE id = ?1",
        [key_of(&damaged)],
    )
    .unwrap();
    side.execute(
        "UPDATE vs_ip_log SET ip = x'0102' WHERE id = ?1",
        [key_of(&bad_log)],
    )
    .unwrap();
    side.execute(
        "UPDATE vs_sessions SET data = x'ff00ff' WHERE id = ?1",
        [key_of(&bad_value)],
    )
    .unwrap();
    drop(side);
    let failed = store.touch(&damaged, &access).await.unwrap_err();
    assert_eq!(failed.kind(), StoreErrorKind::Protocol);
    let failed = store.ip_log(&bad_log).await.unwrap_err();
    assert_eq!(failed.kind(), StoreErrorKind::Protocol);
    let failed = store.touch(&bad_value, &access).await.unwrap_err();
    assert_eq!(failed.kind(), StoreErrorKind::Protocol);
    let record = store.touch(&healthy, &access).await.unwrap();
    assert_eq!(record.map(|r| r.state), Some(SessionState::Permanent));
}

/// Another process holding the file's write lock past the busy timeout
/// fails the calls waiting for it as unavailable (nothing applied), never
/// as a success; they succeed again once it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_fails_calls_as_unavailable_until_released() {
    let dir = TempDir::new("locked");
    let (store, _) = store_in(&dir, |c| c.busy_timeout(Duration::from_millis(100)));
    let policy = StorePolicy::default();
    let id = SessionId::generate();
    let access = Access::now(ip(IP), &policy);
    store
        .create(&id, &access, &Changes::default(), None)
        .await
        .unwrap();
    let other = rusqlite::Connection::open(dir.path().join("sessions.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = Changes::default().set("k", "1");
    let refused = store.commit(&id, &access, &write).await.unwrap_err();
    assert_eq!(refused.kind(), StoreErrorKind::Unavailable);
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(
        store.commit(&id, &access, &write).await.unwrap(),
        Committed::Applied
    );
    let _ = Probe::open(&dir.path().join("sessions.db"));
}
