//! Shared test support: the conformance suite's harness (building the layer
//! around a handler, sending requests with a peer address and cookies,
//! reading `Set-Cookie`; in the crate, feature `test-support`), a store that
//! fails or hangs on demand, Redis servers, the demo, a background load.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use visitor_session::store::{
    Access, Changes, Committed, CreateLimit, Created, IpLog, NetworkStats, Removed, SessionRecord,
    StoreFuture, StorePolicy, TokenBinding, TokenHash,
};
use visitor_session::{
    MemoryStore, SessionId, SessionState, SessionStore, StoreError, StoreErrorKind,
};

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

/// The conformance suite and its harness, public in the crate (feature
/// `test-support`), named as the test files know them.
pub(crate) mod conformance {
    pub(crate) use visitor_session::conformance::*;
}
pub(crate) mod continuity {
    pub(crate) use visitor_session::conformance::continuity::*;
}
pub(crate) use visitor_session::conformance::harness::*;

pub(crate) mod demo;
pub(crate) mod load;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod redis_servers;
pub(crate) mod redis_suite;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod temp;
#[cfg(feature = "tls")]
pub(crate) mod tls;
