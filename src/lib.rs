//! Visitor sessions for chat, support and onboarding backends, as a Tower layer.
//!
//! One cookie binds a visitor to one server-side session. The cookie's
//! six-month expiry is renewed on every visit; the visitor's IP is bound to the
//! session; a session without a conversation disappears 30 minutes after the
//! last access (its IP with it), and a session with a conversation
//! ([`Session::promote`]) is permanent. A total privacy mode sets no cookie at
//! all until the visitor interacts.
//!
//! The behaviour contract is `docs/behaviour.md` in the repository (cited as
//! `SPEC §<section>`); the pieces are:
//!
//! - [`SessionLayer`] / [`SessionService`] / [`ResponseFuture`]: the middleware,
//!   configured by one [`SessionConfig`] checked at construction.
//! - [`Session`]: the handle in the request extensions (and, with the `axum`
//!   feature, an extractor). Synchronous typed reads; writes are committed after
//!   the handler returns, only the changed keys, in one store call.
//! - [`client_ip`]: the socket peer, or the client behind [`TrustedProxies`],
//!   from the one [`ClientIpHeader`] they write.
//! - [`store`]: the [`SessionStore`] trait, whose every method is one atomic
//!   operation, shaped so that a networked store serves a returning visitor
//!   in one round trip; (feature `sqlite`) `SqliteStore`, durable in one
//!   file, for a single instance; (feature `redis`) `RedisStore` on a single
//!   server, Sentinel or Redis Cluster, one script per operation, over TLS if
//!   need be, on connections of its own or the application's deadpool-redis
//!   pool (the repository's `docs/redis.md`); and [`MemoryStore`], for
//!   examples and tests: it loses everything on restart.
//!   Continuity tokens (SPEC §3.7) are composed from those
//!   operations once, above the store.
//!
//! # With axum
//!
//! The examples keep sessions in a [`MemoryStore`], which forgets them on
//! restart; a single-instance service keeps them in a file with
//! `store::SqliteStore::open(SqliteConfig::new("sessions.db"))`.
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//! use visitor_session::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};
//!
//! async fn hello(session: Session) -> Result<String, SessionError> {
//!     let visits: u32 = session.get("visits")?.unwrap_or(0) + 1;
//!     // A refused write (store down, a data limit) answers its status (503,
//!     // 413...) through `?`: never a success (see `SessionError`).
//!     session.insert("visits", &visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::new().site_id("my-site"))?;
//! let app = Router::new().route("/", get(hello)).layer(layer);
//! # use tower::ServiceExt;
//! # let res = app.clone().oneshot(http::Request::new(axum::body::Body::empty())).await?;
//! # assert!(res.headers().contains_key(http::header::SET_COOKIE));
//! // Serve with the peer address, which the layer binds to the session:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
//! # drop(server);
//! # Ok(()) }
//! ```
//!
//! # With hyper
//!
//! A plain hyper server tags each request with its connection's [`PeerAddr`].
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//! use hyper_util::rt::TokioIo;
//! use hyper_util::service::TowerToHyperService;
//! use tower::ServiceBuilder;
//! use visitor_session::{MemoryStore, PeerAddr, Session, SessionConfig, SessionLayer};
//!
//! async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let session = req.extensions().get::<Session>().expect("SessionLayer is installed");
//!     let body = format!("your session is {:?}", session.state());
//!     Ok(Response::new(Full::new(Bytes::from(body))))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::new())?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     loop {
//!         let (stream, peer) = listener.accept().await?;
//!         let service = ServiceBuilder::new()
//!             .map_request(move |mut req: Request<Incoming>| {
//!                 req.extensions_mut().insert(PeerAddr(peer));
//!                 req
//!             })
//!             .layer(layer.clone())
//!             .service_fn(hello);
//!         tokio::spawn(async move {
//!             let conn = hyper::server::conn::http1::Builder::new()
//!                 .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
//!             if let Err(e) = conn.await {
//!                 eprintln!("connection error: {e}");
//!             }
//!         });
//!     }
//! }
//! ```
//!
//! # Design
//!
//! - **One builder, checked once.** [`SessionConfig`] (and
//!   `store::RedisConfig`) are built with methods that take and return
//!   `Self`; `validate` runs once when the layer (or store) is built and
//!   names the bad setting in its [`ConfigError`].
//! - **Setters are named for their setting** (`idle_ttl`, `secure`,
//!   `ip_log_retention`): they take the value itself, or an `Option` when the
//!   setting can be off (`Some(..)` sets it, `None` turns it off). `with_` is
//!   kept for constructors (`MemoryStore::with_capacity`) and for adding
//!   context (`StoreError::with_source`, `SessionConfig::with_vars`).
//! - **Public types that will grow** are `#[non_exhaustive]`, with
//!   constructors where a store must build them; builders are `#[must_use]`.
//! - **Every store operation is atomic**; what needs several (continuity
//!   tokens) is composed once, above the store. The conformance suite
//!   (feature `test-support`) is the contract, run on every store.
//!
//! # Features
//!
//! `default = ["axum"]`: every store beyond memory is opt-in, so a
//! memory-only application builds no Redis client.
//!
//! - `axum` (default): the [`Session`] extractor, [`SessionError`] as a
//!   response (so handlers use `?`), and `ConnectInfo<SocketAddr>` as the
//!   client-IP source.
//! - `sqlite`: `store::SqliteStore`, sessions in one SQLite file (rusqlite
//!   with SQLite compiled in: nothing to install).
//! - `redis`: `store::RedisStore`, redis-rs connections pooled by deadpool.
//! - `tls`: `rediss://` URLs, TLS to Redis on rustls, with the system's roots
//!   or a private CA (`RedisConfig::tls_ca`).
//! - `cluster`: Redis Cluster for the Redis store (`RedisConfig::cluster`).
//! - `sentinel`: Redis Sentinel for the Redis store (`RedisConfig::sentinel`).
//! - `deadpool-redis`: the Redis store on the application's own
//!   `deadpool_redis::Pool` (`RedisConfig::from_source`, through the crate's
//!   `store::ConnectionSource`).
//! - `test-support`: the store conformance suite (`conformance`, for
//!   testing a store of your own) and inspection methods such as
//!   `MemoryStore::peek`; for tests only.
//! - `metrics`: counters and latency histograms through the `metrics` facade
//!   (store calls by operation and outcome, sessions created, promoted, reset
//!   and deleted, fail-open count), for the exporter the application installs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client_ip;
mod config;
#[cfg(feature = "test-support")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
pub mod conformance;
mod cookie;
mod domain;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod id;
mod layer;
mod observe;
mod session;
pub mod store;
mod token;

pub use client_ip::{ClientIpHeader, PeerAddr, TrustedProxies};
pub use config::{
    CookieDomain, DEFAULT_COOKIE_MAX_AGE, DEFAULT_IDLE_TTL, DEFAULT_IP_LOG_MAX_ENTRIES,
    DEFAULT_NETWORK_RETENTION, FailureMode, LimitAction, MAX_COOKIE_MAX_AGE, MIN_IP_LOG_RETENTION,
    NewSessionLimit, PrivacyMode, SessionConfig,
};
pub use error::{ConfigError, SessionError, StoreError, StoreErrorKind};
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
pub use id::{InvalidSessionId, SessionId};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use session::Session;
pub use store::{MemoryStore, SessionState, SessionStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisConfig, RedisStore};
pub use token::{ContinuityTokens, MAX_TOKEN_LEN, MIN_SECRET_LEN, MIN_TOKEN_LEN};

/// Entry points of the fuzz targets (`fuzz/`) into readers that are not
/// public API; built only under `cargo fuzz` (`--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use http::HeaderMap;

    /// The session id the layer reads from `headers`' cookies for `config`,
    /// or `None` when it finds no usable one.
    pub fn read_cookie(
        config: &crate::SessionConfig,
        headers: &HeaderMap,
    ) -> Option<crate::SessionId> {
        match crate::cookie::CookieCodec::new(config).read(headers) {
            crate::cookie::CookieRead::Valid(id) => Some(id),
            _ => None,
        }
    }

    /// The `Domain` the layer gives the cookie for a request to `host`.
    pub fn cookie_domain(config: &crate::SessionConfig, host: &[u8]) -> Option<String> {
        crate::cookie::CookieCodec::new(config)
            .domain_for(Some(host))
            .map(|d| d.to_string())
    }
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of the Redis manual, compiled as doctests (feature `redis`).
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../docs/redis.md")]
pub struct RedisDocDoctests;
