//! The connections of [`RedisStore`](super::RedisStore): opened through
//! redis-rs with the store's timeouts, pooled by deadpool, shared by every
//! concurrent call.
//!
//! A Redis connection is multiplexed: many calls pipeline on one socket. So
//! the store keeps `pool_size` connections out of the pool, one per slot,
//! and each call clones the handle of the next slot's connection: calls take
//! the connections in turn and share them, and no call holds a connection to
//! itself while it waits for Redis. A slot gives its connection back to the
//! pool only when it needs a check: the pool then drops it (retired, see
//! below), pings it (idle for `ping_after_idle`, or a command on it timed
//! out), or opens a new one. On the common path a call costs no pool
//! operation and no round trip beyond its own command.
//!
//! # Dead connections
//!
//! A call that fails because its connection broke (reset, closed, a server
//! that restarted, a primary demoted to replica) marks every connection
//! opened before the failure as stale; the pool drops them instead of
//! handing them out again, and the call is retried once on a connection
//! opened afterwards. Every script is safe to run twice with the same
//! arguments, so the retry is correct even when the first attempt was
//! applied and only its reply was lost. A connection whose command timed out
//! is pinged before it is used again.
//!
//! # Connections from the application
//!
//! With [`RedisConfig::from_source`](super::RedisConfig::from_source) the
//! pool's manager asks the application's [`ConnectionSource`] instead of
//! opening a connection, and everything above holds unchanged; since the
//! source chose the connection's response timeout, each command is also
//! bounded by `command_timeout` here.
//!
//! # Outcomes
//!
//! A write that failed before it could reach Redis (no connection, refused
//! by the server) is [`StoreErrorKind::Unavailable`]; one that may have been
//! applied (timed out, or its connection broke after sending, and the retry
//! did not settle it) is [`StoreErrorKind::OutcomeUnknown`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleResult, Timeouts};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisError, RedisFuture, Value};

use super::config::{RedisConfig, Servers};
use super::scripts::LuaScript;
#[cfg(feature = "sentinel")]
use super::sentinel;
use super::source::ConnectionSource;
use crate::error::{ConfigError, StoreError, StoreErrorKind};

/// A store operation, as named in errors and logs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Op {
    pub(super) name: &'static str,
    /// Changes data, so a lost reply leaves its outcome unknown.
    pub(super) writes: bool,
}

impl Op {
    /// An operation that only reads.
    pub(super) const fn read(name: &'static str) -> Self {
        Self {
            name,
            writes: false,
        }
    }

    /// An operation that changes data.
    pub(super) const fn write(name: &'static str) -> Self {
        Self { name, writes: true }
    }
}

/// How connections to the configured deployment are opened.
enum Opener {
    Standalone(redis::Client),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
    #[cfg(feature = "sentinel")]
    Sentinel(Arc<sentinel::Primary>),
    /// The application hands connections out.
    Source(Arc<dyn ConnectionSource>),
}

/// A connection handle; clones share the connection.
#[derive(Clone)]
pub(super) enum Conn {
    Single(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What the pool holds: a connection, when it was opened, and whether a
/// command on it timed out since it was last checked.
struct Pooled {
    conn: Conn,
    generation: u64,
    suspect: Arc<AtomicBool>,
    /// What a source keeps with its connection (its pool's object), let go
    /// of with it.
    _holder: Option<Box<dyn std::any::Any + Send + Sync>>,
}

struct Manager {
    opener: Opener,
    config: AsyncConnectionConfig,
    /// Bumped when a connection is found broken: connections opened before
    /// are retired (see the module docs).
    generation: Arc<AtomicU64>,
    ping_after_idle: Duration,
    /// The connect timeout, for the Sentinel queries.
    #[cfg_attr(not(feature = "sentinel"), allow(dead_code))]
    config_timeout: Duration,
    /// The command timeout, enforced here on connections a source opened
    /// (the store's own have it as their response timeout).
    command_limit: Option<Duration>,
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = RedisError;

    async fn create(&self) -> Result<Pooled, RedisError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut holder = None;
        let conn = match &self.opener {
            Opener::Standalone(client) => Conn::Single(
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?,
            ),
            #[cfg(feature = "cluster")]
            Opener::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
            #[cfg(feature = "sentinel")]
            Opener::Sentinel(primary) => Conn::Single(
                primary
                    .connect(&self.config, &self.generation, self.config_timeout)
                    .await?,
            ),
            Opener::Source(source) => {
                let sourced = source.connection().await?;
                holder = sourced.holder;
                sourced.conn
            }
        };
        Ok(Pooled {
            conn,
            generation,
            suspect: Arc::default(),
            _holder: holder,
        })
    }

    async fn recycle(&self, pooled: &mut Pooled, metrics: &Metrics) -> RecycleResult<RedisError> {
        if pooled.generation < self.generation.load(Ordering::Acquire) {
            return Err(managed::RecycleError::message(
                "opened before a connection failure",
            ));
        }
        if !pooled.suspect.load(Ordering::Relaxed) && metrics.last_used() < self.ping_after_idle {
            // In use moments ago and nothing went wrong since: no round trip.
            return Ok(());
        }
        // Bounded by the connection's response timeout (and, on a source's
        // connection, by the command timeout).
        let ping = redis::cmd("PING");
        let _: Value = send(&mut pooled.conn, &ping, self.command_limit).await?;
        pooled.suspect.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// The pool and the rules above.
pub(super) struct Connections {
    pool: Pool<Manager>,
    /// One per connection the pool keeps; calls take them in turn.
    slots: Box<[Slot]>,
    next: AtomicUsize,
    generation: Arc<AtomicU64>,
    ping_after_idle_ms: u64,
    epoch: Instant,
    /// The deployment is a Redis Cluster.
    cluster: bool,
    /// See [`Manager::command_limit`].
    command_limit: Option<Duration>,
}

/// A connection kept out of the pool and shared by every call that lands on
/// it; given back (and so checked by the pool) when it may need a check.
#[derive(Default)]
struct Slot {
    held: RwLock<Option<Held>>,
    /// One call at a time replaces the slot's connection.
    replacing: tokio::sync::Mutex<()>,
}

struct Held {
    object: Object<Manager>,
    /// When a call last used it, in ms since `Connections::epoch`.
    last_used: AtomicU64,
}

/// A connection handle for one call, and what the call may learn about it.
struct Checkout {
    conn: Conn,
    generation: u64,
    suspect: Arc<AtomicBool>,
}

impl Checkout {
    fn of(pooled: &Pooled) -> Self {
        Self {
            conn: pooled.conn.clone(),
            generation: pooled.generation,
            suspect: pooled.suspect.clone(),
        }
    }
}

impl Connections {
    pub(super) fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        let opener = opener(config)?;
        let cluster = config.servers.is_cluster();
        let generation = Arc::new(AtomicU64::new(0));
        let command_limit = matches!(opener, Opener::Source(_)).then_some(config.command_timeout);
        let manager = Manager {
            opener,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.command_timeout)),
            generation: generation.clone(),
            ping_after_idle: config.ping_after_idle,
            config_timeout: config.connect_timeout,
            command_limit,
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(config.wait_timeout),
                // redis-rs applies the same connect timeout to each attempt;
                // this one also covers a Sentinel lookup before it.
                create: Some(config.connect_timeout),
                // The PING of a recycle has the connection's response timeout.
                recycle: None,
            })
            .build()
            .map_err(|e| ConfigError::new("pool_size", e.to_string()))?;
        Ok(Self {
            pool,
            slots: (0..config.pool_size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            generation,
            ping_after_idle_ms: config
                .ping_after_idle
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
            epoch: Instant::now(),
            cluster,
            command_limit,
        })
    }

    /// Connections open now, and the most the pool keeps.
    pub(super) fn status(&self) -> deadpool::Status {
        self.pool.status()
    }

    fn now_ms(&self) -> u64 {
        self.epoch
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    /// A connection for one call: the next slot's, used as it is when
    /// nothing calls for a check (no round trip, no pool), else replaced by
    /// the pool, which drops a stale connection, pings an idle or suspect
    /// one, or opens a new one.
    async fn checkout(&self, op: Op) -> Result<Checkout, StoreError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        if let Some(checkout) = self.usable(slot) {
            return Ok(checkout);
        }
        // Boxed: the pool's future is large, and every call's future would
        // carry room for it (a few kilobytes, allocated and moved per call).
        Box::pin(self.replace(slot, op)).await
    }

    /// The slot's connection after a check by the pool (see `checkout`).
    async fn replace(&self, slot: &Slot, op: Op) -> Result<Checkout, StoreError> {
        let _replacing = slot.replacing.lock().await;
        if let Some(checkout) = self.usable(slot) {
            // Another call replaced it meanwhile.
            return Ok(checkout);
        }
        let old = slot
            .held
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(old); // back to the pool, to be checked there
        let object = self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => StoreError::new(
                StoreErrorKind::Timeout,
                op.name,
                "no Redis connection available in time",
            ),
            PoolError::Backend(e) => not_sent(op, e),
            other => StoreError::new(
                StoreErrorKind::Unavailable,
                op.name,
                "the Redis connection pool failed",
            )
            .with_source(other),
        })?;
        let checkout = Checkout::of(&object);
        *slot.held.write().unwrap_or_else(PoisonError::into_inner) = Some(Held {
            object,
            last_used: AtomicU64::new(self.now_ms()),
        });
        Ok(checkout)
    }

    /// The slot's connection, if a call may use it without a check: not
    /// retired, no timeout on it since it was checked, not idle too long.
    fn usable(&self, slot: &Slot) -> Option<Checkout> {
        let held = slot.held.read().unwrap_or_else(PoisonError::into_inner);
        let held = held.as_ref()?;
        let pooled = &*held.object;
        let now = self.now_ms();
        let usable = pooled.generation >= self.generation.load(Ordering::Acquire)
            && !pooled.suspect.load(Ordering::Relaxed)
            && now.saturating_sub(held.last_used.load(Ordering::Relaxed)) < self.ping_after_idle_ms;
        if !usable {
            return None;
        }
        held.last_used.store(now, Ordering::Relaxed);
        Some(Checkout::of(pooled))
    }

    /// Marks every connection opened up to `generation` as stale.
    fn retire(&self, generation: u64) {
        self.generation.fetch_max(generation + 1, Ordering::AcqRel);
    }

    /// Runs `cmd` (an `EVALSHA` of `script`): one round trip, one more if the
    /// server lacks the script (then sent whole, with `EVAL`), and a single
    /// retry on a fresh connection if the first one turned out broken.
    pub(super) async fn run(
        &self,
        op: Op,
        script: &LuaScript,
        cmd: &Cmd,
    ) -> Result<Value, StoreError> {
        let limit = self.command_limit;
        let mut first = self.checkout(op).await?;
        let error = match attempt(&mut first.conn, script, cmd, limit).await {
            Ok(value) => return Ok(value),
            Err(e) if needs_new_connection(&e) => e,
            Err(e) => return Err(self.failed(op, &first, e, false)),
        };
        // Boxed, as the pool's future in `checkout`: the rare path's room
        // is not carried by every call.
        Box::pin(self.retry(op, script, cmd, &first, error)).await
    }

    /// `run`'s second attempt, on a connection opened after `first` broke
    /// with `error`.
    async fn retry(
        &self,
        op: Op,
        script: &LuaScript,
        cmd: &Cmd,
        first: &Checkout,
        error: RedisError,
    ) -> Result<Value, StoreError> {
        let limit = self.command_limit;
        self.retire(first.generation);
        // A connection that broke may have delivered the command before it
        // broke; a demoted primary's refusal proves it did not run.
        let ran_before = self.may_have_run(&error);
        tracing::debug!(op = op.name, error = %error, "Redis connection broken; retrying once on a new one");
        let mut second = match self.checkout(op).await {
            Ok(second) => second,
            Err(e) if op.writes && ran_before => {
                tracing::debug!(op = op.name, error = %e, "no new Redis connection for the retry");
                return Err(maybe_applied(op, error));
            }
            Err(e) => return Err(e),
        };
        attempt(&mut second.conn, script, cmd, limit)
            .await
            .map_err(|e| self.failed(op, &second, e, ran_before))
    }

    /// Loads `script` into the server's cache (on a cluster: every primary's).
    pub(super) async fn load(&self, op: Op, script: &LuaScript) -> Result<(), StoreError> {
        let mut checkout = self.checkout(op).await?;
        send(&mut checkout.conn, &script.load_cmd(), self.command_limit)
            .await
            .map(drop)
            .map_err(|e| self.failed(op, &checkout, e, false))
    }

    /// Whether a command that failed with `error` may have run in Redis.
    /// A refusal proves it did not, except on a cluster, whose client may
    /// have sent it once already (it retries broken connections itself).
    fn may_have_run(&self, error: &RedisError) -> bool {
        !refused(error) || self.cluster
    }

    /// Classifies the failure of a command sent on `checkout` (after an
    /// attempt that may have run, if `ran_before`), and takes note of what it
    /// says about the connection.
    fn failed(
        &self,
        op: Op,
        checkout: &Checkout,
        error: RedisError,
        ran_before: bool,
    ) -> StoreError {
        if needs_new_connection(&error) {
            self.retire(checkout.generation);
        } else if error.is_timeout() {
            checkout.suspect.store(true, Ordering::Relaxed);
        }
        let may_have_run = ran_before || self.may_have_run(&error);
        let answered = !(error.is_timeout() || error.is_io_error() || refused(&error));
        if answered {
            return StoreError::new(
                StoreErrorKind::Protocol,
                op.name,
                "unexpected answer from Redis",
            )
            .with_source(error);
        }
        if op.writes && may_have_run {
            return maybe_applied(op, error);
        }
        let kind = if error.is_timeout() {
            StoreErrorKind::Timeout
        } else {
            StoreErrorKind::Unavailable
        };
        StoreError::new(kind, op.name, "no answer from Redis").with_source(error)
    }
}

/// One `EVALSHA`, and the `EVAL` of the whole script if the server does not
/// have it cached (restart, `SCRIPT FLUSH`, a promoted replica).
async fn attempt(
    conn: &mut Conn,
    script: &LuaScript,
    cmd: &Cmd,
    limit: Option<Duration>,
) -> Result<Value, RedisError> {
    match send(conn, cmd, limit).await {
        // Boxed: the rare path's room is not carried by every call.
        Err(e) if e.code() == Some("NOSCRIPT") => {
            Box::pin(send(conn, &script.eval_instead(cmd), limit)).await
        }
        result => result,
    }
}

/// Sends one command, within `limit` if given (else the connection's own
/// response timeout is the bound); an error reply is an `Err` (redis-rs
/// hands it over as a value). Our scripts answer errors only at the top level.
async fn send(conn: &mut Conn, cmd: &Cmd, limit: Option<Duration>) -> Result<Value, RedisError> {
    let reply = match limit {
        None => conn.req_packed_command(cmd).await?,
        // A timeout here is the same error as redis-rs's own, so the call is
        // classified the same way (a write's outcome unknown, the connection
        // suspect until a `PING` answers).
        Some(limit) => tokio::time::timeout(limit, conn.req_packed_command(cmd))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer within the command timeout",
                )
            })??,
    };
    match reply {
        Value::ServerError(e) => Err(e.into()),
        value => Ok(value),
    }
}

/// The connection cannot serve this call, though another one may: it broke,
/// or it leads to a primary that was demoted to replica (after a Sentinel
/// failover).
fn needs_new_connection(error: &RedisError) -> bool {
    (error.is_io_error() && !error.is_timeout())
        || error.is_connection_dropped()
        || error.code() == Some("READONLY")
}

/// The server answered without running the command.
fn refused(error: &RedisError) -> bool {
    matches!(
        error.code(),
        Some(
            "READONLY"
                | "LOADING"
                | "MASTERDOWN"
                | "CLUSTERDOWN"
                | "TRYAGAIN"
                | "OOM"
                | "BUSY"
                | "NOPERM"
                | "NOAUTH"
                | "WRONGPASS"
        )
    ) || error.is_connection_refusal()
}

fn not_sent(op: Op, error: RedisError) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, op.name, "Redis is unavailable").with_source(error)
}

fn maybe_applied(op: Op, error: RedisError) -> StoreError {
    StoreError::new(
        StoreErrorKind::OutcomeUnknown,
        op.name,
        "sent to Redis, but no answer came back: it may or may not have been applied",
    )
    .with_source(error)
}

/// The certificates for `rediss://` connections: the configured CA, if
/// any (else redis-rs trusts the system's roots).
#[cfg(feature = "tls")]
fn certificates(config: &RedisConfig) -> Option<redis::TlsCertificates> {
    config.tls_ca.as_ref().map(|pem| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
}

/// redis-rs builds its TLS configuration from rustls's process-wide crypto
/// provider: ring, this crate's, unless the application installed another
/// (an application that enables two providers in rustls must, or rustls
/// cannot pick one).
#[cfg(feature = "tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer leaves that one in place: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn opener(config: &RedisConfig) -> Result<Opener, ConfigError> {
    #[cfg(feature = "tls")]
    ensure_crypto_provider();
    match &config.servers {
        Servers::Source(source) => Ok(Opener::Source(source.clone())),
        Servers::Standalone(url) => standalone(config, url)
            .map(Opener::Standalone)
            .map_err(|e| bad_url("url", url, &e)),
        #[cfg(feature = "cluster")]
        Servers::Cluster(nodes) => {
            if nodes.is_empty() {
                return Err(ConfigError::new(
                    "cluster",
                    "name at least one cluster node",
                ));
            }
            let infos = nodes
                .iter()
                .map(|n| {
                    redis::IntoConnectionInfo::into_connection_info(n.as_str())
                        .map_err(|e| bad_url("cluster", n, &e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let builder = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout);
            // Every node, the discovered ones included, is verified against the CA.
            #[cfg(feature = "tls")]
            let builder = match certificates(config) {
                Some(certs) => builder.certs(certs),
                None => builder,
            };
            builder
                .build()
                .map(Opener::Cluster)
                .map_err(|e| ConfigError::new("cluster", format!("not a usable cluster: {e}")))
        }
        #[cfg(feature = "sentinel")]
        Servers::Sentinel {
            nodes,
            master,
            primary,
        } => {
            if nodes.is_empty() {
                return Err(ConfigError::new("sentinel", "name at least one Sentinel"));
            }
            if master.is_empty() {
                return Err(ConfigError::new(
                    "sentinel",
                    "name the primary the Sentinels monitor",
                ));
            }
            for node in nodes {
                redis::IntoConnectionInfo::into_connection_info(node.as_str())
                    .map_err(|e| bad_url("sentinel", node, &e))?;
            }
            let mut login = redis::RedisConnectionInfo::default().set_db(primary.db);
            if let Some(username) = &primary.username {
                login = login.set_username(username);
            }
            if let Some(password) = &primary.password {
                login = login.set_password(password);
            }
            #[cfg(feature = "tls")]
            let client = if nodes.iter().any(|n| super::config::is_tls_url(n)) {
                sentinel_over_tls(config, nodes, master, primary)
            } else {
                plain_sentinel(nodes, master, login)
            };
            #[cfg(not(feature = "tls"))]
            let client = plain_sentinel(nodes, master, login);
            client
                .map(|client| {
                    Opener::Sentinel(Arc::new(sentinel::Primary::new(client, master.clone())))
                })
                .map_err(|e| {
                    ConfigError::new("sentinel", format!("not a usable Sentinel setup: {e}"))
                })
        }
    }
}

/// A client for one server; with a CA for a `rediss://` URL (validation
/// refused a CA with any other).
fn standalone(config: &RedisConfig, url: &str) -> Result<redis::Client, RedisError> {
    #[cfg(feature = "tls")]
    if let Some(certs) = certificates(config) {
        return redis::Client::build_with_tls(url, certs);
    }
    let _ = config;
    redis::Client::open(url)
}

#[cfg(feature = "sentinel")]
fn plain_sentinel(
    nodes: &[String],
    master: &str,
    login: redis::RedisConnectionInfo,
) -> Result<redis::sentinel::SentinelClient, RedisError> {
    // redis-rs takes the name as a `String` without its TLS feature, and as
    // any `AsRef<str>` with it.
    #[allow(clippy::unnecessary_to_owned)]
    redis::sentinel::SentinelClient::build(
        nodes.to_vec(),
        master.to_owned(),
        Some(
            redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(login),
        ),
        redis::sentinel::SentinelServerType::Master,
    )
}

/// Sentinels reached over TLS (`rediss://`), and the primary they name over
/// TLS too, both verified against the CA if one is set, else the system's
/// roots. The Sentinels' credentials are those of the first URL that has
/// any (redis-rs takes one set for all of them).
#[cfg(all(feature = "sentinel", feature = "tls"))]
fn sentinel_over_tls(
    config: &RedisConfig,
    nodes: &[String],
    master: &str,
    primary: &super::config::PrimaryAuth,
) -> Result<redis::sentinel::SentinelClient, RedisError> {
    use redis::IntoConnectionInfo;
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let infos = nodes
        .iter()
        .map(|n| n.as_str().into_connection_info())
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = SentinelClientBuilder::new(
        infos.iter().map(|i| i.addr().clone()),
        master,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
    .set_client_to_redis_db(primary.db);
    if let Some(login) = infos
        .iter()
        .map(|i| i.redis_settings())
        .find(|r| r.password().is_some())
    {
        if let Some(username) = login.username() {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = login.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
    }
    if let Some(username) = &primary.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &primary.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(certs) = certificates(config) {
        builder = builder
            .set_client_to_sentinel_certificates(certs.clone())
            .set_client_to_redis_certificates(certs);
    }
    builder.build()
}

fn bad_url(setting: &'static str, url: &str, error: &RedisError) -> ConfigError {
    ConfigError::new(
        setting,
        format!(
            "{} is not a Redis URL ({error})",
            super::config::redacted(url)
        ),
    )
}
