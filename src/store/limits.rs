//! The data limits of a session and the one rule that measures them
//! (SPEC §3.4), shared by the [`Session`](crate::Session) handle,
//! [`MemoryStore`](super::MemoryStore) and the SQLite store. The Redis store
//! runs its Lua twin
//! (`redis/lua/lib/data.lua`); the conformance scenario
//! `data_limits_agree_on_every_store` runs both on the same cases.

use super::{Changes, SessionData};

/// The most data one session may hold: a number of keys and a number of
/// bytes, counted as the key plus its JSON text, for every key.
///
/// ```
/// use visitor_session::store::DataLimits;
///
/// let limits = DataLimits::new(64, 64 * 1024);
/// assert_eq!((limits.max_keys(), limits.max_bytes()), (64, 65_536));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    max_keys: usize,
    max_bytes: usize,
}

impl Default for DataLimits {
    /// 64 keys and 64 KiB, the defaults of [`SessionConfig`](crate::SessionConfig).
    fn default() -> Self {
        Self::new(64, 64 * 1024)
    }
}

impl DataLimits {
    /// At most `max_keys` keys taking at most `max_bytes` bytes.
    pub const fn new(max_keys: usize, max_bytes: usize) -> Self {
        Self {
            max_keys,
            max_bytes,
        }
    }

    /// Most keys a session may hold.
    pub const fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Most bytes (keys plus JSON texts) a session's data may take.
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether applying `changes` to `data` keeps within these limits: the
    /// rule every store applies when it commits (SPEC §3.4).
    ///
    /// ```
    /// use visitor_session::store::{Changes, DataLimits, SessionData};
    ///
    /// let limits = DataLimits::new(1, 100);
    /// let data = SessionData::new();
    /// assert!(limits.allows(&data, &Changes::default().set("a", "1")));
    /// assert!(!limits.allows(&data, &Changes::default().set("a", "1").set("b", "2")));
    /// ```
    pub fn allows(&self, data: &SessionData, changes: &Changes) -> bool {
        let before = DataSize::of(data);
        self.check(before, before.with_changes(data, changes))
            .is_ok()
    }

    /// [`allows`](Self::allows) for a store that keeps the data's size rather
    /// than reading the data: whether it may go from `before` to `after`,
    /// each `(keys, bytes)`, with bytes counted by
    /// [`entry_bytes`](Self::entry_bytes).
    pub fn allows_sizes(&self, before: (usize, usize), after: (usize, usize)) -> bool {
        let size = |(keys, bytes)| DataSize { keys, bytes };
        self.check(size(before), size(after)).is_ok()
    }

    /// What one key holding a JSON text of `value_len` bytes counts for.
    pub fn entry_bytes(key: &str, value_len: usize) -> usize {
        key.len() + value_len
    }

    /// Whether data may go from `before` to `after`. A limit refuses only a
    /// change that grows what it limits, so a session over a lowered limit
    /// can still shed data.
    pub(crate) fn check(&self, before: DataSize, after: DataSize) -> Result<(), OverLimit> {
        if after.keys > self.max_keys && after.keys > before.keys {
            return Err(OverLimit::Keys {
                count: after.keys,
                limit: self.max_keys,
            });
        }
        if after.bytes > self.max_bytes && after.bytes > before.bytes {
            return Err(OverLimit::Bytes {
                size: after.bytes,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// Which limit a change would break, and by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    Keys { count: usize, limit: usize },
    Bytes { size: usize, limit: usize },
}

/// The size of some session data, as the limits count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DataSize {
    pub(crate) keys: usize,
    pub(crate) bytes: usize,
}

impl DataSize {
    /// What one key holding `value` counts for.
    fn entry(key: &str, value: &str) -> usize {
        DataLimits::entry_bytes(key, value.len())
    }

    /// The size of `data`.
    pub(crate) fn of(data: &SessionData) -> Self {
        Self {
            keys: data.len(),
            bytes: data.iter().map(|(k, v)| Self::entry(k, v)).sum(),
        }
    }

    /// The size after setting `key` to `value` (`None`: removing it) in
    /// `data`, whose size is `self`.
    pub(crate) fn with(mut self, data: &SessionData, key: &str, value: Option<&str>) -> Self {
        if let Some(old) = data.get(key) {
            self.keys -= 1;
            self.bytes -= Self::entry(key, old);
        }
        if let Some(new) = value {
            self.keys += 1;
            self.bytes += Self::entry(key, new);
        }
        self
    }

    /// The size after applying `changes` to `data`, whose size is `self`.
    pub(crate) fn with_changes(self, data: &SessionData, changes: &Changes) -> Self {
        changes.data.iter().fold(self, |size, (key, value)| {
            size.with(data, key, value.as_deref())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> SessionData {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn size_counts_key_and_value_bytes() {
        let d = data(&[("note", "\"hello\""), ("é", "1")]);
        assert_eq!(
            DataSize::of(&d),
            DataSize {
                keys: 2,
                bytes: 11 + 3
            }
        );
    }

    #[test]
    fn overwriting_replaces_the_old_entry_and_removing_an_absent_key_is_free() {
        let d = data(&[("note", "\"a\"")]);
        let size = DataSize::of(&d);
        assert_eq!(
            size.with(&d, "note", Some("\"hello\"")),
            DataSize { keys: 1, bytes: 11 }
        );
        assert_eq!(size.with(&d, "absent", None), size);
        assert_eq!(size.with(&d, "note", None), DataSize::default());
    }

    #[test]
    fn a_limit_refuses_only_growth() {
        let limits = DataLimits::new(1, 10);
        let small = DataSize { keys: 1, bytes: 5 };
        let big = DataSize { keys: 3, bytes: 50 };
        assert_eq!(
            limits.check(small, DataSize { keys: 2, bytes: 6 }),
            Err(OverLimit::Keys { count: 2, limit: 1 })
        );
        assert_eq!(
            limits.check(small, DataSize { keys: 1, bytes: 11 }),
            Err(OverLimit::Bytes {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(limits.check(small, DataSize { keys: 1, bytes: 10 }), Ok(()));
        // Over a lowered limit: shedding or keeping the size is allowed.
        assert_eq!(limits.check(big, DataSize { keys: 2, bytes: 40 }), Ok(()));
        assert_eq!(limits.check(big, big), Ok(()));
    }
}
