//! The SQLite store in the tests: a store on a file of its own, and a
//! second, read-only connection that looks into the file as the store's
//! module docs lay it out (`vs_*` tables).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use visitor_session::SessionId;
use visitor_session::store::{SqliteConfig, SqliteStore};

use super::conformance::{Backend, Case};
use super::temp::TempDir;

/// A read-only connection to a store's file, beside the store's own.
pub(crate) struct Probe(Mutex<Connection>);

/// The 16 bytes a session id is keyed by in the file.
pub(crate) fn key_of(id: &SessionId) -> Vec<u8> {
    uuid::Uuid::parse_str(id.uuid_str())
        .expect("a session id holds a UUID")
        .as_bytes()
        .to_vec()
}

/// The 4 or 16 bytes an IP is kept as in the file.
pub(crate) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

impl Probe {
    pub(crate) fn open(path: &Path) -> Probe {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store's file for reading");
        Probe(Mutex::new(conn))
    }

    /// The first column of the first row of `sql` with `params`, as an integer.
    pub(crate) fn number(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        let conn = self.0.lock().unwrap();
        conn.query_row(sql, params, |row| row.get::<_, Option<i64>>(0))
            .optional()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .flatten()
            .unwrap_or(0)
    }

    /// The first column of the first row of `sql`, as text.
    pub(crate) fn text(&self, sql: &str) -> String {
        let conn = self.0.lock().unwrap();
        conn.query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of `table` in the file, expired or not.
    pub(crate) fn rows(&self, table: &str) -> i64 {
        self.number(&format!("SELECT count(*) FROM {table}"), [])
    }

    /// Whether any row of session `id` is in the file: its own (with its
    /// data), its IP log.
    pub(crate) fn holds(&self, id: &SessionId) -> bool {
        let key = key_of(id);
        ["vs_sessions", "vs_ip_log"].iter().any(|table| {
            self.number(
                &format!("SELECT count(*) FROM {table} WHERE id = ?1"),
                [&key],
            ) > 0
        })
    }

    /// Whether `ip` is anywhere in the file but in the network statistics:
    /// a session's latest IP, an IP log, a new-session window, or a data
    /// value that spells it.
    pub(crate) fn holds_ip(&self, ip: IpAddr) -> bool {
        let bytes = ip_bytes(ip);
        let text = ip.to_string();
        self.number("SELECT count(*) FROM vs_sessions WHERE ip = ?1", [&bytes]) > 0
            || self.number("SELECT count(*) FROM vs_ip_log WHERE ip = ?1", [&bytes]) > 0
            || self.number(
                "SELECT count(*) FROM vs_creations WHERE network = ?1",
                [&bytes],
            ) > 0
            || self.number(
                "SELECT count(*) FROM vs_sessions WHERE instr(data, ?1) > 0",
                [text.as_bytes()],
            ) > 0
    }
}

/// A store on `dir/sessions.db`, with `config` applied to its settings.
pub(crate) fn store_in(
    dir: &TempDir,
    config: impl FnOnce(SqliteConfig) -> SqliteConfig,
) -> (SqliteStore, Probe) {
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(config(SqliteConfig::new(&path))).expect("open the store");
    let probe = Probe::open(&path);
    (store, probe)
}

/// The size in bytes of the store's file `name` in `dir` (0 when absent).
pub(crate) fn file_size(dir: &TempDir, name: &str) -> u64 {
    std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len())
}

/// Runs a full sweep of `store` from synchronous test code inside the
/// (multi-threaded) test runtime.
pub(crate) fn sweep_now(store: &SqliteStore) {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(store.sweep())
            .expect("the sweep runs")
    });
}

/// The durable embedded store on a temporary file, in real time with a
/// short idle TTL (as the Redis backends). "Holds" looks into the file after
/// a sweep: what a sweep leaves of a session is what the store keeps of it
/// (an expired row is never served before, see the store's own tests).
#[derive(Clone, Copy)]
pub(crate) struct Sqlite;

impl Backend for Sqlite {
    fn case(&self) -> Case {
        let dir = Arc::new(TempDir::new("sqlite-case"));
        let (store, probe) = store_in(&dir, |c| c);
        let probe = Arc::new(probe);
        let swept = store.clone();
        Case {
            store: Arc::new(store),
            holds: Box::new({
                let (probe, swept, dir) = (probe.clone(), swept.clone(), dir.clone());
                move |id| {
                    let _ = &dir;
                    sweep_now(&swept);
                    probe.holds(id)
                }
            }),
            holds_ip: Box::new(move |ip| {
                let _ = &dir;
                sweep_now(&swept);
                probe.holds_ip(ip)
            }),
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(1500)
    }
}
