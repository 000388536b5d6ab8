//! The reference chat-widget backend of SPEC §6.
//!
//! ```sh
//! cargo run --example chatbox --features axum          # memory store, http://127.0.0.1:3000
//! ADMIN_TOKEN=secret BIND=0.0.0.0:8080 cargo run --example chatbox --features axum
//! ```
//!
//! Every setting comes from the environment (see README.md); a bad value stops
//! the demo at start-up with a message naming the variable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use visitor_session::store::{RedisConfig, RedisStore, SessionStore};
use visitor_session::{
    ContinuityTokens, MemoryStore, Session, SessionConfig, SessionError, SessionId, SessionLayer,
};

const WIDGET: &str = include_str!("widget.html");
/// Longest message accepted, in characters.
const MAX_MESSAGE_CHARS: usize = 2000;
/// Session keys holding messages start with this.
const MESSAGE_PREFIX: &str = "msg:";

#[derive(Clone)]
struct App {
    store: Arc<dyn SessionStore>,
    admin_token: Option<Arc<str>>,
    /// Tie-breaker for message keys written in the same millisecond.
    seq: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct NewMessage {
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Message {
    text: String,
    at_ms: u64,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,visitor_session=info".into()),
        )
        .init();
    if let Err(message) = run().await {
        eprintln!("chatbox: {message}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let bind: SocketAddr = match std::env::var("BIND") {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("BIND: {v:?} is not an address like 127.0.0.1:3000"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 3000)),
    };
    // The demo serves plain http, so its cookie is not `Secure` unless asked.
    let config = SessionConfig::new()
        .secure(false)
        .max_keys(512)
        .max_data_bytes(512 * 1024)
        .with_vars(|name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    let config = match std::env::var("SESSION_SITE_ID") {
        Ok(site) => config.site_id(site),
        Err(_) => config,
    };
    // SPEC §3.7: continuity tokens from the header a site's front-end would
    // set for its logged-in users.
    let config = match std::env::var("SESSION_TOKEN_SECRET") {
        Ok(secret) => config.continuity(ContinuityTokens::from_header(
            secret,
            http::HeaderName::from_static("x-visitor-token"),
        )),
        Err(_) => config,
    };
    config.validate().map_err(|e| match e.setting() {
        "site_id" => format!("SESSION_SITE_ID: {e}"),
        "continuity" => format!("SESSION_TOKEN_SECRET: {e}"),
        _ => e.to_string(),
    })?;
    let admin_token = match std::env::var("ADMIN_TOKEN") {
        Ok(t) if t.trim().is_empty() => {
            return Err("ADMIN_TOKEN: set it to a non-empty token".into());
        }
        Ok(t) => Some(Arc::from(t)),
        Err(_) => None,
    };
    let store = store_from_env().await?;
    let layer = SessionLayer::from_arc(store.clone(), config).map_err(|e| e.to_string())?;
    let app = App {
        store,
        admin_token,
        seq: Arc::default(),
    };

    let router = Router::new()
        .route("/", get(page))
        .route("/api/session", get(session_info))
        .route("/api/messages", get(list_messages).post(post_message))
        .route("/api/session/reset", post(reset))
        // Agent routes do not go through the visitor-session layer: an agent
        // is not a visitor and gets no cookie.
        .route_layer(layer)
        .route("/admin/sessions/{id}", delete(admin_delete))
        .route("/admin/sessions/{id}/ips", get(admin_ips))
        .route("/admin/networks/{ip}", get(admin_network))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("BIND: cannot listen on {bind}: {e}"))?;
    tracing::info!("chatbox listening on http://{bind}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}

/// The session store the environment asks for: Redis Cluster
/// (`REDIS_CLUSTER_NODES`), Redis behind Sentinel (`REDIS_SENTINEL_NODES` and
/// `REDIS_SENTINEL_MASTER`), one Redis server (`REDIS_URL`), or memory.
async fn store_from_env() -> Result<Arc<dyn SessionStore>, String> {
    let list = |name: &str| -> Option<Vec<String>> {
        let value = std::env::var(name).ok()?;
        Some(
            value
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    };
    let (config, var, what) = if let Some(nodes) = list("REDIS_CLUSTER_NODES") {
        (
            cluster_config(nodes)?,
            "REDIS_CLUSTER_NODES",
            "Redis Cluster",
        )
    } else if let Some(nodes) = list("REDIS_SENTINEL_NODES") {
        let master = std::env::var("REDIS_SENTINEL_MASTER").map_err(|_| {
            "REDIS_SENTINEL_MASTER: set it, with REDIS_SENTINEL_NODES, to the name the \
             Sentinels monitor the primary under"
                .to_owned()
        })?;
        (
            sentinel_config(nodes, master)?,
            "REDIS_SENTINEL_NODES",
            "Redis via Sentinel",
        )
    } else if let Ok(url) = std::env::var("REDIS_URL") {
        if !url.starts_with("redis://") && !url.starts_with("redis+unix://") {
            return Err(format!("REDIS_URL: {url:?} is not a redis:// URL"));
        }
        (RedisConfig::new(url), "REDIS_URL", "Redis")
    } else {
        tracing::info!("session store: memory (set REDIS_URL for Redis)");
        return Ok(Arc::new(MemoryStore::new()));
    };
    let store = RedisStore::new(config).map_err(|e| format!("{var}: {e}"))?;
    // Best effort: with Redis down at start-up the demo still serves (fail-open)
    // and picks Redis up when it comes back.
    match store.load_scripts().await {
        Ok(()) => tracing::info!("session store: {what}"),
        Err(e) => tracing::warn!(error = %e, "session store: {what}, not reachable yet"),
    }
    Ok(Arc::new(store))
}

#[cfg(feature = "cluster")]
fn cluster_config(nodes: Vec<String>) -> Result<RedisConfig, String> {
    if nodes.is_empty() {
        return Err("REDIS_CLUSTER_NODES: name at least one node URL".into());
    }
    Ok(RedisConfig::cluster(nodes))
}

#[cfg(not(feature = "cluster"))]
fn cluster_config(_: Vec<String>) -> Result<RedisConfig, String> {
    Err(
        "REDIS_CLUSTER_NODES: this build has no Redis Cluster support; \
         run with `--features cluster`"
            .into(),
    )
}

#[cfg(feature = "sentinel")]
fn sentinel_config(nodes: Vec<String>, master: String) -> Result<RedisConfig, String> {
    if nodes.is_empty() {
        return Err("REDIS_SENTINEL_NODES: name at least one Sentinel URL".into());
    }
    let config = RedisConfig::sentinel(nodes, master);
    // The primary's own password, when it has one (the Sentinels' come with their URLs).
    Ok(match std::env::var("REDIS_SENTINEL_PASSWORD") {
        Ok(password) => config.primary_credentials(None, &password),
        Err(_) => config,
    })
}

#[cfg(not(feature = "sentinel"))]
fn sentinel_config(_: Vec<String>, _: String) -> Result<RedisConfig, String> {
    Err("REDIS_SENTINEL_NODES: this build has no Sentinel support; \
         run with `--features sentinel`"
        .into())
}

async fn page(session: Session) -> Html<&'static str> {
    // Loading the page is a visit: the layer already touched or created the session.
    let _ = session;
    Html(WIDGET)
}

async fn session_info(session: Session) -> Json<serde_json::Value> {
    Json(json!({
        "id": session.id().map(|id| id.as_str().to_owned()),
        "state": session.state().map(|s| s.as_str()),
        "ip": session.client_ip().map(|ip| ip.to_string()),
    }))
}

async fn list_messages(session: Session) -> Result<Json<Vec<Message>>, Response> {
    let mut keys: Vec<String> = session
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(MESSAGE_PREFIX))
        .collect();
    keys.sort();
    let mut messages = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(m) = session.get::<Message>(&key).map_err(session_error)? {
            messages.push(m);
        }
    }
    Ok(Json(messages))
}

async fn post_message(State(app): State<App>, session: Session, body: Bytes) -> Response {
    let text = match serde_json::from_slice::<NewMessage>(&body) {
        Ok(m) if !m.text.trim().is_empty() && m.text.chars().count() <= MAX_MESSAGE_CHARS => m.text,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected a JSON body {{\"text\": \"...\"}} with 1 to {MAX_MESSAGE_CHARS} characters"),
            )
                .into_response();
        }
    };
    let at_ms = visitor_session::store::Access::now_ms();
    // One key per message: concurrent posts change different keys, so all are kept.
    let key = format!(
        "{MESSAGE_PREFIX}{at_ms:013}-{:06}",
        app.seq.fetch_add(1, Ordering::Relaxed) % 1_000_000
    );
    let stored = session
        .insert(&key, &Message { text, at_ms })
        .and_then(|()| session.promote());
    match stored {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => session_error(e),
    }
}

async fn reset(session: Session) -> StatusCode {
    session.reset();
    StatusCode::NO_CONTENT
}

fn session_error(error: SessionError) -> Response {
    let status = match error {
        SessionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::TooManyKeys { .. } | SessionError::TooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, error.to_string()).into_response()
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.admin_token else {
        return false;
    };
    // RFC 9110: the scheme name is case-insensitive.
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an admin route refused a request.
enum AdminRefusal {
    Unauthorized,
    BadId,
    BadIp,
    Store(visitor_session::StoreError),
}

impl IntoResponse for AdminRefusal {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "send `Authorization: Bearer <ADMIN_TOKEN>`",
            )
                .into_response(),
            Self::BadId => {
                (StatusCode::BAD_REQUEST, "not a session id (session_<uuid>)").into_response()
            }
            Self::BadIp => (StatusCode::BAD_REQUEST, "not an IP address").into_response(),
            Self::Store(error) => {
                tracing::warn!(%error, "an admin request found the store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the session store is unavailable",
                )
                    .into_response()
            }
        }
    }
}

/// Checks the bearer token and the id of an admin route.
fn admin_target(app: &App, headers: &HeaderMap, id: &str) -> Result<SessionId, AdminRefusal> {
    if !authorized(app, headers) {
        return Err(AdminRefusal::Unauthorized);
    }
    SessionId::parse(id).ok_or(AdminRefusal::BadId)
}

async fn admin_delete(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match admin_target(&app, &headers, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match app.store.delete(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "no such session").into_response(),
        Err(e) => AdminRefusal::Store(e).into_response(),
    }
}

async fn admin_ips(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match admin_target(&app, &headers, &id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match app.store.ip_log(&id).await {
        Ok(Some(log)) => Json(log).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such session").into_response(),
        Err(e) => AdminRefusal::Store(e).into_response(),
    }
}

/// The statistics of the client network of `ip` (SPEC §3.6, §6).
async fn admin_network(
    State(app): State<App>,
    headers: HeaderMap,
    Path(ip): Path<String>,
) -> Response {
    if !authorized(&app, &headers) {
        return AdminRefusal::Unauthorized.into_response();
    }
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return AdminRefusal::BadIp.into_response();
    };
    match app.store.network_stats(ip).await {
        Ok(Some(stats)) => Json(stats).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "nothing counted for this network").into_response(),
        Err(e) => AdminRefusal::Store(e).into_response(),
    }
}
