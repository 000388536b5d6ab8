//! [`SqliteConfig`]: where the SQLite store keeps its file, how hard it
//! holds on to a write, and how it sweeps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;

/// What an acknowledged write survives (SQLite's `synchronous` setting in
/// WAL mode). See the durability section of the store's module docs.
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = NORMAL` (the default). A write is acknowledged once
    /// its transaction is in the write-ahead log, in the operating system's
    /// hands: it survives a crash or a `kill -9` of the process. A power
    /// loss or an operating-system crash leaves the file consistent, but may
    /// roll back the writes acknowledged since the log was last synced to
    /// disk (at each checkpoint, about every 1 000 pages written).
    #[default]
    ProcessCrash,
    /// `synchronous = FULL`: every transaction syncs the write-ahead log to
    /// disk (`fsync`) before it is acknowledged, so it survives a power loss
    /// too, at the cost of one disk flush per write.
    PowerLoss,
}

/// Settings of a [`SqliteStore`](super::SqliteStore), checked by
/// [`SqliteStore::open`](super::SqliteStore::open).
///
/// ```
/// use std::time::Duration;
/// use visitor_session::store::{Durability, SqliteConfig};
///
/// let config = SqliteConfig::new("sessions.db")
///     .sweep_interval(Duration::from_secs(30))
///     .sweep_batch(1_000)
///     .durability(Durability::PowerLoss);
/// # let _ = config;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SqliteConfig {
    pub(super) path: PathBuf,
    pub(super) sweep_interval: Duration,
    pub(super) sweep_batch: u32,
    pub(super) busy_timeout: Duration,
    pub(super) durability: Durability,
}

/// How often the background sweep starts by default.
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Rows one sweep transaction removes at most, by default.
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub const DEFAULT_SWEEP_BATCH: u32 = 500;

impl SqliteConfig {
    /// The store in the file at `path` (created if missing), with the
    /// defaults: a sweep every minute of at most 500 rows per transaction,
    /// a 1 s wait for a lock another process holds, and
    /// [`Durability::ProcessCrash`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            sweep_batch: DEFAULT_SWEEP_BATCH,
            busy_timeout: Duration::from_secs(1),
            durability: Durability::default(),
        }
    }

    /// How often the background sweep of expired rows starts (above 0).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Rows one sweep transaction removes at most (above 0); other store
    /// calls run between two batches.
    pub fn sweep_batch(mut self, rows: u32) -> Self {
        self.sweep_batch = rows;
        self
    }

    /// How long a call waits for a lock held by another connection to the
    /// file (another process, a backup) before it fails (above 0).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// What an acknowledged write survives.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.sweep_interval.is_zero() {
            return Err(ConfigError::new(
                "sweep_interval",
                "the sweep runs at an interval above 0",
            ));
        }
        if self.sweep_batch == 0 {
            return Err(ConfigError::new(
                "sweep_batch",
                "a sweep batch removes at least one row",
            ));
        }
        if self.busy_timeout.is_zero() {
            return Err(ConfigError::new(
                "busy_timeout",
                "the wait for another connection's lock is above 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_settings_are_refused_naming_the_setting() {
        let base = SqliteConfig::new("x.db");
        assert!(base.validate().is_ok());
        for (config, setting) in [
            (
                base.clone().sweep_interval(Duration::ZERO),
                "sweep_interval",
            ),
            (base.clone().sweep_batch(0), "sweep_batch"),
            (base.clone().busy_timeout(Duration::ZERO), "busy_timeout"),
        ] {
            assert_eq!(config.validate().unwrap_err().setting(), setting);
        }
    }
}
