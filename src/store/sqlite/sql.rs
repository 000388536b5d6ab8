//! The SQL of every operation, named, on the layout of the module docs;
//! `every_statement_is_an_index_search_never_a_scan` checks their plans.

/// What a call reads of a session before it decides.
pub(super) const HEAD: &str = "SELECT state, created_ms, expires_ms, sweep_ms, token, ip_count, \
    ip_dropped FROM vs_sessions WHERE id = ?1";

/// The same, with the session's data.
pub(super) const HEAD_AND_DATA: &str = "SELECT state, created_ms, expires_ms, sweep_ms, token, \
    ip_count, ip_dropped, data FROM vs_sessions WHERE id = ?1";

/// A session's IP log, removed with it.
pub(super) const REMOVE_IP_LOG: &str = "DELETE FROM vs_ip_log WHERE id = ?1";

/// A session's own row.
pub(super) const REMOVE_SESSION: &str = "DELETE FROM vs_sessions WHERE id = ?1";

/// An access: its time and IP, and the expiry it slides.
pub(super) const RECORD_ACCESS: &str = "UPDATE vs_sessions SET seen_ms = ?2, ip = ?3, expires_ms = \
    ?4 WHERE id = ?1";

/// An access that also moves the session's sweep time.
pub(super) const RECORD_ACCESS_RESWEPT: &str = "UPDATE vs_sessions SET seen_ms = ?2, ip = ?3, \
    expires_ms = ?4, sweep_ms = ?5 WHERE id = ?1";

/// An address new to the IP log (nothing if it is there).
pub(super) const IP_LOG_ADD: &str = "INSERT INTO vs_ip_log (id, ip, first_ms, last_ms) VALUES (?1, \
    ?2, ?3, ?3) ON CONFLICT (id, ip) DO NOTHING";

/// The least recently seen addresses giving way past the cap.
pub(super) const IP_LOG_DROP_LEAST_RECENT: &str = "DELETE FROM vs_ip_log WHERE id = ?1 AND ip IN \
    (SELECT ip FROM vs_ip_log WHERE id = ?1 ORDER BY last_ms, ip LIMIT ?2)";

/// An address seen again; a late access never moves its time back.
pub(super) const IP_LOG_SEEN_AGAIN: &str = "UPDATE vs_ip_log SET last_ms = ?3 WHERE id = ?1 AND ip \
    = ?2 AND last_ms < ?3";

/// IP-log entries past their retention, a bounded number.
pub(super) const IP_LOG_EXPIRE: &str = "DELETE FROM vs_ip_log WHERE id = ?1 AND ip IN (SELECT ip \
    FROM vs_ip_log WHERE id = ?1 AND last_ms < ?2 ORDER BY last_ms LIMIT ?3)";

/// The IP log's size and the count of addresses that gave way.
pub(super) const IP_LOG_COUNTS: &str = "UPDATE vs_sessions SET ip_count = ?2, ip_dropped = ?3 \
    WHERE id = ?1";

/// A network's statistics counted afresh: new, or past their retention.
pub(super) const COUNT_NETWORK: &str = "INSERT INTO vs_networks (network, sessions_created, \
    conversations_started, first_ms, last_ms, expires_ms, sweep_ms) VALUES (?1, ?2, ?3, ?4, \
    ?4, ?5, ?6) ON CONFLICT (network) DO UPDATE SET sessions_created = \
    excluded.sessions_created, conversations_started = excluded.conversations_started, \
    first_ms = excluded.first_ms, last_ms = excluded.last_ms, expires_ms = \
    excluded.expires_ms, sweep_ms = excluded.sweep_ms";

/// A network's statistics' expiry and sweep time, before counting.
pub(super) const NETWORK_HEAD: &str = "SELECT expires_ms, sweep_ms FROM vs_networks WHERE network \
    = ?1";

/// Events added to a network's statistics, counted within their retention and the same sweep step (?6: its sweep time, ?7: now); nothing otherwise.
pub(super) const NETWORK_ADD: &str = "UPDATE vs_networks SET sessions_created = sessions_created + \
    ?2, conversations_started = conversations_started + ?3, last_ms = ?4, expires_ms = ?5 \
    WHERE network = ?1 AND sweep_ms = ?6 AND expires_ms > ?7";

/// Events added to a network's statistics, moving its sweep time.
pub(super) const NETWORK_ADD_RESWEPT: &str = "UPDATE vs_networks SET sessions_created = \
    sessions_created + ?2, conversations_started = conversations_started + ?3, last_ms = ?4, \
    expires_ms = ?5, sweep_ms = ?6 WHERE network = ?1";

/// A network's new-session window.
pub(super) const CREATIONS: &str = "SELECT admitted, window_end_ms FROM vs_creations WHERE network \
    = ?1";

/// A network's new-session window opened with its first creation.
pub(super) const ADMIT: &str = "INSERT INTO vs_creations (network, admitted, window_end_ms) VALUES \
    (?1, 1, ?2) ON CONFLICT (network) DO UPDATE SET admitted = 1, window_end_ms = \
    excluded.window_end_ms";

/// One more creation admitted in a network's open window.
pub(super) const ADMIT_MORE: &str = "UPDATE vs_creations SET admitted = admitted + 1 WHERE network \
    = ?1";

/// A new session, unless the id is taken.
pub(super) const CREATE: &str = "INSERT INTO vs_sessions (id, state, created_ms, seen_ms, ip, \
    expires_ms, sweep_ms, token, data, ip_count, ip_dropped) VALUES (?1, ?2, ?3, ?3, ?4, ?5, \
    ?6, ?7, ?8, 0, 0) ON CONFLICT (id) DO NOTHING";

/// A session made permanent, with its new data.
pub(super) const PROMOTE: &str = "UPDATE vs_sessions SET data = ?2, state = ?3, expires_ms = ?4, \
    sweep_ms = ?5 WHERE id = ?1";

/// A session's new data.
pub(super) const WRITE_DATA: &str = "UPDATE vs_sessions SET data = ?2 WHERE id = ?1";

/// A session renamed, bound to the access's token if it had none.
pub(super) const CYCLE_SESSION: &str = "UPDATE vs_sessions SET id = ?2, token = coalesce(token, \
    ?3) WHERE id = ?1";

/// A renamed session's IP log.
pub(super) const CYCLE_IP_LOG: &str = "UPDATE vs_ip_log SET id = ?2 WHERE id = ?1";

/// A session's IP log, exported.
pub(super) const IP_LOG: &str = "SELECT ip, first_ms, last_ms FROM vs_ip_log WHERE id = ?1";

/// A network's statistics, unless past their retention.
pub(super) const NETWORK_STATS: &str = "SELECT sessions_created, conversations_started, first_ms, \
    last_ms FROM vs_networks WHERE network = ?1 AND expires_ms > ?2";

/// A token's live binding.
pub(super) const BINDING: &str = "SELECT id, state, sweep_ms FROM vs_tokens WHERE token = ?1 AND \
    (expires_ms IS NULL OR expires_ms > ?2)";

/// A token's binding, kept alive by a visit with the token.
pub(super) const BINDING_KEEP: &str = "UPDATE vs_tokens SET expires_ms = ?2 WHERE token = ?1";

/// A token's binding kept alive, moving its sweep time.
pub(super) const BINDING_KEEP_RESWEPT: &str = "UPDATE vs_tokens SET expires_ms = ?2, sweep_ms = ?3 \
    WHERE token = ?1";

/// A token bound.
pub(super) const BIND: &str = "INSERT INTO vs_tokens (token, id, state, expires_ms, sweep_ms) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (token) DO UPDATE SET id = excluded.id, state = \
    excluded.state, expires_ms = excluded.expires_ms, sweep_ms = excluded.sweep_ms";

/// A token's binding to one session dropped.
pub(super) const UNBIND: &str = "DELETE FROM vs_tokens WHERE token = ?1 AND id = ?2";

/// Expired sessions, in sweep-time order, a batch: the rows of the buckets that have passed, and the expired ones of the current bucket (?3: the step).
pub(super) const SWEEP_SESSIONS: &str = "SELECT id FROM vs_sessions WHERE sweep_ms <= ?1 + ?3 AND \
    expires_ms <= ?1 ORDER BY sweep_ms LIMIT ?2";

/// Expired token bindings, a batch.
pub(super) const SWEEP_TOKENS: &str = "DELETE FROM vs_tokens WHERE token IN (SELECT token FROM \
    vs_tokens WHERE sweep_ms <= ?1 + ?3 AND expires_ms <= ?1 ORDER BY sweep_ms LIMIT ?2)";

/// Network statistics past their retention, a batch.
pub(super) const SWEEP_NETWORKS: &str = "DELETE FROM vs_networks WHERE network IN (SELECT network \
    FROM vs_networks WHERE sweep_ms <= ?1 + ?3 AND expires_ms <= ?1 ORDER BY sweep_ms LIMIT \
    ?2)";

/// Ended new-session windows, a batch.
pub(super) const SWEEP_CREATIONS: &str = "DELETE FROM vs_creations WHERE network IN (SELECT \
    network FROM vs_creations WHERE window_end_ms <= ?1 ORDER BY window_end_ms LIMIT ?2)";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    const ALL: &[(&str, &str)] = &[
        ("HEAD", HEAD),
        ("HEAD_AND_DATA", HEAD_AND_DATA),
        ("REMOVE_IP_LOG", REMOVE_IP_LOG),
        ("REMOVE_SESSION", REMOVE_SESSION),
        ("RECORD_ACCESS", RECORD_ACCESS),
        ("RECORD_ACCESS_RESWEPT", RECORD_ACCESS_RESWEPT),
        ("IP_LOG_ADD", IP_LOG_ADD),
        ("IP_LOG_DROP_LEAST_RECENT", IP_LOG_DROP_LEAST_RECENT),
        ("IP_LOG_SEEN_AGAIN", IP_LOG_SEEN_AGAIN),
        ("IP_LOG_EXPIRE", IP_LOG_EXPIRE),
        ("IP_LOG_COUNTS", IP_LOG_COUNTS),
        ("COUNT_NETWORK", COUNT_NETWORK),
        ("NETWORK_HEAD", NETWORK_HEAD),
        ("NETWORK_ADD", NETWORK_ADD),
        ("NETWORK_ADD_RESWEPT", NETWORK_ADD_RESWEPT),
        ("CREATIONS", CREATIONS),
        ("ADMIT", ADMIT),
        ("ADMIT_MORE", ADMIT_MORE),
        ("CREATE", CREATE),
        ("PROMOTE", PROMOTE),
        ("WRITE_DATA", WRITE_DATA),
        ("CYCLE_SESSION", CYCLE_SESSION),
        ("CYCLE_IP_LOG", CYCLE_IP_LOG),
        ("IP_LOG", IP_LOG),
        ("NETWORK_STATS", NETWORK_STATS),
        ("BINDING", BINDING),
        ("BINDING_KEEP", BINDING_KEEP),
        ("BINDING_KEEP_RESWEPT", BINDING_KEEP_RESWEPT),
        ("BIND", BIND),
        ("UNBIND", UNBIND),
        ("SWEEP_SESSIONS", SWEEP_SESSIONS),
        ("SWEEP_TOKENS", SWEEP_TOKENS),
        ("SWEEP_NETWORKS", SWEEP_NETWORKS),
        ("SWEEP_CREATIONS", SWEEP_CREATIONS),
    ];

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
