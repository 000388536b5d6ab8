//! The layer in a real axum server: the `Session` extractor and
//! `ConnectInfo<SocketAddr>` as the client-IP source.
#![cfg(feature = "axum")]

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use support::demo::Client;
use visitor_session::{MemoryStore, Session, SessionLayer};

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
