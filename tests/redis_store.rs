//! `RedisStore` against a real redis-server started by the test (SPEC §4):
//! round trips counted with `INFO commandstats`, TTLs with a short idle TTL,
//! concurrency, and failure of the server.
#![cfg(feature = "redis")]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use support::redis_server::RedisServer;
use support::*;
use visitor_session::store::{Access, Changes, Committed, RedisConfig, RedisStore};
use visitor_session::{FailureMode, PrivacyMode, Session, SessionConfig, SessionId, SessionStore};

const IDLE: Duration = Duration::from_secs(1);

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::new(
        RedisConfig::new(server.url())
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
            .wait_timeout(Duration::from_millis(500)),
    )
    .unwrap()
}

/// An access with no IP, now, under the tests' idle TTL.
fn access() -> Access {
    Access {
        ip: None,
        at_ms: Access::now_ms(),
        idle_ttl: IDLE,
        permanent_retention: None,
        ip_log_retention: None,
        max_keys: 64,
        max_data_bytes: 64 * 1024,
    }
}

fn session_key(id: &SessionId) -> String {
    format!("vs:{{{}}}", id.uuid_str())
}

fn ips_key(id: &SessionId) -> String {
    format!("vs:{{{}}}:ips", id.uuid_str())
}

/// What the handler does, by path.
async fn act(session: Session, req: http::Request<String>) -> String {
    let path = req.uri().path().to_owned();
    let result = match path.as_str() {
        "/write" => session.insert("note", "hello"),
        "/promote" => session.promote(),
        "/start" => session.start(),
        "/reset" => {
            session.reset();
            Ok(())
        }
        p if p.starts_with("/key/") => session.insert(&p[5..], &true),
        _ => Ok(()),
    };
    format!(
        "{:?} {:?} {:?} {:?}",
        result.err(),
        session.state(),
        session.get::<String>("note").unwrap_or_default(),
        session.error().map(|e| e.kind())
    )
}

fn layer_over(server: &RedisServer, config: SessionConfig) -> (RedisStore, TestService) {
    let store = store(server);
    let svc = service(store.clone(), config, act);
    (store, svc)
}

fn at(path: &str, id: Option<&SessionId>) -> http::request::Builder {
    let b = request().uri(path);
    match id {
        Some(id) => b.header(http::header::COOKIE, cookie_for(id)),
        None => b,
    }
}

/// Sends `req` and returns the response with the commands it cost.
async fn measured(
    server: &RedisServer,
    svc: &TestService,
    req: http::request::Builder,
) -> (http::Response<String>, HashMap<String, u64>) {
    let before = server.command_calls();
    let res = send(svc, req).await;
    (res, server.sent_since(&before))
}

fn evalsha(n: u64) -> HashMap<String, u64> {
    if n == 0 {
        HashMap::new()
    } else {
        HashMap::from([("evalsha".to_owned(), n)])
    }
}

/// A store with its scripts loaded and a pooled connection warm.
async fn warm(server: &RedisServer, config: SessionConfig) -> (RedisStore, TestService) {
    let (store, svc) = layer_over(server, config);
    store.load_scripts().await.unwrap();
    send(&svc, at("/", Some(&SessionId::generate()))).await;
    (store, svc)
}

#[tokio::test]
async fn returning_visitor_costs_one_round_trip() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config()).await;
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let (res, sent) = measured(&server, &svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(sent, evalsha(1), "touch only, no PING/UNWATCH on checkout");
}

#[tokio::test]
async fn response_with_changes_costs_one_more_round_trip() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config()).await;
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let (_, sent) = measured(&server, &svc, at("/write", Some(&id))).await;
    assert_eq!(sent, evalsha(2), "touch + commit");
    let (_, sent) = measured(&server, &svc, at("/promote", Some(&id))).await;
    assert_eq!(sent, evalsha(2), "touch + commit(promote)");
}

#[tokio::test]
async fn new_visitor_costs_one_round_trip_with_or_without_data() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config()).await;
    let (res, sent) = measured(&server, &svc, request()).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent, evalsha(1));
    let (res, sent) = measured(&server, &svc, at("/write", None)).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent, evalsha(1), "creation carries the first data");
}

#[tokio::test]
async fn privacy_mode_visitor_without_cookie_costs_nothing() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config().privacy(PrivacyMode::Total)).await;
    let (res, sent) = measured(&server, &svc, request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(sent, evalsha(0));
}

#[tokio::test]
async fn malformed_cookie_costs_nothing_before_creation() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config().privacy(PrivacyMode::Total)).await;
    let bad = "crisp-client%2Fsession%2Ftest=session_1234; crisp-client%2Fsession%2Ftest=x";
    let (_, sent) = measured(&server, &svc, with_cookie(bad)).await;
    assert_eq!(sent, evalsha(0), "privacy mode: no lookup, no creation");
    let (_, svc) = warm(&server, config()).await;
    let (res, sent) = measured(&server, &svc, with_cookie(bad)).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent, evalsha(1), "standard mode: the creation only");
}

#[tokio::test]
async fn scripts_are_reloaded_after_the_cache_is_flushed() {
    let server = RedisServer::start();
    let (_, svc) = warm(&server, config()).await;
    let id = bound_id(&send(&svc, request()).await).unwrap();
    server.raw(&["SCRIPT", "FLUSH"]).unwrap();
    let (res, sent) = measured(&server, &svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(
        sent.get("evalsha"),
        Some(&2),
        "NOSCRIPT, then the retry: {sent:?}"
    );
    assert_eq!(sent.get("script|load"), Some(&1), "{sent:?}");
}

#[tokio::test]
async fn session_lives_in_one_hash_with_a_hash_tag() {
    let server = RedisServer::start();
    let (_, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let fields = server.raw(&["HGETALL", &session_key(&id)]).unwrap();
    for field in [
        "m:state",
        "m:created",
        "m:seen",
        "m:ip",
        PEER,
        "d:note",
        "\"hello\"",
    ] {
        assert!(fields.contains(field), "{field} missing in {fields:?}");
    }
    assert_eq!(server.dbsize(), 1, "a temporary session is one key");
}

#[tokio::test]
async fn temporary_session_and_its_ip_are_gone_after_the_idle_ttl() {
    let server = RedisServer::start();
    let (store, svc) = layer_over(&server, config().idle_ttl(IDLE));
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let pttl = server.int(&["PTTL", &session_key(&id)]);
    assert!(pttl > 0 && pttl <= 1000, "PTTL {pttl}");
    tokio::time::sleep(IDLE + Duration::from_millis(100)).await;
    // Redis never shows a key past its TTL, so this holds as soon as it elapsed.
    assert_eq!(server.int(&["EXISTS", &session_key(&id)]), 0);
    assert_eq!(
        server.dbsize(),
        0,
        "nothing, the IP included, outlives the session"
    );
    let access = access();
    assert_eq!(store.touch(&id, &access).await.unwrap(), None);
    let fresh = bound_id(&send(&svc, at("/", Some(&id))).await).unwrap();
    assert_ne!(fresh, id);
}

#[tokio::test]
async fn access_keeps_a_temporary_session_alive_past_several_ttls() {
    let server = RedisServer::start();
    let (_, svc) = layer_over(&server, config().idle_ttl(IDLE));
    let id = bound_id(&send(&svc, request()).await).unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(bound_id(&send(&svc, at("/", Some(&id))).await), Some(id));
        let pttl = server.int(&["PTTL", &session_key(&id)]);
        assert!(pttl > 900, "the TTL slid back to a full second: {pttl}");
    }
}

#[tokio::test]
async fn promoted_session_has_no_ttl_and_survives() {
    let server = RedisServer::start();
    let (_, svc) = layer_over(&server, config().idle_ttl(IDLE));
    let id = bound_id(&send(&svc, request()).await).unwrap();
    send(&svc, at("/promote", Some(&id))).await;
    assert_eq!(server.int(&["PTTL", &session_key(&id)]), -1);
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    assert_eq!(server.int(&["EXISTS", &session_key(&id)]), 1);
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert!(res.body().contains("Permanent"), "{}", res.body());
}

#[tokio::test]
async fn permanent_session_keeps_an_ip_log() {
    let server = RedisServer::start();
    let (store, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
    let other: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    send(
        &svc,
        from_ip(other).header(http::header::COOKIE, cookie_for(&id)),
    )
    .await;
    send(&svc, at("/", Some(&id))).await;
    let log = store.ip_log(&id).await.unwrap().unwrap();
    let ips: Vec<String> = log.iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(ips, [PEER, "2001:db8::7"]);
    assert!(
        log[0].last_seen_ms >= log[1].first_seen_ms,
        "the latest access updated last seen"
    );
}

#[tokio::test]
async fn agent_deletion_removes_every_key_of_the_session() {
    let server = RedisServer::start();
    let (store, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
    send(&svc, at("/write", Some(&id))).await;
    assert_eq!(server.int(&["EXISTS", &session_key(&id), &ips_key(&id)]), 2);
    assert!(store.delete(&id).await.unwrap());
    assert_eq!(server.dbsize(), 0);
    let fresh = bound_id(&send(&svc, at("/", Some(&id))).await).unwrap();
    assert_ne!(fresh, id);
}

#[tokio::test]
async fn reset_deletes_a_temporary_session_but_keeps_a_permanent_one() {
    let server = RedisServer::start();
    let (_, svc) = layer_over(&server, config());
    let temp = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, at("/reset", Some(&temp))).await;
    assert!(removes_cookie(&res));
    assert_eq!(server.int(&["EXISTS", &session_key(&temp)]), 0);
    let perm = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
    send(&svc, at("/reset", Some(&perm))).await;
    assert_eq!(server.int(&["EXISTS", &session_key(&perm)]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_writing_different_keys_all_keep_their_change() {
    let server = RedisServer::start();
    let (_, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, at(&format!("/key/k{i}"), Some(&id))).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status(), StatusCode::OK);
    }
    let fields = server.raw(&["HKEYS", &session_key(&id)]).unwrap();
    for i in 0..50 {
        assert!(
            fields.contains(&format!("d:k{i}\r\n")),
            "d:k{i} lost: {fields}"
        );
    }
}

#[tokio::test]
async fn commit_racing_an_agent_deletion_does_not_resurrect_the_session() {
    let server = RedisServer::start();
    let store = store(&server);
    let admin = store.clone();
    let svc = service(store.clone(), config(), move |session: Session, _| {
        let admin = admin.clone();
        async move {
            let id = session.id().unwrap();
            // The agent deletes the session while this request is running.
            admin.delete(&id).await.unwrap();
            session.insert("late", "write").unwrap();
            session.promote().unwrap();
            String::new()
        }
    });
    let plain = service(store.clone(), config(), act);
    let id = bound_id(&send(&plain, request()).await).unwrap();
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "the client learns its write was not kept"
    );
    assert!(
        removes_cookie(&res),
        "the vanished session's cookie is cleared"
    );
    assert_eq!(server.dbsize(), 0, "nothing was written back");
    // The store call on its own, too.
    let access = access();
    let changes = Changes {
        data: [("k".to_owned(), Some("1".to_owned()))].into(),
        promote: true,
    };
    assert_eq!(
        store.commit(&id, &access, &changes).await.unwrap(),
        Committed::Missing
    );
    assert_eq!(server.dbsize(), 0);
}

fn dead_port_store() -> RedisStore {
    let port = support::demo::free_port();
    RedisStore::new(
        RedisConfig::new(format!("redis://127.0.0.1:{port}"))
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300)),
    )
    .unwrap()
}

#[tokio::test]
async fn no_server_fail_open_serves_without_a_session() {
    let svc = service(dead_port_store(), config(), act);
    let res = send(&svc, at("/", Some(&SessionId::generate()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().ends_with("Some(Unavailable)"), "{}", res.body());
    assert!(set_cookies(&res).is_empty());
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
    let res = send(&svc, at("/write", None)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn service_recovers_when_the_server_comes_back() {
    let mut server = RedisServer::start();
    let (_, svc) = warm(&server, config()).await;
    let id = bound_id(&send(&svc, request()).await).unwrap();
    server.stop();
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().ends_with("Some(Unavailable)"), "{}", res.body());
    assert_eq!(
        send(&svc, at("/write", Some(&id))).await.status(),
        StatusCode::OK
    );
    server.start_again();
    // The restarted server is empty (no persistence in tests): the old
    // cookie names no session, so the visitor gets a fresh one, through new
    // connections and reloaded scripts.
    let res = send(&svc, at("/write", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = bound_id(&res).expect("a fresh session once Redis is back");
    assert_ne!(fresh, id);
    let res = send(&svc, at("/", Some(&fresh))).await;
    assert!(res.body().contains("Some(\"hello\")"), "{}", res.body());
}

#[tokio::test]
async fn service_recovers_fail_closed_too() {
    let mut server = RedisServer::start();
    let (_, svc) = warm(&server, config().failure_mode(FailureMode::Closed)).await;
    let id = bound_id(&send(&svc, request()).await).unwrap();
    server.stop();
    assert_eq!(
        send(&svc, at("/", Some(&id))).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.start_again();
    assert_eq!(
        send(&svc, at("/", Some(&id))).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn new_session_limit_is_enforced_in_redis() {
    let server = RedisServer::start();
    let limit = visitor_session::NewSessionLimit {
        max: 2,
        window: Duration::from_secs(60),
        action: visitor_session::LimitAction::TooManyRequests,
    };
    let (_, svc) = layer_over(&server, config().new_session_limit(Some(limit)));
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

#[test]
fn key_prefix_with_braces_is_a_config_error() {
    let err =
        RedisStore::new(RedisConfig::new("redis://127.0.0.1").key_prefix("a{b}")).unwrap_err();
    assert_eq!(err.setting(), "key_prefix");
    assert!(RedisStore::new(RedisConfig::new("not a url")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_cannot_exceed_the_data_limits_together() {
    let server = RedisServer::start();
    let (store, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let statuses = three_writers_over_a_two_key_limit(store, id).await;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
    );
    let fields = server.raw(&["HKEYS", &session_key(&id)]).unwrap();
    assert_eq!(fields.matches("d:").count(), 2, "{fields}");
}

#[tokio::test]
async fn commit_over_the_size_limit_writes_nothing() {
    let server = RedisServer::start();
    let (store, svc) = layer_over(&server, config());
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let mut small = access();
    small.max_data_bytes = 20;
    let changes = Changes {
        data: [
            ("big".to_owned(), Some("\"0123456789\"".to_owned())),
            ("note".to_owned(), None),
        ]
        .into(),
        promote: true,
    };
    // "note" (4 + 7 bytes) goes and "big" (3 + 12 bytes) comes: 15 bytes fit in 20.
    assert_eq!(
        store.commit(&id, &small, &changes).await.unwrap(),
        Committed::Applied
    );
    small.max_data_bytes = 16;
    let more = Changes {
        data: [("more".to_owned(), Some("1".to_owned()))].into(),
        promote: false,
    };
    // 15 + 4 + 1 = 20 bytes would not fit in 16.
    assert_eq!(
        store.commit(&id, &small, &more).await.unwrap(),
        Committed::OverLimit
    );
    let fields = server.raw(&["HKEYS", &session_key(&id)]).unwrap();
    assert!(
        fields.contains("d:big") && !fields.contains("d:more") && !fields.contains("d:note"),
        "{fields}"
    );
}
