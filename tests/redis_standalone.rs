//! `RedisStore` on a standalone redis-server started by the test (SPEC §4):
//! the store conformance suite, round trips counted with `MONITOR`, and what
//! a single server does to its clients: restarts, stalls, lost replies,
//! killed connections, and no server at all.
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::load::Load;
use support::proxy::ReplyLosingProxy;
use support::redis_servers::{RedisServer, quiet, traffic, unique_prefix};
use support::redis_suite::Standalone;
use support::*;
use visitor_session::store::{
    Access, Changes, Committed, RedisConfig, RedisStore, SessionStore, StorePolicy,
};
use visitor_session::{FailureMode, SessionId, StoreErrorKind};

visitor_session::store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    Standalone
);
redis_conformance!(Standalone);

fn store_on(url: String, config: impl FnOnce(RedisConfig) -> RedisConfig) -> RedisStore {
    RedisStore::new(config(RedisConfig::new(url).key_prefix(unique_prefix("s")))).unwrap()
}

static POLICY: std::sync::LazyLock<StorePolicy> =
    std::sync::LazyLock::new(|| StorePolicy::default().idle_ttl(Duration::from_secs(60)));

fn access() -> Access<'static> {
    Access::now(None, &POLICY)
}

fn dead_port_store() -> RedisStore {
    store_on(
        format!("redis://127.0.0.1:{}", support::demo::free_port()),
        |c| c.connect_timeout(Duration::from_millis(300)),
    )
}

#[tokio::test]
async fn no_server_fail_open_serves_without_a_session() {
    let svc = service(dead_port_store(), config(), act);
    let res = send(&svc, at("/", Some(&SessionId::generate()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen(&res)["store_error"], "unavailable");
    assert!(set_cookies(&res).is_empty(), "no cookie change");
    let res = send(&svc, request()).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a new visitor still gets the page"
    );
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn no_server_fail_closed_answers_503() {
    let svc = service(
        dead_port_store(),
        config().failure_mode(FailureMode::Closed),
        act,
    );
    let res = send(&svc, at("/", Some(&SessionId::generate()))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        send(&svc, request()).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn no_server_write_is_never_reported_as_success() {
    let svc = service(dead_port_store(), config(), act);
    assert_eq!(
        send(&svc, at("/write", None)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let write = Changes::default().set("k", "1");
    let err = dead_port_store()
        .commit(&SessionId::generate(), &access(), &write)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        StoreErrorKind::Unavailable,
        "never sent, so surely not applied"
    );
}

/// `kill -9` of a busy server and a restart on the same port, with an
/// append-only file: once the server accepts connections again, no request
/// fails, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_succeed_again_as_soon_as_a_restarted_server_accepts_connections() {
    let mut server = RedisServer::start_durable();
    let store = store_on(server.url(), |c| c);
    let svc = service(
        store.clone(),
        config().max_keys(100_000).max_data_bytes(1 << 24),
        act,
    );
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(bound_id(&send(&svc, at("/", None)).await).unwrap());
    }
    // Eight visitors keep visiting, every other visit writing a key of its own.
    let load = Load::start(&svc, &ids, 8, Duration::from_millis(2), |_, n| n % 2 == 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .unwrap();
    // The server answered PING: from here on, nothing may fail.
    let back = Instant::now();
    load.wait_for(80, Duration::from_secs(20)).await;
    let visits = load.stop().await;
    let after: Vec<_> = visits.iter().filter(|v| v.started >= back).collect();
    assert!(
        after.iter().all(|v| v.served()),
        "a request started after the restart failed: {:?}",
        after.iter().find(|v| !v.served())
    );
    assert!(
        after.len() > 50,
        "the load went on after the restart ({} requests)",
        after.len()
    );
    assert!(
        visits.iter().any(|v| v.started < back && !v.served()),
        "the outage was seen while the server was down"
    );
    for visit in visits.iter().filter(|v| v.served()) {
        if let Some(key) = &visit.key {
            let record = store
                .touch(&visit.id, &access())
                .await
                .unwrap()
                .expect("alive");
            assert!(
                record.data.contains_key(key),
                "acknowledged write {key} was lost"
            );
        }
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shorter_than_the_command_timeout_is_waited_out() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    // The command timeout is 1 s; redis-rs alone would give up after 500 ms.
    let svc = service(store_on(server.url(), |c| c), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let _: () = server.query(&["CLIENT", "PAUSE", "850", "ALL"]);
    let started = Instant::now();
    let res = send(&svc, at("/", Some(&id))).await;
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "the stall happened"
    );
    assert_eq!(seen(&res)["store_error"], Value::Null);
    assert_eq!(seen(&res)["note"], "hello");
    assert_eq!(bound_id(&res), Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_longer_than_the_command_timeout_fails_within_it() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let store = store_on(server.url(), |c| {
        c.command_timeout(Duration::from_millis(300))
    });
    let svc = service(store, config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let _: () = server.query(&["CLIENT", "PAUSE", "1500", "ALL"]);
    let started = Instant::now();
    let res = send(&svc, at("/", Some(&id))).await;
    let took = started.elapsed();
    // `CLIENT UNPAUSE` would itself wait for the pause to end.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(took)).await;
    assert_eq!(res.status(), StatusCode::OK, "fail-open");
    assert_eq!(seen(&res)["store_error"], "timeout");
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(800),
        "failed after {took:?}, not within the 300 ms command timeout"
    );
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(
        seen(&res)["note"],
        "hello",
        "served again once the stall ends"
    );
}

/// A commit sent to a server that stalls writes past the command timeout is
/// reported as "outcome unknown" (never as "not written"), and indeed it is
/// applied once the server resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_never_came_is_an_unknown_outcome() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let store = store_on(server.url(), |c| {
        c.command_timeout(Duration::from_millis(300))
    });
    support::redis_suite::a_stalled_commit_is_an_unknown_outcome_then_applied(&store, server).await;
}

/// (The store's error kind for this case is checked above; the layer answers
/// `503` for every failed write.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_answers_503_when_a_commit_times_out() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let store = store_on(server.url(), |c| {
        c.command_timeout(Duration::from_millis(300))
    });
    store.load_scripts().await.unwrap();
    let plain = service(store.clone(), config(), act);
    let id = bound_id(&send(&plain, at("/", None)).await).unwrap();
    // The server stalls writes after the session was loaded, before the commit.
    let svc = service(
        store,
        config(),
        |session: visitor_session::Session, _| async move {
            tokio::task::spawn_blocking(|| {
                let _: () = RedisServer::shared().query(&["CLIENT", "PAUSE", "1000", "WRITE"]);
            })
            .await
            .unwrap();
            session.insert("late", &1).unwrap();
            String::new()
        },
    );
    let res = send(&svc, at("/", Some(&id))).await;
    let _: () = server.query(&["CLIENT", "UNPAUSE"]);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A connection that breaks after Redis applied a write, losing its reply:
/// the store retries once on a new connection, and since every script gives
/// the same result when run again, the write counts once and the call
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_reply_was_lost_is_retried_and_applied_once() {
    let _traffic = traffic().await;
    let server = RedisServer::shared();
    let proxy = ReplyLosingProxy::start(server.port);
    let prefix = unique_prefix("lost");
    let store = RedisStore::new(RedisConfig::new(proxy.url()).key_prefix(prefix.as_str())).unwrap();
    store.load_scripts().await.unwrap();
    let id = SessionId::generate();
    let access = access();
    proxy.lose_next_reply();
    assert_eq!(
        store
            .create(&id, &access, &Changes::default(), None)
            .await
            .unwrap(),
        visitor_session::store::Created::Created,
        "a retried creation answers 'created', not 'exists'"
    );
    let write = Changes::default().set("k", "\"value\"").promoted();
    proxy.lose_next_reply();
    assert_eq!(
        store.commit(&id, &access, &write).await.unwrap(),
        Committed::Applied
    );
    let hash = format!("{prefix}{{{}}}", id.uuid_str());
    let meta: String = server.query(&["HGET", &hash, "m"]);
    let meta: Vec<&str> = meta.split(',').collect();
    assert_eq!(meta[0], "p", "promoted");
    assert_eq!(
        meta[2..],
        ["1", "8"],
        "one key of 1 + 7 bytes, counted once"
    );
}

/// Concurrent requests pipeline on the pool's few connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_the_pools_connections() {
    let _traffic = traffic().await;
    let server = RedisServer::shared();
    // Database 9 is this test's alone, so its connections can be counted.
    let store = store_on(format!("{}/9", server.url()), |c| c.pool_size(2));
    let svc = service(store, config(), act);
    let ids: Vec<SessionId> = {
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(bound_id(&send(&svc, at("/", None)).await).unwrap());
        }
        ids
    };
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let svc = svc.clone();
            let id = ids[i % ids.len()];
            tokio::spawn(async move { send(&svc, at("/", Some(&id))).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let clients: String = server.query(&["CLIENT", "LIST"]);
    let ours = clients.lines().filter(|l| l.contains(" db=9 ")).count();
    assert!(
        (1..=2).contains(&ours),
        "200 concurrent requests used {ours} connections"
    );
}

/// Connections killed under the store (a proxy restart, `CLIENT KILL`) are
/// replaced, and the calls that found them dead are retried: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced_without_failing_requests() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let svc = service(store_on(server.url(), |c| c.pool_size(2)), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    for round in 0..3 {
        let _: i64 = server.query(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move { send(&svc, at("/", Some(&id))).await })
            })
            .collect();
        for t in tasks {
            let res = t.await.unwrap();
            assert_eq!(
                seen(&res)["store_error"],
                Value::Null,
                "round {round}: a request failed"
            );
            assert_eq!(seen(&res)["note"], "hello");
        }
    }
}

#[tokio::test]
async fn service_recovers_fail_closed_once_the_server_is_back() {
    let mut server = RedisServer::start();
    let svc = service(
        store_on(server.url(), |c| c),
        config().failure_mode(FailureMode::Closed),
        act,
    );
    let id = bound_id(&send(&svc, request()).await).unwrap();
    server.stop();
    assert_eq!(
        send(&svc, at("/", Some(&id))).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.start_again();
    // The restarted server kept nothing (no persistence here): a fresh session.
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(bound_id(&res).is_some_and(|fresh| fresh != id));
}

#[test]
fn bad_settings_are_config_errors_naming_the_setting() {
    let err =
        RedisStore::new(RedisConfig::new("redis://127.0.0.1").key_prefix("a{b}")).unwrap_err();
    assert_eq!(err.setting(), "key_prefix");
    let err = RedisStore::new(RedisConfig::new("not a url")).unwrap_err();
    assert_eq!(err.setting(), "url");
    let err = RedisStore::new(RedisConfig::new("redis://127.0.0.1").pool_size(0)).unwrap_err();
    assert_eq!(err.setting(), "pool_size");
    let err =
        RedisStore::new(RedisConfig::new("redis://127.0.0.1").command_timeout(Duration::ZERO))
            .unwrap_err();
    assert_eq!(err.setting(), "command_timeout");
}

/// Redis full (`maxmemory` with `noeviction`, SPEC §4): writes fail as
/// failures (never a 2xx), returning visitors keep their sessions (read,
/// unrecorded), new visitors are served without one, and once memory is
/// freed everything acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_full_refuses_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let store = store_on(server.url(), |c| c);
    let svc = service(store.clone(), config(), act);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let res = send(&svc, at(&format!("/key/before-{i}"), None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        acknowledged.push((bound_id(&res).unwrap(), format!("before-{i}")));
    }
    // Redis is full: a limit below what it already holds.
    let _: () = server.query(&["CONFIG", "SET", "maxmemory", "1"]);
    let info: String = server.query(&["INFO", "memory"]);
    assert!(info.contains("maxmemory_policy:noeviction"));

    let (id, key) = acknowledged[0].clone();
    // A returning visit reads its session: served with its data.
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(bound_id(&res), Some(id), "the cookie is renewed");
    let seen = seen(&res);
    assert_eq!(seen["store_error"], Value::Null, "{seen}");
    // From a new address too: served (Redis lets a script that has slid a
    // TTL, which takes no memory, finish its writes).
    let moved = "198.51.100.77".parse().unwrap();
    let record = store
        .touch(&id, &Access::now(Some(moved), &POLICY))
        .await
        .expect("a full Redis still serves the read")
        .expect("alive");
    assert!(record.data.contains_key(&key));
    // A write is refused, and says so.
    let res = send(&svc, at("/key/during", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "never a 2xx");
    // A new visitor is served, without a session (fail-open).
    let res = send(&svc, at("/", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(bound_id(&res), None);

    // Memory is freed (here: the limit lifted).
    let _: () = server.query(&["CONFIG", "SET", "maxmemory", "0"]);
    let res = send(&svc, at("/key/after", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK, "writes work again");
    for (id, key) in &acknowledged {
        let record = store.touch(id, &access()).await.unwrap().expect("alive");
        assert!(record.data.contains_key(key), "acknowledged {key} was lost");
    }
    let record = store.touch(&id, &access()).await.unwrap().unwrap();
    assert!(
        !record.data.contains_key("during"),
        "the refused write was not applied"
    );
    assert!(record.data.contains_key(&key) && record.data.contains_key("after"));
}
