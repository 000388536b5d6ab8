#![doc = "visitor-session (crate docs written later)"]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client_ip;
mod config;
mod cookie;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod id;
mod layer;
mod session;
pub mod store;

pub use client_ip::{PeerAddr, TrustedProxies};
pub use config::{
    CookieDomain, DEFAULT_COOKIE_MAX_AGE, DEFAULT_IDLE_TTL, FailureMode, LimitAction,
    MIN_IP_LOG_RETENTION, NewSessionLimit, PrivacyMode, SessionConfig,
};
pub use cookie::registrable_domain;
pub use error::{ConfigError, SessionError, StoreError, StoreErrorKind};
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
pub use id::{InvalidSessionId, SessionId};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use session::Session;
pub use store::{MemoryStore, SessionState, SessionStore};
