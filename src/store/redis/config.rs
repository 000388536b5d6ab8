//! [`RedisConfig`]: where the Redis servers are, and the connection settings.

use crate::error::ConfigError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::source::ConnectionSource;

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
/// With the `tls` feature, [`tls_ca`](Self::tls_ca) names a private CA for
/// `rediss://` servers (default: the system's roots).
///
/// The layer's [`store_timeout`](crate::SessionConfig::store_timeout) bounds
/// each store call as a whole (the one retry on a fresh connection included).
///
/// With [`from_source`](Self::from_source), the connections come from the
/// application (its deadpool-redis pool): the settings above then bound the
/// store's side of them, as its documentation says.
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
    /// The PEM of the CA that signs the servers' certificates (`rediss://`).
    #[cfg(feature = "tls")]
    pub(super) tls_ca: Option<Vec<u8>>,
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
    /// Connections the application hands out (its pool).
    Source(Arc<dyn ConnectionSource>),
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
        match self {
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => true,
            Self::Source(source) => source.is_cluster(),
            _ => false,
        }
    }

    /// The URLs of the servers the store opens connections to itself.
    fn urls(&self) -> Vec<&str> {
        match self {
            Self::Standalone(url) => vec![url.as_str()],
            #[cfg(feature = "cluster")]
            Self::Cluster(nodes) => nodes.iter().map(String::as_str).collect(),
            #[cfg(feature = "sentinel")]
            Self::Sentinel { nodes, .. } => nodes.iter().map(String::as_str).collect(),
            Self::Source(_) => Vec::new(),
        }
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

    /// Connections from the application rather than opened by the store:
    /// its `deadpool_redis::Pool` (feature `deadpool-redis`; with `cluster`,
    /// also `deadpool_redis::cluster::Pool`), or any other
    /// [`ConnectionSource`]. The store takes [`pool_size`](Self::pool_size)
    /// connections from it (default 1), shares each between all its calls,
    /// and goes back to the source only when one breaks or needs a check.
    ///
    /// The source owns how connections are opened (URL, credentials, TLS,
    /// redis-rs's response timeout); the store adds
    /// [`command_timeout`](Self::command_timeout) on each command and
    /// [`connect_timeout`](Self::connect_timeout) on getting a connection,
    /// so the lower of its own and the source's timeouts applies. See
    /// [`ConnectionSource`] for the rest.
    ///
    /// ```no_run
    /// # #[cfg(feature = "deadpool-redis")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use visitor_session::{RedisConfig, RedisStore, SessionConfig, SessionLayer};
    ///
    /// // The application's pool, from its own settings.
    /// let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:6379")
    ///     .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    /// let store = RedisStore::new(RedisConfig::from_source(pool.clone()))?;
    /// let layer = SessionLayer::new(store, SessionConfig::new())?;
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn from_source(source: impl ConnectionSource) -> Self {
        Self::with_servers(Servers::Source(Arc::new(source)))
    }

    fn with_servers(servers: Servers) -> Self {
        Self {
            servers,
            #[cfg(feature = "tls")]
            tls_ca: None,
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

    /// The CA that signs the servers' certificates, as PEM (one or more
    /// certificates), for `rediss://` URLs: on a single server, every node of
    /// a cluster, and the Sentinels and the primary they name. `None` (the
    /// default) trusts the system's roots, as managed Redis services need.
    ///
    /// Only `rediss://` URLs are accepted with a CA: a `redis://` URL would
    /// go out in plain text, so [`validate`](Self::validate) refuses it.
    ///
    /// ```
    /// use visitor_session::store::RedisConfig;
    ///
    /// let pem = b"-----BEGIN CERTIFICATE-----\n...".to_vec(); // e.g. std::fs::read("ca.pem")?
    /// let config = RedisConfig::new("rediss://redis.internal:6380").tls_ca(Some(pem));
    /// # let _ = config;
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca(mut self, pem: Option<Vec<u8>>) -> Self {
        self.tls_ca = pem;
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
    /// or `}`, a timeout is zero, the pool is empty, or a URL would leave
    /// TLS out (`rediss://` without the `tls` feature; a CA with a
    /// `redis://` URL, or with connections from a source).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_tls()?;
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

impl RedisConfig {
    /// Never plain text where TLS was asked for, and no `rediss://` the
    /// build cannot honour.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let setting = self.servers.setting();
        let urls = self.servers.urls();
        let tls = urls.iter().filter(|u| is_tls_url(u)).count();
        if !cfg!(feature = "tls") && tls > 0 {
            return Err(ConfigError::new(
                setting,
                "a `rediss://` URL needs TLS: enable the `tls` feature of visitor-session",
            ));
        }
        if tls > 0 && tls < urls.len() {
            return Err(ConfigError::new(
                setting,
                "some URLs are `rediss://` and some `redis://`: use TLS for all or none",
            ));
        }
        #[cfg(feature = "tls")]
        if self.tls_ca.is_some() {
            if let Servers::Source(_) = self.servers {
                return Err(ConfigError::new(
                    "tls_ca",
                    "connections from a source come with its own TLS settings: set the CA \
                     where the pool is built",
                ));
            }
            if tls == 0 {
                return Err(ConfigError::new(
                    "tls_ca",
                    "a CA is set but the URL is not `rediss://`: the connection would go out \
                     in plain text",
                ));
            }
        }
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.tls_ca {
            check_pem(pem)?;
        }
        Ok(())
    }
}

/// The CA's PEM holds certificates, all readable: one that holds none would
/// trust nothing, and fail every connection with a handshake error instead
/// of at start-up.
#[cfg(feature = "tls")]
fn check_pem(pem: &[u8]) -> Result<(), ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| ConfigError::new("tls_ca", format!("not a PEM certificate ({e})")))?;
        count += 1;
    }
    if count == 0 {
        return Err(ConfigError::new(
            "tls_ca",
            "no certificate in the PEM (`-----BEGIN CERTIFICATE-----`)",
        ));
    }
    Ok(())
}

/// A `rediss://` URL (TLS), by its scheme.
pub(super) fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

impl Servers {
    /// The name of the setting that holds the servers, for errors.
    pub(super) fn setting(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "url",
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => "cluster",
            #[cfg(feature = "sentinel")]
            Self::Sentinel { .. } => "sentinel",
            Self::Source(_) => "from_source",
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("RedisConfig");
        f.field("servers", &self.servers)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ping_after_idle", &self.ping_after_idle);
        // Shown only when set, so the output is the same with or without the feature.
        #[cfg(feature = "tls")]
        if self.tls_ca.is_some() {
            f.field("tls_ca", &"<PEM>");
        }
        f.finish()
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
            Self::Source(_) => f.write_str("Source"),
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
    fn rediss_urls_need_the_tls_feature_and_a_ca_needs_rediss_urls() {
        let tls = RedisConfig::new("rediss://cache.example.com:6380").validate();
        assert_eq!(tls.is_ok(), cfg!(feature = "tls"), "{tls:?}");
        #[cfg(feature = "tls")]
        {
            let secure = RedisConfig::new("REDISS://cache.example.com");
            let plain = RedisConfig::new("redis://cache.example.com");
            for config in [secure, plain] {
                let not_pem = config.clone().tls_ca(Some(b"not a certificate".to_vec()));
                assert_eq!(not_pem.validate().unwrap_err().setting(), "tls_ca");
            }
            let plain = RedisConfig::new("redis://cache.example.com").tls_ca(Some(Vec::new()));
            assert!(
                plain
                    .validate()
                    .unwrap_err()
                    .to_string()
                    .contains("plain text")
            );
        }
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn cluster_urls_are_all_tls_or_all_plain() {
        let mixed = RedisConfig::cluster(["rediss://a:7000", "redis://b:7001"]);
        assert_eq!(mixed.validate().unwrap_err().setting(), "cluster");
    }

    #[cfg(all(feature = "tls", feature = "deadpool-redis"))]
    #[test]
    fn a_source_brings_its_own_tls_settings() {
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
            .builder()
            .unwrap()
            .build()
            .unwrap();
        let config = RedisConfig::from_source(pool).tls_ca(Some(b"pem".to_vec()));
        assert_eq!(config.validate().unwrap_err().setting(), "tls_ca");
    }

    #[test]
    fn unparsable_url_is_not_echoed() {
        assert_eq!(redacted("not a url with s3cret"), "<not a URL>");
    }
}
