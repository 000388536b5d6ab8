//! Error types, one per boundary: configuration, store, and session handle.

use std::time::Duration;

/// A configuration value was rejected when the layer or store was built.
///
/// Raised once, at start-up, by [`SessionLayer::new`](crate::SessionLayer::new)
/// (through [`SessionConfig::validate`](crate::SessionConfig::validate)) and the
/// parsers of textual settings, never per request.
#[derive(Debug, thiserror::Error)]
#[error("invalid session configuration `{setting}`: {reason}")]
pub struct ConfigError {
    setting: &'static str,
    reason: String,
}

impl ConfigError {
    /// A rejected `setting` with a sentence saying what is wrong and what is accepted.
    pub fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }

    /// The name of the rejected setting: the builder method, or the
    /// environment variable when the value came from the environment reader.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The same error, for a setting known under another name (the
    /// environment reader's variable for a builder setting).
    pub(crate) fn for_setting(mut self, setting: &'static str) -> Self {
        self.setting = setting;
        self
    }
}

/// What went wrong talking to a [`SessionStore`](crate::store::SessionStore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store did not answer within the configured timeout; nothing was
    /// changed by a read. (A write that timed out is [`OutcomeUnknown`](Self::OutcomeUnknown).)
    Timeout,
    /// The store could not be reached or refused the call (connection
    /// refused, no connection in time, server loading or out of memory): a
    /// write was not applied.
    Unavailable,
    /// A write was sent but its answer never came (timeout, connection lost
    /// after sending): it may or may not have been applied. The store's own
    /// operations are idempotent, so repeating the request is safe as far as
    /// the session store goes; the handler's own writes must be made so too.
    OutcomeUnknown,
    /// The store answered with something this crate did not expect.
    Protocol,
}

impl StoreErrorKind {
    /// `"timeout"`, `"unavailable"`, `"outcome_unknown"` or `"protocol"`: a
    /// stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Protocol => "protocol",
        }
    }
}

type Source = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failed store call: its kind, the operation, and the underlying cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("session store {op} failed ({}): {message}", kind.as_str())]
pub struct StoreError {
    kind: StoreErrorKind,
    op: &'static str,
    message: String,
    #[source]
    source: Option<Source>,
}

impl StoreError {
    /// A failure of the store operation `op` (e.g. `"touch"`).
    pub fn new(kind: StoreErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (returned by [`std::error::Error::source`]).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// A store call that did not finish within `after`: a
    /// [`Timeout`](StoreErrorKind::Timeout) for a read, an
    /// [`OutcomeUnknown`](StoreErrorKind::OutcomeUnknown) for a write (it may
    /// have been applied).
    pub fn timeout(op: &'static str, after: Duration, writes: bool) -> Self {
        let kind = if writes {
            StoreErrorKind::OutcomeUnknown
        } else {
            StoreErrorKind::Timeout
        };
        Self::new(kind, op, format!("no answer within {after:?}"))
    }

    /// What kind of failure this was.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store operation that failed.
    pub fn op(&self) -> &'static str {
        self.op
    }
}

/// An operation on a [`Session`](crate::Session) handle was refused.
///
/// Return it from an axum handler with `?` (feature `axum`): it answers
/// with the status of its kind, so a refused write is never reported as
/// success. The same mapping is [`status`](Self::status), for other
/// frameworks.
///
/// | error | status | body |
/// |---|---|---|
/// | [`TooManyKeys`](Self::TooManyKeys), [`TooLarge`](Self::TooLarge) | `413 Payload Too Large` | the error: what would be over which limit |
/// | [`InvalidKey`](Self::InvalidKey) | `400 Bad Request` | the error: the key and the allowed length (a key from the visitor's input, or a bug a test finds) |
/// | [`Closed`](Self::Closed) | `409 Conflict` | the error: the session was already committed with its response (a write from a task that outlived its request) |
/// | [`Unavailable`](Self::Unavailable) | `503 Service Unavailable` | a fixed sentence, no internal detail (the layer logged the cause) |
/// | [`Serde`](Self::Serde) | `500 Internal Server Error` | a fixed sentence; the cause is logged at `error` level |
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::response::IntoResponse;
/// use visitor_session::SessionError;
///
/// let error = SessionError::TooLarge { size: 70_000, limit: 65_536 };
/// assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
/// assert_eq!(error.into_response().status(), http::StatusCode::PAYLOAD_TOO_LARGE);
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session store failed when the request was loaded (fail-open mode), so
    /// this request has no session to read or write.
    #[error("the session store is unavailable for this request: {0}")]
    Unavailable(StoreError),
    /// The response carrying this session has already been committed; later
    /// writes (from a task that outlived the request) would be lost.
    #[error("the session was already committed with its response; write during the request")]
    Closed,
    /// A write would take the session over its key-count limit.
    #[error("session data would hold {count} keys, over the limit of {limit}")]
    TooManyKeys {
        /// Keys the session would hold after the write.
        count: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// A write would take the session over its total-size limit.
    #[error("session data would take {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Bytes (keys plus serialized values) the session would hold after the write.
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The key is empty or longer than the allowed key length.
    #[error("invalid session key {key:?}: keys are 1 to {max} bytes")]
    InvalidKey {
        /// The rejected key, truncated for display.
        key: String,
        /// The maximum key length in bytes.
        max: usize,
    },
    /// A value could not be serialized or a stored value could not be deserialized
    /// into the requested type.
    #[error("session value for key {key:?} could not be (de)serialized: {message}")]
    Serde {
        /// The key involved.
        key: String,
        /// The serde_json error message.
        message: String,
    },
}

impl SessionError {
    /// The HTTP status that answers this error (see the table above): what a
    /// handler returns when it passes the error on.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::TooManyKeys { .. } | Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidKey { .. } => StatusCode::BAD_REQUEST,
            Self::Closed => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Serde { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body of the response to this error: the error itself for the
    /// client's own mistakes (4xx), a fixed sentence for the server's (5xx),
    /// whose causes belong in the log, not in front of a visitor.
    pub fn body_text(&self) -> String {
        match self {
            Self::Unavailable(_) => {
                "the session store is unavailable right now; try again in a moment".to_owned()
            }
            Self::Serde { .. } => "a session value could not be read or written".to_owned(),
            client => client.to_string(),
        }
    }
}
