//! The Tower middleware: [`SessionLayer`], [`SessionService`] and their
//! [`ResponseFuture`].
//!
//! Per request: read the cookie and resolve the client IP, load the session
//! in one store call (none without a cookie), put the [`Session`] in the
//! request extensions, call the inner service, commit the handler's changes
//! in one store call, and add `Set-Cookie` to the response.
//!
//! `request.rs` reads the request, `future.rs` polls, `outcome.rs` decides
//! what the response gets (cookies, store calls, a status in its place).
//!
//! [`Session`]: crate::Session

mod continuity;
mod future;
mod outcome;
mod request;
mod service;
mod warnings;

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::SessionConfig;
use crate::cookie::CookieCodec;
use crate::error::ConfigError;
use crate::store::{SessionStore, StorePolicy};

pub use future::ResponseFuture;
pub use service::SessionService;

/// A Tower [`Layer`] that gives every request a visitor [`Session`](crate::Session).
///
/// The example's [`MemoryStore`](crate::MemoryStore) loses every session on
/// restart; a single instance keeps them with `store::SqliteStore`.
///
/// ```
/// use tower::ServiceBuilder;
/// use visitor_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// # fn main() -> Result<(), visitor_session::ConfigError> {
/// let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::new().site_id("my-site"))?;
/// let service = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer over `store`, after checking `config` once.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`SessionConfig::validate`], naming the bad setting.
    pub fn new<S: SessionStore>(store: S, config: SessionConfig) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(store), config)
    }

    /// Like [`new`](Self::new), for a store shared with other code (an admin API, say).
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`SessionConfig::validate`], naming the bad setting.
    pub fn from_arc(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                codec: CookieCodec::new(&config),
                policy: config.store_policy(),
                store,
                config,
                warnings: warnings::Warnings::default(),
            }),
        })
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.shared.clone())
    }
}

/// What every request of one layer shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) policy: StorePolicy,
    pub(crate) config: SessionConfig,
    pub(crate) codec: CookieCodec,
    /// Set-up mistakes already logged (`warnings.rs`).
    pub(crate) warnings: warnings::Warnings,
}
