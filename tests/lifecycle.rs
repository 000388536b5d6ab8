//! Session lifecycle through the layer on the embedded store (SPEC §3.1,
//! §3.2, §3.5): what the layer itself decides (store calls per request,
//! cookies, privacy mode, consent, reset within a request). What every store
//! must do is in the conformance suite (`support/conformance.rs`), run on
//! each store.

mod support;

use std::time::Duration;
use visitor_session::store::delete_session;

use http::StatusCode;
use support::*;
use visitor_session::store::{IpLog, SessionStore};
use visitor_session::{PrivacyMode, SessionState};

/// A handler that does what the request path says.
fn actions(store: TestStore, config: visitor_session::SessionConfig) -> TestService {
    service(store, config, |session, req| async move {
        let path = req.uri().path().to_owned();
        let result = match path.as_str() {
            "/promote" => session.promote(),
            "/start" => session.start(),
            "/reset" => {
                session.reset().unwrap();
                Ok(())
            }
            "/write" => session.insert("note", "hello"),
            "/promote-then-reset" => {
                session.promote().unwrap();
                session.reset().unwrap();
                Ok(())
            }
            "/reset-then-write" => {
                session.reset().unwrap();
                session.insert("note", "fresh")
            }
            _ => Ok(()),
        };
        serde_json::json!({
            "error": result.err().map(|e| e.to_string()),
            "state": session.state().map(|s| s.as_str()),
            "note": session.get::<String>("note").unwrap(),
        })
        .to_string()
    })
}

fn setup(config: visitor_session::SessionConfig) -> (TestStore, TestService) {
    let store = TestStore::default();
    let svc = actions(store.clone(), config);
    (store, svc)
}

#[tokio::test(start_paused = true)]
async fn new_visitor_gets_a_temporary_session_in_one_store_call() {
    let (store, svc) = setup(config());
    let res = send(&svc, request()).await;
    let id = bound_id(&res).expect("standard mode sets the cookie on the first visit");
    assert_eq!(
        store.inner.peek(&id).map(|p| p.0),
        Some(SessionState::Temporary)
    );
    assert_eq!((store.calls("create"), store.total()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn returning_visitor_keeps_the_session_in_one_store_call() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id));
    assert_eq!((store.calls("touch"), store.total()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn cookie_is_renewed_with_full_max_age_on_every_visit() {
    // SPEC §2 renewal.
    let (_, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    for _ in 0..3 {
        let res = send(&svc, at("/", Some(&id))).await;
        let cookies = set_cookies(&res);
        assert_eq!(cookies.len(), 1);
        assert!(cookies[0].contains("Max-Age=15768000"), "{}", cookies[0]);
        assert!(cookies[0].contains("Domain=example.com"), "{}", cookies[0]);
    }
}

#[tokio::test(start_paused = true)]
async fn changes_cost_one_more_store_call() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    send(&svc, at("/write", Some(&id))).await;
    assert_eq!(
        (store.calls("touch"), store.calls("commit"), store.total()),
        (1, 1, 3)
    );
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(seen(&res)["note"], "hello");
}

#[tokio::test(start_paused = true)]
async fn new_visitor_with_writes_is_still_one_store_call() {
    let (store, svc) = setup(config());
    let res = send(&svc, at("/write", None)).await;
    let id = bound_id(&res).unwrap();
    assert_eq!(store.total(), 1);
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(seen(&res)["note"], "hello");
}

#[tokio::test(start_paused = true)]
async fn promoted_session_does_not_expire() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, at("/promote", Some(&id))).await;
    assert_eq!(seen(&res)["state"], "permanent");
    tokio::time::advance(Duration::from_secs(400 * 24 * 3600)).await;
    assert_eq!(
        store.inner.peek(&id).map(|p| p.0),
        Some(SessionState::Permanent)
    );
    assert_eq!(bound_id(&send(&svc, at("/", Some(&id))).await), Some(id));
}

#[tokio::test(start_paused = true)]
async fn promote_is_idempotent() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    for _ in 0..3 {
        let res = send(&svc, at("/promote", Some(&id))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(bound_id(&res), Some(id));
    }
    assert_eq!(
        store.inner.peek(&id).map(|p| p.0),
        Some(SessionState::Permanent)
    );
}

#[tokio::test(start_paused = true)]
async fn privacy_mode_without_cookie_makes_no_store_call_and_sets_no_cookie() {
    // SPEC §3.2 total privacy mode.
    let (store, svc) = setup(config().privacy(PrivacyMode::Total));
    let res = send(&svc, request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(seen(&res)["state"], serde_json::Value::Null, "no session");
    assert_eq!(store.total(), 0);
    assert!(store.inner.is_empty());
}

#[tokio::test(start_paused = true)]
async fn privacy_mode_start_creates_the_session() {
    let (store, svc) = setup(config().privacy(PrivacyMode::Total));
    let res = send(&svc, at("/start", None)).await;
    let id = bound_id(&res).expect("start() sets the cookie");
    assert_eq!(store.calls("create"), 1);
    assert!(store.inner.peek(&id).is_some());
}

#[tokio::test(start_paused = true)]
async fn privacy_mode_first_write_creates_the_session() {
    let (store, svc) = setup(config().privacy(PrivacyMode::Total));
    let res = send(&svc, at("/write", None)).await;
    let id = bound_id(&res).expect("a write starts the session");
    assert_eq!(store.total(), 1);
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(seen(&res)["note"], "hello");
}

#[tokio::test(start_paused = true)]
async fn privacy_mode_honours_an_existing_cookie() {
    let (store, svc) = setup(config().privacy(PrivacyMode::Total));
    let id = bound_id(&send(&svc, at("/start", None)).await).unwrap();
    let res = send(&svc, at("/", Some(&id))).await;
    assert_eq!(bound_id(&res), Some(id), "renewed like in standard mode");
    assert_eq!(store.calls("touch"), 1);
}

#[tokio::test(start_paused = true)]
async fn consent_gate_withheld_behaves_as_privacy_mode() {
    let gated = config().consent(|parts| {
        parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains("consent=yes")))
    });
    let (store, svc) = setup(gated);
    let res = send(&svc, request()).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(store.total(), 0);
    let res = send(&svc, request().header(http::header::COOKIE, "consent=yes")).await;
    assert!(
        bound_id(&res).is_some(),
        "consent given: created as in standard mode"
    );
    let res = send(&svc, at("/start", None)).await;
    assert!(
        bound_id(&res).is_some(),
        "without consent the handler may still start one"
    );
}

#[tokio::test(start_paused = true)]
async fn write_after_reset_binds_a_fresh_session() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, at("/reset-then-write", Some(&id))).await;
    let fresh = bound_id(&res).expect("the new session's cookie replaces the old one");
    assert_ne!(fresh, id);
    assert_eq!(store.inner.peek(&id), None);
    assert!(store.inner.peek(&fresh).is_some());
}

#[tokio::test(start_paused = true)]
async fn dead_cookie_in_privacy_mode_is_removed() {
    let (store, svc) = setup(config().privacy(PrivacyMode::Total));
    let id = bound_id(&send(&svc, at("/start", None)).await).unwrap();
    delete_session(&store, &id).await.unwrap();
    let res = send(&svc, at("/", Some(&id))).await;
    assert!(removes_cookie(&res));
    assert_eq!(bound_id(&res), None);
}

#[tokio::test(start_paused = true)]
async fn temporary_session_keeps_no_ip_log() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    send(&svc, at("/", Some(&id))).await;
    assert_eq!(store.ip_log(&id).await.unwrap(), Some(IpLog::default()));
}

#[tokio::test(start_paused = true)]
async fn session_records_the_current_ip() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let other: std::net::IpAddr = "198.51.100.4".parse().unwrap();
    send(
        &svc,
        from_ip(other).header(http::header::COOKIE, cookie_for(&id)),
    )
    .await;
    assert_eq!(store.inner.peek(&id).unwrap().1, Some(other));
}

#[tokio::test(start_paused = true)]
async fn reset_after_promote_in_the_same_request_deletes_the_temporary_session() {
    let (store, svc) = setup(config());
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, at("/promote-then-reset", Some(&id))).await;
    assert!(removes_cookie(&res));
    assert_eq!(
        store.inner.peek(&id),
        None,
        "the promotion was never stored"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_cookie_is_cleared_when_no_new_session_can_be_made() {
    let limit = visitor_session::NewSessionLimit::new(1, Duration::from_secs(60))
        .action(visitor_session::LimitAction::Skip);
    let (_, svc) = setup(config().new_session_limit(Some(limit)));
    send(&svc, request()).await;
    let res = send(&svc, at("/", Some(&visitor_session::SessionId::generate()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(removes_cookie(&res), "{:?}", set_cookies(&res));
}

#[tokio::test(start_paused = true)]
async fn malformed_continuity_tokens_are_ignored_as_if_absent() {
    // SPEC §3.7: 16 to 256 visible ASCII characters, else ignored, never an error page.
    use support::continuity::{TOKEN_HEADER, with_tokens};
    let (store, svc) = setup(with_tokens(config()));
    let long = "x".repeat(257);
    let bad: [&[u8]; 4] = [
        b"too-short",
        long.as_bytes(),
        b"with spaces inside it",
        b"\xff\xfe-not-utf8-at-all",
    ];
    for token in bad {
        let value = http::HeaderValue::from_bytes(token).unwrap();
        let res = send(&svc, request().header(TOKEN_HEADER, value)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            bound_id(&res).is_some(),
            "a fresh session, as without a token"
        );
    }
    assert_eq!(
        store.calls("token_session"),
        0,
        "no token reached the store"
    );
    assert_eq!(store.calls("create"), 4);
    let res = send(
        &svc,
        request().header(TOKEN_HEADER, "a-well-formed-token-1"),
    )
    .await;
    assert!(bound_id(&res).is_some());
    assert_eq!(store.calls("token_session"), 1);
}
