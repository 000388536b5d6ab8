//! One contender of the load benchmark, served by the same axum/hyper setup
//! as the others: `scripts/bench` starts it, drives it with `wrk`, and reads
//! its CPU time from `/proc`.
//!
//! ```text
//! bench_server <bare|ours|ours-privacy|tower-sessions> <memory|redis://...> <port>
//! ```
//!
//! Routes, the same for every contender:
//! - `GET /`: a page view that reads the visitor's counter, and sets it on
//!   the first visit (tower-sessions saves only a session with data);
//! - `GET /write`: increments the counter (one key written);
//! - `GET /quiet`: a page that does not look at the session.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;

const KEY: &str = "n";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, contender, store, port] = args.as_slice() else {
        eprintln!(
            "usage: bench_server <bare|ours|ours-privacy|tower-sessions> <memory|redis://...> <port>"
        );
        std::process::exit(2);
    };
    let router = match contender.as_str() {
        "bare" => bare(),
        "ours" => ours::router(store, visitor_session::PrivacyMode::Standard).await,
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

fn bare() -> Router {
    Router::new()
        .route("/", get(|| async { "visit 1" }))
        .route("/write", get(|| async { "visit 1" }))
        .route("/quiet", get(|| async { "quiet" }))
}

mod ours {
    use axum::Router;
    use axum::routing::get;
    use visitor_session::store::{RedisConfig, RedisStore};
    use visitor_session::{MemoryStore, PrivacyMode, Session, SessionConfig, SessionLayer};

    use super::KEY;

    async fn page(session: Session) -> String {
        let n: u64 = match session.get(KEY).ok().flatten() {
            Some(n) => n,
            None => {
                let _ = session.insert(KEY, &1u64);
                1
            }
        };
        format!("visit {n}")
    }

    async fn write(session: Session) -> String {
        let n: u64 = session.get(KEY).ok().flatten().unwrap_or(0) + 1;
        let _ = session.insert(KEY, &n);
        format!("visit {n}")
    }

    pub async fn router(store: &str, privacy: PrivacyMode) -> Router {
        let config = SessionConfig::new().secure(false).privacy(privacy);
        let layer = if store == "memory" {
            SessionLayer::new(MemoryStore::new(), config)
        } else {
            let mut redis = RedisConfig::new(store);
            // For measuring the pool size: the default unless set.
            if let Some(size) = std::env::var("BENCH_POOL_SIZE")
                .ok()
                .and_then(|s| s.parse().ok())
            {
                redis = redis.pool_size(size);
            }
            let store = RedisStore::new(redis).expect("a Redis URL");
            store.load_scripts().await.expect("Redis is up");
            SessionLayer::new(store, config)
        }
        .expect("a valid config");
        Router::new()
            .route("/", get(page))
            .route("/write", get(write))
            .route("/quiet", get(|| async { "quiet" }))
            .layer(layer)
    }
}

mod theirs {
    use axum::Router;
    use axum::routing::get;
    use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer, SessionStore};
    use tower_sessions_redis_store::RedisStore;
    use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

    use super::KEY;

    async fn page(session: Session) -> String {
        let n: u64 = match session.get(KEY).await.ok().flatten() {
            Some(n) => n,
            None => {
                let _ = session.insert(KEY, 1u64).await;
                1
            }
        };
        format!("visit {n}")
    }

    async fn write(session: Session) -> String {
        let n: u64 = session.get(KEY).await.ok().flatten().unwrap_or(0) + 1;
        let _ = session.insert(KEY, n).await;
        format!("visit {n}")
    }

    fn with_store<S: SessionStore + Clone>(store: S) -> Router {
        // Sliding expiry like ours: `always_save` rewrites the session, and
        // its TTL, on every request.
        let layer = SessionManagerLayer::new(store)
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
            .with_always_save(true);
        Router::new()
            .route("/", get(page))
            .route("/write", get(write))
            .route("/quiet", get(|| async { "quiet" }))
            .layer(layer)
    }

    pub async fn router(store: &str) -> Router {
        if store == "memory" {
            return with_store(MemoryStore::default());
        }
        let config = Config::from_url(store).expect("a Redis URL");
        // The pool size of tower-sessions-redis-store's own example.
        let pool = Pool::new(config, None, None, None, 6).expect("a fred pool");
        // The connection task runs on its own; its handle is not needed.
        drop(pool.connect());
        pool.wait_for_connect().await.expect("Redis is up");
        with_store(RedisStore::new(pool))
    }
}
