//! What the layer reads from a request before any store call: the cookie, the
//! client IP, the cookie `Domain` for the response, and the session of a
//! visitor without a live one (SPEC §2, §3.2, §3.3).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request, header};

use super::Shared;
use crate::client_ip::{PeerAddr, client_network};
use crate::config::PrivacyMode;
use crate::cookie::CookieRead;
use crate::id::SessionId;
use crate::session::Session;
use crate::store::{Access, CreateLimit, TokenHash};

/// What the layer learned from the request, kept until the response.
pub(crate) struct RequestContext {
    pub(crate) shared: Arc<Shared>,
    /// The client IP of the request (SPEC §3.3).
    pub(crate) ip: Option<IpAddr>,
    /// When the request came, in ms since the Unix epoch: 0 until the clock
    /// is first needed (a store call, a `Set-Cookie`), so that a request
    /// that needs neither never reads it.
    at_ms: AtomicU64,
    /// `Domain` for the `Set-Cookie` of this response (the codec keeps the
    /// last host's answer per thread, so this is a compare, not a lookup).
    domain: Option<Arc<str>>,
    /// The request's host, kept only when two session cookies conflict (the
    /// response then also clears the other copy).
    pub(crate) host: Option<HeaderValue>,
    /// The request carried a well-formed cookie naming no live session.
    pub(crate) stale_cookie: bool,
    /// The request carried two different session cookies.
    pub(crate) conflicting: bool,
    /// The keyed hash of the request's continuity token (SPEC §3.7); boxed,
    /// so requests without one carry a word, not 33 bytes, through their futures.
    pub(crate) token: Option<Box<TokenHash>>,
    /// The request's continuity token is bound as a permanent session's
    /// (nothing to do when its session is promoted).
    pub(crate) token_permanent: bool,
    /// What showed that this request came over plain http, while a
    /// `Secure` cookie is configured and no warning was given yet.
    pub(crate) insecure_seen: Option<Box<str>>,
    /// The store calls this request made (for the request's log line).
    pub(crate) store_calls: u8,
    pub(crate) session: Option<Session>,
}

impl RequestContext {
    /// This request's access to its session, for the store.
    pub(crate) fn access(&self) -> Access<'_> {
        Access::new(self.ip, self.at_ms(), &self.shared.policy).token(self.token.as_deref())
    }

    /// When the request came, in ms since the Unix epoch (the clock is read
    /// once, at the first call).
    #[inline]
    pub(crate) fn at_ms(&self) -> u64 {
        match self.at_ms.load(Ordering::Relaxed) {
            0 => {
                let now = Access::now_ms();
                self.at_ms.store(now, Ordering::Relaxed);
                now
            }
            at => at,
        }
    }

    /// The `Domain` of this response's `Set-Cookie`.
    pub(crate) fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The limit to apply to a new session of this request, if one is configured.
    pub(crate) fn create_limit(&self) -> Option<CreateLimit> {
        let limit = self.shared.config.new_session_limit?;
        Some(CreateLimit {
            network: client_network(self.ip?),
            max: limit.max,
            window: limit.window,
        })
    }
}

/// The socket peer of the request: a [`PeerAddr`] inserted by the server,
/// else (feature `axum`) axum's `ConnectInfo`.
#[inline]
fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    let peer = extensions.get::<PeerAddr>().map(|peer| peer.0);
    #[cfg(feature = "axum")]
    let peer = peer.or_else(|| crate::extract::connect_info(extensions));
    peer.map(|addr| addr.ip().to_canonical())
}

impl Shared {
    /// Reads what the request says about the session, before any store call.
    pub(crate) fn inspect<B>(self: &Arc<Self>, req: &Request<B>) -> (CookieRead, RequestContext) {
        let peer = peer_ip(req.extensions());
        if peer.is_none() {
            self.warnings.no_peer();
        }
        let ip = peer.map(|peer| self.config.trusted_proxies.client_ip(peer, req.headers()));
        let secure = self.config.secure || self.config.cross_origin;
        let insecure_seen = (secure && self.warnings.watching_insecure())
            .then(|| super::warnings::plain_http(req.uri(), req.headers()))
            .flatten()
            .map(Box::from);
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
            at_ms: AtomicU64::new(0),
            domain: self.codec.domain_for(host),
            host: host
                .filter(|_| conflicting)
                .and_then(|h| HeaderValue::from_bytes(h).ok()),
            stale_cookie: false,
            conflicting,
            token: None,
            token_permanent: false,
            insecure_seen,
            store_calls: 0,
            session: None,
        };
        (cookie, ctx)
    }

    /// The keyed hash of the request's continuity token, when tokens are
    /// configured and the request carries a well-formed one (SPEC §3.7).
    pub(crate) fn token<B>(&self, req: Request<B>) -> (Request<B>, Option<TokenHash>) {
        let Some(tokens) = &self.config.continuity else {
            return (req, None);
        };
        let (parts, body) = req.into_parts();
        let site = self.config.site_id.as_deref().unwrap_or("");
        let token = tokens.hash(&parts, site);
        (Request::from_parts(parts, body), token)
    }

    /// The session of a request without a live session: a new temporary one
    /// in standard mode with consent, none otherwise (SPEC §3.2). A session
    /// created by this request takes the id `reserved` in its continuity
    /// token's binding, if any.
    pub(crate) fn fresh_session<B>(
        &self,
        req: Request<B>,
        ip: Option<IpAddr>,
        reserved: Option<SessionId>,
    ) -> (Request<B>, Session) {
        let creates = match (&self.config.privacy, &self.config.consent) {
            (PrivacyMode::Total, _) => false,
            (PrivacyMode::Standard, None) => true,
            (PrivacyMode::Standard, Some(gate)) => {
                // Only a consent gate reads the request's parts.
                let (parts, body) = req.into_parts();
                let consents = gate(&parts);
                let session = Session::fresh(consents, reserved, ip, self.policy.limits);
                return (Request::from_parts(parts, body), session);
            }
        };
        (
            req,
            Session::fresh(creates, reserved, ip, self.policy.limits),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addr_extension_gives_the_peer_ip() {
        // SPEC §3.3: the equivalent of `ConnectInfo` for plain hyper.
        let mut extensions = http::Extensions::new();
        assert_eq!(peer_ip(&extensions), None);
        extensions.insert(PeerAddr("[::ffff:203.0.113.7]:5000".parse().unwrap()));
        assert_eq!(peer_ip(&extensions), Some("203.0.113.7".parse().unwrap()));
    }

    #[cfg(feature = "axum")]
    #[test]
    fn connect_info_gives_the_peer_ip_and_peer_addr_takes_precedence() {
        let mut extensions = http::Extensions::new();
        let addr: std::net::SocketAddr = "203.0.113.7:5000".parse().unwrap();
        extensions.insert(axum::extract::ConnectInfo(addr));
        assert_eq!(peer_ip(&extensions), Some("203.0.113.7".parse().unwrap()));
        extensions.insert(PeerAddr("198.51.100.1:4000".parse().unwrap()));
        assert_eq!(peer_ip(&extensions), Some("198.51.100.1".parse().unwrap()));
    }
}
