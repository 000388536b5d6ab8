//! Shared test support: building the layer around a handler, sending
//! requests with a peer address and cookies, reading `Set-Cookie`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, header};
use tower::{BoxError, ServiceExt, service_fn};
use visitor_session::store::{
    Access, Changes, Committed, CreateLimit, Created, IpLog, NetworkStats, Removed, SessionRecord,
    StoreFuture, StorePolicy, TokenBinding, TokenHash,
};
use visitor_session::{
    MemoryStore, PeerAddr, Session, SessionConfig, SessionId, SessionLayer, SessionState,
    SessionStore, StoreError, StoreErrorKind,
};

pub(crate) const PEER: &str = "203.0.113.9";

/// What [`TestStore`] does with one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Forward it to the memory store.
    PassThrough,
    /// Fail it at once, as a store that cannot be reached.
    Fail,
    /// Never answer, as a store that hangs.
    Hang,
}

/// The one store of the layer's tests: forwards every operation to a
/// `MemoryStore`, or fails or hangs it, operation by operation; and counts
/// the calls, so a test can assert what a request cost.
#[derive(Clone)]
pub(crate) struct TestStore {
    pub(crate) inner: MemoryStore,
    behaviour: Arc<Mutex<HashMap<&'static str, Behaviour>>>,
    calls: Arc<Mutex<HashMap<&'static str, usize>>>,
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl TestStore {
    /// Forwards everything to `inner`.
    pub(crate) fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            behaviour: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// A store that fails every operation.
    pub(crate) fn down() -> Self {
        let store = Self::default();
        for op in OPERATIONS {
            store.set(op, Behaviour::Fail);
        }
        store
    }

    /// A store that never answers.
    pub(crate) fn hanging() -> Self {
        let store = Self::default();
        for op in OPERATIONS {
            store.set(op, Behaviour::Hang);
        }
        store
    }

    /// From now on, `op` (`"touch"`, `"create"`...) behaves so.
    pub(crate) fn set(&self, op: &'static str, behaviour: Behaviour) {
        self.behaviour.lock().unwrap().insert(op, behaviour);
    }

    /// Calls of `op` so far.
    pub(crate) fn calls(&self, op: &str) -> usize {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// All calls so far.
    pub(crate) fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        pass: impl FnOnce(&MemoryStore) -> StoreFuture<T>,
    ) -> StoreFuture<T> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        let behaviour = self
            .behaviour
            .lock()
            .unwrap()
            .get(op)
            .copied()
            .unwrap_or(Behaviour::PassThrough);
        match behaviour {
            Behaviour::PassThrough => pass(&self.inner),
            Behaviour::Fail => StoreFuture::ready(Err(StoreError::new(
                StoreErrorKind::Unavailable,
                op,
                "connection refused",
            ))),
            Behaviour::Hang => StoreFuture::new(std::future::pending()),
        }
    }
}

const OPERATIONS: [&str; 11] = [
    "touch",
    "create",
    "commit",
    "cycle",
    "reset",
    "delete",
    "ip_log",
    "network_stats",
    "token_session",
    "bind_token",
    "unbind_token",
];

impl SessionStore for TestStore {
    fn touch(&self, id: &SessionId, access: &Access<'_>) -> StoreFuture<Option<SessionRecord>> {
        self.run("touch", |s| s.touch(id, access))
    }
    fn create(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
        limit: Option<&CreateLimit>,
    ) -> StoreFuture<Created> {
        self.run("create", |s| s.create(id, access, changes, limit))
    }
    fn commit(
        &self,
        id: &SessionId,
        access: &Access<'_>,
        changes: &Changes,
    ) -> StoreFuture<Committed> {
        self.run("commit", |s| s.commit(id, access, changes))
    }
    fn cycle(
        &self,
        old: &SessionId,
        new: &SessionId,
        access: &Access<'_>,
    ) -> StoreFuture<Option<SessionRecord>> {
        self.run("cycle", |s| s.cycle(old, new, access))
    }
    fn reset(&self, id: &SessionId) -> StoreFuture<Removed> {
        self.run("reset", |s| s.reset(id))
    }
    fn delete(&self, id: &SessionId) -> StoreFuture<Removed> {
        self.run("delete", |s| s.delete(id))
    }
    fn ip_log(&self, id: &SessionId) -> StoreFuture<Option<IpLog>> {
        self.run("ip_log", |s| s.ip_log(id))
    }
    fn network_stats(&self, ip: IpAddr) -> StoreFuture<Option<NetworkStats>> {
        self.run("network_stats", |s| s.network_stats(ip))
    }
    fn token_session(
        &self,
        token: &TokenHash,
        policy: &StorePolicy,
    ) -> StoreFuture<Option<TokenBinding>> {
        self.run("token_session", |s| s.token_session(token, policy))
    }
    fn bind_token(
        &self,
        token: &TokenHash,
        expected: Option<&SessionId>,
        id: &SessionId,
        state: SessionState,
        policy: &StorePolicy,
    ) -> StoreFuture<SessionId> {
        self.run("bind_token", |s| {
            s.bind_token(token, expected, id, state, policy)
        })
    }
    fn unbind_token(&self, token: &TokenHash, id: &SessionId) -> StoreFuture<()> {
        self.run("unbind_token", |s| s.unbind_token(token, id))
    }
}

/// The test service: the layer around `handler`, which gets the request's
/// `Session` and returns a body.
pub(crate) type TestService =
    tower::util::BoxCloneSyncService<Request<String>, Response<String>, BoxError>;

pub(crate) fn service<St, F, Fut>(store: St, config: SessionConfig, handler: F) -> TestService
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
pub(crate) fn config() -> SessionConfig {
    SessionConfig::new().site_id("test")
}

/// A request from `PEER` to `http://app.example.com/`.
pub(crate) fn request() -> http::request::Builder {
    from_ip(PEER.parse().unwrap())
}

pub(crate) fn from_ip(ip: IpAddr) -> http::request::Builder {
    Request::builder()
        .uri("/")
        .header(header::HOST, "app.example.com")
        .extension(PeerAddr(SocketAddr::new(ip, 50_000)))
}

pub(crate) fn with_cookie(cookie: &str) -> http::request::Builder {
    request().header(header::COOKIE, cookie)
}

pub(crate) async fn send(svc: &TestService, req: http::request::Builder) -> Response<String> {
    svc.clone()
        .oneshot(req.body(String::new()).unwrap())
        .await
        .expect("the test service is infallible")
}

/// A request to `path` from `PEER`, with the cookie of `id` if given.
pub(crate) fn at(path: &str, id: Option<&SessionId>) -> http::request::Builder {
    let b = request().uri(path);
    match id {
        Some(id) => b.header(header::COOKIE, cookie_for(id)),
        None => b,
    }
}

/// The JSON body of a response (what [`act`] saw).
pub(crate) fn seen(res: &Response<String>) -> serde_json::Value {
    serde_json::from_str(res.body()).unwrap_or_else(|e| panic!("{e}: {:?}", res.body()))
}

/// The `Set-Cookie` values of a response.
pub(crate) fn set_cookies(res: &Response<String>) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        .collect()
}

/// The session id the response binds the browser to, if any.
pub(crate) fn bound_id(res: &Response<String>) -> Option<SessionId> {
    set_cookies(res).iter().find_map(|c| {
        let (_, value) = c.split(';').next()?.split_once('=')?;
        SessionId::parse(value)
    })
}

/// The `Cookie` header a browser would send back for `id`.
pub(crate) fn cookie_for(id: &SessionId) -> String {
    format!("crisp-client%2Fsession%2Ftest={}", id.as_str())
}

/// True when the response removes the session cookie.
pub(crate) fn removes_cookie(res: &Response<String>) -> bool {
    set_cookies(res)
        .iter()
        .any(|c| c.starts_with("crisp-client%2Fsession%2Ftest=;") && c.contains("Max-Age=0"))
}

/// Three requests of session `id` that each write their own key, all loaded
/// before any commits, under `max_keys(2)`: the statuses they got, sorted.
pub(crate) async fn three_writers_over_a_two_key_limit<St: SessionStore>(
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
pub(crate) async fn act(session: Session, req: Request<String>) -> String {
    let path = req.uri().path().to_owned();
    let result = match path.as_str() {
        "/write" => session.insert("note", "hello"),
        "/promote" => session.promote(),
        "/start" => session.start(),
        "/cycle" => session.cycle_id(),
        "/reset" => {
            session.reset();
            Ok(())
        }
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

pub(crate) mod conformance;
pub(crate) mod continuity;
pub(crate) mod demo;
pub(crate) mod load;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod redis_servers;
pub(crate) mod redis_suite;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod temp;
