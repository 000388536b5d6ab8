//! [`ConnectionSource`]: connections the application owns (its
//! deadpool-redis pool), handed to [`RedisStore`](super::RedisStore)
//! instead of a URL.
//!
//! The trait is this crate's, so the store's public API does not move with
//! deadpool-redis's 0.x versions: only the `impl`s at the bottom of this file
//! name its types.

use std::any::Any;

use redis::RedisFuture;
use redis::aio::MultiplexedConnection;

use super::connection::Conn;

/// Where [`RedisStore`](super::RedisStore) gets its connections when the
/// application owns them: its `deadpool_redis::Pool` (feature
/// `deadpool-redis`), its `deadpool_redis::cluster::Pool` (with `cluster`
/// too), or a type of its own. Built into a store with
/// [`RedisConfig::from_source`](super::RedisConfig::from_source).
///
/// # How the store uses a source
///
/// Redis connections are multiplexed, so the store asks the source for
/// [`RedisConfig::pool_size`](super::RedisConfig::pool_size) connections
/// (default 1), keeps them, and shares each between all its concurrent
/// calls: a request costs its one script call and nothing else (no `PING`,
/// no `UNWATCH`, no pool checkout). It goes back to the source only for a
/// connection that broke (then the call is retried once on a new one, as
/// with the store's own connections), that sat idle for
/// [`ping_after_idle`](super::RedisConfig::ping_after_idle) and fails its
/// `PING`, or after a command on it timed out. A connection the store lets
/// go of is dropped with its [holder](SourcedConnection::held_by): a pool's
/// object goes back to the pool, which checks it as it checks any.
///
/// While the store holds a connection, the application does not get it from
/// its pool: its own transactions (`WATCH`/`MULTI`) never share a socket
/// with the store's scripts. The pool's size counts the store's connections.
///
/// # Timeouts and outcomes
///
/// The source opens connections with its own settings: URL, credentials,
/// TLS, and redis-rs's response timeout (500 ms unless the pool's manager
/// sets another). The store bounds each command by its own
/// [`command_timeout`](super::RedisConfig::command_timeout) on top, and
/// getting a connection by [`connect_timeout`](super::RedisConfig::connect_timeout),
/// so the lower of the two applies; the layer's
/// [`store_timeout`](crate::SessionConfig::store_timeout) still bounds every
/// store call as a whole. A write that timed out, or whose connection broke
/// after it was sent, is reported as
/// [`OutcomeUnknown`](crate::StoreErrorKind::OutcomeUnknown) exactly as on
/// the store's own connections; one that never reached Redis (no connection
/// from the source) as [`Unavailable`](crate::StoreErrorKind::Unavailable).
///
/// # Implementing it
///
/// ```
/// use visitor_session::store::{ConnectionSource, SourcedConnection};
///
/// /// Connections opened by a redis-rs client the application configured.
/// struct MyClient(redis::Client);
///
/// impl ConnectionSource for MyClient {
///     fn connection(&self) -> redis::RedisFuture<'_, SourcedConnection> {
///         Box::pin(async move {
///             let conn = self.0.get_multiplexed_async_connection().await?;
///             Ok(SourcedConnection::single(conn))
///         })
///     }
/// }
/// ```
pub trait ConnectionSource: Send + Sync + 'static {
    /// A connection the store may share between its concurrent calls until
    /// it breaks. An error here fails the store call that needed it as
    /// [`Unavailable`](crate::StoreErrorKind::Unavailable).
    fn connection(&self) -> RedisFuture<'_, SourcedConnection>;

    /// Whether the connections lead to a Redis Cluster (default: no). The
    /// store then does the work on a client network's keys in a call of its
    /// own, as with [`RedisConfig::cluster`](super::RedisConfig).
    fn is_cluster(&self) -> bool {
        false
    }
}

/// A connection from a [`ConnectionSource`], and what the source wants kept
/// with it while the store uses it (a pool's object, say).
pub struct SourcedConnection {
    pub(super) conn: Conn,
    pub(super) holder: Option<Box<dyn Any + Send + Sync>>,
}

impl SourcedConnection {
    /// A connection to one server (or the primary a Sentinel names).
    pub fn single(conn: MultiplexedConnection) -> Self {
        Self {
            conn: Conn::Single(conn),
            holder: None,
        }
    }

    /// A connection to a Redis Cluster.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster(conn: redis::cluster_async::ClusterConnection) -> Self {
        Self {
            conn: Conn::Cluster(conn),
            holder: None,
        }
    }

    /// The same connection, with `holder` kept as long as the store keeps
    /// the connection and dropped when it lets go of it.
    pub fn held_by(mut self, holder: impl Any + Send + Sync) -> Self {
        self.holder = Some(Box::new(holder));
        self
    }
}

impl std::fmt::Debug for SourcedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Single(_) => "single",
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("SourcedConnection")
            .field("kind", &kind)
            .field("held", &self.holder.is_some())
            .finish()
    }
}

/// A pool's failure as the error of getting a connection.
#[cfg(feature = "deadpool-redis")]
fn pool_error(error: deadpool_redis::PoolError) -> redis::RedisError {
    match error {
        deadpool_redis::PoolError::Backend(e) => e,
        other => std::io::Error::other(format!("the application's Redis pool: {other}")).into(),
    }
}

/// The application's deadpool-redis pool: each connection the store takes
/// is one of the pool's objects, kept until the store lets go of it.
#[cfg(feature = "deadpool-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool-redis")))]
impl ConnectionSource for deadpool_redis::Pool {
    fn connection(&self) -> RedisFuture<'_, SourcedConnection> {
        Box::pin(async move {
            let object = self.get().await.map_err(pool_error)?;
            let conn = MultiplexedConnection::clone(&object);
            Ok(SourcedConnection::single(conn).held_by(object))
        })
    }
}

/// The application's deadpool-redis cluster pool, as `deadpool_redis::Pool`
/// is for one server.
#[cfg(all(feature = "deadpool-redis", feature = "cluster"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "deadpool-redis", feature = "cluster"))))]
impl ConnectionSource for deadpool_redis::cluster::Pool {
    fn connection(&self) -> RedisFuture<'_, SourcedConnection> {
        Box::pin(async move {
            let object = self.get().await.map_err(pool_error)?;
            let conn = redis::cluster_async::ClusterConnection::clone(&object);
            Ok(SourcedConnection::cluster(conn).held_by(object))
        })
    }

    fn is_cluster(&self) -> bool {
        true
    }
}
