//! The contenders of the benchmarks, each an axum `Router` with the same
//! routes, so the load benchmark (`bench_server`) and the in-process one
//! (`benches/in_process.rs`) measure the same thing.
//!
//! Each contender's sessions live in the store its `store` argument names:
//! `memory`, `sqlite:<path>` (a SQLite file, WAL mode with
//! `synchronous = NORMAL`), `sqlite-fsync:<path>` (ours only:
//! `Durability::PowerLoss`, `synchronous = FULL`), or a Redis URL.
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

/// [`bare`] behind the least a session layer in total-privacy mode must do
/// on a request without a cookie: look for the cookie header, hand the
/// handler a shared handle in the request's extensions (one allocation, one
/// entry), and look at the handle again when the response is ready. The
/// floor under our total-privacy visitor, beside [`bare_layered`].
pub fn bare_handle_layered() -> Router {
    bare().layer(handle::HandleLayer)
}

mod handle {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, ready};

    use axum::http::{Request, header};

    /// What the handler would start a session through.
    #[derive(Clone)]
    pub struct Handle(pub Arc<AtomicBool>);

    #[derive(Clone)]
    pub struct HandleLayer;

    impl<S> tower::Layer<S> for HandleLayer {
        type Service = HandleService<S>;

        fn layer(&self, inner: S) -> Self::Service {
            HandleService(inner)
        }
    }

    #[derive(Clone)]
    pub struct HandleService<S>(S);

    impl<S, B> tower::Service<Request<B>> for HandleService<S>
    where
        S: tower::Service<Request<B>>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = HandleFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, mut req: Request<B>) -> Self::Future {
            let cookie = req.headers().contains_key(header::COOKIE);
            let handle = Handle(Arc::new(AtomicBool::new(cookie)));
            req.extensions_mut().insert(handle.clone());
            HandleFuture {
                future: self.0.call(req),
                handle,
            }
        }
    }

    pin_project_lite::pin_project! {
        pub struct HandleFuture<F> {
            #[pin]
            future: F,
            handle: Handle,
        }
    }

    impl<F: Future> Future for HandleFuture<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let out = ready!(this.future.poll(cx));
            std::hint::black_box(this.handle.0.load(Ordering::Relaxed));
            Poll::Ready(out)
        }
    }
}

/// visitor-session.
pub mod ours {
    use axum::Router;
    use axum::routing::get;
    use visitor_session::store::{Durability, RedisConfig, RedisStore, SqliteConfig, SqliteStore};
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

    /// Our layer on `store` (see the crate docs) in `privacy` mode.
    pub async fn router(store: &str, privacy: PrivacyMode) -> Router {
        with_redis(store, privacy, RedisConfig::new(store), true).await
    }

    /// [`router`] in standard mode without the per-network statistics of
    /// SPEC §3.6 (`SessionConfig::network_statistics(false)`): what counting
    /// them costs a new visitor.
    pub async fn router_without_statistics(store: &str) -> Router {
        with_redis(store, PrivacyMode::Standard, RedisConfig::new(store), false).await
    }

    /// Our layer on an application's deadpool-redis pool for the Redis at
    /// `url` (deadpool-redis's defaults), shared through
    /// `RedisConfig::from_source`.
    pub async fn router_on_pool(url: &str) -> Router {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("a deadpool-redis pool");
        let redis = RedisConfig::from_source(pool);
        with_redis(url, PrivacyMode::Standard, redis, true).await
    }

    async fn with_redis(
        store: &str,
        privacy: PrivacyMode,
        redis: RedisConfig,
        statistics: bool,
    ) -> Router {
        let config = SessionConfig::new()
            .secure(false)
            .privacy(privacy)
            .network_statistics(statistics);
        let sqlite = |path: &str, durability| {
            let sqlite = SqliteConfig::new(path).durability(durability);
            SqliteStore::open(sqlite).expect("a SQLite file")
        };
        let layer = if store == "memory" {
            // Room for every new visitor of a load run (its default capacity,
            // 100 000, is reached within seconds at full speed).
            SessionLayer::new(MemoryStore::with_capacity(5_000_000), config)
        } else if let Some(path) = store.strip_prefix("sqlite:") {
            SessionLayer::new(sqlite(path, Durability::ProcessCrash), config)
        } else if let Some(path) = store.strip_prefix("sqlite-fsync:") {
            SessionLayer::new(sqlite(path, Durability::PowerLoss), config)
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
    use tower_sessions_rusqlite_store::{RusqliteStore, tokio_rusqlite};

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

    /// tower-sessions on `store` (`memory`, `sqlite:<path>` or a Redis URL).
    pub async fn router(store: &str) -> Router {
        if store == "memory" {
            return with_store(MemoryStore::default());
        }
        if let Some(path) = store.strip_prefix("sqlite:") {
            let conn = tokio_rusqlite::Connection::open(path)
                .await
                .expect("a SQLite file");
            // The durability of ours: WAL, `synchronous = NORMAL` (its own
            // default, a rollback journal with `FULL`, flushes the disk on
            // every write, and would measure the disk, not the store).
            conn.call(|c| {
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "NORMAL")
            })
            .await
            .map_err(|e: tokio_rusqlite::Error| e.to_string())
            .expect("SQLite settings");
            let store = RusqliteStore::new(conn);
            store.migrate().await.expect("the sessions table");
            return with_store(store);
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
