//! Following the primary that Redis Sentinel names.
//!
//! A new connection asks the Sentinels for the primary. Connections already
//! open must follow a failover too: after `SENTINEL FAILOVER` the old primary
//! keeps accepting writes for several seconds (until the Sentinel
//! reconfigures it and closes its clients), and writes sent there are lost.
//! So while the store has connections, a watcher asks a Sentinel every
//! [`WATCH_EVERY`] which primary it names; when that changes, every
//! connection opened before is retired (the pool opens new ones to the new
//! primary). The Sentinel decides; the store only follows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, ConnectionAddr, RedisError, RedisResult};

/// How often the watcher asks a Sentinel for the primary.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The primary monitored under one name, and the address the store's
/// connections lead to.
pub(super) struct Primary {
    client: tokio::sync::Mutex<SentinelClient>,
    master: String,
    /// `host:port` the open connections lead to.
    address: Mutex<Option<String>>,
    /// The watcher, on the runtime of the call that started it; started
    /// again if that runtime has gone.
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Primary {
    pub(super) fn new(client: SentinelClient, master: String) -> Self {
        Self {
            client: tokio::sync::Mutex::new(client),
            master,
            address: Mutex::new(None),
            watcher: Mutex::new(None),
        }
    }

    /// Opens a connection to the primary the Sentinels name now, and starts
    /// the watcher if it is not running.
    pub(super) async fn connect(
        self: &Arc<Self>,
        config: &AsyncConnectionConfig,
        generation: &Arc<AtomicU64>,
        timeout: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let client = self.client.lock().await.async_get_client().await?;
        // A Sentinel that has not seen a failover yet may still name the old
        // primary here; the watcher then retires this connection on its
        // next round.
        *self.address.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(address(client.get_connection_info().addr()));
        self.watch(generation, timeout);
        client
            .get_multiplexed_async_connection_with_config(config)
            .await
    }
}

impl Primary {
    /// Starts the watcher unless it runs.
    fn watch(self: &Arc<Self>, generation: &Arc<AtomicU64>, timeout: Duration) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.as_ref().is_none_or(|w| w.is_finished()) {
            *watcher = Some(tokio::spawn(watch(
                Arc::downgrade(self),
                generation.clone(),
                timeout,
            )));
        }
    }
}

fn address(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        // `ConnectionAddr` may grow; an unknown kind is never equal to itself here.
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// Retires the store's connections whenever the Sentinel names another
/// primary than the one they lead to; ends with the store.
async fn watch(primary: Weak<Primary>, generation: Arc<AtomicU64>, timeout: Duration) {
    let mut sentinel: Option<MultiplexedConnection> = None;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(primary) = primary.upgrade() else {
            return;
        };
        let named = tokio::time::timeout(timeout, named_primary(&primary, &mut sentinel)).await;
        let named = match named {
            Ok(Ok(named)) => named,
            Ok(Err(error)) => {
                tracing::debug!(%error, "asking a Sentinel for the primary failed");
                sentinel = None;
                continue;
            }
            Err(_) => {
                sentinel = None;
                continue;
            }
        };
        let mut address = primary.address.lock().unwrap_or_else(|p| p.into_inner());
        if address.as_ref().is_some_and(|a| *a != named) {
            tracing::info!(primary = %named, "Sentinel names a new primary; reconnecting");
            *address = Some(named);
            generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// `host:port` of the primary, as a Sentinel names it now.
async fn named_primary(
    primary: &Primary,
    sentinel: &mut Option<MultiplexedConnection>,
) -> Result<String, RedisError> {
    if sentinel.is_none() {
        let client = primary
            .client
            .lock()
            .await
            .async_get_sentinel_client()
            .await?;
        *sentinel = Some(client.get_multiplexed_async_connection().await?);
    }
    let conn = sentinel.as_mut().expect("opened above");
    let (host, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(&primary.master)
        .query_async(conn)
        .await?;
    Ok(format!("{host}:{port}"))
}
