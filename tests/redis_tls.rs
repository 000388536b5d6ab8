//! `RedisStore` over TLS (`rediss://`, feature `tls`, SPEC §4) against a
//! redis-server that speaks only TLS, with certificates the test makes: a
//! conversation works through the layer, and a server whose certificate the
//! configured CA does not sign gets nothing, never a plain-text fallback.
#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use support::tls::{Certificates, TlsRedisServer};
use support::*;
use visitor_session::store::{RedisConfig, RedisStore, SessionStore};
use visitor_session::{FailureMode, SessionState};

fn store(url: String, ca: Option<Vec<u8>>) -> RedisStore {
    let config = RedisConfig::new(url)
        .tls_ca(ca)
        .connect_timeout(Duration::from_millis(500));
    RedisStore::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_tls_keeps_its_session_and_data() {
    let certs = Certificates::make("conversation");
    let server = TlsRedisServer::start(&certs);
    let store = store(server.url(), Some(certs.ca_pem()));
    store.load_scripts().await.unwrap();
    let svc = service(store.clone(), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).expect("a session");
    let res = send(&svc, at("/promote", Some(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen(&send(&svc, at("/", Some(&id))).await);
    assert_eq!(seen["store_error"], Value::Null);
    assert_eq!(seen["note"], "hello");
    assert_eq!(seen["state"], "permanent");
    let log = store
        .ip_log(&id)
        .await
        .unwrap()
        .expect("a permanent session's IP log");
    assert_eq!(log.entries.len(), 1);
    assert_eq!(log.entries[0].ip.to_string(), PEER);
    // What the server holds, read over a connection of our own.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("vs:*")
        .query(&mut server.conn(&certs).unwrap())
        .unwrap();
    assert!(
        keys.contains(&format!("vs:{{{}}}", id.uuid_str())),
        "{keys:?}"
    );
    let record = store
        .touch(
            &id,
            &visitor_session::store::Access::now(None, &Default::default()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, SessionState::Permanent);
}

/// The CA configured is not the one that signed the server's certificate:
/// the handshake fails, the layer serves without a session (fail-open) or
/// answers 503 (fail-closed), a write is never reported as written, and the
/// server runs not one command of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_the_ca_does_not_sign_gets_nothing() {
    let certs = Certificates::make("server");
    let other = Certificates::make("other");
    let server = TlsRedisServer::start(&certs);
    let before = server.commands_processed(&certs);
    let store = store(server.url(), Some(other.ca_pem()));
    let err = store.load_scripts().await.unwrap_err();
    assert_eq!(err.kind(), visitor_session::StoreErrorKind::Unavailable);
    let cause = std::error::Error::source(&err)
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(cause.to_lowercase().contains("certificate"), "{cause}");

    let open = service(store.clone(), config(), act);
    let res = send(&open, at("/", None)).await;
    assert_eq!(res.status(), StatusCode::OK, "fail-open: served");
    assert!(set_cookies(&res).is_empty(), "no session, no cookie");
    assert_eq!(
        send(&open, at("/write", None)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a write is never reported as written"
    );
    let closed = service(store, config().failure_mode(FailureMode::Closed), act);
    assert_eq!(
        send(&closed, at("/", None)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Only the INFO of each reading ran: nothing of the store's.
    assert_eq!(server.commands_processed(&certs), before + 1);
}

/// Without a CA the store trusts the system's roots (as managed Redis needs),
/// which do not include the test's private CA: refused, not accepted blindly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_the_systems_roots_decide_and_a_private_ca_is_not_among_them() {
    let certs = Certificates::make("roots");
    let server = TlsRedisServer::start(&certs);
    let store = store(server.url(), None);
    let err = store.load_scripts().await.unwrap_err();
    assert_eq!(err.kind(), visitor_session::StoreErrorKind::Unavailable);
}

#[test]
fn a_ca_with_a_plain_text_url_is_refused_at_start_up() {
    let certs = Certificates::make("plain");
    let err =
        RedisStore::new(RedisConfig::new("redis://localhost:6379").tls_ca(Some(certs.ca_pem())))
            .unwrap_err();
    assert_eq!(err.setting(), "tls_ca");
    assert!(err.to_string().contains("plain text"), "{err}");
}

#[test]
fn a_ca_that_is_not_pem_is_refused_at_start_up() {
    let err = RedisStore::new(
        RedisConfig::new("rediss://localhost:6380").tls_ca(Some(b"not a certificate".to_vec())),
    )
    .unwrap_err();
    assert_eq!(err.setting(), "tls_ca");
    assert!(err.to_string().contains("no certificate"), "{err}");
}

/// The same over a Redis Cluster whose nodes speak only TLS (the cluster bus
/// too): every node, the discovered ones included, is checked against the
/// CA; another CA gets nothing.
#[cfg(feature = "cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_tls_on_a_cluster() {
    let certs = Certificates::make("cluster");
    let cluster = tokio::task::block_in_place(|| support::tls::TlsCluster::start(&certs));
    // One node named: the others are discovered, over TLS, with the same CA.
    let one = &cluster.urls()[..1];
    let store = RedisStore::new(RedisConfig::cluster(one).tls_ca(Some(certs.ca_pem()))).unwrap();
    let svc = service(store, config(), act);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(bound_id(&send(&svc, at("/write", None)).await).expect("a session"));
    }
    for id in &ids {
        let seen = seen(&send(&svc, at("/", Some(id))).await);
        assert_eq!(seen["store_error"], Value::Null);
        assert_eq!(seen["note"], "hello");
    }
    let other = Certificates::make("cluster-other");
    let wrong = RedisConfig::cluster(cluster.urls()).tls_ca(Some(other.ca_pem()));
    let err = RedisStore::new(wrong.connect_timeout(Duration::from_millis(500)))
        .unwrap()
        .load_scripts()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), visitor_session::StoreErrorKind::Unavailable);
}

/// Sentinel over TLS: the Sentinel and the primary it names both speak only
/// TLS, both checked against the CA.
#[cfg(feature = "sentinel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_tls_through_sentinel() {
    let certs = Certificates::make("sentinel");
    let setup = tokio::task::block_in_place(|| support::tls::TlsSentinel::start(&certs));
    let sentinel =
        RedisConfig::sentinel([setup.sentinel_url()], "mymaster").tls_ca(Some(certs.ca_pem()));
    let svc = service(RedisStore::new(sentinel).unwrap(), config(), act);
    let id = bound_id(&send(&svc, at("/write", None)).await).expect("a session");
    let seen = seen(&send(&svc, at("/", Some(&id))).await);
    assert_eq!(seen["note"], "hello");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("vs:*")
        .query(&mut setup.primary.conn(&certs).unwrap())
        .unwrap();
    assert!(
        keys.contains(&format!("vs:{{{}}}", id.uuid_str())),
        "{keys:?}"
    );
}
