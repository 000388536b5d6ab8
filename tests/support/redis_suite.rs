//! What every Redis deployment (standalone, Cluster, Sentinel) must show on
//! top of the store conformance suite: one round trip per request counted
//! with `MONITOR` on every primary (SPEC §4), the key layout and TTLs, and
//! script recovery. Instantiated with [`redis_conformance!`](crate::redis_conformance).

use std::time::Duration;
use visitor_session::store::delete_session;

use http::StatusCode;
use redis::ConnectionLike;
use visitor_session::store::{Access, RedisConfig, RedisStore, SessionStore, StorePolicy};
use visitor_session::{PrivacyMode, SessionConfig, SessionId};

use super::conformance::{Backend, Case};
use super::redis_servers::{
    Monitor, RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, Sent, count, quiet,
    unique_prefix,
};
use super::*;

/// A Redis deployment the suites run on.
pub(crate) trait RedisBackend: Copy + Send + Sync + 'static {
    /// Where the deployment is, with the tests' timeouts.
    fn config(&self) -> RedisConfig;
    /// The servers that take client commands (the primaries).
    fn primaries(&self) -> Vec<&'static RedisServer>;
    /// A plain connection that sends each command where its key lives.
    fn conn(&self) -> Box<dyn ConnectionLike + Send>;
    /// A client network's keys live in another slot than a session's, so
    /// counting it costs a call of its own (Redis Cluster).
    fn network_apart(&self) -> bool {
        false
    }
    /// Sends a command that concerns no key to every primary.
    fn on_every_primary(&self, args: &[&str]) {
        for primary in self.primaries() {
            let _: redis::Value = primary.query(args);
        }
    }
}

/// The keys of session `id` under `prefix`: its hash and its IP log.
pub(crate) fn keys_of(prefix: &str, id: &SessionId) -> [String; 3] {
    let hash = format!("{prefix}{{{}}}", id.uuid_str());
    let first_seen = format!("{hash}:ips");
    let last_seen = format!("{hash}:ipz");
    [hash, first_seen, last_seen]
}

/// Whether any key under `prefix` but the network statistics names `ip` or
/// holds it in a field or value.
fn holds_ip<B: RedisBackend>(backend: &B, prefix: &str, ip: std::net::IpAddr) -> bool {
    let ip = ip.to_string();
    let stats = format!("{prefix}net:");
    backend.primaries().into_iter().any(|primary| {
        let keys: Vec<String> = primary.query(&["KEYS", &format!("{prefix}*")]);
        keys.iter()
            .filter(|key| !key.starts_with(&stats))
            .any(|key| {
                let kind: String = primary.query(&["TYPE", key]);
                let content: Vec<String> = match kind.as_str() {
                    "hash" => primary.query(&["HGETALL", key]),
                    "set" => primary.query(&["SMEMBERS", key]),
                    "zset" => primary.query(&["ZRANGE", key, "0", "-1"]),
                    _ => vec![],
                };
                key.contains(&ip) || content.iter().any(|c| c.contains(&ip))
            })
    })
}

/// Runs one command on `backend`, routed by its key.
pub(crate) fn query<T: redis::FromRedisValue, B: RedisBackend>(backend: &B, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut *backend.conn())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The conformance suite's view of a Redis deployment (one impl per type:
/// the trait is the crate's).
macro_rules! conformance_backend {
    ($($backend:ty),*) => {$(
        impl Backend for $backend {
            fn case(&self) -> Case {
                redis_case(*self)
            }

            fn idle(&self) -> Duration {
                Duration::from_millis(1500)
            }

            /// Holds the shared servers' traffic lock (see `support::redis_servers`).
            async fn enter(&self) -> Option<Box<dyn std::any::Any + Send + Sync>> {
                Some(Box::new(super::redis_servers::traffic().await))
            }
        }
    )*};
}
conformance_backend!(Standalone, Cluster, Sentinel);
#[cfg(feature = "deadpool-redis")]
conformance_backend!(StandalonePool);
#[cfg(all(feature = "deadpool-redis", feature = "cluster"))]
conformance_backend!(ClusterPool);

/// A fresh store on `backend` under a prefix of its own, with its probes.
fn redis_case<B: RedisBackend>(backend: B) -> Case {
    let prefix = unique_prefix("case");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    Case {
        store: std::sync::Arc::new(store),
        holds: Box::new({
            let prefix = prefix.clone();
            move |id| {
                let [hash, first, last] = keys_of(&prefix, id);
                query::<i64, _>(&backend, &["EXISTS", &hash, &first, &last]) > 0
            }
        }),
        holds_ip: Box::new(move |ip| holds_ip(&backend, &prefix, ip)),
    }
}

/// Generates one test per Redis scenario for `$backend` (on top of
/// `store_conformance!`).
#[macro_export]
macro_rules! redis_conformance {
    ($backend:expr) => {
        $crate::redis_conformance!(@each $backend;
            returning_visitor_costs_one_round_trip,
            response_with_changes_costs_one_more_round_trip,
            new_visitor_costs_one_round_trip_with_or_without_data,
            privacy_visitor_without_cookie_costs_no_round_trip,
            malformed_cookie_costs_no_lookup,
            commit_cost_does_not_grow_with_the_session,
            scripts_the_server_lost_are_sent_again_whole,
            temporary_session_is_one_hash_with_the_idle_ttl,
            returning_visit_records_a_changed_ip_and_slides_the_ttl,
            permanent_session_has_no_ttl,
            continuity_tokens_cost_what_the_readme_says,
            a_token_is_kept_only_as_its_keyed_hash_and_lives_like_its_session,
            a_tokens_binding_becomes_permanent_with_its_session,
            the_ip_log_costs_the_same_work_at_10_and_at_5000_entries,
            what_redis_holds_per_session_token_and_network
        );
    };
    (@each $backend:expr; $($scenario:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::support::redis_suite::$scenario(&$backend).await;
            }
        )*
    };
}

pub(crate) struct Counted {
    pub(crate) prefix: String,
    pub(crate) store: RedisStore,
    pub(crate) svc: TestService,
    pub(crate) monitors: Vec<Monitor>,
}

/// A store and service warmed up (scripts loaded, connections open), and a
/// `MONITOR` on every primary. Hold [`quiet`] while it is in use.
pub(crate) async fn counted<B: RedisBackend>(backend: &B, config: SessionConfig) -> Counted {
    let prefix = unique_prefix("count");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    store.load_scripts().await.unwrap();
    let svc = service(store.clone(), config, act);
    // Open the pool's connections with a few concurrent lookups.
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            let req = request().header(http::header::COOKIE, cookie_for(&SessionId::generate()));
            tokio::spawn(async move { send(&svc, req).await })
        })
        .collect();
    for w in warm {
        w.await.unwrap();
    }
    let monitors = backend
        .primaries()
        .into_iter()
        .map(Monitor::start)
        .collect();
    Counted {
        prefix,
        store,
        svc,
        monitors,
    }
}

impl Counted {
    /// Sends `req` and returns the response with what the store sent for it.
    pub(crate) async fn measure(
        &self,
        req: http::request::Builder,
    ) -> (http::Response<String>, Sent) {
        let monitors: Vec<&Monitor> = self.monitors.iter().collect();
        count(&monitors, send(&self.svc, req)).await
    }
}

fn only(command: &str, n: u64) -> Vec<(String, u64)> {
    vec![(command.to_owned(), n)]
}

fn sent(s: &Sent) -> Vec<(String, u64)> {
    s.commands.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

pub(crate) async fn returning_visitor_costs_one_round_trip<B: RedisBackend>(backend: &B) {
    let _quiet = quiet().await;
    let c = counted(backend, config()).await;
    let id = bound_id(&send(&c.svc, request()).await).unwrap();
    let (res, s) = c.measure(at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(
        sent(&s),
        only("evalsha", 1),
        "touch only: no PING, no UNWATCH"
    );
}

pub(crate) async fn response_with_changes_costs_one_more_round_trip<B: RedisBackend>(backend: &B) {
    let _quiet = quiet().await;
    let c = counted(backend, config()).await;
    let id = bound_id(&send(&c.svc, request()).await).unwrap();
    let (res, s) = c.measure(at("/write", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sent(&s), only("evalsha", 2), "touch + commit");
    let (_, s) = c.measure(at("/promote", Some(&id))).await;
    let network = u64::from(backend.network_apart());
    assert_eq!(
        sent(&s),
        only("evalsha", 2 + network),
        "touch + commit (promotion, counted in the network's statistics; \
         on a cluster by a call of its own)"
    );
    let (_, s) = c.measure(at("/promote", Some(&id))).await;
    assert_eq!(
        sent(&s),
        only("evalsha", 2),
        "promoted already: nothing counted"
    );
}

pub(crate) async fn new_visitor_costs_one_round_trip_with_or_without_data<B: RedisBackend>(
    backend: &B,
) {
    let _quiet = quiet().await;
    let c = counted(backend, config()).await;
    // On a cluster, counting the creation in its network's statistics is a
    // call of its own.
    let calls = 1 + u64::from(backend.network_apart());
    let (res, s) = c.measure(request()).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent(&s), only("evalsha", calls));
    let (res, s) = c.measure(at("/write", None)).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(
        sent(&s),
        only("evalsha", calls),
        "the creation carries the first data and the count"
    );
}

pub(crate) async fn privacy_visitor_without_cookie_costs_no_round_trip<B: RedisBackend>(
    backend: &B,
) {
    let _quiet = quiet().await;
    let c = counted(backend, config().privacy(PrivacyMode::Total)).await;
    let (res, s) = c.measure(request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(s.round_trips(), 0);
}

pub(crate) async fn malformed_cookie_costs_no_lookup<B: RedisBackend>(backend: &B) {
    let _quiet = quiet().await;
    let bad = "crisp-client%2Fsession%2Ftest=session_1234; crisp-client%2Fsession%2Ftest=x";
    let c = counted(backend, config().privacy(PrivacyMode::Total)).await;
    let (_, s) = c.measure(with_cookie(bad)).await;
    assert_eq!(s.round_trips(), 0, "privacy mode: no lookup, no creation");
    let c = counted(backend, config()).await;
    let (res, s) = c.measure(with_cookie(bad)).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(
        sent(&s),
        only("evalsha", 1 + u64::from(backend.network_apart())),
        "standard mode: the creation only"
    );
}

/// The commit checks the data limits against the size kept in the hash: its
/// work inside Redis does not grow with the number of keys stored.
pub(crate) async fn commit_cost_does_not_grow_with_the_session<B: RedisBackend>(backend: &B) {
    let _quiet = quiet().await;
    let c = counted(backend, config().max_keys(2000)).await;
    let id = SessionId::generate();
    let policy =
        StorePolicy::default().limits(visitor_session::store::DataLimits::new(2000, 1 << 20));
    let access = Access::now(None, &policy);
    let mut many = visitor_session::store::Changes::default();
    many.data = (0..1000)
        .map(|i| (format!("k{i}"), Some("\"value\"".to_owned())))
        .collect();
    c.store.create(&id, &access, &many, None).await.unwrap();
    let mut one = visitor_session::store::Changes::default();
    one.data = [("k1".to_owned(), Some("\"other\"".to_owned()))].into();
    let monitors: Vec<&Monitor> = c.monitors.iter().collect();
    let (committed, s) = count(&monitors, c.store.commit(&id, &access, &one)).await;
    assert_eq!(
        committed.unwrap(),
        visitor_session::store::Committed::Applied
    );
    assert_eq!(sent(&s), only("evalsha", 1));
    let internal: u64 = s.script_internal.values().sum();
    assert!(
        internal <= 4 && !s.script_internal.contains_key("hgetall"),
        "a one-key commit on a 1000-key session ran {:?}",
        s.script_internal
    );
}

pub(crate) async fn scripts_the_server_lost_are_sent_again_whole<B: RedisBackend>(backend: &B) {
    let _quiet = quiet().await;
    let c = counted(backend, config()).await;
    let id = bound_id(&send(&c.svc, request()).await).unwrap();
    backend.on_every_primary(&["SCRIPT", "FLUSH"]);
    let (res, s) = c.measure(at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(
        sent(&s),
        vec![("eval".to_owned(), 1), ("evalsha".to_owned(), 1)],
        "NOSCRIPT, then the whole script once"
    );
    let (_, s) = c.measure(at("/", Some(&id))).await;
    assert_eq!(sent(&s), only("evalsha", 1), "cached again");
}

pub(crate) async fn temporary_session_is_one_hash_with_the_idle_ttl<B: RedisBackend>(backend: &B) {
    let _traffic = super::redis_servers::traffic().await;
    let prefix = unique_prefix("layout");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    let svc = service(store, config().idle_ttl(Duration::from_secs(30)), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let [hash, log, _] = keys_of(&prefix, &id);
    let fields: std::collections::HashMap<String, String> = query(backend, &["HGETALL", &hash]);
    let meta: Vec<&str> = fields["m"].split(',').collect();
    assert_eq!(meta[0], "t", "temporary");
    let created: u64 = meta[1].parse().unwrap();
    assert!(
        created.abs_diff(Access::now_ms()) < 60_000,
        "created {created}"
    );
    assert_eq!(
        meta[2..],
        ["1", "11"],
        "one key of 4 + 7 bytes: \"note\", \"\\\"hello\\\"\""
    );
    assert_eq!(fields["i"], PEER, "the client IP");
    assert!(
        !fields.contains_key("s"),
        "a temporary session's last access is its TTL"
    );
    assert_eq!(fields["d:note"], "\"hello\"");
    let pttl: i64 = query(backend, &["PTTL", &hash]);
    assert!(pttl > 29_000 && pttl <= 30_000, "PTTL {pttl}");
    assert_eq!(
        query::<i64, _>(backend, &["EXISTS", &log]),
        0,
        "no IP log while temporary"
    );
}

/// A temporary session keeps its latest access in its TTL and its IP in `i`:
/// a visitor who stays on one address costs Redis two commands (read,
/// slide); one who moves, three (and the new IP is recorded).
pub(crate) async fn returning_visit_records_a_changed_ip_and_slides_the_ttl<B: RedisBackend>(
    backend: &B,
) {
    let _quiet = quiet().await;
    let c = counted(backend, config().idle_ttl(Duration::from_secs(30))).await;
    let id = bound_id(&send(&c.svc, request()).await).unwrap();
    let (_, same) = c.measure(at("/", Some(&id))).await;
    assert_eq!(
        same.script_internal.keys().collect::<Vec<_>>(),
        ["hgetall", "pexpire"],
        "{same:?}"
    );
    let moved =
        from_ip("2001:db8::9".parse().unwrap()).header(http::header::COOKIE, cookie_for(&id));
    let (res, moved) = c.measure(moved).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(moved.script_internal.get("hset"), Some(&1), "{moved:?}");
    let key = format!("{}{{{}}}", c.prefix, id.uuid_str());
    let ip: String = query(backend, &["HGET", &key, "i"]);
    assert_eq!(ip, "2001:db8::9");
    let pttl: i64 = query(backend, &["PTTL", &key]);
    assert!(pttl > 29_000, "slid back to the full idle TTL: {pttl}");
}

pub(crate) async fn permanent_session_has_no_ttl<B: RedisBackend>(backend: &B) {
    let _traffic = super::redis_servers::traffic().await;
    let prefix = unique_prefix("permanent");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    let svc = service(store, config().idle_ttl(Duration::from_secs(30)), act);
    let id = bound_id(&send(&svc, at("/", None)).await).unwrap();
    send(&svc, at("/promote", Some(&id))).await;
    let [hash, log, _] = keys_of(&prefix, &id);
    assert_eq!(query::<i64, _>(backend, &["PTTL", &hash]), -1);
    assert_eq!(query::<i64, _>(backend, &["PTTL", &log]), -1);
    let meta: String = query(backend, &["HGET", &hash, "m"]);
    assert!(meta.starts_with("p,"), "permanent: {meta}");
    let seen: u64 = query(backend, &["HGET", &hash, "s"]);
    assert!(
        seen.abs_diff(Access::now_ms()) < 60_000,
        "the latest access: {seen}"
    );
}

/// Round trips of requests with a continuity token (SPEC §3.7), counted
/// with `MONITOR`: the token's key is its own slot, so resolving it is a
/// call apart from the session's on every deployment.
pub(crate) async fn continuity_tokens_cost_what_the_readme_says<B: RedisBackend>(backend: &B) {
    use super::continuity::{ALICE, as_user, with_tokens};
    let _quiet = quiet().await;
    let c = counted(backend, with_tokens(config())).await;
    let apart = u64::from(backend.network_apart());
    // A visitor without a token pays nothing for the feature.
    let id = bound_id(&send(&c.svc, request()).await).unwrap();
    let (_, s) = c.measure(at("/", Some(&id))).await;
    assert_eq!(sent(&s), only("evalsha", 1), "no token: the touch only");
    // The token adopts the browser's session under a new id: resolve,
    // reserve the new id in the binding, rename.
    let (res, s) = c.measure(as_user("/", Some(&id), ALICE)).await;
    let adopted = bound_id(&res).unwrap();
    assert_ne!(adopted, id);
    assert_eq!(
        sent(&s),
        only("evalsha", 3),
        "token_session, bind_token, cycle"
    );
    // A returning visitor with the token: resolve, then touch.
    let (res, s) = c.measure(as_user("/", Some(&adopted), ALICE)).await;
    assert_eq!(bound_id(&res), Some(adopted));
    assert_eq!(sent(&s), only("evalsha", 2), "resolve, then touch");
    // The user's other device, no cookie yet: the same two calls.
    let (res, s) = c.measure(as_user("/", None, ALICE)).await;
    assert_eq!(bound_id(&res), Some(adopted));
    assert_eq!(sent(&s), only("evalsha", 2));
    // Its cookie without the token: the touch refuses it, a fresh session.
    let (res, s) = c.measure(at("/", Some(&adopted))).await;
    assert_ne!(bound_id(&res), Some(adopted));
    assert_eq!(sent(&s), only("evalsha", 2 + apart), "touch, create");
    // A token never seen, no cookie: resolve (nothing), reserve, then
    // create at the response (+ the network's count apart).
    let (res, s) = c.measure(as_user("/", None, "carol-0a1b2c3d4e5f")).await;
    assert!(bound_id(&res).is_some());
    assert_eq!(sent(&s), only("evalsha", 3 + apart));
    // `cycle_id()`: the commit's call, then the rename and the binding's.
    let (res, s) = c.measure(as_user("/cycle", Some(&adopted), ALICE)).await;
    assert_ne!(bound_id(&res), Some(adopted));
    assert_eq!(
        sent(&s),
        only("evalsha", 4),
        "resolve, touch, cycle, bind_token"
    );
}

/// The store holds the token's keyed hash, never the token; its key lives
/// like its session and goes with agent deletion.
pub(crate) async fn a_token_is_kept_only_as_its_keyed_hash_and_lives_like_its_session<
    B: RedisBackend,
>(
    backend: &B,
) {
    use super::continuity::{ALICE, as_user, with_tokens};
    let _traffic = super::redis_servers::traffic().await;
    let prefix = unique_prefix("token");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    let config = with_tokens(config()).idle_ttl(Duration::from_secs(30));
    let svc = service(store.clone(), config, act);
    let id = bound_id(&send(&svc, as_user("/write", None, ALICE)).await).unwrap();
    let token_keys = || -> Vec<String> {
        backend
            .primaries()
            .into_iter()
            .flat_map(|p| p.query::<Vec<String>>(&["KEYS", &format!("{prefix}tok:*")]))
            .collect()
    };
    let keys = token_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(
        key.len(),
        prefix.len() + "tok:{}".len() + 64,
        "a SHA-256, in hex: {key}"
    );
    let value: String = query(backend, &["GET", key]);
    assert_eq!(value, format!("t:{}", id.as_str()));
    let pttl: i64 = query(backend, &["PTTL", key]);
    assert!(
        pttl > 29_000 && pttl <= 30_000,
        "the idle TTL, like its session: {pttl}"
    );
    // Nothing under the prefix names the token itself.
    let everything: Vec<String> = backend
        .primaries()
        .into_iter()
        .flat_map(|p| {
            let keys: Vec<String> = p.query(&["KEYS", &format!("{prefix}*")]);
            keys.into_iter().flat_map(move |k| {
                let kind: String = p.query(&["TYPE", &k]);
                let mut all: Vec<String> = match kind.as_str() {
                    "hash" => p.query(&["HGETALL", &k]),
                    "string" => vec![p.query(&["GET", &k])],
                    _ => vec![],
                };
                all.push(k);
                all
            })
        })
        .collect();
    assert!(everything.iter().all(|text| !text.contains(ALICE)));
    send(&svc, as_user("/promote", Some(&id), ALICE)).await;
    assert_eq!(
        query::<i64, _>(backend, &["PTTL", key]),
        -1,
        "kept with a permanent session"
    );
    let value: String = query(backend, &["GET", key]);
    assert!(value.starts_with("p:"), "{value}");
    assert!(delete_session(&store, &id).await.unwrap());
    assert!(token_keys().is_empty(), "deleted with its session");
}

/// The binding of a token lives like its session also when the session is
/// visited without the token (page loads that do not carry it), and a
/// promotion repeated (as after a lost reply) makes it permanent.
pub(crate) async fn a_tokens_binding_becomes_permanent_with_its_session<B: RedisBackend>(
    backend: &B,
) {
    use super::continuity::{ALICE, as_user, with_tokens};
    let _traffic = super::redis_servers::traffic().await;
    let prefix = unique_prefix("token-life");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    let config = with_tokens(config())
        .idle_ttl(Duration::from_secs(30))
        .permanent_retention(Some(Duration::from_secs(60)));
    let svc = service(store.clone(), config, act);
    let id = bound_id(&send(&svc, as_user("/write", None, ALICE)).await).unwrap();
    let token_key = || -> String {
        let keys: Vec<String> = backend
            .primaries()
            .into_iter()
            .flat_map(|p| p.query::<Vec<String>>(&["KEYS", &format!("{prefix}tok:*")]))
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        keys[0].clone()
    };
    let key = token_key();
    let [hash, ..] = keys_of(&prefix, &id);
    // A lost upgrade: the session is permanent, its binding still temporary.
    send(&svc, as_user("/promote", Some(&id), ALICE)).await;
    let _: () = query(
        backend,
        &["SET", &key, &format!("t:{}", id.as_str()), "PX", "30000"],
    );
    // The next visit with the token makes it permanent, with the retention.
    let res = send(&svc, as_user("/", Some(&id), ALICE)).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!(
        query::<String, _>(backend, &["GET", &key]),
        format!("p:{}", id.as_str()),
        "the binding lives like its permanent session"
    );
    let session: i64 = query(backend, &["PTTL", &hash]);
    let binding: i64 = query(backend, &["PTTL", &key]);
    assert!(
        session > 59_000 && (session - binding).abs() < 500,
        "session {session} ms, binding {binding} ms"
    );
    // An agent deletion run twice leaves no binding behind.
    assert!(delete_session(&store, &id).await.unwrap());
    assert!(!delete_session(&store, &id).await.unwrap());
    let left: Vec<String> = backend
        .primaries()
        .into_iter()
        .flat_map(|p| p.query::<Vec<String>>(&["KEYS", &format!("{prefix}*")]))
        .filter(|k| !k.starts_with(&format!("{prefix}net:")))
        .collect();
    assert!(
        left.is_empty(),
        "only the network's counts remain: {left:?}"
    );
}

/// The test binary's shared standalone server.
#[derive(Clone, Copy)]
pub(crate) struct Standalone;

impl RedisBackend for Standalone {
    fn config(&self) -> RedisConfig {
        RedisConfig::new(RedisServer::shared().url())
    }

    fn primaries(&self) -> Vec<&'static RedisServer> {
        vec![RedisServer::shared()]
    }

    fn conn(&self) -> Box<dyn ConnectionLike + Send> {
        Box::new(RedisServer::shared().conn())
    }
}

/// The test binary's shared standalone server, through an application's
/// deadpool-redis pool (`RedisConfig::from_source`): a fresh pool per store,
/// built as an application builds it.
#[cfg(feature = "deadpool-redis")]
#[derive(Clone, Copy)]
pub(crate) struct StandalonePool;

#[cfg(feature = "deadpool-redis")]
impl RedisBackend for StandalonePool {
    fn config(&self) -> RedisConfig {
        RedisConfig::from_source(app_pool(&RedisServer::shared().url()))
    }

    fn primaries(&self) -> Vec<&'static RedisServer> {
        vec![RedisServer::shared()]
    }

    fn conn(&self) -> Box<dyn ConnectionLike + Send> {
        Box::new(RedisServer::shared().conn())
    }
}

/// A deadpool-redis pool on `url`, with deadpool-redis's defaults, as an
/// application builds it from its settings.
#[cfg(feature = "deadpool-redis")]
pub(crate) fn app_pool(url: &str) -> deadpool_redis::Pool {
    deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("a deadpool-redis pool")
}

/// The test binary's shared Redis Cluster.
#[derive(Clone, Copy)]
pub(crate) struct Cluster;

impl RedisBackend for Cluster {
    fn config(&self) -> RedisConfig {
        RedisConfig::cluster(RedisCluster::shared().urls())
    }

    fn primaries(&self) -> Vec<&'static RedisServer> {
        RedisCluster::shared().primaries()
    }

    fn conn(&self) -> Box<dyn ConnectionLike + Send> {
        Box::new(RedisCluster::shared().conn())
    }

    fn network_apart(&self) -> bool {
        true
    }
}

/// The test binary's shared Redis Cluster, through an application's
/// deadpool-redis cluster pool (`RedisConfig::from_source`).
#[cfg(all(feature = "deadpool-redis", feature = "cluster"))]
#[derive(Clone, Copy)]
pub(crate) struct ClusterPool;

#[cfg(all(feature = "deadpool-redis", feature = "cluster"))]
impl RedisBackend for ClusterPool {
    fn config(&self) -> RedisConfig {
        let pool = deadpool_redis::cluster::Config::from_urls(RedisCluster::shared().urls())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("a deadpool-redis cluster pool");
        RedisConfig::from_source(pool)
    }

    fn primaries(&self) -> Vec<&'static RedisServer> {
        RedisCluster::shared().primaries()
    }

    fn conn(&self) -> Box<dyn ConnectionLike + Send> {
        Box::new(RedisCluster::shared().conn())
    }

    fn network_apart(&self) -> bool {
        true
    }
}

/// The test binary's shared primary + replica + Sentinel.
#[derive(Clone, Copy)]
pub(crate) struct Sentinel;

impl RedisBackend for Sentinel {
    fn config(&self) -> RedisConfig {
        let setup = RedisSentinel::shared();
        RedisConfig::sentinel(setup.sentinel_urls(), SENTINEL_MASTER)
            .primary_credentials(None, &setup.password)
    }

    fn primaries(&self) -> Vec<&'static RedisServer> {
        vec![RedisSentinel::shared().primary()]
    }

    fn conn(&self) -> Box<dyn ConnectionLike + Send> {
        Box::new(RedisSentinel::shared().primary().conn())
    }
}

/// SPEC §3.3: recording an access costs O(log n) in the IP log's size: the
/// commands a touch runs inside Redis (`MONITOR`'s `lua` lines) are the same
/// for a log of 10 addresses and one of 5 000, with a retention set (the
/// case that used to read the whole log).
pub(crate) async fn the_ip_log_costs_the_same_work_at_10_and_at_5000_entries<B: RedisBackend>(
    backend: &B,
) {
    let _quiet = quiet().await;
    let c = counted(backend, config()).await;
    let policy = StorePolicy::default()
        .ip_log_max_entries(10_000)
        .ip_log_retention(Some(Duration::from_secs(400 * 24 * 3600)));
    let monitors: Vec<&Monitor> = c.monitors.iter().collect();
    let mut work = Vec::new();
    for size in [10u32, 5_000] {
        let id = SessionId::generate();
        let now = Access::now_ms();
        let first = Access::new(Some("192.0.2.1".parse().unwrap()), now, &policy);
        let mut promote = visitor_session::store::Changes::default();
        promote.promote = true;
        c.store.create(&id, &first, &promote, None).await.unwrap();
        // Fill the log to `size` addresses, seen a moment ago.
        let [_, first_seen, last_seen] = keys_of(&c.prefix, &id);
        let ips: Vec<String> = (1..size)
            .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        let at = (now - 1).to_string();
        let mut zadd = vec!["ZADD".to_owned(), last_seen.clone()];
        let mut hset = vec!["HSET".to_owned(), first_seen.clone()];
        for ip in &ips {
            zadd.extend([at.clone(), ip.clone()]);
            hset.extend([ip.clone(), at.clone()]);
        }
        let _: i64 = query(
            backend,
            &zadd.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let _: i64 = query(
            backend,
            &hset.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(
            query::<i64, _>(backend, &["ZCARD", &last_seen]),
            i64::from(size)
        );
        // One access from an address already logged, one from a new one.
        let mut counted = Vec::new();
        for ip in ["10.0.0.5", "198.51.100.200"] {
            let access = Access::new(Some(ip.parse().unwrap()), now + 1, &policy);
            let (touched, s) = count(&monitors, c.store.touch(&id, &access)).await;
            assert!(touched.unwrap().is_some());
            assert_eq!(sent(&s), only("evalsha", 1));
            counted.push(s.script_internal.clone());
        }
        work.push(counted);
    }
    assert_eq!(
        work[0], work[1],
        "the same commands at 10 and at 5 000 entries"
    );
    assert!(
        !work[1]
            .iter()
            .any(|w| w.contains_key("hgetall") && w["hgetall"] > 1),
        "no scan of the log: {:?}",
        work[1]
    );
}

/// The capacity model's figures (README "Capacity"): `MEMORY USAGE` of what
/// one temporary session, one permanent session with 1 and with 50 IP-log
/// entries, one token binding and one network's statistics hold, printed,
/// and held under the bounds the README states.
pub(crate) async fn what_redis_holds_per_session_token_and_network<B: RedisBackend>(backend: &B) {
    use super::continuity::{ALICE, as_user, with_tokens};
    let _traffic = super::redis_servers::traffic().await;
    let prefix = unique_prefix("memory");
    let store = RedisStore::new(backend.config().key_prefix(prefix.as_str())).unwrap();
    let svc = service(store.clone(), with_tokens(config()), act);
    let usage = |key: &str| -> i64 {
        query::<Option<i64>, _>(backend, &["MEMORY", "USAGE", key, "SAMPLES", "0"]).unwrap_or(0)
    };
    let session = |id: &SessionId| -> i64 { keys_of(&prefix, id).iter().map(|k| usage(k)).sum() };
    // A visitor who never chats: one small hash with its IP and a key.
    let temporary = bound_id(&send(&svc, at("/write", None)).await).unwrap();
    let permanent = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
    let one_ip = session(&permanent);
    for i in 0..49 {
        let ip: std::net::IpAddr = format!("198.51.100.{i}").parse().unwrap();
        send(
            &svc,
            from_ip(ip).header(http::header::COOKIE, cookie_for(&permanent)),
        )
        .await;
    }
    let fifty_ips = session(&permanent);
    bound_id(&send(&svc, as_user("/write", None, ALICE)).await).unwrap();
    let token_keys: Vec<String> = backend
        .primaries()
        .into_iter()
        .flat_map(|p| p.query::<Vec<String>>(&["KEYS", &format!("{prefix}tok:*")]))
        .collect();
    let network_keys: Vec<String> = backend
        .primaries()
        .into_iter()
        .flat_map(|p| p.query::<Vec<String>>(&["KEYS", &format!("{prefix}net:*")]))
        .collect();
    let (temporary, token, network) = (
        session(&temporary),
        usage(&token_keys[0]),
        usage(&network_keys[0]),
    );
    eprintln!(
        "redis memory: temporary session {temporary} B, permanent with 1 IP {one_ip} B, \
         with 50 IPs {fifty_ips} B, token binding {token} B, network statistics {network} B"
    );
    assert!(
        temporary > 0 && temporary <= 256,
        "temporary session: {temporary} B"
    );
    assert!(one_ip <= 768, "permanent session with one IP: {one_ip} B");
    assert!(
        fifty_ips <= 8 * 1024,
        "permanent session with 50 IPs: {fifty_ips} B"
    );
    assert!(token > 0 && token <= 256, "token binding: {token} B");
    assert!(
        network > 0 && network <= 256,
        "network statistics: {network} B"
    );
}

/// A commit that `server` stalls (`CLIENT PAUSE … WRITE`) past `store`'s
/// command timeout (set under one second) is reported as "outcome unknown",
/// never as "not written"; it is indeed applied once the server resumes,
/// and repeating it, as a client would, leaves the same result. Shared by
/// the store's own connections and an application's pool.
pub(crate) async fn a_stalled_commit_is_an_unknown_outcome_then_applied(
    store: &RedisStore,
    server: &RedisServer,
) {
    use std::time::Instant;
    use visitor_session::StoreErrorKind;
    use visitor_session::store::{Changes, Committed};
    let policy = StorePolicy::default().idle_ttl(Duration::from_secs(60));
    let access = || Access::now(None, &policy);
    store.load_scripts().await.unwrap();
    let id = SessionId::generate();
    let created = store
        .create(&id, &access(), &Changes::default(), None)
        .await;
    assert!(created.is_ok());
    let write = Changes::default().set("late", "1");
    let _: () = server.query(&["CLIENT", "PAUSE", "1000", "WRITE"]);
    let err = store.commit(&id, &access(), &write).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::OutcomeUnknown);
    let _: () = server.query(&["CLIENT", "UNPAUSE"]);
    // The paused commit runs once the server resumes.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let record = store.touch(&id, &access()).await.unwrap().unwrap();
        if record.data.get("late").map(String::as_str) == Some("1") {
            break;
        }
        assert!(Instant::now() < deadline, "the write was not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.commit(&id, &access(), &write).await.unwrap(),
        Committed::Applied
    );
}
