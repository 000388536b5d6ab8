//! Opening the file: the connection's settings and the tables (the layout
//! of the module docs), created on first use and checked afterwards.

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::config::{Durability, SqliteConfig};
use crate::error::ConfigError;

/// The version of the layout below, kept in `vs_meta`. A file written by a
/// later version of this crate is refused rather than misread.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The tables, all named `vs_*` so that an application may keep its own
/// tables in the same file. `WITHOUT ROWID`: every table is looked up by its
/// key, which then holds the row itself (one B-tree search, not two).
pub(super) const TABLES: &str = "
CREATE TABLE vs_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE vs_sessions (
    id BLOB PRIMARY KEY,
    state INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL,
    ip BLOB,
    expires_ms INTEGER,
    sweep_ms INTEGER,
    token BLOB,
    data BLOB,
    ip_count INTEGER NOT NULL,
    ip_dropped INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX vs_sessions_by_sweep ON vs_sessions (sweep_ms) WHERE sweep_ms IS NOT NULL;
CREATE TABLE vs_ip_log (
    id BLOB NOT NULL,
    ip BLOB NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (id, ip)
) WITHOUT ROWID;
CREATE INDEX vs_ip_log_by_last_seen ON vs_ip_log (id, last_ms);
CREATE TABLE vs_tokens (
    token BLOB PRIMARY KEY,
    id BLOB NOT NULL,
    state INTEGER NOT NULL,
    expires_ms INTEGER,
    sweep_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX vs_tokens_by_sweep ON vs_tokens (sweep_ms) WHERE sweep_ms IS NOT NULL;
CREATE TABLE vs_networks (
    network BLOB PRIMARY KEY,
    sessions_created INTEGER NOT NULL,
    conversations_started INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    sweep_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX vs_networks_by_sweep ON vs_networks (sweep_ms);
CREATE TABLE vs_creations (
    network BLOB PRIMARY KEY,
    admitted INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX vs_creations_by_window_end ON vs_creations (window_end_ms);
";

/// Statements one connection keeps prepared: every statement of the
/// store's operations, with room to spare.
const STATEMENT_CACHE: usize = 64;
/// The write-ahead log is cut back to this size after a checkpoint (it
/// would otherwise keep the size of its largest burst).
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Opens the file of `config` with the store's settings, creating the
/// tables in a new file.
pub(super) fn open(config: &SqliteConfig) -> Result<Connection, ConfigError> {
    let path = config.path.display();
    let refused = |what: &str, e: rusqlite::Error| {
        ConfigError::new(
            "path",
            format!("cannot use {path} as the session database: {what} ({e})"),
        )
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(&config.path, flags).map_err(|e| refused("opening it", e))?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(|e| refused("setting the busy timeout", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let _: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| refused("reading it (is it a SQLite database?)", e))?;
    // Effective only before the first table is created: freed pages can be
    // given back to the file system, so the file shrinks after a flood of
    // visitors has been swept.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(|e| refused("setting auto-vacuum", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| refused("switching it to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ConfigError::new(
            "path",
            format!(
                "cannot use {path} as the session database: its file system does not \
                 support SQLite's write-ahead log (journal mode stayed {mode:?}); use a local disk"
            ),
        ));
    }
    let synchronous = match config.durability {
        Durability::ProcessCrash => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| refused("setting its durability", e))?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(|e| refused("limiting its write-ahead log", e))?;
    // Deleted rows (an expired visitor's IP among them) are overwritten in
    // the file, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(|e| refused("turning on secure delete", e))?;
    create_or_check(&conn).map_err(|e| match e {
        Layout::Sql(e) => refused("creating its tables", e),
        Layout::Newer(found) => ConfigError::new(
            "path",
            format!(
                "{path} holds sessions in layout version {found}, newer than this version of \
                 visitor-session knows ({SCHEMA_VERSION}); upgrade visitor-session"
            ),
        ),
    })?;
    Ok(conn)
}

enum Layout {
    Sql(rusqlite::Error),
    Newer(i64),
}

impl From<rusqlite::Error> for Layout {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

/// Creates the tables in a file that has none; checks the version of a
/// file that has them.
fn create_or_check(conn: &Connection) -> Result<(), Layout> {
    // Immediate: two processes opening a new file at once create it once.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'vs_meta')",
            [],
            |row| row.get(0),
        )?;
        if !exists {
            conn.execute_batch(TABLES)?;
            conn.execute(
                "INSERT INTO vs_meta (name, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION],
            )?;
            return Ok(());
        }
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM vs_meta WHERE name = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match version {
            Some(v) if v > SCHEMA_VERSION => Err(Layout::Newer(v)),
            _ => Ok(()),
        }
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Layout::Sql),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
