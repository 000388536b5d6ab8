//! `RedisStore` on a Redis Cluster of three primaries with one replica each,
//! started by the test (SPEC §4): the store conformance suite, round trips
//! counted with `MONITOR` on every primary, and failover.
#![cfg(feature = "cluster")]

mod support;

use support::redis_suite::Cluster;

visitor_session::store_conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    Cluster
);
redis_conformance!(Cluster);

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::demo::{Client, Demo};
use support::load::Load;
use support::redis_servers::{RedisCluster, quiet, traffic, traffic_blocking, unique_prefix};
use support::redis_suite::{RedisBackend, counted, keys_of};
use support::*;
use visitor_session::store::{RedisConfig, RedisStore, SessionStore};
use visitor_session::{LimitAction, NewSessionLimit};

/// Every key of a session carries its hash tag: one slot, one node, so each
/// store call is one atomic script there; and sessions spread over every
/// primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_a_session_share_one_slot_and_sessions_spread_over_the_primaries() {
    let _traffic = traffic().await;
    let cluster = RedisCluster::shared();
    let prefix = unique_prefix("slot");
    let store = RedisStore::new(Cluster.config().key_prefix(prefix.as_str())).unwrap();
    let svc = service(store, config(), act);
    let mut primaries = HashSet::new();
    for _ in 0..24 {
        // A permanent session has both keys: its hash and its IP log.
        let id = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
        let [hash, log, _] = keys_of(&prefix, &id);
        let slot = |key: &str| cluster.nodes[0].query::<i64>(&["CLUSTER", "KEYSLOT", key]);
        assert_eq!(slot(&hash), slot(&log), "{hash} and {log}");
        let node = cluster.primary_for(&hash);
        assert_eq!(
            node.query::<i64>(&["EXISTS", &hash, &log]),
            2,
            "both keys live on the node that owns the slot"
        );
        primaries.insert(node.port);
    }
    assert_eq!(primaries.len(), 3, "24 sessions landed on every primary");
}

/// A network's keys (its new-session limit and its statistics) are per
/// network, not per session: on a cluster they live in their own slot, so a
/// creation costs two calls, with a limit (the limit and the count in one
/// call, then the creation) or without (the creation, then the count); and
/// both of the network's keys share that slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_networks_keys_cost_one_call_of_their_own_on_a_cluster() {
    let _quiet = quiet().await;
    let limit =
        NewSessionLimit::new(100, Duration::from_secs(60)).action(LimitAction::TooManyRequests);
    let c = counted(&Cluster, config().new_session_limit(Some(limit))).await;
    let cluster = RedisCluster::shared();
    let (stats, admitted) = (
        format!("{}net:{{{PEER}}}", c.prefix),
        format!("{}new:{{{PEER}}}", c.prefix),
    );
    let created = || {
        cluster
            .primary_for(&stats)
            .query::<i64>(&["HGET", &stats, "c"])
    };
    let before = created();
    let (res, sent) = c.measure(request()).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent.commands.get("evalsha"), Some(&2), "{sent:?}");
    assert_eq!(
        sent.round_trips(),
        2,
        "the limit and count, then the creation"
    );
    let slot = |key: &str| cluster.nodes[0].query::<i64>(&["CLUSTER", "KEYSLOT", key]);
    assert_eq!(slot(&stats), slot(&admitted));
    assert_eq!(created(), before + 1);
    let c = counted(&Cluster, config()).await;
    let (_, sent) = c.measure(request()).await;
    assert_eq!(sent.round_trips(), 2, "the creation, then the count");
}

/// With the per-network statistics off, every request costs on a cluster
/// what it costs on one server (SPEC §4): new visitor 1 call, a promoting
/// commit 1 more than its touch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_network_statistics_a_cluster_costs_what_one_server_costs() {
    let _quiet = quiet().await;
    let c = counted(&Cluster, config().network_statistics(false)).await;
    let (res, sent) = c.measure(request()).await;
    let id = bound_id(&res).unwrap();
    assert_eq!(sent.round_trips(), 1, "{sent:?}");
    let (_, sent) = c.measure(at("/promote", Some(&id))).await;
    assert_eq!(sent.round_trips(), 2, "touch + commit: {sent:?}");
    let stats = c.store.network_stats(PEER.parse().unwrap()).await.unwrap();
    assert_eq!(stats, None, "nothing counted");
}

/// `kill -9` of a primary under load: its replica is promoted, and every
/// session is served again, with its data, without restarting the service.
/// Meanwhile the sessions on the failed primary were served without a
/// session (fail-open); the others kept working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_is_served_again_after_a_primary_fails_over() {
    let mut cluster = RedisCluster::start(Duration::from_millis(500));
    let store = RedisStore::new(RedisConfig::cluster(cluster.urls()).key_prefix("fo:")).unwrap();
    let svc = service(store, config(), act);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(bound_id(&send(&svc, at("/write", None)).await).unwrap());
    }
    tokio::task::block_in_place(|| cluster.wait_replicated());
    let victim = cluster.primary_for(&keys_of("fo:", &ids[0])[0]).port;
    let load = Load::start(&svc, &ids, 8, Duration::from_millis(5), |_, _| false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    cluster.kill(victim);
    tokio::task::block_in_place(|| cluster.wait_ready(Duration::from_secs(30)));
    let promoted = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.wait_for(150, Duration::from_secs(20)).await;
    let log = load.stop().await;
    let failed: Vec<_> = log
        .iter()
        .filter(|v| !(v.served() && v.seen["note"] == "hello"))
        .collect();
    let last_failure = failed
        .iter()
        .map(|v| v.finished.duration_since(killed))
        .max()
        .unwrap_or_default();
    let after = log
        .iter()
        .filter(|v| v.started > killed + last_failure)
        .count();
    eprintln!(
        "cluster failover: replica promoted {promoted:?} after the kill; last failed request \
         ended {last_failure:?} after it; {} of {} requests failed open meanwhile, {after} \
         succeeded after",
        failed.len(),
        log.len()
    );
    assert!(!failed.is_empty(), "the failure was seen");
    assert!(
        last_failure < promoted + Duration::from_secs(2),
        "sessions were served again within 2 s of the promotion \
         (promoted after {promoted:?}, last failure {last_failure:?})"
    );
    assert!(after > 100, "the load went on ({after} requests after)");
    for id in &ids {
        let res = send(&svc, at("/", Some(id))).await;
        assert_eq!(seen(&res)["note"], "hello", "every session kept its data");
    }
}

#[test]
fn demo_serves_sessions_on_the_cluster() {
    let _traffic = traffic_blocking();
    let nodes = RedisCluster::shared().urls().join(",");
    let demo = Demo::start(&[("REDIS_CLUSTER_NODES", &nodes)]);
    let mut client = Client::new(demo.addr);
    assert_eq!(client.get("/").status, 200);
    assert!(client.session_cookie().is_some());
    assert_eq!(
        client
            .post_json("/api/messages", r#"{"text":"hello from a cluster"}"#)
            .status,
        201
    );
    let session = client.get("/api/session").json();
    assert_eq!(session["state"], "permanent");
    assert_eq!(
        client.get("/api/messages").json()[0]["text"],
        "hello from a cluster"
    );
}

/// The application's deadpool-redis cluster pool as the store's connection
/// source: sessions and data as on the store's own connections, at the same
/// round trips (a cluster creation counts its network apart).
#[cfg(feature = "deadpool-redis")]
mod on_the_applications_cluster_pool {
    use super::support;
    use support::redis_suite::ClusterPool;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returning_visitor_keeps_its_session_and_data() {
        let _traffic = support::redis_servers::traffic().await;
        visitor_session::conformance::returning_visitor_keeps_its_session_and_data(&ClusterPool)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returning_visitor_costs_one_round_trip() {
        support::redis_suite::returning_visitor_costs_one_round_trip(&ClusterPool).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_visitor_costs_one_round_trip_with_or_without_data() {
        support::redis_suite::new_visitor_costs_one_round_trip_with_or_without_data(&ClusterPool)
            .await;
    }
}
