//! [`RedisConfig`]: where the Redis servers are, and the connection settings.

use crate::error::ConfigError;
use std::fmt;
use std::time::Duration;

/// Where [`RedisStore`](super::RedisStore) finds Redis, and how it talks to it.
///
/// Built with chained methods; checked by [`RedisStore::new`](super::RedisStore::new),
/// which connects lazily. Its `Debug` output shows the servers with any
/// password replaced by `***`.
///
/// | setting | default | bounds |
/// |---|---|---|
/// | [`connect_timeout`](Self::connect_timeout) | 1 s | opening one connection: TCP, handshake (and the Sentinel lookup) |
/// | [`wait_timeout`](Self::wait_timeout) | 1 s | waiting for a pool slot while other calls open connections |
/// | [`command_timeout`](Self::command_timeout) | 1 s | one command, from sending it to its answer (on a cluster, with its redirects) |
/// | [`pool_size`](Self::pool_size) | 1 | connections, each shared by all concurrent calls (multiplexed) |
/// | [`ping_after_idle`](Self::ping_after_idle) | 30 s | a connection idle this long is pinged before it is used again |
/// | [`key_prefix`](Self::key_prefix) | `vs:` | the prefix of every key the store writes |
///
/// The layer's [`store_timeout`](crate::SessionConfig::store_timeout) bounds
/// each store call as a whole (the one retry on a fresh connection included).
///
/// ```
/// use std::time::Duration;
/// use visitor_session::store::RedisConfig;
///
/// let config = RedisConfig::new("redis://:s3cret@127.0.0.1:6379/0")
///     .command_timeout(Duration::from_millis(250))
///     .key_prefix("chat:");
/// assert_eq!(
///     format!("{config:?}"),
///     "RedisConfig { servers: Standalone(\"redis://:***@127.0.0.1:6379/0\"), key_prefix: \"chat:\", \
///      pool_size: 1, connect_timeout: 1s, wait_timeout: 1s, command_timeout: 250ms, ping_after_idle: 30s }",
/// );
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    pub(super) servers: Servers,
    pub(super) key_prefix: String,
    pub(super) pool_size: usize,
    pub(super) connect_timeout: Duration,
    pub(super) wait_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) ping_after_idle: Duration,
}

/// The deployment the store talks to.
#[derive(Clone)]
pub(super) enum Servers {
    /// One server, by URL.
    Standalone(String),
    /// A Redis Cluster, by the URLs of some of its nodes.
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
    /// A primary found through Sentinel: the Sentinels' URLs and the name of
    /// the monitored primary.
    #[cfg(feature = "sentinel")]
    Sentinel {
        nodes: Vec<String>,
        master: String,
        primary: PrimaryAuth,
    },
}

/// How to log in to the primary that Sentinel names.
#[cfg(feature = "sentinel")]
#[derive(Clone, Default)]
pub(super) struct PrimaryAuth {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) db: i64,
}

impl Servers {
    /// A Redis Cluster: keys of different slots live on different nodes.
    pub(super) fn is_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        if let Self::Cluster(_) = self {
            return true;
        }
        false
    }
}

impl RedisConfig {
    /// One Redis server, e.g. `redis://127.0.0.1:6379`,
    /// `redis://user:password@host:6379/2` or `redis+unix:///run/redis.sock`.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_servers(Servers::Standalone(url.into()))
    }

    /// A Redis Cluster, given the URLs of some of its nodes (the rest are
    /// discovered). Every key of one session shares a hash tag, so each
    /// store call runs on one node, as on a single server.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_servers(Servers::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// The primary that Redis Sentinel monitors under `master` (e.g.
    /// `mymaster`), given the URLs of the Sentinels. After a failover, new
    /// connections go to the promoted primary.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn sentinel<I, S>(sentinels: I, master: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_servers(Servers::Sentinel {
            nodes: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
            primary: PrimaryAuth::default(),
        })
    }

    /// With Sentinel: the credentials of the primary and its replicas (the
    /// Sentinels' own come with their URLs). Without them, connections to a
    /// primary that requires a password fail with `NOAUTH`.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn primary_credentials(mut self, username: Option<&str>, password: &str) -> Self {
        if let Servers::Sentinel { primary, .. } = &mut self.servers {
            primary.username = username.map(str::to_owned);
            primary.password = Some(password.to_owned());
        }
        self
    }

    /// With Sentinel: the database number to use on the primary (default 0).
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn primary_database(mut self, db: i64) -> Self {
        if let Servers::Sentinel { primary, .. } = &mut self.servers {
            primary.db = db;
        }
        self
    }

    fn with_servers(servers: Servers) -> Self {
        Self {
            servers,
            key_prefix: "vs:".to_owned(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            ping_after_idle: Duration::from_secs(30),
        }
    }

    /// Prefix of every key (default `vs:`); may not contain `{` or `}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Most connections kept open (default 1); concurrent calls share them.
    ///
    /// One connection carries more than one Redis server can serve: every
    /// call pipelines on it. Measured on 2 cores against one server
    /// (`scripts/bench --pool-sizes 1,2,4,8`), 1 connection gave the most
    /// requests per second and the least Redis CPU per request (more calls
    /// per read); more connections only add Redis CPU. Raise it when one
    /// service instance drives several servers' worth of traffic through a
    /// proxy, or to spread the client-side I/O of a busy instance over cores.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Upper bound on opening one connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Upper bound on waiting for a pool slot (default 1 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Upper bound on one command, from send to answer (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// A connection idle longer than this is pinged before reuse (default 30 s).
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }

    /// Checks the settings, as [`RedisStore::new`](super::RedisStore::new)
    /// does before anything else (it also parses the URLs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use visitor_session::store::RedisConfig;
    ///
    /// assert!(RedisConfig::new("redis://127.0.0.1").validate().is_ok());
    /// let zero = RedisConfig::new("redis://127.0.0.1").command_timeout(Duration::ZERO);
    /// assert_eq!(zero.validate().unwrap_err().setting(), "command_timeout");
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting when the key prefix contains `{`
    /// or `}`, a timeout is zero or the pool is empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "key_prefix",
                "the key prefix may not contain `{` or `}`: they delimit the hash tag",
            ));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("wait_timeout", self.wait_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(name, "Redis timeouts are above 0"));
            }
        }
        if self.pool_size == 0 {
            return Err(ConfigError::new(
                "pool_size",
                "the pool holds at least one connection",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("servers", &self.servers)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ping_after_idle", &self.ping_after_idle)
            .finish()
    }
}

impl fmt::Debug for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standalone(url) => f.debug_tuple("Standalone").field(&redacted(url)).finish(),
            #[cfg(feature = "cluster")]
            Self::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(|n| redacted(n)).collect::<Vec<_>>())
                .finish(),
            #[cfg(feature = "sentinel")]
            Self::Sentinel {
                nodes,
                master,
                primary,
            } => f
                .debug_struct("Sentinel")
                .field(
                    "nodes",
                    &nodes.iter().map(|n| redacted(n)).collect::<Vec<_>>(),
                )
                .field("master", master)
                .field("primary_username", &primary.username)
                .field(
                    "primary_password",
                    &primary.password.as_ref().map(|_| "***"),
                )
                .field("primary_database", &primary.db)
                .finish(),
        }
    }
}

/// `url` with its password replaced by `***`, from the parsed URL (so an `@`
/// inside the password cannot leak part of it); a text that does not parse
/// is not shown at all.
pub(super) fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<not a URL>".to_owned();
    };
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have a password at all.
        let _ = parsed.set_password(Some("***"));
    }
    // `redis+unix:` URLs carry credentials in the query (`pass=`).
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = matches!(k.as_ref(), "pass" | "password");
                (
                    k.into_owned(),
                    if secret {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_with_at_sign_is_hidden_whole() {
        assert_eq!(
            redacted("redis://user:p@ss@host:6379"),
            "redis://user:***@host:6379"
        );
    }

    #[test]
    fn scheme_and_database_are_kept() {
        assert_eq!(
            redacted("rediss://:secret@cache.example.com:6380/3"),
            "rediss://:***@cache.example.com:6380/3"
        );
        assert_eq!(
            redacted("redis+unix:///run/redis.sock"),
            "redis+unix:///run/redis.sock"
        );
    }

    #[test]
    fn password_in_a_unix_socket_query_is_hidden() {
        assert_eq!(
            redacted("redis+unix:///run/redis.sock?db=2&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=2&pass=***"
        );
    }

    #[test]
    fn unparsable_url_is_not_echoed() {
        assert_eq!(redacted("not a url with s3cret"), "<not a URL>");
    }
}
