//! What the scenarios drive: the layer around a handler ([`act`]), requests
//! from a client IP with a cookie, and readers of the response's
//! `Set-Cookie` and JSON body. Public so that a store's own tests can write
//! further scenarios the same way.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderValue, Request, Response, header};
use tower::{BoxError, ServiceExt, service_fn};

use crate::{PeerAddr, Session, SessionConfig, SessionId, SessionLayer, SessionStore};

/// The client IP of the harness's requests.
pub const PEER: &str = "203.0.113.9";

/// The test service: the layer around `handler`, which gets the request's
/// `Session` and returns a body.
pub type TestService =
    tower::util::BoxCloneSyncService<Request<String>, Response<String>, BoxError>;

/// The layer over `store` with `config` around `handler`, as a [`TestService`].
pub fn service<St, F, Fut>(store: St, config: SessionConfig, handler: F) -> TestService
where
    St: SessionStore,
    F: Fn(Session, Request<String>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let layer = SessionLayer::new(store, config).expect("valid test config");
    let inner = service_fn(move |req: Request<String>| {
        let handler = handler.clone();
        async move {
            let session = req
                .extensions()
                .get::<Session>()
                .cloned()
                .expect("the layer puts a Session into every request it passes on");
            Ok::<_, Infallible>(Response::new(handler(session, req).await))
        }
    });
    tower::util::BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service(inner)
            .map_err(BoxError::from),
    )
}

/// Plain-http development config, so tests can read cookies without TLS.
pub fn config() -> SessionConfig {
    SessionConfig::new().site_id("test")
}

/// A request from `PEER` to `http://app.example.com/`.
pub fn request() -> http::request::Builder {
    from_ip(PEER.parse().unwrap())
}

/// A request from `ip` to `http://app.example.com/`.
pub fn from_ip(ip: IpAddr) -> http::request::Builder {
    Request::builder()
        .uri("/")
        .header(header::HOST, "app.example.com")
        .extension(PeerAddr(SocketAddr::new(ip, 50_000)))
}

/// A request from [`PEER`] with the `Cookie` header `cookie`.
pub fn with_cookie(cookie: &str) -> http::request::Builder {
    request().header(header::COOKIE, cookie)
}

/// Sends `req` (with an empty body) through `svc`.
pub async fn send(svc: &TestService, req: http::request::Builder) -> Response<String> {
    svc.clone()
        .oneshot(req.body(String::new()).unwrap())
        .await
        .expect("the test service is infallible")
}

/// A request to `path` from `PEER`, with the cookie of `id` if given.
pub fn at(path: &str, id: Option<&SessionId>) -> http::request::Builder {
    let b = request().uri(path);
    match id {
        Some(id) => b.header(header::COOKIE, cookie_for(id)),
        None => b,
    }
}

/// The JSON body of a response (what [`act`] saw).
pub fn seen(res: &Response<String>) -> serde_json::Value {
    serde_json::from_str(res.body()).unwrap_or_else(|e| panic!("{e}: {:?}", res.body()))
}

/// The `Set-Cookie` values of a response.
pub fn set_cookies(res: &Response<String>) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        .collect()
}

/// The session id the response binds the browser to, if any.
pub fn bound_id(res: &Response<String>) -> Option<SessionId> {
    set_cookies(res).iter().find_map(|c| {
        let (_, value) = c.split(';').next()?.split_once('=')?;
        SessionId::parse(value)
    })
}

/// The `Cookie` header a browser would send back for `id`.
pub fn cookie_for(id: &SessionId) -> String {
    format!("crisp-client%2Fsession%2Ftest={}", id.as_str())
}

/// True when the response removes the session cookie.
pub fn removes_cookie(res: &Response<String>) -> bool {
    set_cookies(res)
        .iter()
        .any(|c| c.starts_with("crisp-client%2Fsession%2Ftest=;") && c.contains("Max-Age=0"))
}

/// Three requests of session `id` that each write their own key, all loaded
/// before any commits, under `max_keys(2)`: the statuses they got, sorted.
pub async fn three_writers_over_a_two_key_limit<St: SessionStore>(
    store: St,
    id: SessionId,
) -> Vec<http::StatusCode> {
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let svc = service(store, config().max_keys(2), move |session, req| {
        let barrier = barrier.clone();
        async move {
            session.insert(req.uri().path(), &1).unwrap();
            barrier.wait().await;
            String::new()
        }
    });
    let tasks: Vec<_> = ["/a", "/b", "/c"]
        .into_iter()
        .map(|path| {
            let svc = svc.clone();
            let req = request().uri(path).header(header::COOKIE, cookie_for(&id));
            tokio::spawn(async move { send(&svc, req).await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    statuses
}

/// A handler that does what the request path says (`/write`, `/promote`,
/// `/start`, `/cycle`, `/reset`, `/key/<name>`), and answers with what it
/// saw as JSON: `error` (the error of the action, if any), `state`, `note`
/// (the key the `/write` action sets), `ip`, `store_error` (the kind of a
/// load failure, in fail-open mode), and `previous` (the id the layer
/// renamed the session from for this request).
pub async fn act(session: Session, req: Request<String>) -> String {
    let path = req.uri().path().to_owned();
    let result = match path.as_str() {
        "/write" => session.insert("note", "hello"),
        "/promote" => session.promote(),
        "/start" => session.start(),
        "/cycle" => session.cycle_id(),
        "/reset" => session.reset(),
        p if p.starts_with("/key/") => session.insert(&p[5..], &true),
        _ => Ok(()),
    };
    serde_json::json!({
        "error": result.err().map(|e| e.to_string()),
        "state": session.state().map(|s| s.as_str()),
        "note": session.get::<String>("note").ok().flatten(),
        "ip": session.client_ip().map(|ip| ip.to_string()),
        "store_error": session.error().map(|e| e.kind().as_str()),
        "previous": session.previous_id().map(|id| id.as_str().to_owned()),
    })
    .to_string()
}
