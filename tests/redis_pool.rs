//! `RedisStore` on an application's deadpool-redis pool
//! (`RedisConfig::from_source`), against a standalone redis-server started by
//! the test (SPEC §4): the same store conformance suite and round trips as
//! on the store's own connections, and what changes when the store does not
//! open its connections itself.
#![cfg(feature = "deadpool-redis")]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::redis_servers::{Monitor, RedisServer, count, quiet, traffic, unique_prefix};
use support::redis_suite::{StandalonePool, app_pool};
use support::*;
use visitor_session::store::{
    Access, Changes, ConnectionSource, RedisConfig, RedisStore, SessionStore, SourcedConnection,
    StorePolicy,
};
use visitor_session::{SessionId, StoreErrorKind};

visitor_session::store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    StandalonePool
);
redis_conformance!(StandalonePool);

static POLICY: std::sync::LazyLock<StorePolicy> =
    std::sync::LazyLock::new(|| StorePolicy::default().idle_ttl(Duration::from_secs(60)));

fn access() -> Access<'static> {
    Access::now(None, &POLICY)
}

fn pooled_store(
    pool: &deadpool_redis::Pool,
    config: impl FnOnce(RedisConfig) -> RedisConfig,
) -> RedisStore {
    let base = RedisConfig::from_source(pool.clone()).key_prefix(unique_prefix("pool"));
    RedisStore::new(config(base)).unwrap()
}

/// The store takes one connection from the application's pool and keeps
/// it: a hundred requests later the pool has handed out exactly one object,
/// which is still out, and the application's own checkouts get others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_one_connection_of_the_pool_for_all_its_requests() {
    let _traffic = traffic().await;
    let pool = app_pool(&RedisServer::shared().url());
    let svc = service(pooled_store(&pool, |c| c), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, at("/", Some(&id))).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(seen(&task.await.unwrap())["note"], "hello");
    }
    let status = pool.status();
    assert_eq!((status.size, status.available), (1, 0), "{status:?}");
    // The application's own work gets a connection of its own.
    let mut mine = pool.get().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut *mine).await.unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(pool.status().size, 2);
}

/// deadpool-redis checks a connection on every checkout (`UNWATCH` and
/// `PING`); the store checks out once, so a returning visitor still costs
/// one `EVALSHA` and nothing else, even after the connection sat in the
/// pool before the store took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_costs_no_checkout_round_trips_per_request() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let pool = app_pool(&server.url());
    // The pool's connection was used by the application first.
    drop(pool.get().await.unwrap());
    let store = pooled_store(&pool, |c| c);
    store.load_scripts().await.unwrap();
    let svc = service(store, config(), act);
    let id = bound_id(&send(&svc, at("/", None)).await).unwrap();
    let monitor = Monitor::start(server);
    let (_, sent) = count(&[&monitor], async {
        for _ in 0..10 {
            assert_eq!(bound_id(&send(&svc, at("/", Some(&id))).await), Some(id));
        }
    })
    .await;
    assert_eq!(
        sent.commands.into_iter().collect::<Vec<_>>(),
        [("evalsha".to_owned(), 10)],
        "ten touches, no UNWATCH, no PING"
    );
}

/// A connection of the pool killed under the store: the call that finds it
/// dead is retried once on a new one from the pool, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_that_breaks_is_replaced_from_the_pool_without_failing_requests() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let pool = app_pool(&server.url());
    let svc = service(pooled_store(&pool, |c| c), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    for round in 0..3 {
        let _: i64 = server.query(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        let res = send(&svc, at("/", Some(&id))).await;
        assert_eq!(seen(&res)["store_error"], Value::Null, "round {round}");
        assert_eq!(seen(&res)["note"], "hello");
    }
}

/// The pool's connections come with redis-rs's 500 ms response timeout; the
/// store's own `command_timeout` applies on top, so a lower one is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_command_timeout_bounds_commands_on_the_pools_connections() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let pool = app_pool(&server.url());
    let store = pooled_store(&pool, |c| c.command_timeout(Duration::from_millis(150)));
    let svc = service(store, config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let _: () = server.query(&["CLIENT", "PAUSE", "700", "ALL"]);
    let started = Instant::now();
    let res = send(&svc, at("/", Some(&id))).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(700).saturating_sub(took)).await;
    assert_eq!(seen(&res)["store_error"], "timeout");
    assert!(
        took < Duration::from_millis(450),
        "failed after {took:?}: the 150 ms command timeout, not redis-rs's 500 ms"
    );
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(seen(&res)["note"], "hello", "served again after the stall");
}

/// A write sent on a pooled connection whose answer never came is reported
/// as "outcome unknown", as on the store's own connections, and it was
/// indeed applied once the server resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_pooled_connection_whose_answer_never_came_is_an_unknown_outcome() {
    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let pool = app_pool(&server.url());
    let store = pooled_store(&pool, |c| c.command_timeout(Duration::from_millis(300)));
    support::redis_suite::a_stalled_commit_is_an_unknown_outcome_then_applied(&store, server).await;
}

/// A pool that cannot give a connection (its server is gone) fails the
/// store's calls as "unavailable": nothing was sent, so a write surely was
/// not applied; the layer answers a write with 503.
#[tokio::test]
async fn a_pool_without_a_server_makes_writes_unavailable_never_successful() {
    let pool = app_pool(&format!("redis://127.0.0.1:{}", support::demo::free_port()));
    let store = pooled_store(&pool, |c| c.connect_timeout(Duration::from_millis(300)));
    let err = store
        .commit(
            &SessionId::generate(),
            &access(),
            &Changes::default().set("k", "1"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    let svc = service(store, config(), act);
    assert_eq!(
        send(&svc, at("/write", None)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// A source of the application's own making: a redis-rs client. What it
/// keeps with a connection is dropped when the store lets go of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_of_the_applications_own_serves_the_store_and_gets_its_holder_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    struct Client {
        client: redis::Client,
        given: Arc<AtomicUsize>,
        returned: Arc<AtomicUsize>,
    }
    impl ConnectionSource for Client {
        fn connection(&self) -> redis::RedisFuture<'_, SourcedConnection> {
            Box::pin(async move {
                let conn = self.client.get_multiplexed_async_connection().await?;
                self.given.fetch_add(1, Ordering::SeqCst);
                Ok(SourcedConnection::single(conn).held_by(Counted(self.returned.clone())))
            })
        }
    }

    let _quiet = quiet().await;
    let server = RedisServer::shared();
    let (given, returned) = (Arc::default(), Arc::default());
    let source = Client {
        client: redis::Client::open(server.url()).unwrap(),
        given: Arc::clone(&given),
        returned: Arc::clone(&returned),
    };
    let store =
        RedisStore::new(RedisConfig::from_source(source).key_prefix(unique_prefix("own"))).unwrap();
    let svc = service(store.clone(), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    assert_eq!(seen(&send(&svc, at("/", Some(&id))).await)["note"], "hello");
    assert_eq!(
        (
            given.load(Ordering::SeqCst),
            returned.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    let _: i64 = server.query(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert_eq!(seen(&send(&svc, at("/", Some(&id))).await)["note"], "hello");
    assert_eq!(
        (
            given.load(Ordering::SeqCst),
            returned.load(Ordering::SeqCst)
        ),
        (2, 1),
        "the broken connection was let go of, a new one taken"
    );
    drop((svc, store));
    assert_eq!(
        returned.load(Ordering::SeqCst),
        2,
        "all given back with the store"
    );
}
