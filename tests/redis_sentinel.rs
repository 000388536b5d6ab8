//! `RedisStore` on a primary and a replica watched by Redis Sentinel, started
//! by the test (SPEC §4): the store conformance suite, round trips counted
//! with `MONITOR`, and a forced failover.
#![cfg(feature = "sentinel")]

mod support;

use support::redis_suite::Sentinel;

visitor_session::store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    Sentinel
);
redis_conformance!(Sentinel);

use std::time::{Duration, Instant};

use support::demo::{Client, Demo};
use support::load::Load;
use support::redis_servers::{
    RedisSentinel, SENTINEL_MASTER, replicas_caught_up, traffic_blocking,
};
use support::redis_suite::keys_of;
use support::*;
use visitor_session::store::{RedisConfig, RedisStore};

/// `SENTINEL FAILOVER` under load: the service follows the promoted replica
/// without a restart. Writes acknowledged after it followed are on the new
/// primary; every session written before the failover is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_is_followed_without_a_restart() {
    let setup = RedisSentinel::start(Duration::from_secs(1), "failover-secret");
    let store = RedisStore::new(
        RedisConfig::sentinel(setup.sentinel_urls(), SENTINEL_MASTER)
            .primary_credentials(None, &setup.password)
            .key_prefix("fo:"),
    )
    .unwrap();
    let svc = service(store, config().max_keys(10_000), act);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(bound_id(&send(&svc, at("/write", None)).await).unwrap());
    }
    let old_primary = setup.primary_port();
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replicas_caught_up(setup.primary()) {
            assert!(Instant::now() < deadline, "the replica did not catch up");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let load = Load::start(&svc, &ids, 4, Duration::from_millis(5), |_, _| true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started_failover = Instant::now();
    let new_primary = tokio::task::block_in_place(|| setup.failover());
    let switched = started_failover.elapsed();
    assert_ne!(new_primary, old_primary);
    // The store follows within one watch period (500 ms) of the Sentinel's
    // switch; give it two seconds on a busy machine, then let the load run
    // on for enough writes to judge (however slowly the machine runs it).
    let followed = started_failover + switched + Duration::from_secs(2);
    tokio::time::sleep_until(followed.into()).await;
    load.wait_for(80, Duration::from_secs(20)).await;
    let log = load.stop().await;
    let new = setup
        .servers
        .iter()
        .find(|s| s.port == new_primary)
        .unwrap();
    let (mut after, mut lost_in_window, mut failed) = (0, 0, 0);
    for visit in &log {
        let key = visit.key.as_deref().expect("every visit writes");
        let on_new_primary = || {
            let [hash, ..] = keys_of("fo:", &visit.id);
            new.query::<i64>(&["HEXISTS", &hash, &format!("d:{key}")]) == 1
        };
        let ok = visit.served();
        if visit.started >= followed {
            after += 1;
            assert!(
                ok,
                "a write after the service followed the new primary failed"
            );
            assert!(
                on_new_primary(),
                "{key} went elsewhere than the new primary"
            );
        } else if !ok {
            failed += 1;
        } else if visit.started >= started_failover && !on_new_primary() {
            lost_in_window += 1;
        }
    }
    eprintln!(
        "sentinel failover: the Sentinel named the new primary {switched:?} after \
         SENTINEL FAILOVER; {failed} writes failed meanwhile, {lost_in_window} acknowledged \
         writes went to the old primary (asynchronous replication), {after} writes after"
    );
    assert!(after > 50, "the load went on ({after} writes after)");
    assert_eq!(failed, 0, "no write failed during the failover");
    for id in ids.iter() {
        let res = send(&svc, at("/", Some(id))).await;
        assert!(seen(&res)["store_error"].is_null());
        assert_eq!(
            seen(&res)["note"],
            "hello",
            "sessions from before the failover are there"
        );
    }
}

#[test]
fn demo_serves_sessions_through_sentinel() {
    let _traffic = traffic_blocking();
    let setup = RedisSentinel::shared();
    let demo = Demo::start(&[
        ("REDIS_SENTINEL_NODES", &setup.sentinel_urls().join(",")),
        ("REDIS_SENTINEL_MASTER", SENTINEL_MASTER),
        ("REDIS_SENTINEL_PASSWORD", &setup.password),
    ]);
    let mut client = Client::new(demo.addr);
    assert_eq!(client.get("/").status, 200);
    assert!(client.session_cookie().is_some());
    assert_eq!(
        client
            .post_json("/api/messages", r#"{"text":"hello via sentinel"}"#)
            .status,
        201
    );
    assert_eq!(client.get("/api/session").json()["state"], "permanent");
}
