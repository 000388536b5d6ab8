//! Session continuity tokens (SPEC §3.7), part of the store conformance
//! suite: every rule, on every store.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::harness::*;
use super::{Backend, Case};
use crate::store::delete_session;
use crate::{ContinuityTokens, PrivacyMode, SessionConfig, SessionId};

/// The request header the suite's continuity tokens come in.
pub const TOKEN_HEADER: &str = "x-visitor-token";
const SECRET: &str = "the site's secret, 32 bytes long";
/// A user's continuity token.
pub const ALICE: &str = "alice-4f1c9e2a7b3d";
const BOB: &str = "bob-8e2d1c0b9a7f6e";

/// The suite's configuration with continuity tokens read from [`TOKEN_HEADER`].
pub fn with_tokens(config: SessionConfig) -> SessionConfig {
    config.continuity(ContinuityTokens::from_header(
        SECRET,
        http::HeaderName::from_static(TOKEN_HEADER),
    ))
}

fn setup<B: Backend>(b: &B, config: SessionConfig) -> (Case, TestService) {
    let case = b.case();
    let svc = service(
        case.store.clone(),
        with_tokens(config).idle_ttl(b.idle()),
        act,
    );
    (case, svc)
}

/// A request to `path` with the cookie of `id` (if given) and `token`.
pub fn as_user(path: &str, id: Option<&SessionId>, token: &str) -> http::request::Builder {
    at(path, id).header(TOKEN_HEADER, token)
}

/// The session the response binds the browser to.
fn bound(res: &http::Response<String>) -> SessionId {
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    bound_id(res).expect("the response binds a session")
}

/// A token that collides with nothing adopts the browser's live session
/// under a new id (SPEC §3.7): whoever else holds the old id (a cookie
/// planted before the login) reaches nothing; on another browser (no
/// cookie) the token leads to the adopted session.
pub async fn a_new_token_adopts_the_browsers_session_under_a_new_id<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let planted = bound(&send(&svc, at("/write", None)).await);
    let res = send(&svc, as_user("/", Some(&planted), ALICE)).await;
    let adopted = bound(&res);
    assert_ne!(adopted, planted, "adopted under a new id");
    assert_eq!(seen(&res)["note"], "hello", "with its data");
    assert_eq!(
        seen(&res)["previous"],
        planted.as_str(),
        "the handler is told"
    );
    assert!(!(case.holds)(&planted), "the old id names nothing");
    // The attacker who planted the cookie, without the token.
    let res = send(&svc, at("/", Some(&planted))).await;
    assert_ne!(bound(&res), adopted);
    assert_eq!(seen(&res)["note"], Value::Null, "reaches nothing");
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_eq!(bound(&res), adopted, "the phone finds the laptop's session");
    assert_eq!(seen(&res)["note"], "hello");
    assert_eq!(seen(&res)["previous"], Value::Null);
}

/// A session bound to a token opens only with its token (SPEC §3.7): a
/// request with its cookie and no token (after logout, or the next person
/// at the computer) gets a fresh session and sees nothing of it; the
/// token still opens it.
pub async fn a_token_bound_session_without_its_token_gets_a_fresh_one<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let users = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    let res = send(&svc, at("/", Some(&users))).await;
    let fresh = bound(&res);
    assert_ne!(fresh, users, "the cookie is rebound");
    assert_eq!(
        seen(&res)["note"],
        Value::Null,
        "nothing of the user's session"
    );
    let res = send(&svc, at("/write", Some(&fresh))).await;
    assert_eq!(bound(&res), fresh);
    assert!((case.holds)(&users), "the user's session is left alone");
    let res = send(&svc, as_user("/", Some(&fresh), BOB)).await;
    assert_ne!(bound(&res), users, "another token does not open it either");
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_eq!(bound(&res), users, "its token still opens it");
    assert_eq!(seen(&res)["note"], "hello");
}

/// The explicit opt-out (`require_token(false)`, weaker): a token-bound
/// session opens with its cookie alone, never with another token.
pub async fn the_weaker_rule_opens_a_bound_session_by_its_cookie_alone<B: Backend>(b: &B) {
    let case = b.case();
    let tokens = ContinuityTokens::from_header(SECRET, http::HeaderName::from_static(TOKEN_HEADER))
        .require_token(false);
    let svc = service(
        case.store.clone(),
        config().continuity(tokens).idle_ttl(b.idle()),
        act,
    );
    let users = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    let res = send(&svc, at("/", Some(&users))).await;
    assert_eq!(bound(&res), users);
    assert_eq!(seen(&res)["note"], "hello");
    let res = send(&svc, as_user("/", Some(&users), BOB)).await;
    assert_ne!(bound(&res), users, "another token never opens it");
}

/// `cycle_id()` of a token-bound session moves the token's binding along.
pub async fn a_rotated_token_session_keeps_its_token<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let old = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    let new = bound(&send(&svc, as_user("/cycle", Some(&old), ALICE)).await);
    assert_ne!(new, old);
    assert!(!(case.holds)(&old));
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_eq!(bound(&res), new, "the token leads to the new id");
    assert_eq!(seen(&res)["note"], "hello");
}

/// A token with a live session rebinds a browser that had its own session;
/// that session is left alone, never merged.
pub async fn a_tokens_session_wins_over_the_browsers_own<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let users = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    let other = bound(&send(&svc, at("/key/mine", None)).await);
    let res = send(&svc, as_user("/", Some(&other), ALICE)).await;
    assert_eq!(bound(&res), users, "the cookie is rewritten");
    assert_eq!(seen(&res)["note"], "hello");
    assert!(
        (case.holds)(&other),
        "the browser's own session is left alone"
    );
    let res = send(&svc, at("/", Some(&other))).await;
    assert_eq!(seen(&res)["note"], Value::Null, "and not merged");
}

/// Two users taking turns on one browser each keep their own session.
pub async fn two_users_on_one_browser_never_share_a_session<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let alices = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    // Bob logs in on the same browser: Alice's session is not his to adopt.
    let res = send(&svc, as_user("/", Some(&alices), BOB)).await;
    let bobs = bound(&res);
    assert_ne!(bobs, alices);
    assert_eq!(
        seen(&res)["note"],
        Value::Null,
        "Bob does not see Alice's data"
    );
    assert!((case.holds)(&alices));
    // Alice logs in again: back to hers; Bob elsewhere: his.
    let res = send(&svc, as_user("/", Some(&bobs), ALICE)).await;
    assert_eq!(bound(&res), alices);
    assert_eq!(bound(&send(&svc, as_user("/", None, BOB)).await), bobs);
}

/// Agent deletion ends the binding: the token never reaches the deleted
/// conversation again.
pub async fn a_token_of_a_deleted_session_gets_a_fresh_one<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let deleted = bound(&send(&svc, as_user("/promote", None, ALICE)).await);
    send(&svc, as_user("/write", Some(&deleted), ALICE)).await;
    assert!(delete_session(&*case.store, &deleted).await.unwrap());
    for cookie in [None, Some(&deleted)] {
        let res = send(&svc, as_user("/", cookie, ALICE)).await;
        let fresh = bound(&res);
        assert_ne!(fresh, deleted);
        assert_eq!(seen(&res)["note"], Value::Null);
    }
    assert!(!(case.holds)(&deleted), "still deleted");
}

/// A temporary session's binding expires with it.
pub async fn a_token_replayed_after_its_session_expired_gets_a_fresh_one<B: Backend>(b: &B) {
    let (case, svc) = setup(b, config());
    let expired = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    tokio::time::sleep(b.idle() + Duration::from_millis(150)).await;
    assert!(!(case.holds)(&expired));
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_ne!(bound(&res), expired);
    assert_eq!(seen(&res)["note"], Value::Null);
}

/// A permanent session keeps its binding past the idle TTL.
pub async fn a_permanent_sessions_token_outlives_the_idle_ttl<B: Backend>(b: &B) {
    let (_case, svc) = setup(b, config());
    let kept = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    send(&svc, as_user("/promote", Some(&kept), ALICE)).await;
    tokio::time::sleep(b.idle() * 2).await;
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_eq!(bound(&res), kept);
    assert_eq!(seen(&res)["state"], "permanent");
}

/// One user's two browsers, first visits at the same moment: both end on one
/// session.
pub async fn one_user_on_two_browsers_at_once_ends_on_one_session<B: Backend>(b: &B) {
    let (_case, svc) = setup(b, config());
    let visits: Vec<_> = (0..2)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, as_user("/write", None, ALICE)).await })
        })
        .collect();
    let mut ids = Vec::new();
    for visit in visits {
        ids.push(bound(&visit.await.unwrap()));
    }
    // Whatever each first answer said, the next visits agree.
    let mut next = Vec::new();
    for id in &ids {
        let res = send(&svc, as_user("/", Some(id), ALICE)).await;
        assert_eq!(seen(&res)["note"], "hello", "the write was kept");
        next.push(bound(&res));
    }
    assert_eq!(next[0], next[1], "first answers {ids:?}");
}

/// In total privacy mode a token's session, like any, is created only when
/// the visitor interacts.
pub async fn privacy_mode_creates_a_tokens_session_on_interaction<B: Backend>(b: &B) {
    let (_case, svc) = setup(b, config().privacy(PrivacyMode::Total));
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert!(set_cookies(&res).is_empty(), "no cookie before interaction");
    let created = bound(&send(&svc, as_user("/write", None, ALICE)).await);
    let res = send(&svc, as_user("/", None, ALICE)).await;
    assert_eq!(
        bound(&res),
        created,
        "the interaction's session is the token's"
    );
}

/// The same token on two sites sharing one store leads to two sessions.
pub async fn a_token_never_reaches_another_sites_session<B: Backend>(b: &B) {
    let case = b.case();
    let site = |name: &str| {
        let config = with_tokens(SessionConfig::new().site_id(name)).idle_ttl(b.idle());
        service(case.store.clone(), config, act)
    };
    let (a, other) = (site("site-a"), site("site-b"));
    let on_a = bound(&send(&a, as_user("/write", None, ALICE)).await);
    let res = send(&other, as_user("/", None, ALICE)).await;
    assert_ne!(bound(&res), on_a);
    assert_eq!(seen(&res)["note"], Value::Null);
}
