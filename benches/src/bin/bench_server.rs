//! One contender of the load benchmark, served by the same axum/hyper setup
//! as the others: `scripts/bench` starts it, drives it with `wrk`, and reads
//! its CPU time from `/proc`.
//!
//! ```text
//! bench_server <bare|bare-layered|ours|ours-pool|ours-nostats|ours-privacy|tower-sessions> <memory|sqlite:PATH|sqlite-fsync:PATH|redis://...> <port>
//! ```
//!
//! The contenders and their routes are in the crate's library.

use std::net::SocketAddr;

use visitor_session_benches::{bare, bare_layered, ours, theirs};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, contender, store, port] = args.as_slice() else {
        eprintln!(
            "usage: bench_server <bare|bare-layered|ours|ours-pool|ours-nostats|ours-privacy|tower-sessions> \
             <memory|sqlite:PATH|sqlite-fsync:PATH|redis://...> <port>"
        );
        std::process::exit(2);
    };
    let router = match contender.as_str() {
        "bare" => bare(),
        "bare-layered" => bare_layered(),
        "ours" => ours::router(store, visitor_session::PrivacyMode::Standard).await,
        "ours-pool" => ours::router_on_pool(store).await,
        "ours-nostats" => ours::router_without_statistics(store).await,
        "ours-privacy" => ours::router(store, visitor_session::PrivacyMode::Total).await,
        "tower-sessions" => theirs::router(store).await,
        other => {
            eprintln!("unknown contender {other}");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("a port number");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {addr}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("serve");
}
