//! Mistakes of set-up that compile, run, and silently cost a feature: each
//! is logged once per layer (`warn` level), the first time a request shows
//! it, never per request.
//!
//! - A `Secure` cookie set on a plain-http request: browsers drop it (all
//!   but some on `localhost`), so every request starts a new session.
//! - Requests without a peer address (axum served without
//!   `into_make_service_with_connect_info`, hyper without [`PeerAddr`]): no
//!   client IP, so IP binding, the IP log and the new-session limit are off.
//!
//! [`PeerAddr`]: crate::PeerAddr

use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderValue, Uri, header};

/// Which warnings a layer has given.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    insecure: AtomicBool,
    no_peer: AtomicBool,
}

impl Warnings {
    /// A request came without a peer address.
    #[inline]
    pub(crate) fn no_peer(&self) {
        if !self.no_peer.load(Ordering::Relaxed) && !self.no_peer.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a request arrived without a peer address, so sessions get no client IP: IP \
                 binding, the IP log and the new-session limit are off. With axum, serve \
                 `app.into_make_service_with_connect_info::<SocketAddr>()`; with hyper, insert \
                 `visitor_session::PeerAddr(peer)` into each request"
            );
        }
    }

    /// Whether a plain-http request is still worth looking for (no warning yet).
    #[inline]
    pub(crate) fn watching_insecure(&self) -> bool {
        !self.insecure.load(Ordering::Relaxed)
    }

    /// A `Secure` cookie is about to be set on a request that came over
    /// plain http (`seen`: what showed it).
    #[cold]
    pub(crate) fn insecure(&self, seen: &str) {
        if !self.insecure.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                seen,
                "the session cookie is `Secure` but this request came over plain http: browsers \
                 drop the cookie (most of them except on localhost), so every request starts a \
                 new session. Serve https, or for plain-http development turn it off with \
                 `SessionConfig::secure(false)` (`SESSION_SECURE=false`)"
            );
        }
    }
}

/// What shows that `uri` with `headers` came over plain http: an
/// absolute `http:` URI, or the request's own page (its `Origin` or
/// `Referer` on the same host) served over `http:`. `None` when nothing
/// says so, which includes most requests over https and first visits.
pub(crate) fn plain_http<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
        return Some("an http: request URI");
    }
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes)?;
    [header::ORIGIN, header::REFERER]
        .into_iter()
        .filter_map(|name| headers.get(name))
        .find(|page| same_host_over_http(page.as_bytes(), host))
        .and_then(|page| page.to_str().ok())
}

/// `page` (an origin or URL) is `http://<host>...`.
fn same_host_over_http(page: &[u8], host: &[u8]) -> bool {
    let Some(rest) = page
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"http://"))
        .map(|_| &page[7..])
    else {
        return false;
    };
    let authority = rest.split(|&b| b == b'/').next().unwrap_or(rest);
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_page_on_the_same_host_over_http_shows_a_plain_http_request() {
        let uri = Uri::from_static("/api/messages");
        let h = headers(&[
            (header::HOST, "app.test:3000"),
            (header::ORIGIN, "http://app.test:3000"),
        ]);
        assert_eq!(plain_http(&uri, &h), Some("http://app.test:3000"));
        let h = headers(&[
            (header::HOST, "APP.test:3000"),
            (header::REFERER, "http://app.test:3000/help"),
        ]);
        assert_eq!(plain_http(&uri, &h), Some("http://app.test:3000/help"));
        let absolute = Uri::from_static("http://app.test/");
        assert!(plain_http(&absolute, &HeaderMap::new()).is_some());
    }

    #[test]
    fn https_pages_other_hosts_and_first_visits_show_nothing() {
        let uri = Uri::from_static("/");
        for h in [
            headers(&[
                (header::HOST, "app.test"),
                (header::ORIGIN, "https://app.test"),
            ]),
            // A cross-origin widget: the embedding page's scheme says nothing of ours.
            headers(&[
                (header::HOST, "chat.example"),
                (header::ORIGIN, "http://shop.test"),
            ]),
            headers(&[(header::HOST, "app.test")]),
            headers(&[(header::HOST, "app.test"), (header::REFERER, "http:")]),
        ] {
            assert_eq!(plain_http(&uri, &h), None, "{h:?}");
        }
    }
}
