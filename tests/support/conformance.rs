//! The store conformance suite: every lifecycle, TTL, concurrency and limit
//! scenario of SPEC §3 and §4, written once and run on every store by
//! [`store_conformance!`](crate::store_conformance): `MemoryStore` on
//! tokio's paused clock; `SqliteStore` on a temporary file
//! (`support::sqlite`), `RedisStore` on a standalone server, Redis Cluster
//! and Sentinel, in real time with a short idle TTL.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use visitor_session::store::delete_session;

use http::StatusCode;
use serde_json::Value;
use visitor_session::store::{
    Access, Changes, Committed, Created, DataLimits, SessionStore, StorePolicy,
};
use visitor_session::{LimitAction, NewSessionLimit, SessionConfig, SessionId, SessionState};

// The continuity scenarios, named here for `store_conformance!`; unused in
// test binaries that do not instantiate it.
#[allow(unused_imports)]
pub(crate) use super::continuity::*;
use super::*;

/// One test's store, and a way to look into it.
pub(crate) struct Case {
    pub(crate) store: Arc<dyn SessionStore>,
    /// Whether the store still holds anything of session `id` (data, IP, IP log).
    pub(crate) holds: Box<dyn Fn(&SessionId) -> bool + Send + Sync>,
    /// Whether the store holds `ip` anywhere but in its network's statistics.
    pub(crate) holds_ip: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

/// A kind of store the suite runs on.
pub(crate) trait Backend: Send + Sync {
    /// A store of this kind, kept apart from every other test's.
    fn case(&self) -> Case;
    /// The idle TTL the scenarios give temporary sessions.
    fn idle(&self) -> Duration;
    /// Held for the whole test (Redis: shared-server traffic, see `support::redis_servers`).
    fn enter(
        &self,
    ) -> impl Future<Output = Option<tokio::sync::RwLockReadGuard<'static, ()>>> + Send {
        async { Some(super::redis_servers::traffic().await) }
    }
}

/// Generates one `#[tokio::test]` per scenario for `$backend`.
#[macro_export]
macro_rules! store_conformance {
    (#[$test:meta] $backend:expr) => {
        $crate::store_conformance!(@each #[$test] $backend;
            returning_visitor_keeps_its_session_and_data,
            temporary_session_and_its_ip_are_gone_after_the_idle_ttl,
            temporary_session_lives_until_the_idle_ttl_has_passed,
            each_access_slides_the_idle_ttl,
            promoted_session_outlives_the_idle_ttl,
            permanent_session_logs_every_ip_it_was_used_from,
            ip_log_drops_entries_past_their_retention,
            ip_log_keeps_at_most_its_cap_and_the_newest_addresses,
            cycle_id_keeps_the_session_under_a_new_id_and_kills_the_old_one,
            a_commit_racing_a_rotation_is_refused_and_resurrects_nothing,
            agent_deletion_removes_everything_and_the_cookie_gets_a_fresh_session,
            reset_deletes_a_temporary_session_and_keeps_a_permanent_one,
            concurrent_requests_writing_different_keys_all_keep_their_change,
            commit_racing_an_agent_deletion_does_not_resurrect_the_session,
            concurrent_writes_cannot_exceed_the_data_limits_together,
            data_limits_agree_on_every_store,
            session_over_a_lowered_limit_can_still_shed_data,
            create_run_twice_with_the_same_arguments_creates_once,
            commit_run_twice_with_the_same_changes_is_applied_once,
            touch_of_an_unknown_session_finds_nothing_and_creates_nothing,
            a_commit_of_a_thousand_keys_is_applied_whole,
            new_session_limit_answers_429_with_retry_after,
            network_stats_count_sessions_and_conversations_per_network,
            temporary_session_leaves_only_its_networks_counts_after_the_idle_ttl,
            network_stats_are_kept_for_their_retention_after_the_latest_event,
            a_new_token_adopts_the_browsers_session_under_a_new_id,
            a_token_bound_session_without_its_token_gets_a_fresh_one,
            the_weaker_rule_opens_a_bound_session_by_its_cookie_alone,
            a_rotated_token_session_keeps_its_token,
            a_tokens_session_wins_over_the_browsers_own,
            two_users_on_one_browser_never_share_a_session,
            a_token_of_a_deleted_session_gets_a_fresh_one,
            a_token_replayed_after_its_session_expired_gets_a_fresh_one,
            a_permanent_sessions_token_outlives_the_idle_ttl,
            one_user_on_two_browsers_at_once_ends_on_one_session,
            privacy_mode_creates_a_tokens_session_on_interaction,
            a_token_never_reaches_another_sites_session,
            keys_with_store_significant_characters_stay_in_their_session
        );
    };
    (@each #[$test:meta] $backend:expr; $($scenario:ident),*) => {
        $(
            #[$test]
            async fn $scenario() {
                let backend = $backend;
                let _guard = $crate::support::conformance::Backend::enter(&backend).await;
                $crate::support::conformance::$scenario(&backend).await;
            }
        )*
    };
}

fn setup<B: Backend>(b: &B, config: SessionConfig) -> (Case, TestService) {
    let case = b.case();
    let svc = service(case.store.clone(), config.idle_ttl(b.idle()), act);
    (case, svc)
}

/// A new session from the conformance handler; returns its id.
async fn new_session(svc: &TestService, path: &str) -> SessionId {
    let res = send(svc, at(path, None)).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    bound_id(&res).expect("a new session is bound")
}

/// The policy of store-level scenarios: a minute of idle TTL, the default limits.
static POLICY: std::sync::LazyLock<StorePolicy> =
    std::sync::LazyLock::new(|| StorePolicy::default().with_idle_ttl(Duration::from_secs(60)));

fn access_at(at_ms: u64, ip: Option<IpAddr>) -> Access<'static> {
    Access::new(ip, at_ms, &POLICY)
}

/// The live session `id`, touched by `access`.
async fn alive(
    store: &Arc<dyn SessionStore>,
    id: &SessionId,
    access: &Access<'_>,
) -> SessionRecord {
    store
        .touch(id, access)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is not alive"))
}

fn changes(sets: &[(&str, &str)], removes: &[&str], promote: bool) -> Changes {
    let mut data: std::collections::BTreeMap<String, Option<String>> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    data.extend(removes.iter().map(|k| (k.to_string(), None)));
    let mut changes = Changes::default();
    changes.data = data;
    changes.promote = promote;
    changes
}

pub(crate) async fn returning_visitor_keeps_its_session_and_data<B: Backend>(b: &B) {
    let (_case, svc) = setup(b, config());
    let id = new_session(&svc, "/write").await;
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(
        bound_id(&res),
        Some(id),
        "the cookie is renewed for the same session"
    );
    let seen = seen(&res);
    assert_eq!(seen["note"], "hello");
    assert_eq!(seen["state"], "temporary");
    assert_eq!(seen["ip"], PEER);
}

pub(crate) async fn temporary_session_and_its_ip_are_gone_after_the_idle_ttl<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/write").await;
    assert!((case.holds)(&id));
    tokio::time::sleep(b.idle() + Duration::from_millis(150)).await;
    assert!(
        !(case.holds)(&id),
        "nothing of the session, its IP included, is left"
    );
    let access = access_at(Access::now_ms(), None);
    assert_eq!(case.store.touch(&id, &access).await.unwrap(), None);
    let res = send(&svc, at("/", Some(&id))).await;
    let fresh = bound_id(&res).expect("a fresh session replaces the expired one");
    assert_ne!(fresh, id);
    assert_eq!(seen(&res)["note"], Value::Null);
}

pub(crate) async fn temporary_session_lives_until_the_idle_ttl_has_passed<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/").await;
    tokio::time::sleep(b.idle() - Duration::from_millis(250)).await;
    assert!(
        (case.holds)(&id),
        "still alive just before the idle TTL ends"
    );
}

pub(crate) async fn each_access_slides_the_idle_ttl<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/").await;
    for _ in 0..4 {
        tokio::time::sleep(b.idle() * 6 / 10).await;
        let res = send(&svc, at("/", Some(&id))).await;
        assert_eq!(bound_id(&res), Some(id));
    }
    assert!(
        (case.holds)(&id),
        "alive after 2.4 idle TTLs of regular visits"
    );
}

pub(crate) async fn promoted_session_outlives_the_idle_ttl<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/").await;
    send(&svc, at("/promote", Some(&id))).await;
    tokio::time::sleep(b.idle() * 2).await;
    assert!((case.holds)(&id));
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(seen(&res)["state"], "permanent");
}

pub(crate) async fn permanent_session_logs_every_ip_it_was_used_from<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/promote").await;
    let other: IpAddr = "2001:db8::7".parse().unwrap();
    send(
        &svc,
        from_ip(other).header(http::header::COOKIE, cookie_for(&id)),
    )
    .await;
    send(&svc, at("/", Some(&id))).await;
    let log = case
        .store
        .ip_log(&id)
        .await
        .unwrap()
        .expect("the session exists");
    let log = log.entries;
    let ips: Vec<String> = log.iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(ips, [PEER, "2001:db8::7"], "oldest first");
    assert!(
        log[0].last_seen_ms >= log[1].first_seen_ms,
        "the latest access from the first IP updated its last-seen time"
    );
}

pub(crate) async fn ip_log_drops_entries_past_their_retention<B: Backend>(b: &B) {
    let case = b.case();
    let id = SessionId::generate();
    let old: IpAddr = "192.0.2.1".parse().unwrap();
    let new: IpAddr = "192.0.2.2".parse().unwrap();
    let t0 = Access::now_ms();
    let policy = POLICY
        .clone()
        .with_ip_log_retention(Some(Duration::from_secs(10)));
    let access = Access::new(Some(old), t0, &policy);
    let promoted = changes(&[], &[], true);
    let created = case.store.create(&id, &access, &promoted, None).await;
    assert_eq!(created.unwrap(), Created::Created);
    // Eleven seconds later on the access clock, from another IP.
    let later = Access::new(Some(new), t0 + 11_000, &policy);
    alive(&case.store, &id, &later).await;
    let log = case.store.ip_log(&id).await.unwrap().expect("alive");
    let ips: Vec<IpAddr> = log.entries.iter().map(|e| e.ip).collect();
    assert_eq!(
        ips,
        [new],
        "the entry last seen 11 s ago is past a 10 s retention"
    );
}

/// SPEC §3.3: an IP log holds at most `ip_log_max_entries` addresses; the
/// least recently seen give way, counted, and the newest are kept.
pub(crate) async fn ip_log_keeps_at_most_its_cap_and_the_newest_addresses<B: Backend>(b: &B) {
    let case = b.case();
    let id = SessionId::generate();
    let cap = visitor_session::DEFAULT_IP_LOG_MAX_ENTRIES;
    let policy = POLICY.clone();
    let t0 = Access::now_ms();
    let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0xC633_6400 + i));
    let promoted = changes(&[], &[], true);
    let first = Access::new(Some(ip(0)), t0, &policy);
    let created = case.store.create(&id, &first, &promoted, None).await;
    assert_eq!(created.unwrap(), Created::Created);
    let addresses = 5_000;
    for i in 1..addresses {
        alive(
            &case.store,
            &id,
            &Access::new(Some(ip(i)), t0 + u64::from(i), &policy),
        )
        .await;
    }
    // The oldest address seen again: it is recent now, and stays.
    let again = Access::new(Some(ip(0)), t0 + u64::from(addresses), &policy);
    alive(&case.store, &id, &again).await;
    let log = case.store.ip_log(&id).await.unwrap().expect("alive");
    assert_eq!(log.entries.len(), cap as usize, "at most the cap is kept");
    let kept: std::collections::HashSet<IpAddr> = log.entries.iter().map(|e| e.ip).collect();
    for i in addresses - cap + 1..addresses {
        assert!(kept.contains(&ip(i)), "recent address {} kept", ip(i));
    }
    assert!(kept.contains(&ip(0)), "an address seen again is recent");
    assert_eq!(
        log.dropped,
        u64::from(addresses + 1 - cap),
        "every address that gave way is counted"
    );
    let zero = log.entries.iter().find(|e| e.ip == ip(0)).unwrap();
    assert_eq!(
        zero.first_seen_ms,
        t0 + u64::from(addresses),
        "seen anew after it gave way"
    );
}

/// SPEC §3.5: `cycle_id()` gives the session a new id with the same data,
/// state and IP log; the old id names nothing afterwards.
pub(crate) async fn cycle_id_keeps_the_session_under_a_new_id_and_kills_the_old_one<B: Backend>(
    b: &B,
) {
    let (case, svc) = setup(b, config());
    let old = new_session(&svc, "/promote").await;
    send(&svc, from_at("198.51.100.7", "/write", Some(&old))).await;
    let res = send(&svc, at("/cycle", Some(&old))).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    let new = bound_id(&res).expect("the response rewrites the cookie");
    assert_ne!(new, old);
    assert!(!(case.holds)(&old), "the old id names nothing");
    let res = send(&svc, at("/", Some(&new))).await;
    assert_eq!(bound_id(&res), Some(new));
    assert_eq!(seen(&res)["note"], "hello", "data kept");
    assert_eq!(seen(&res)["state"], "permanent", "state kept");
    let log = case.store.ip_log(&new).await.unwrap().expect("alive");
    let ips: Vec<String> = log.entries.iter().map(|e| e.ip.to_string()).collect();
    assert!(
        ips.contains(&"198.51.100.7".to_owned()),
        "IP log kept: {ips:?}"
    );
    let res = send(&svc, at("/", Some(&old))).await;
    let fresh = bound_id(&res).expect("a fresh session");
    assert!(fresh != old && fresh != new);
    assert_eq!(
        seen(&res)["note"],
        Value::Null,
        "the old cookie reaches nothing"
    );
}

/// SPEC §3.5: a request that loaded the session before a rotation and
/// commits after it is refused (409): its write lands nowhere, the old id
/// is not resurrected, and the renamed session keeps what it had.
pub(crate) async fn a_commit_racing_a_rotation_is_refused_and_resurrects_nothing<B: Backend>(
    b: &B,
) {
    let case = b.case();
    let plain = service(case.store.clone(), config().idle_ttl(b.idle()), act);
    let old = new_session(&plain, "/write").await;
    let loaded = Arc::new(tokio::sync::Barrier::new(2));
    let rotated = Arc::new(tokio::sync::Barrier::new(2));
    let slow = service(case.store.clone(), config().idle_ttl(b.idle()), {
        let (loaded, rotated) = (loaded.clone(), rotated.clone());
        move |session: visitor_session::Session, _| {
            let (loaded, rotated) = (loaded.clone(), rotated.clone());
            async move {
                loaded.wait().await;
                rotated.wait().await;
                session.insert("late", "write").unwrap();
                String::new()
            }
        }
    });
    let racing = tokio::spawn(async move { send(&slow, at("/", Some(&old))).await });
    loaded.wait().await;
    let res = send(&plain, at("/cycle", Some(&old))).await;
    let new = bound_id(&res).expect("rotated");
    rotated.wait().await;
    let res = racing.await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "the late write was not kept"
    );
    assert!(
        set_cookies(&res).is_empty(),
        "nor does it rewrite the cookie"
    );
    assert!(!(case.holds)(&old), "the old id is not resurrected");
    let res = send(&plain, at("/", Some(&new))).await;
    assert_eq!(seen(&res)["note"], "hello");
    let record = alive(&case.store, &new, &access_at(Access::now_ms(), None)).await;
    assert!(!record.data.contains_key("late"));
}

pub(crate) async fn agent_deletion_removes_everything_and_the_cookie_gets_a_fresh_session<
    B: Backend,
>(
    b: &B,
) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/promote").await;
    send(&svc, at("/write", Some(&id))).await;
    assert!(delete_session(&*case.store, &id).await.unwrap());
    assert!(!(case.holds)(&id), "data and IP log are gone");
    assert!(
        !delete_session(&*case.store, &id).await.unwrap(),
        "nothing left to delete"
    );
    let res = send(&svc, at("/", Some(&id))).await;
    let fresh = bound_id(&res).expect("a fresh session");
    assert_ne!(fresh, id);
    assert_eq!(seen(&res)["note"], Value::Null);
}

pub(crate) async fn reset_deletes_a_temporary_session_and_keeps_a_permanent_one<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let temporary = new_session(&svc, "/").await;
    let res = send(&svc, at("/reset", Some(&temporary))).await;
    assert!(removes_cookie(&res));
    assert!(!(case.holds)(&temporary));
    let permanent = new_session(&svc, "/promote").await;
    let res = send(&svc, at("/reset", Some(&permanent))).await;
    assert!(removes_cookie(&res));
    assert!(
        (case.holds)(&permanent),
        "the agents still see the conversation"
    );
}

pub(crate) async fn concurrent_requests_writing_different_keys_all_keep_their_change<B: Backend>(
    b: &B,
) {
    let (case, svc) = setup(b, config());
    let id = new_session(&svc, "/").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, at(&format!("/key/k{i}"), Some(&id))).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status(), StatusCode::OK);
    }
    let access = access_at(Access::now_ms(), None);
    let record = alive(&case.store, &id, &access).await;
    for i in 0..50 {
        assert!(record.data.contains_key(&format!("k{i}")), "k{i} was lost");
    }
}

pub(crate) async fn commit_racing_an_agent_deletion_does_not_resurrect_the_session<B: Backend>(
    b: &B,
) {
    let case = b.case();
    let admin = case.store.clone();
    let racing = service(
        case.store.clone(),
        config(),
        move |session: visitor_session::Session, _| {
            let admin = admin.clone();
            async move {
                // The agent deletes the session while this request is running.
                delete_session(&*admin, &session.id().unwrap())
                    .await
                    .unwrap();
                session.insert("late", "write").unwrap();
                session.promote().unwrap();
                String::new()
            }
        },
    );
    let plain = service(case.store.clone(), config(), act);
    let id = new_session(&plain, "/").await;
    let res = send(&racing, at("/", Some(&id))).await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "the client learns its write was not kept"
    );
    assert!(
        set_cookies(&res).is_empty(),
        "the cookie is left alone: after a rotation it is the new one"
    );
    assert!(!(case.holds)(&id), "nothing was written back");
    let res = send(&plain, at("/", Some(&id))).await;
    assert_ne!(
        bound_id(&res),
        Some(id),
        "the next request gets a fresh session"
    );
    let access = access_at(Access::now_ms(), None);
    let late = changes(&[("k", "1")], &[], true);
    assert_eq!(
        case.store.commit(&id, &access, &late).await.unwrap(),
        Committed::Missing
    );
    assert!(!(case.holds)(&id));
}

pub(crate) async fn concurrent_writes_cannot_exceed_the_data_limits_together<B: Backend>(b: &B) {
    let case = b.case();
    let plain = service(case.store.clone(), config(), act);
    let id = new_session(&plain, "/").await;
    let statuses = three_writers_over_a_two_key_limit(case.store.clone(), id).await;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
    );
    let access = access_at(Access::now_ms(), None);
    let record = alive(&case.store, &id, &access).await;
    assert_eq!(record.data.len(), 2);
}

/// Commits run against the same data and limits on every store; each store
/// must give the answers below (SPEC §3.4). On Redis this runs the Lua twin
/// of the Rust size rule, so the two are kept in step.
pub(crate) async fn data_limits_agree_on_every_store<B: Backend>(b: &B) {
    struct Limit {
        keys: usize,
        bytes: usize,
    }
    type LimitCase<'a> = (&'a [(&'a str, &'a str)], Changes, Limit, Committed);
    let cases: &[LimitCase<'_>] = &[
        // "note" (4 + 7 bytes) goes, "big" (3 + 12 bytes) comes: 15 bytes fit in 20.
        (
            &[("note", "\"hello\"")],
            changes(&[("big", "\"0123456789\"")], &["note"], false),
            Limit { keys: 8, bytes: 20 },
            Committed::Applied,
        ),
        // 11 + 4 + 1 = 16 bytes do not fit in 15.
        (
            &[("note", "\"hello\"")],
            changes(&[("more", "1")], &[], false),
            Limit { keys: 8, bytes: 15 },
            Committed::OverLimit,
        ),
        // Exactly at the byte limit.
        (
            &[("note", "\"hello\"")],
            changes(&[("more", "1")], &[], false),
            Limit { keys: 8, bytes: 16 },
            Committed::Applied,
        ),
        // Overwriting a key replaces its size: 4 + 7 bytes instead of 4 + 3.
        (
            &[("note", "\"a\"")],
            changes(&[("note", "\"hello\"")], &[], false),
            Limit { keys: 1, bytes: 11 },
            Committed::Applied,
        ),
        (
            &[("note", "\"a\"")],
            changes(&[("note", "\"hello\"")], &[], false),
            Limit { keys: 1, bytes: 10 },
            Committed::OverLimit,
        ),
        // A second key over a one-key limit.
        (
            &[("note", "\"hello\"")],
            changes(&[("other", "1")], &[], false),
            Limit {
                keys: 1,
                bytes: 1000,
            },
            Committed::OverLimit,
        ),
        // Removing a key that is not there changes nothing.
        (
            &[("note", "\"hello\"")],
            changes(&[], &["absent"], false),
            Limit { keys: 1, bytes: 11 },
            Committed::Applied,
        ),
        // Multi-byte characters count in bytes: "é" is 2 bytes, 4 with quotes.
        (
            &[],
            changes(&[("é", "\"é\"")], &[], false),
            Limit { keys: 1, bytes: 5 },
            Committed::OverLimit,
        ),
    ];
    let store = b.case().store;
    for (i, (data, commit, limit, expected)) in cases.iter().enumerate() {
        let id = SessionId::generate();
        let access = access_at(Access::now_ms(), None);
        let initial = changes(data, &[], false);
        let created = store.create(&id, &access, &initial, None).await;
        assert_eq!(created.unwrap(), Created::Created);
        let policy = POLICY
            .clone()
            .with_limits(DataLimits::new(limit.keys, limit.bytes));
        let limited = Access::new(access.ip, access.at_ms, &policy);
        let answer = store.commit(&id, &limited, commit).await.unwrap();
        assert_eq!(answer, *expected, "case {i}");
    }
}

pub(crate) async fn session_over_a_lowered_limit_can_still_shed_data<B: Backend>(b: &B) {
    let store = b.case().store;
    let id = SessionId::generate();
    let access = access_at(Access::now_ms(), None);
    let data = changes(
        &[("a", "\"aaaa\""), ("b", "\"bbbb\""), ("c", "1")],
        &[],
        false,
    );
    assert_eq!(
        store.create(&id, &access, &data, None).await.unwrap(),
        Created::Created
    );
    let policy = POLICY.clone().with_limits(DataLimits::new(1, 4));
    let lowered = Access::new(access.ip, access.at_ms, &policy);
    assert_eq!(
        store
            .commit(&id, &lowered, &changes(&[], &["a"], false))
            .await
            .unwrap(),
        Committed::Applied,
        "a commit that only sheds data is never refused"
    );
    assert_eq!(
        store
            .commit(&id, &lowered, &changes(&[("d", "1")], &[], false))
            .await
            .unwrap(),
        Committed::OverLimit,
        "growing stays refused"
    );
}

pub(crate) async fn create_run_twice_with_the_same_arguments_creates_once<B: Backend>(b: &B) {
    let store = b.case().store;
    let id = SessionId::generate();
    let access = access_at(Access::now_ms(), Some(PEER.parse().unwrap()));
    let first = changes(&[("a", "1")], &[], false);
    assert_eq!(
        store.create(&id, &access, &first, None).await.unwrap(),
        Created::Created
    );
    // The same call again, as after a lost reply: it did create.
    assert_eq!(
        store.create(&id, &access, &first, None).await.unwrap(),
        Created::Created
    );
    // Another creation of the same id is refused and writes nothing.
    let other = Access::new(access.ip, access.at_ms + 1, access.policy);
    assert_eq!(
        store
            .create(&id, &other, &changes(&[("b", "2")], &[], true), None)
            .await
            .unwrap(),
        Created::Exists
    );
    let record = alive(&store, &id, &access).await;
    assert_eq!(record.state, SessionState::Temporary);
    assert_eq!(record.data.keys().collect::<Vec<_>>(), ["a"]);
}

pub(crate) async fn commit_run_twice_with_the_same_changes_is_applied_once<B: Backend>(b: &B) {
    let store = b.case().store;
    let id = SessionId::generate();
    let access = access_at(Access::now_ms(), None);
    let created = store.create(&id, &access, &Changes::default(), None).await;
    assert_eq!(created.unwrap(), Created::Created);
    // "a" + "\"0123456789\"" is 13 bytes.
    let write = changes(&[("a", "\"0123456789\"")], &[], true);
    let policy = POLICY
        .clone()
        .with_limits(DataLimits::new(POLICY.limits.max_keys(), 20));
    let limited = Access::new(access.ip, access.at_ms, &policy);
    for _ in 0..2 {
        assert_eq!(
            store.commit(&id, &limited, &write).await.unwrap(),
            Committed::Applied
        );
    }
    // Counted once: 13 + "b" + "\"12345\"" (8) = 21 would not fit, 13 + 7 = 20 fits.
    let fits = changes(&[("b", "\"1234\"")], &[], false);
    assert_eq!(
        store.commit(&id, &limited, &fits).await.unwrap(),
        Committed::Applied
    );
    let record = alive(&store, &id, &access).await;
    assert_eq!(record.state, SessionState::Permanent);
    assert_eq!(record.data.len(), 2);
}

pub(crate) async fn touch_of_an_unknown_session_finds_nothing_and_creates_nothing<B: Backend>(
    b: &B,
) {
    let case = b.case();
    let id = SessionId::generate();
    let access = access_at(Access::now_ms(), Some(PEER.parse().unwrap()));
    assert_eq!(case.store.touch(&id, &access).await.unwrap(), None);
    assert!(!(case.holds)(&id));
    let write = changes(&[("a", "1")], &[], true);
    assert_eq!(
        case.store.commit(&id, &access, &write).await.unwrap(),
        Committed::Missing
    );
    assert!(!(case.holds)(&id));
}

/// Large writes go to Redis in several commands inside one script (Lua
/// cannot pass a few thousand arguments at once); they stay all or nothing.
pub(crate) async fn a_commit_of_a_thousand_keys_is_applied_whole<B: Backend>(b: &B) {
    let store = b.case().store;
    let policy = POLICY.clone().with_limits(DataLimits::new(5000, 1 << 20));
    let access = Access::new(None, Access::now_ms(), &policy);
    let id = SessionId::generate();
    let first: Vec<(String, String)> = (0..1200)
        .map(|i| (format!("a{i}"), "1".to_owned()))
        .collect();
    let first: Vec<(&str, &str)> = first
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let created = store
        .create(&id, &access, &changes(&first, &[], false), None)
        .await;
    assert_eq!(created.unwrap(), Created::Created);
    let more: Vec<(String, String)> = (0..1200)
        .map(|i| (format!("b{i}"), "2".to_owned()))
        .collect();
    let more: Vec<(&str, &str)> = more.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let removed: Vec<String> = (0..600).map(|i| format!("a{i}")).collect();
    let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
    let commit = changes(&more, &removed, true);
    assert_eq!(
        store.commit(&id, &access, &commit).await.unwrap(),
        Committed::Applied
    );
    let record = alive(&store, &id, &access).await;
    assert_eq!(record.state, SessionState::Permanent);
    assert_eq!(record.data.len(), 600 + 1200);
    assert!(record.data.contains_key("b1199") && !record.data.contains_key("a0"));
    // The kept size is right: one more key would go past a 1801-key limit.
    let tight = POLICY.clone().with_limits(DataLimits::new(1800, 1 << 20));
    let tight = Access::new(access.ip, access.at_ms, &tight);
    assert_eq!(
        store
            .commit(&id, &tight, &changes(&[("c", "3")], &[], false))
            .await
            .unwrap(),
        Committed::OverLimit
    );
}

pub(crate) async fn new_session_limit_answers_429_with_retry_after<B: Backend>(b: &B) {
    let limit =
        NewSessionLimit::new(2, Duration::from_secs(60)).action(LimitAction::TooManyRequests);
    let (_case, svc) = setup(b, config().new_session_limit(Some(limit)));
    assert_eq!(send(&svc, request()).await.status(), StatusCode::OK);
    assert_eq!(send(&svc, request()).await.status(), StatusCode::OK);
    let res = send(&svc, request()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

/// Handler keys are data, whatever they contain: characters that mean
/// something to Redis (hash tags, globs, separators, line breaks, NUL) or
/// that name the store's own fields never leave their session (SPEC §5).
pub(crate) async fn keys_with_store_significant_characters_stay_in_their_session<B: Backend>(
    b: &B,
) {
    let case = b.case();
    let keys = [
        "{other}",
        "}{",
        "*",
        "a:b:c",
        "line\nbreak",
        "nul\0byte",
        "m",
        "i",
        "d:m",
        "s",
        " ",
        "\r\n*1\r\n$4\r\nPING",
    ];
    let ours = SessionId::generate();
    let theirs = SessionId::generate();
    let access = access_at(Access::now_ms(), None);
    let sets: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "\"v\"")).collect();
    let created = case
        .store
        .create(&ours, &access, &changes(&sets, &[], false), None)
        .await;
    assert_eq!(created.unwrap(), Created::Created);
    let created = case
        .store
        .create(&theirs, &access, &changes(&[], &[], false), None)
        .await;
    assert_eq!(created.unwrap(), Created::Created);
    let record = alive(&case.store, &ours, &access).await;
    let mut stored: Vec<&String> = record.data.keys().collect();
    stored.sort();
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(stored, expected, "every key kept as it was written");
    assert_eq!(
        record.state,
        SessionState::Temporary,
        "`m` did not touch the metadata"
    );
    let other = alive(&case.store, &theirs, &access).await;
    assert!(other.data.is_empty(), "nothing reached another session");
    // Removing them leaves the session whole and empty.
    let removes: Vec<&str> = keys.to_vec();
    let committed = case
        .store
        .commit(&ours, &access, &changes(&[], &removes, false))
        .await;
    assert_eq!(committed.unwrap(), Committed::Applied);
    let record = alive(&case.store, &ours, &access).await;
    assert!(record.data.is_empty());
}

fn from_at(ip: &str, path: &str, id: Option<&SessionId>) -> http::request::Builder {
    let b = from_ip(ip.parse().unwrap()).uri(path);
    match id {
        Some(id) => b.header(http::header::COOKIE, cookie_for(id)),
        None => b,
    }
}

/// Sessions created and conversations started, per IPv4 address and per
/// IPv6 /64 (SPEC §3.6), counted by the creating or promoting call.
pub(crate) async fn network_stats_count_sessions_and_conversations_per_network<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let v4 = "192.0.2.10";
    let first = bound_id(&send(&svc, from_at(v4, "/", None)).await).unwrap();
    // A new visitor whose first request starts a conversation: both counted.
    send(&svc, from_at(v4, "/promote", None)).await;
    // The first visitor starts one later; promoting again counts nothing.
    send(&svc, from_at(v4, "/promote", Some(&first))).await;
    send(&svc, from_at(v4, "/promote", Some(&first))).await;
    // Two addresses of one IPv6 /64 are one network; the next /64 is another.
    send(&svc, from_at("2001:db8:1:2::a", "/", None)).await;
    send(&svc, from_at("2001:db8:1:2:ffff::b", "/write", None)).await;
    send(&svc, from_at("2001:db8:1:3::1", "/", None)).await;

    let stats = |ip: &str| {
        let store = case.store.clone();
        let ip: IpAddr = ip.parse().unwrap();
        async move { store.network_stats(ip).await.unwrap() }
    };
    let ipv4 = stats(v4).await.expect("counted");
    assert_eq!(ipv4.network.to_string(), v4);
    assert_eq!((ipv4.sessions_created, ipv4.conversations_started), (2, 2));
    assert!(ipv4.first_seen_ms <= ipv4.last_seen_ms);
    assert!(ipv4.first_seen_ms > 0);
    let ipv6 = stats("2001:db8:1:2::1234")
        .await
        .expect("any address of the /64");
    assert_eq!(ipv6.network.to_string(), "2001:db8:1:2::");
    assert_eq!((ipv6.sessions_created, ipv6.conversations_started), (2, 0));
    let other = stats("2001:db8:1:3::1").await.expect("counted");
    assert_eq!(other.sessions_created, 1);
    assert_eq!(stats("198.51.100.1").await, None, "a network never seen");
}

/// A temporary session that ends without a conversation leaves its
/// network's counts and nothing else: no id, no data, no IP (SPEC §3.6).
pub(crate) async fn temporary_session_leaves_only_its_networks_counts_after_the_idle_ttl<
    B: Backend,
>(
    b: &B,
) {
    let (case, svc) = setup(b, config());
    let ip = "192.0.2.77";
    let res = send(&svc, from_at(ip, "/write", None)).await;
    let id = bound_id(&res).unwrap();
    assert!((case.holds_ip)(ip.parse().unwrap()), "bound while it lives");
    tokio::time::sleep(b.idle() + Duration::from_millis(150)).await;
    assert!(!(case.holds)(&id), "the session and its data are gone");
    assert!(
        !(case.holds_ip)(ip.parse().unwrap()),
        "its IP went with it, but for the network's counts"
    );
    let stats = case
        .store
        .network_stats(ip.parse().unwrap())
        .await
        .unwrap()
        .expect("the counts remain");
    assert_eq!(
        (stats.sessions_created, stats.conversations_started),
        (1, 0)
    );
}

/// The counts live `network_retention` after the latest event they count.
pub(crate) async fn network_stats_are_kept_for_their_retention_after_the_latest_event<
    B: Backend,
>(
    b: &B,
) {
    let case = b.case();
    let retention = b.idle();
    let policy = POLICY.clone().with_network_retention(retention);
    let ip: IpAddr = "2001:db8:7:7::1".parse().unwrap();
    let create = |store: Arc<dyn SessionStore>, policy: StorePolicy| async move {
        let access = Access::new(Some(ip), Access::now_ms(), &policy);
        let created = store
            .create(
                &SessionId::generate(),
                &access,
                &changes(&[], &[], false),
                None,
            )
            .await;
        assert_eq!(created.unwrap(), Created::Created);
    };
    create(case.store.clone(), policy.clone()).await;
    tokio::time::sleep(retention / 2).await;
    create(case.store.clone(), policy.clone()).await;
    tokio::time::sleep(retention * 3 / 4).await;
    let stats = case.store.network_stats(ip).await.unwrap();
    assert_eq!(
        stats.map(|s| s.sessions_created),
        Some(2),
        "the second creation renewed the retention"
    );
    tokio::time::sleep(retention / 4 + Duration::from_millis(250)).await;
    assert_eq!(
        case.store.network_stats(ip).await.unwrap(),
        None,
        "gone a retention after the latest event"
    );
}

/// The embedded store, on tokio's paused clock (`start_paused = true`).
#[derive(Clone, Copy)]
pub(crate) struct Memory;

impl Backend for Memory {
    fn case(&self) -> Case {
        let store = visitor_session::MemoryStore::new();
        let probe = store.clone();
        Case {
            store: Arc::new(store),
            holds: Box::new({
                let probe = probe.clone();
                move |id| probe.peek(id).is_some()
            }),
            holds_ip: Box::new(move |ip| probe.holds_ip(ip)),
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn enter(&self) -> Option<tokio::sync::RwLockReadGuard<'static, ()>> {
        None
    }
}
