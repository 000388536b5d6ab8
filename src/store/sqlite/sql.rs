//! The SQL of every operation, named, on the layout of the module docs,
//! each prepared once per connection (`Statements`): no statement is
//! compiled, looked up or hashed per call.
//! `every_statement_is_an_index_search_never_a_scan` checks their plans.

use rusqlite::{Connection, Statement};

/// Declares each statement's SQL as a constant and `Statements`, the
/// connection's prepared statements, with one field per statement.
macro_rules! statements {
    ($($(#[doc = $doc:literal])+ $field:ident: $name:ident = $sql:expr;)+) => {
        $($(#[doc = $doc])+ pub(super) const $name: &str = $sql;)+

        /// Every statement of the store, prepared on one connection.
        pub(super) struct Statements<'c> {
            $($(#[doc = $doc])+ pub(super) $field: Statement<'c>,)+
        }

        impl<'c> Statements<'c> {
            /// Prepares every statement on `conn`.
            pub(super) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
                Ok(Self { $($field: conn.prepare($name)?,)+ })
            }
        }

        /// Every statement, named, for the test of their plans.
        #[cfg(test)]
        const ALL: &[(&str, &str)] = &[$((stringify!($name), $name),)+];
    };
}

statements! {
    /// Starts a transaction that writes: the write lock at once, so that it never fails half-way on a lock.
    begin_write: BEGIN_WRITE = "BEGIN IMMEDIATE";
    /// Starts a transaction that only reads.
    begin_read: BEGIN_READ = "BEGIN";
    /// Ends a transaction, keeping what it wrote.
    commit: COMMIT = "COMMIT";
    /// What a call reads of a session before it decides.
    head: HEAD = "SELECT state, created_ms, expires_ms, sweep_ms, token, ip_count, \
        ip_dropped FROM vs_sessions WHERE id = ?1";
    /// The same, with the session's data.
    head_and_data: HEAD_AND_DATA = "SELECT state, created_ms, expires_ms, sweep_ms, token, \
        ip_count, ip_dropped, data FROM vs_sessions WHERE id = ?1";
    /// A session's IP log, removed with it.
    remove_ip_log: REMOVE_IP_LOG = "DELETE FROM vs_ip_log WHERE id = ?1";
    /// A session's own row.
    remove_session: REMOVE_SESSION = "DELETE FROM vs_sessions WHERE id = ?1";
    /// An access: its time and IP, and the expiry it slides.
    record_access: RECORD_ACCESS = "UPDATE vs_sessions SET seen_ms = ?2, ip = ?3, expires_ms = \
        ?4 WHERE id = ?1";
    /// An access that also moves the session's sweep time.
    record_access_reswept: RECORD_ACCESS_RESWEPT = "UPDATE vs_sessions SET seen_ms = ?2, ip = ?3, \
        expires_ms = ?4, sweep_ms = ?5 WHERE id = ?1";
    /// An address new to the IP log (nothing if it is there).
    ip_log_add: IP_LOG_ADD = "INSERT INTO vs_ip_log (id, ip, first_ms, last_ms) VALUES (?1, \
        ?2, ?3, ?3) ON CONFLICT (id, ip) DO NOTHING";
    /// The least recently seen addresses giving way past the cap.
    ip_log_drop_least_recent: IP_LOG_DROP_LEAST_RECENT = "DELETE FROM vs_ip_log WHERE id = ?1 AND ip IN \
        (SELECT ip FROM vs_ip_log WHERE id = ?1 ORDER BY last_ms, ip LIMIT ?2)";
    /// An address seen again; a late access never moves its time back.
    ip_log_seen_again: IP_LOG_SEEN_AGAIN = "UPDATE vs_ip_log SET last_ms = ?3 WHERE id = ?1 AND ip \
        = ?2 AND last_ms < ?3";
    /// IP-log entries past their retention, a bounded number.
    ip_log_expire: IP_LOG_EXPIRE = "DELETE FROM vs_ip_log WHERE id = ?1 AND ip IN (SELECT ip \
        FROM vs_ip_log WHERE id = ?1 AND last_ms < ?2 ORDER BY last_ms LIMIT ?3)";
    /// The IP log's size and the count of addresses that gave way.
    ip_log_counts: IP_LOG_COUNTS = "UPDATE vs_sessions SET ip_count = ?2, ip_dropped = ?3 \
        WHERE id = ?1";
    /// A network's statistics counted afresh: new, or past their retention.
    count_network: COUNT_NETWORK = "INSERT INTO vs_networks (network, sessions_created, \
        conversations_started, first_ms, last_ms, expires_ms, sweep_ms) VALUES (?1, ?2, ?3, ?4, \
        ?4, ?5, ?6) ON CONFLICT (network) DO UPDATE SET sessions_created = \
        excluded.sessions_created, conversations_started = excluded.conversations_started, \
        first_ms = excluded.first_ms, last_ms = excluded.last_ms, expires_ms = \
        excluded.expires_ms, sweep_ms = excluded.sweep_ms";
    /// A network's statistics' expiry and sweep time, before counting.
    network_head: NETWORK_HEAD = "SELECT expires_ms, sweep_ms FROM vs_networks WHERE network \
        = ?1";
    /// Events added to a network's statistics, counted within their retention and the same sweep step (?6: its sweep time, ?7: now); nothing otherwise.
    network_add: NETWORK_ADD = "UPDATE vs_networks SET sessions_created = sessions_created + \
        ?2, conversations_started = conversations_started + ?3, last_ms = ?4, expires_ms = ?5 \
        WHERE network = ?1 AND sweep_ms = ?6 AND expires_ms > ?7";
    /// Events added to a network's statistics, moving its sweep time.
    network_add_reswept: NETWORK_ADD_RESWEPT = "UPDATE vs_networks SET sessions_created = \
        sessions_created + ?2, conversations_started = conversations_started + ?3, last_ms = ?4, \
        expires_ms = ?5, sweep_ms = ?6 WHERE network = ?1";
    /// A network's new-session window.
    creations: CREATIONS = "SELECT admitted, window_end_ms FROM vs_creations WHERE network \
        = ?1";
    /// A network's new-session window opened with its first creation.
    admit: ADMIT = "INSERT INTO vs_creations (network, admitted, window_end_ms) VALUES \
        (?1, 1, ?2) ON CONFLICT (network) DO UPDATE SET admitted = 1, window_end_ms = \
        excluded.window_end_ms";
    /// One more creation admitted in a network's open window.
    admit_more: ADMIT_MORE = "UPDATE vs_creations SET admitted = admitted + 1 WHERE network \
        = ?1";
    /// A new session, unless the id is taken.
    create: CREATE = "INSERT INTO vs_sessions (id, state, created_ms, seen_ms, ip, \
        expires_ms, sweep_ms, token, data, ip_count, ip_dropped) VALUES (?1, ?2, ?3, ?3, ?4, ?5, \
        ?6, ?7, ?8, 0, 0) ON CONFLICT (id) DO NOTHING";
    /// A session made permanent, with its new data.
    promote: PROMOTE = "UPDATE vs_sessions SET data = ?2, state = ?3, expires_ms = ?4, \
        sweep_ms = ?5 WHERE id = ?1";
    /// A session's new data.
    write_data: WRITE_DATA = "UPDATE vs_sessions SET data = ?2 WHERE id = ?1";
    /// A session renamed, bound to the access's token if it had none.
    cycle_session: CYCLE_SESSION = "UPDATE vs_sessions SET id = ?2, token = coalesce(token, \
        ?3) WHERE id = ?1";
    /// A renamed session's IP log.
    cycle_ip_log: CYCLE_IP_LOG = "UPDATE vs_ip_log SET id = ?2 WHERE id = ?1";
    /// A session's IP log, exported.
    ip_log: IP_LOG = "SELECT ip, first_ms, last_ms FROM vs_ip_log WHERE id = ?1";
    /// A network's statistics, unless past their retention.
    network_stats: NETWORK_STATS = "SELECT sessions_created, conversations_started, first_ms, \
        last_ms FROM vs_networks WHERE network = ?1 AND expires_ms > ?2";
    /// A token's live binding.
    binding: BINDING = "SELECT id, state, sweep_ms FROM vs_tokens WHERE token = ?1 AND \
        (expires_ms IS NULL OR expires_ms > ?2)";
    /// A token's binding, kept alive by a visit with the token.
    binding_keep: BINDING_KEEP = "UPDATE vs_tokens SET expires_ms = ?2 WHERE token = ?1";
    /// A token's binding kept alive, moving its sweep time.
    binding_keep_reswept: BINDING_KEEP_RESWEPT = "UPDATE vs_tokens SET expires_ms = ?2, sweep_ms = ?3 \
        WHERE token = ?1";
    /// A token bound.
    bind: BIND = "INSERT INTO vs_tokens (token, id, state, expires_ms, sweep_ms) \
        VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (token) DO UPDATE SET id = excluded.id, state = \
        excluded.state, expires_ms = excluded.expires_ms, sweep_ms = excluded.sweep_ms";
    /// A token's binding to one session dropped.
    unbind: UNBIND = "DELETE FROM vs_tokens WHERE token = ?1 AND id = ?2";
    /// Expired sessions, in sweep-time order, a batch: the rows of the buckets that have passed, and the expired ones of the current bucket (?3: the step).
    sweep_sessions: SWEEP_SESSIONS = "SELECT id FROM vs_sessions WHERE sweep_ms <= ?1 + ?3 AND \
        expires_ms <= ?1 ORDER BY sweep_ms LIMIT ?2";
    /// Expired token bindings, a batch.
    sweep_tokens: SWEEP_TOKENS = "DELETE FROM vs_tokens WHERE token IN (SELECT token FROM \
        vs_tokens WHERE sweep_ms <= ?1 + ?3 AND expires_ms <= ?1 ORDER BY sweep_ms LIMIT ?2)";
    /// Network statistics past their retention, a batch.
    sweep_networks: SWEEP_NETWORKS = "DELETE FROM vs_networks WHERE network IN (SELECT network \
        FROM vs_networks WHERE sweep_ms <= ?1 + ?3 AND expires_ms <= ?1 ORDER BY sweep_ms LIMIT \
        ?2)";
    /// Ended new-session windows, a batch.
    sweep_creations: SWEEP_CREATIONS = "DELETE FROM vs_creations WHERE network IN (SELECT \
        network FROM vs_creations WHERE window_end_ms <= ?1 ORDER BY window_end_ms LIMIT ?2)";
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// SPEC §3.3, §5: no call costs more than O(log n) in any table (an
    /// index search, then the rows of one session), the IP log's cap and
    /// the sweep's batches included.
    #[test]
    fn every_statement_is_an_index_search_never_a_scan() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::TABLES).unwrap();
        for (name, sql) in ALL {
            let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Unbound parameters are NULL: the plan does not depend on them.
            let mut rows = plan.raw_query();
            let mut steps = Vec::<String>::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get(3).unwrap());
            }
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN") && !step.contains("TEMP B-TREE"),
                    "{name}: {step} (plan: {steps:?})"
                );
            }
        }
    }
}
