//! The axum integration (feature `axum`): the [`Session`] extractor,
//! [`SessionError`] as a response, and axum's `ConnectInfo<SocketAddr>` as a
//! source of the socket peer.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::error::SessionError;
use crate::session::Session;

/// The socket peer that `axum::serve(.., app.into_make_service_with_connect_info::<SocketAddr>())`
/// records on each request. A [`PeerAddr`](crate::PeerAddr) in the same
/// request takes precedence.
#[inline]
pub(crate) fn connect_info(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// Rejection of the [`Session`] extractor: the route is not wrapped in a
/// [`SessionLayer`](crate::SessionLayer).
///
/// It answers `500 Internal Server Error`, since this is a mistake in the
/// application's wiring, never the visitor's.
///
/// ```
/// use visitor_session::MissingSessionLayer;
///
/// assert_eq!(MissingSessionLayer.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(MissingSessionLayer.body_text().contains("SessionLayer"));
/// ```
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "no visitor session in the request extensions: wrap this route (or the router) in \
     `visitor_session::SessionLayer`, e.g. `Router::new().route(..).layer(session_layer)`"
)]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    /// The status of the rejection's response: `500`.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The body of the rejection's response: what is missing and how to add it.
    pub fn body_text(&self) -> String {
        self.to_string()
    }
}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// The status of [`SessionError::status`] with the body of
/// [`SessionError::body_text`], so a handler returns its session errors with
/// `?`; a serde failure (a bug) is logged at `error` level.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        if let SessionError::Serde { .. } = &self {
            tracing::error!(error = %self, "a session value could not be (de)serialized");
        }
        (self.status(), self.body_text()).into_response()
    }
}
