//! The contenders of the benchmarks, each an axum `Router` with the same
//! routes, so the load benchmark (`bench_server`) and the in-process one
//! (`benches/in_process.rs`) measure the same thing.
//!
//! Routes:
//! - `GET /`: a page view that reads the visitor's counter, and sets it on
//!   the first visit (tower-sessions saves only a session with data);
//! - `GET /write`: increments the counter (one key written);
//! - `GET /quiet`: a page that does not look at the session.

use axum::Router;
use axum::routing::get;

const KEY: &str = "n";

/// No session layer at all: the same handlers without their session work
/// (the page still formats its answer).
pub fn bare() -> Router {
    async fn page() -> String {
        format!("visit {}", std::hint::black_box(1u64))
    }
    Router::new()
        .route("/", get(page))
        .route("/write", get(page))
        .route("/quiet", get(|| async { "quiet" }))
}

/// [`bare`] behind a layer that does nothing: what wrapping routes in any
/// layer costs in axum, the floor under every session layer.
pub fn bare_layered() -> Router {
    bare().layer(tower::util::MapRequestLayer::new(
        |req: axum::http::Request<axum::body::Body>| req,
    ))
}

/// visitor-session.
pub mod ours {
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

    /// Our layer on `store` (`memory` or a Redis URL) in `privacy` mode.
    pub async fn router(store: &str, privacy: PrivacyMode) -> Router {
        with_redis(store, privacy, RedisConfig::new(store)).await
    }

    /// Our layer on an application's deadpool-redis pool for the Redis at
    /// `url` (deadpool-redis's defaults), shared through
    /// `RedisConfig::from_source`.
    pub async fn router_on_pool(url: &str) -> Router {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("a deadpool-redis pool");
        let redis = RedisConfig::from_source(pool);
        with_redis(url, PrivacyMode::Standard, redis).await
    }

    async fn with_redis(store: &str, privacy: PrivacyMode, redis: RedisConfig) -> Router {
        let config = SessionConfig::new().secure(false).privacy(privacy);
        let layer = if store == "memory" {
            SessionLayer::new(MemoryStore::new(), config)
        } else {
            let mut redis = redis;
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

/// tower-sessions with `Expiry::OnInactivity(30 min)` and `always_save`,
/// so its expiry slides on every request like ours.
pub mod theirs {
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

    /// tower-sessions on `store` (`memory` or a Redis URL).
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
