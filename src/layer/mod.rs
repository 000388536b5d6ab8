//! The Tower middleware: [`SessionLayer`], [`SessionService`] and their
//! [`ResponseFuture`].
//!
//! Per request: read the cookie and resolve the client IP, load the session
//! in one store call (none without a cookie), put the [`Session`] in the
//! request extensions, call the inner service, commit the handler's changes
//! in one store call, and add `Set-Cookie` to the response.

mod future;
mod service;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;

use crate::client_ip;
use crate::config::{PrivacyMode, SessionConfig};
use crate::cookie::{CookieCodec, CookieRead};
use crate::error::ConfigError;
use crate::session::{Limits, Session};
use crate::store::{Access, CreateLimit, SessionStore, StorePolicy};

pub use future::ResponseFuture;
pub use service::SessionService;

/// A Tower [`Layer`] that gives every request a visitor [`Session`].
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
    pub fn new<S: SessionStore>(store: S, config: SessionConfig) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(store), config)
    }

    /// Like [`new`](Self::new), for a store shared with other code (an admin API, say).
    pub fn from_arc(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                codec: CookieCodec::new(&config),
                policy: config.store_policy(),
                limits: Limits {
                    max_keys: config.max_keys,
                    max_bytes: config.max_data_bytes,
                },
                store,
                config,
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
    pub(crate) limits: Limits,
}

/// What the layer learned from the request, kept until the response.
pub(crate) struct RequestContext {
    pub(crate) shared: Arc<Shared>,
    /// The client IP of the request (SPEC §3.3).
    pub(crate) ip: Option<IpAddr>,
    /// When the request came, in ms since the Unix epoch.
    pub(crate) at_ms: u64,
    /// `Domain` for the `Set-Cookie` of this response.
    pub(crate) domain: Option<Arc<str>>,
    /// The request's host, kept only when two session cookies conflict (the
    /// response then also clears the other copy).
    pub(crate) host: Option<HeaderValue>,
    /// The request carried a well-formed cookie naming no live session.
    pub(crate) stale_cookie: bool,
    /// The request carried two different session cookies.
    pub(crate) conflicting: bool,
    pub(crate) session: Option<Session>,
}

impl RequestContext {
    /// This request's access to its session, for the store.
    pub(crate) fn access(&self) -> Access<'_> {
        Access {
            ip: self.ip,
            at_ms: self.at_ms,
            policy: &self.shared.policy,
        }
    }

    /// The `Domain` of this response's `Set-Cookie`.
    pub(crate) fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
}

impl Shared {
    /// Reads what the request says about the session, before any store call.
    pub(crate) fn inspect<B>(self: &Arc<Self>, req: &Request<B>) -> (CookieRead, RequestContext) {
        let config = &self.config;
        let ip = client_ip::peer_ip(req.extensions())
            .map(|peer| client_ip::resolve(peer, req.headers(), &config.trusted_proxies));
        let host = req
            .headers()
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            .or_else(|| req.uri().host().map(str::as_bytes));
        let cookie = self.codec.read(req.headers());
        let conflicting = matches!(cookie, CookieRead::Unusable { conflicting: true });
        let ctx = RequestContext {
            shared: self.clone(),
            ip,
            at_ms: Access::now_ms(),
            domain: self.codec.domain_for(host),
            host: host
                .filter(|_| conflicting)
                .and_then(|h| HeaderValue::from_bytes(h).ok()),
            stale_cookie: false,
            conflicting,
            session: None,
        };
        (cookie, ctx)
    }

    /// The session of a request without a live session: a new temporary one
    /// in standard mode with consent, none otherwise (SPEC §3.2).
    pub(crate) fn fresh_session<B>(
        &self,
        req: Request<B>,
        ip: Option<IpAddr>,
    ) -> (Request<B>, Session) {
        let (parts, body) = req.into_parts();
        let creates = match self.config.privacy {
            PrivacyMode::Total => false,
            PrivacyMode::Standard => self.config.consent.as_ref().is_none_or(|gate| gate(&parts)),
        };
        let session = if creates {
            Session::created(ip, self.limits)
        } else {
            Session::absent(ip, self.limits)
        };
        (Request::from_parts(parts, body), session)
    }

    /// The limit to apply to a new session from `ip`, if one is configured.
    pub(crate) fn create_limit(&self, ip: Option<IpAddr>) -> Option<CreateLimit> {
        let limit = self.config.new_session_limit?;
        Some(CreateLimit {
            network: network_of(ip?),
            max: limit.max,
            window: limit.window,
        })
    }
}

/// The client network counted by the new-session limit: an IPv4 address or
/// the /64 of an IPv6 address (SPEC §3.6).
pub(crate) fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// An empty response with `status` (and `Retry-After`), answered by the
/// layer instead of the handler's.
pub(crate) fn layer_response<B: Default>(
    status: StatusCode,
    retry_after: Option<Duration>,
) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_networks_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_ne!(network_of(a), network_of(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(network_of(v4), v4);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r: Response<String> = layer_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
