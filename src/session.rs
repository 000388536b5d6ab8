//! [`Session`]: the handle a handler reads and writes during a request.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{SessionError, StoreError};
use crate::id::SessionId;
use crate::store::{
    Changes, DataLimits, DataSize, OverLimit, SessionData, SessionRecord, SessionState,
};

/// Longest key accepted, in bytes.
pub(crate) const MAX_KEY_LEN: usize = 128;

/// The visitor's session for the current request.
///
/// The layer puts one into the request extensions; with the `axum` feature it
/// is also an extractor. Clones share the same state. Reads are synchronous and
/// see the data loaded with the request plus this request's own writes; writes
/// are buffered and committed by the layer after the handler returns, before
/// the response leaves, in one store call holding only the changed keys.
///
/// ```
/// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
/// let visits: u32 = session.get("visits")?.unwrap_or(0);
/// session.insert("visits", &(visits + 1))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
pub(crate) enum Binding {
    /// A session loaded from the store with this request.
    Existing { id: SessionId, state: SessionState },
    /// A session to be created when the response is committed.
    New {
        id: SessionId,
        state: SessionState,
        /// Asked for by the handler (`start`, a write, `promote`), rather than
        /// created by a standard-mode visit on its own.
        explicit: bool,
    },
    /// No session: total privacy mode, consent withheld, or after `reset`.
    None,
    /// The store failed while loading (fail-open).
    Unavailable(StoreError),
}

struct Inner {
    binding: Binding,
    ip: Option<IpAddr>,
    /// Data as loaded, then with this request's writes applied.
    data: SessionData,
    /// This request's writes: `Some(json)` set, `None` removed.
    changes: BTreeMap<String, Option<String>>,
    promote: bool,
    /// A loaded session that `reset` unbound from the browser.
    unbound: Option<(SessionId, SessionState)>,
    /// `cycle_id` was called: the session gets a new id with the response.
    cycle: bool,
    /// The id the session had before the layer rotated it for this request.
    previous: Option<SessionId>,
    /// The id a session created by this request takes (reserved in a
    /// continuity token's binding, SPEC §3.7); a fresh one when `None`.
    reserved: Option<SessionId>,
    limits: DataLimits,
    /// Set once the layer took the plan: writes after that would be lost.
    closed: bool,
}

/// What the layer must do when the response is ready.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) binding: Binding,
    pub(crate) changes: Changes,
    pub(crate) unbound: Option<(SessionId, SessionState)>,
    /// Give the session a new id (SPEC §3.5 `cycle_id`).
    pub(crate) cycle: bool,
}

impl Session {
    fn with(binding: Binding, ip: Option<IpAddr>, data: SessionData, limits: DataLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                binding,
                ip,
                data,
                changes: BTreeMap::new(),
                promote: false,
                unbound: None,
                cycle: false,
                previous: None,
                reserved: None,
                limits,
                closed: false,
            })),
        }
    }

    pub(crate) fn loaded(id: SessionId, record: SessionRecord, limits: DataLimits) -> Self {
        Self::with(
            Binding::Existing {
                id,
                state: record.state,
            },
            record.ip,
            record.data,
            limits,
        )
    }

    /// A loaded session that the layer renamed from `previous` for this request.
    pub(crate) fn renamed(self, previous: Option<SessionId>) -> Self {
        self.lock().previous = previous;
        self
    }

    /// No session yet; one created by this request takes the id `reserved`
    /// (a fresh one if `None`). Created at the response in standard mode
    /// (`creates`), else only if the handler asks for it.
    pub(crate) fn fresh(
        creates: bool,
        reserved: Option<SessionId>,
        ip: Option<IpAddr>,
        limits: DataLimits,
    ) -> Self {
        let binding = match creates {
            true => Binding::New {
                id: reserved.unwrap_or_else(SessionId::generate),
                state: SessionState::Temporary,
                explicit: false,
            },
            false => Binding::None,
        };
        let session = Self::with(binding, ip, SessionData::new(), limits);
        session.lock().reserved = reserved;
        session
    }

    pub(crate) fn unavailable(error: StoreError, ip: Option<IpAddr>, limits: DataLimits) -> Self {
        Self::with(Binding::Unavailable(error), ip, SessionData::new(), limits)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes before anything could panic, so a
        // poisoned lock still guards consistent state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session id, as in the cookie; `None` when the request has no session.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// if let Some(id) = session.id() {
    ///     // `Display` shows a shortened id, safe for logs.
    ///     tracing::info!(session = %id, "chat opened");
    /// }
    /// # }
    /// ```
    pub fn id(&self) -> Option<SessionId> {
        match self.lock().binding {
            Binding::Existing { id, .. } | Binding::New { id, .. } => Some(id),
            Binding::None | Binding::Unavailable(_) => None,
        }
    }

    /// Temporary or permanent; `None` when the request has no session.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// use visitor_session::SessionState;
    ///
    /// let has_conversation = session.state() == Some(SessionState::Permanent);
    /// # let _ = has_conversation;
    /// # }
    /// ```
    pub fn state(&self) -> Option<SessionState> {
        match self.lock().binding {
            Binding::Existing { state, .. } | Binding::New { state, .. } => Some(state),
            Binding::None | Binding::Unavailable(_) => None,
        }
    }

    /// The id this session had until the layer gave it a new one for this
    /// request: a continuity token adopted the browser's session (SPEC §3.7).
    /// Data an application keys by session id moves from this id to
    /// [`id`](Self::id).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// if let (Some(old), Some(new)) = (session.previous_id(), session.id()) {
    ///     // e.g. rename the conversation stored under `old` to `new`
    /// #   let _ = (old, new);
    /// }
    /// # }
    /// ```
    pub fn previous_id(&self) -> Option<SessionId> {
        self.lock().previous
    }

    /// True when this request's session did not exist before it (created by
    /// this visit or by [`start`](Self::start)).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// let greeting = if session.is_new() { "Welcome!" } else { "Welcome back!" };
    /// # let _ = greeting;
    /// # }
    /// ```
    pub fn is_new(&self) -> bool {
        matches!(self.lock().binding, Binding::New { .. })
    }

    /// The client IP of this request (SPEC §3.3), bound to the session.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// let ip = session.client_ip().map_or("unknown".to_owned(), |ip| ip.to_string());
    /// # let _ = ip;
    /// # }
    /// ```
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.lock().ip
    }

    /// The store error that left this request without a session (fail-open mode).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> &'static str {
    /// if session.error().is_some() {
    ///     return "chat is unavailable right now, your conversation is safe";
    /// }
    /// # "" }
    /// ```
    pub fn error(&self) -> Option<StoreError> {
        match &self.lock().binding {
            Binding::Unavailable(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Reads `key` as a `T`; `Ok(None)` when absent or when there is no session.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// let name: Option<String> = session.get("name")?;
    /// # let _ = name; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Serde`] when the stored JSON is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let inner = self.lock();
        inner
            .data
            .get(key)
            .map(|json| decode(key, json))
            .transpose()
    }

    /// The keys currently held, in no particular order (a copy: the handle
    /// stays free for writes while you use it).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) {
    /// for key in session.keys() {
    ///     println!("{key}");
    /// }
    /// # }
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().cloned().collect()
    }

    /// Sets `key` to `value`, committed after the response. Starts a session in
    /// privacy mode.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// session.insert("name", "Ada")?;
    /// session.insert("visits", &3)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Changing nothing: [`SessionError::InvalidKey`] for an empty or too long
    /// key, [`SessionError::Serde`] when `value` does not serialize,
    /// [`SessionError::TooManyKeys`] or [`SessionError::TooLarge`] over the
    /// data limits, [`SessionError::Unavailable`] when the store failed to load
    /// this request's session, [`SessionError::Closed`] after the response.
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        check_key(key)?;
        let json = serde_json::to_string(value).map_err(|e| SessionError::Serde {
            key: shorten(key),
            message: e.to_string(),
        })?;
        let mut inner = self.lock();
        inner.check_limits(key, Some(&json))?;
        inner.ensure_session()?;
        inner.data.make_mut().insert(key.to_owned(), json.clone());
        inner.changes.insert(key.to_owned(), Some(json));
        Ok(())
    }

    /// Removes `key`, committed after the response, and returns the value it
    /// held as a `T` (`None` when it was absent).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// let draft: Option<String> = session.remove("draft")?;
    /// # let _ = draft; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Changing nothing: [`SessionError::Serde`] when the value held is not a
    /// `T`, [`SessionError::Unavailable`] when the store failed to load this
    /// request's session, [`SessionError::Closed`] after the response.
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut inner = self.lock();
        inner.check_writable()?;
        let Some(json) = inner.data.get(key) else {
            return Ok(None);
        };
        let old = decode(key, json)?;
        inner.data.make_mut().remove(key);
        inner.changes.insert(key.to_owned(), None);
        Ok(Some(old))
    }

    /// Removes every key, committed after the response (the session itself,
    /// its state and cookie stay).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// session.clear()?;
    /// assert!(session.keys().is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Unavailable`] when the store failed to load this
    /// request's session, [`SessionError::Closed`] after the response.
    pub fn clear(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        inner.check_writable()?;
        let keys: Vec<String> = inner.data.keys().cloned().collect();
        for key in keys {
            inner.changes.insert(key, None);
        }
        inner.data = SessionData::new();
        Ok(())
    }

    /// Makes the session permanent: the visitor started a conversation
    /// (SPEC §3.1). Idempotent. Starts a session in privacy mode.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// // The visitor sent their first message.
    /// session.promote()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Unavailable`] when the store failed to load this
    /// request's session, [`SessionError::Closed`] after the response.
    pub fn promote(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        inner.ensure_session()?;
        inner.promote = true;
        if let Binding::Existing { state, .. } | Binding::New { state, .. } = &mut inner.binding {
            *state = SessionState::Permanent;
        }
        Ok(())
    }

    /// Creates a session for this visitor if there is none (total privacy
    /// mode, consent gate): the cookie is set with this response (SPEC §3.2).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// // The visitor opened the chat: from now on it remembers them.
    /// session.start()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Unavailable`] when the store failed to load this
    /// request's session, [`SessionError::Closed`] after the response.
    pub fn start(&self) -> Result<(), SessionError> {
        self.lock().ensure_session()
    }

    /// Unbinds the browser from its session: the response removes the cookie
    /// (SPEC §3.5). A temporary session is deleted; a permanent one stays for
    /// the agents. A later write in this request starts a fresh session (in
    /// standard mode the response then binds it).
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// // "Start over (forget this browser)".
    /// session.reset()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Closed`] after the response: the browser could no
    /// longer be told.
    pub fn reset(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        inner.check_open()?;
        match std::mem::replace(&mut inner.binding, Binding::None) {
            // Promoted in this request only: the stored session is still
            // temporary, and resetting it deletes it (the store re-checks).
            Binding::Existing { id, state } => {
                let stored = if inner.promote {
                    SessionState::Temporary
                } else {
                    state
                };
                inner.unbound = Some((id, stored));
            }
            Binding::Unavailable(e) => inner.binding = Binding::Unavailable(e),
            Binding::New { .. } | Binding::None => {}
        }
        inner.data = SessionData::new();
        inner.changes.clear();
        inner.promote = false;
        inner.cycle = false;
        Ok(())
    }

    /// Gives the session a new id with this response, keeping its data,
    /// state, IP log and continuity-token binding (SPEC §3.5): the old id
    /// names nothing afterwards, and the response rewrites the cookie. Call it
    /// when the visitor's privilege changes, e.g. on the site's own login, so
    /// that whoever knew the old id (a cookie planted before the login)
    /// reaches nothing. [`id`](Self::id) answers the old id until the
    /// response; a session created by this request already has a fresh id,
    /// and no session, nothing to renew: both are left as they are.
    ///
    /// A request that loaded the session before the rotation and commits
    /// after it finds its id gone: its changes are refused (`409`), never
    /// written to a resurrected old id.
    ///
    /// ```
    /// # fn demo(session: visitor_session::Session) -> Result<(), visitor_session::SessionError> {
    /// // The visitor just signed in to the site.
    /// session.cycle_id()?;
    /// session.insert("signed_in", &true)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Unavailable`] when the store failed to load this
    /// request's session, [`SessionError::Closed`] after the response.
    pub fn cycle_id(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        inner.check_open()?;
        match &inner.binding {
            Binding::Existing { .. } => inner.cycle = true,
            Binding::Unavailable(e) => return Err(SessionError::Unavailable(e.clone())),
            Binding::New { .. } | Binding::None => {}
        }
        Ok(())
    }

    /// Hands the request's outcome to the layer.
    pub(crate) fn take_plan(&self) -> Plan {
        let mut inner = self.lock();
        inner.closed = true;
        Plan {
            binding: std::mem::replace(&mut inner.binding, Binding::None),
            changes: Changes {
                data: std::mem::take(&mut inner.changes),
                promote: inner.promote,
            },
            unbound: inner.unbound.take(),
            cycle: std::mem::take(&mut inner.cycle),
        }
    }
}

impl Inner {
    fn check_open(&self) -> Result<(), SessionError> {
        if self.closed {
            Err(SessionError::Closed)
        } else {
            Ok(())
        }
    }

    /// Data may change: the response is not gone and the session loaded.
    fn check_writable(&self) -> Result<(), SessionError> {
        self.check_open()?;
        match &self.binding {
            Binding::Unavailable(e) => Err(SessionError::Unavailable(e.clone())),
            _ => Ok(()),
        }
    }

    fn ensure_session(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        match &mut self.binding {
            Binding::Existing { .. } => Ok(()),
            Binding::New { explicit, .. } => {
                *explicit = true;
                Ok(())
            }
            Binding::None => {
                self.binding = Binding::New {
                    id: self.reserved.unwrap_or_else(SessionId::generate),
                    state: SessionState::Temporary,
                    explicit: true,
                };
                Ok(())
            }
            Binding::Unavailable(e) => Err(SessionError::Unavailable(e.clone())),
        }
    }

    fn check_limits(&self, key: &str, value: Option<&str>) -> Result<(), SessionError> {
        let before = DataSize::of(&self.data);
        let after = before.with(&self.data, key, value);
        self.limits.check(before, after).map_err(|over| match over {
            OverLimit::Keys { count, limit } => SessionError::TooManyKeys { count, limit },
            OverLimit::Bytes { size, limit } => SessionError::TooLarge { size, limit },
        })
    }
}

/// The JSON text `json` held under `key`, as a `T`.
fn decode<T: DeserializeOwned>(key: &str, json: &str) -> Result<T, SessionError> {
    serde_json::from_str(json).map_err(|e| SessionError::Serde {
        key: shorten(key),
        message: e.to_string(),
    })
}

fn check_key(key: &str) -> Result<(), SessionError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(SessionError::InvalidKey {
            key: shorten(key),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

fn shorten(key: &str) -> String {
    key.chars().take(40).collect()
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Session")
            .field("binding", &inner.binding)
            .field("ip", &inner.ip)
            .field("keys", &inner.data.len())
            .field("changed", &inner.changes.len())
            .field("promote", &inner.promote)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DataLimits = DataLimits::new(3, 64);

    fn existing() -> Session {
        let record = SessionRecord {
            state: SessionState::Temporary,
            created_ms: 0,
            last_seen_ms: 0,
            ip: None,
            data: std::collections::HashMap::from([("name".to_owned(), "\"Ada\"".to_owned())])
                .into(),
        };
        Session::loaded(SessionId::generate(), record, LIMITS)
    }

    #[test]
    fn reads_see_loaded_data_and_own_writes() {
        let s = existing();
        assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("Ada"));
        s.insert("n", &3).unwrap();
        assert_eq!(s.get::<u32>("n").unwrap(), Some(3));
    }

    #[test]
    fn only_changed_keys_are_committed() {
        let s = existing();
        s.insert("a", &1).unwrap();
        assert_eq!(s.remove::<String>("name").unwrap().as_deref(), Some("Ada"));
        let plan = s.take_plan();
        assert_eq!(
            plan.changes.data,
            BTreeMap::from([
                ("a".to_owned(), Some("1".to_owned())),
                ("name".to_owned(), None)
            ])
        );
    }

    #[test]
    fn wrong_type_is_a_serde_error_not_a_panic() {
        let s = existing();
        assert!(matches!(
            s.get::<u32>("name"),
            Err(SessionError::Serde { .. })
        ));
    }

    #[test]
    fn key_count_limit_is_an_error_and_writes_nothing() {
        let s = existing();
        s.insert("a", &1).unwrap();
        s.insert("b", &1).unwrap();
        let err = s.insert("c", &1).unwrap_err();
        assert!(matches!(
            err,
            SessionError::TooManyKeys { count: 4, limit: 3 }
        ));
        assert_eq!(s.get::<u32>("c").unwrap(), None);
        // Overwriting an existing key does not count as a new one.
        s.insert("a", &2).unwrap();
    }

    #[test]
    fn size_limit_is_an_error_and_writes_nothing() {
        let s = existing();
        let err = s.insert("big", &"x".repeat(100)).unwrap_err();
        assert!(matches!(err, SessionError::TooLarge { limit: 64, .. }));
        assert!(!s.take_plan().changes.data.contains_key("big"));
    }

    #[test]
    fn empty_and_overlong_keys_are_rejected() {
        let s = existing();
        assert!(matches!(
            s.insert("", &1),
            Err(SessionError::InvalidKey { .. })
        ));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(matches!(
            s.insert(&long, &1),
            Err(SessionError::InvalidKey { .. })
        ));
    }

    #[test]
    fn write_without_session_starts_one() {
        let s = Session::fresh(false, None, None, LIMITS);
        assert_eq!(s.id(), None);
        s.insert("a", &1).unwrap();
        assert!(s.id().is_some());
        assert!(matches!(
            s.take_plan().binding,
            Binding::New { explicit: true, .. }
        ));
    }

    #[test]
    fn unavailable_session_refuses_writes_with_the_store_error() {
        let err = StoreError::timeout("touch", std::time::Duration::from_secs(1), false);
        let s = Session::unavailable(err, None, LIMITS);
        assert!(matches!(
            s.insert("a", &1),
            Err(SessionError::Unavailable(_))
        ));
        assert!(matches!(s.start(), Err(SessionError::Unavailable(_))));
        assert!(s.error().is_some());
    }

    #[test]
    fn promote_is_idempotent_and_marks_permanent() {
        let s = existing();
        s.promote().unwrap();
        s.promote().unwrap();
        assert_eq!(s.state(), Some(SessionState::Permanent));
        assert!(s.take_plan().changes.promote);
    }

    #[test]
    fn reset_unbinds_and_drops_pending_changes() {
        let s = existing();
        let id = s.id().unwrap();
        s.insert("a", &1).unwrap();
        s.reset().unwrap();
        assert_eq!(s.id(), None);
        assert_eq!(s.get::<String>("name").unwrap(), None);
        let plan = s.take_plan();
        assert!(matches!(plan.binding, Binding::None));
        assert!(plan.changes.is_empty());
        assert_eq!(plan.unbound, Some((id, SessionState::Temporary)));
    }

    #[test]
    fn writes_after_commit_are_refused_not_lost() {
        let s = existing();
        let _ = s.take_plan();
        assert!(matches!(s.insert("late", &1), Err(SessionError::Closed)));
        assert!(matches!(
            s.remove::<String>("name"),
            Err(SessionError::Closed)
        ));
        assert!(matches!(s.clear(), Err(SessionError::Closed)));
        assert!(matches!(s.reset(), Err(SessionError::Closed)));
    }

    #[test]
    fn remove_returns_the_old_value_and_changes_nothing_on_a_type_mismatch() {
        let s = existing();
        assert!(matches!(
            s.remove::<u32>("name"),
            Err(SessionError::Serde { .. })
        ));
        assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("Ada"));
        assert_eq!(s.remove::<String>("absent").unwrap(), None);
        assert_eq!(s.remove::<String>("name").unwrap().as_deref(), Some("Ada"));
        assert_eq!(s.get::<String>("name").unwrap(), None);
        assert_eq!(s.take_plan().changes.data.get("name"), Some(&None));
    }

    #[test]
    fn clear_removes_every_key_in_the_commit() {
        let s = existing();
        s.insert("other", &1).unwrap();
        s.clear().unwrap();
        assert!(s.keys().is_empty());
        let plan = s.take_plan();
        assert_eq!(plan.changes.data.get("name"), Some(&None));
        assert_eq!(plan.changes.data.get("other"), Some(&None));
        assert!(matches!(plan.binding, Binding::Existing { .. }));
    }
}
