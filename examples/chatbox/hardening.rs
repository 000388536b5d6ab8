//! What a server facing visitors needs (SPEC §6 "Hardening"), from
//! well-kept parts: hyper's header-read timeout and tower-http's body limit
//! and body timeout, a cap on open connections in the accept loop, and two
//! small checks of our own (same-origin JSON writes, security headers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Largest request body accepted (SPEC §6): 413 past it.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The page's Content-Security-Policy: the widget's script and styles are
/// files of this site, it talks only to this site, and only this site may
/// frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'self'";

/// The server's limits on slow and numerous clients.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// A request whose headers are not complete by then is closed.
    pub(crate) header_timeout: Duration,
    /// A request whose body is not complete by then is refused.
    pub(crate) body_timeout: Duration,
    /// Open connections at most; past it, new ones wait in the kernel's queue.
    pub(crate) max_connections: usize,
}

impl Limits {
    /// SPEC §6's 10 s and 30 s, and 1 024 connections; each may be changed
    /// (tests shorten them) by `CHATBOX_HEADER_TIMEOUT_MS`,
    /// `CHATBOX_BODY_TIMEOUT_MS` and `CHATBOX_MAX_CONNECTIONS`.
    pub(crate) fn from_env() -> Result<Self, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: {v:?} is not a whole number above 0")),
            }
        };
        Ok(Self {
            header_timeout: Duration::from_millis(number("CHATBOX_HEADER_TIMEOUT_MS", 10_000)?),
            body_timeout: Duration::from_millis(number("CHATBOX_BODY_TIMEOUT_MS", 30_000)?),
            max_connections: number("CHATBOX_MAX_CONNECTIONS", 1024)? as usize,
        })
    }
}

/// `router` behind the body limit and timeout and the security headers.
pub(crate) fn protect(router: Router, limits: Limits) -> Router {
    router
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(same_origin_json))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// Serves `router` on `listener` until Ctrl-C: at most
/// `limits.max_connections` connections at once, each closed when a
/// request's headers take longer than `limits.header_timeout`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
) -> Result<(), String> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pass, and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request
                });
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(service);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

/// State-changing requests (`POST`, `DELETE`) carry JSON, if anything, and
/// come from this site (SPEC §6): `415` for another content type (every
/// HTML form sends one) or a body without one, `403` for a cross-site
/// `Origin` or `Sec-Fetch-Site`.
async fn same_origin_json(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::POST | Method::DELETE) {
        if let Some(refusal) = refuse_write(request.headers()) {
            return refusal;
        }
    }
    next.run(request).await
}

fn refuse_write(headers: &HeaderMap) -> Option<Response> {
    if !same_site(headers) {
        return Some((StatusCode::FORBIDDEN, "cross-site requests are refused").into_response());
    }
    let json = match headers.get(header::CONTENT_TYPE) {
        Some(kind) => kind
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json")),
        // No content type: fine only without a body.
        None => {
            headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0")
                && !headers.contains_key(header::TRANSFER_ENCODING)
        }
    };
    (!json).then(|| {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON, with `Content-Type: application/json`",
        )
            .into_response()
    })
}

/// No `Sec-Fetch-Site: cross-site`, and an `Origin`, when present, naming
/// the host the request was sent to.
fn same_site(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if site == Some(b"cross-site") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority.as_bytes());
    authority.is_some() && authority == host
}

/// The headers every response gets: the Content-Security-Policy (with
/// `frame-ancestors`), its older `X-Frame-Options` twin, and no sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether `given` is `expected`, in time that does not depend on where
/// they differ, nor on `given`'s length (`subtle`'s constant-time compare of
/// SHA-256 digests, so a length mismatch returns no earlier).
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(given)
        .as_slice()
        .ct_eq(Sha256::digest(expected).as_slice())
        .into()
}
