//! The store conformance suite (feature `test-support`): every lifecycle,
//! TTL, concurrency, limit, rotation and continuity-token scenario of SPEC
//! §3 and §4, written once and run on every store. `MemoryStore` (on tokio's
//! paused clock) and `RedisStore` (a single server, Cluster and Sentinel, in
//! real time) pass it in this crate's tests; a store written elsewhere
//! proves itself the same way.
//!
//! # Testing your own store
//!
//! Implement [`Backend`] (a fresh store per test, the idle TTL its scenarios
//! may wait out, and two probes into the store), then let
//! [`store_conformance!`](crate::store_conformance) generate one test per
//! scenario:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use visitor_session::MemoryStore;
//! use visitor_session::conformance::{Backend, Case};
//!
//! /// Your store; here the memory store stands in for it.
//! #[derive(Clone, Copy)]
//! struct MyStore;
//!
//! impl Backend for MyStore {
//!     fn case(&self) -> Case {
//!         let store = MemoryStore::new();
//!         let (probe, probe_ip) = (store.clone(), store.clone());
//!         Case {
//!             store: Arc::new(store),
//!             // Does the store still hold anything of this session?
//!             holds: Box::new(move |id| probe.peek(id).is_some()),
//!             // Does it hold this IP anywhere but in a network's statistics?
//!             holds_ip: Box::new(move |ip| probe_ip.holds_ip(ip)),
//!         }
//!     }
//!
//!     fn idle(&self) -> Duration {
//!         // A store on a real clock: short, so expiry scenarios stay quick.
//!         Duration::from_secs(30 * 60)
//!     }
//! }
//!
//! // In `tests/my_store.rs` (the tests need tokio's `macros`, `rt` and
//! // `test-util` features):
//! // visitor_session::store_conformance!(#[tokio::test(start_paused = true)] MyStore);
//! ```
//!
//! A store on a real clock (a database) uses
//! `#[tokio::test(flavor = "multi_thread")]` and an idle TTL of a second or
//! two; the memory store runs on tokio's paused clock, where thirty minutes
//! pass at once.

use std::any::Any;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{SessionId, SessionStore};

pub mod continuity;
pub mod harness;
mod scenarios;

pub use continuity::*;
pub use scenarios::*;

/// One test's store, and a way to look into it.
#[allow(missing_debug_implementations)]
pub struct Case {
    /// The store under test, kept apart from every other test's.
    pub store: Arc<dyn SessionStore>,
    /// Whether the store still holds anything of session `id` (data, IP, IP log).
    pub holds: Box<dyn Fn(&SessionId) -> bool + Send + Sync>,
    /// Whether the store holds `ip` anywhere but in its network's statistics.
    pub holds_ip: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

/// A kind of store the suite runs on.
pub trait Backend: Send + Sync {
    /// A store of this kind, kept apart from every other test's.
    fn case(&self) -> Case;

    /// The idle TTL the scenarios give temporary sessions (and wait out).
    fn idle(&self) -> Duration;

    /// Held for the whole test, e.g. a lock that keeps tests from disturbing
    /// each other's measurements on a shared server. None by default.
    fn enter(&self) -> impl Future<Output = Option<Box<dyn Any + Send + Sync>>> + Send {
        async { None }
    }
}

/// The embedded [`MemoryStore`](crate::MemoryStore), on tokio's paused
/// clock (`#[tokio::test(start_paused = true)]`).
#[derive(Clone, Copy, Debug)]
pub struct Memory;

impl Backend for Memory {
    fn case(&self) -> Case {
        let store = crate::MemoryStore::new();
        let probe = store.clone();
        Case {
            store: Arc::new(store),
            holds: Box::new({
                let probe = probe.clone();
                move |id| probe.peek(id).is_some()
            }),
            holds_ip: Box::new(move |ip| probe.holds_ip(ip)),
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }
}

/// Generates one test per conformance scenario for a [`Backend`]: put it in
/// a test file, with the test attribute the backend's clock needs (this
/// crate's `tests/memory_store.rs` is exactly this):
///
/// ```text
/// visitor_session::store_conformance!(
///     #[tokio::test(start_paused = true)]
///     visitor_session::conformance::Memory
/// );
/// ```
#[macro_export]
macro_rules! store_conformance {
    (#[$test:meta] $backend:expr) => {
        $crate::store_conformance!(@each #[$test] $backend;
            returning_visitor_keeps_its_session_and_data,
            temporary_session_and_its_ip_are_gone_after_the_idle_ttl,
            temporary_session_lives_until_the_idle_ttl_has_passed,
            each_access_slides_the_idle_ttl,
            promoted_session_outlives_the_idle_ttl,
            permanent_session_logs_every_ip_it_was_used_from,
            ip_log_drops_entries_past_their_retention,
            ip_log_keeps_at_most_its_cap_and_the_newest_addresses,
            cycle_id_keeps_the_session_under_a_new_id_and_kills_the_old_one,
            a_commit_racing_a_rotation_is_refused_and_resurrects_nothing,
            agent_deletion_removes_everything_and_the_cookie_gets_a_fresh_session,
            reset_deletes_a_temporary_session_and_keeps_a_permanent_one,
            concurrent_requests_writing_different_keys_all_keep_their_change,
            commit_racing_an_agent_deletion_does_not_resurrect_the_session,
            concurrent_writes_cannot_exceed_the_data_limits_together,
            data_limits_agree_on_every_store,
            session_over_a_lowered_limit_can_still_shed_data,
            create_run_twice_with_the_same_arguments_creates_once,
            commit_run_twice_with_the_same_changes_is_applied_once,
            touch_of_an_unknown_session_finds_nothing_and_creates_nothing,
            a_commit_of_a_thousand_keys_is_applied_whole,
            new_session_limit_answers_429_with_retry_after,
            network_stats_count_sessions_and_conversations_per_network,
            temporary_session_leaves_only_its_networks_counts_after_the_idle_ttl,
            network_stats_are_kept_for_their_retention_after_the_latest_event,
            a_new_token_adopts_the_browsers_session_under_a_new_id,
            a_token_bound_session_without_its_token_gets_a_fresh_one,
            the_weaker_rule_opens_a_bound_session_by_its_cookie_alone,
            a_rotated_token_session_keeps_its_token,
            a_tokens_session_wins_over_the_browsers_own,
            two_users_on_one_browser_never_share_a_session,
            a_token_of_a_deleted_session_gets_a_fresh_one,
            a_token_replayed_after_its_session_expired_gets_a_fresh_one,
            a_permanent_sessions_token_outlives_the_idle_ttl,
            one_user_on_two_browsers_at_once_ends_on_one_session,
            privacy_mode_creates_a_tokens_session_on_interaction,
            a_token_never_reaches_another_sites_session,
            keys_with_store_significant_characters_stay_in_their_session
        );
    };
    (@each #[$test:meta] $backend:expr; $($scenario:ident),*) => {
        $(
            #[$test]
            async fn $scenario() {
                let backend = $backend;
                let _guard = $crate::conformance::Backend::enter(&backend).await;
                $crate::conformance::$scenario(&backend).await;
            }
        )*
    };
}
