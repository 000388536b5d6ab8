//! The layer in a real axum server: the `Session` extractor,
//! `ConnectInfo<SocketAddr>` as the client-IP source, and `SessionError` as
//! a response, so handlers use `?`.
#![cfg(feature = "axum")]

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::StatusCode;
use support::demo::Client;
use visitor_session::{
    MemoryStore, Session, SessionError, SessionLayer, StoreError, StoreErrorKind,
};

async fn visits(session: Session) -> String {
    let n: u32 = session.get("visits").unwrap().unwrap_or(0) + 1;
    session.insert("visits", &n).unwrap();
    format!(
        "{n} {}",
        session
            .client_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    )
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_and_connect_info_work_in_a_real_server() {
    let layer = SessionLayer::new(MemoryStore::new(), support::config().secure(false)).unwrap();
    let addr = serve(Router::new().route("/", get(visits)).layer(layer)).await;
    let bodies = tokio::task::spawn_blocking(move || {
        let mut c = Client::new(addr);
        (0..3).map(|_| c.get("/").body).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(bodies, ["1 127.0.0.1", "2 127.0.0.1", "3 127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_without_the_layer_is_a_clear_500() {
    let addr = serve(Router::new().route("/", get(visits))).await;
    let reply = tokio::task::spawn_blocking(move || Client::new(addr).get("/"))
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("SessionLayer"), "{}", reply.body);
}

/// README's handler: a write refused by the data limits answers 413 through
/// `?`, never `200` with the error in the body.
async fn send_message(session: Session, text: String) -> Result<&'static str, SessionError> {
    session.insert("last_message", &text)?;
    session.promote()?;
    Ok("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_the_limit_returned_with_the_question_mark_answers_413() {
    let layer = SessionLayer::new(MemoryStore::new(), support::config().secure(false)).unwrap();
    let addr = serve(
        Router::new()
            .route("/messages", post(send_message))
            .layer(layer),
    )
    .await;
    let (big, small) = tokio::task::spawn_blocking(move || {
        let mut c = Client::new(addr);
        let big = c.post_json("/messages", &"x".repeat(70 * 1024));
        let small = c.post_json("/messages", "hello");
        (big, small)
    })
    .await
    .unwrap();
    assert_eq!(big.status, 413);
    assert!(big.body.contains("over the limit of 65536"), "{}", big.body);
    assert_eq!((small.status, small.body.as_str()), (200, "sent"));
}

/// The status of each kind of session error, and a body that shows a
/// visitor no internal detail for the server's own failures.
#[test]
fn each_session_error_answers_the_status_of_its_kind() {
    let store = StoreError::new(
        StoreErrorKind::Timeout,
        "touch",
        "no answer from 10.0.0.7:6379",
    );
    let cases = [
        (
            SessionError::TooManyKeys {
                count: 65,
                limit: 64,
            },
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            SessionError::TooLarge {
                size: 70_000,
                limit: 65_536,
            },
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            SessionError::InvalidKey {
                key: String::new(),
                max: 128,
            },
            StatusCode::BAD_REQUEST,
        ),
        (SessionError::Closed, StatusCode::CONFLICT),
        (
            SessionError::Unavailable(store),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            SessionError::Serde {
                key: "k".into(),
                message: "expected u32 at line 1".into(),
            },
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ];
    for (error, status) in cases {
        let body = error.body_text();
        assert_eq!(error.status(), status, "{error}");
        assert_eq!(error.clone().into_response().status(), status, "{error}");
        if status.is_server_error() {
            assert!(
                !body.contains("10.0.0.7") && !body.contains("line 1"),
                "{body}"
            );
        } else {
            assert_eq!(body, error.to_string());
        }
    }
}
