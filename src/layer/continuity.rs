//! Session continuity tokens (SPEC §3.7), composed once above the store from
//! its small atomic operations ([`token_session`], [`bind_token`],
//! [`touch`], [`cycle`], [`create`]), so that no store repeats the rules.
//!
//! A request carrying token `T` (and maybe the cookie of session `C`):
//!
//! 1. `T`'s binding names a live session it may open: that session. The
//!    browser is bound to it (its cookie rewritten if it named another one,
//!    which is left alone, never merged).
//! 2. Otherwise the token's next session id `N` is *reserved*: a
//!    compare-and-set binds `T` to `N` unless another browser of the same
//!    user bound it meanwhile (then that browser's session is the one: live,
//!    or about to be created under the id it reserved, where both meet).
//! 3. With `N` reserved, the browser's session `C`, if it is live and bound
//!    to no other token, is renamed to `N` and bound to `T` (adoption under a
//!    new id): whoever else holds `C`, a cookie planted before the login,
//!    reaches nothing. Otherwise a session `N` is created with the response
//!    (in total privacy mode only on interaction); a creation that finds `N`
//!    created by the other browser commits its changes there instead.
//!
//! A binding lives like its session: reading it is a visit, which slides a
//! temporary binding; it is made permanent when its session is (here, or by
//! the layer after a promotion), and dropped when the session is reset or
//! deleted. A binding whose session ended otherwise is stale: every use goes
//! through a session operation that checks the session's own token.
//!
//! [`token_session`]: crate::SessionStore::token_session
//! [`bind_token`]: crate::SessionStore::bind_token
//! [`touch`]: crate::SessionStore::touch
//! [`cycle`]: crate::SessionStore::cycle
//! [`create`]: crate::SessionStore::create

use std::net::IpAddr;
use std::sync::Arc;

use super::Shared;
use crate::error::StoreError;
use crate::id::SessionId;
use crate::store::{Access, SessionRecord, SessionState, StoreFuture, TokenHash};

/// What loading a request's session finds (by its cookie, or through its
/// continuity token).
#[derive(Debug)]
pub(crate) enum Found {
    /// A live session the browser is bound to from now on.
    Session {
        id: SessionId,
        record: SessionRecord,
        /// The browser's session `id` was renamed from (adopted by the token).
        previous: Option<SessionId>,
        /// The token's binding is permanent.
        permanent: bool,
    },
    /// No live session this request may open: one created by this request
    /// takes the id `reserved` in the token's binding, if any.
    Fresh { reserved: Option<SessionId> },
}

/// Loads the session of a request carrying `token` (and the cookie of
/// session `cookie`, if any): steps 1 to 3 of the module docs.
pub(crate) fn load(
    shared: Arc<Shared>,
    token: TokenHash,
    cookie: Option<SessionId>,
    ip: Option<IpAddr>,
    at_ms: u64,
) -> StoreFuture<Found> {
    StoreFuture::new(async move {
        let store = &shared.store;
        let policy = &shared.policy;
        let access = Access::new(ip, at_ms, policy).token(Some(&token));
        let binding = store.token_session(&token, policy).await?;
        if let Some(binding) = binding {
            if let Some(record) = store.touch(&binding.id, &access).await? {
                let permanent = binding.state == SessionState::Permanent
                    || persist(&shared, &token, &binding.id, &record).await;
                let id = binding.id;
                return Ok(Found::Session {
                    id,
                    record,
                    previous: None,
                    permanent,
                });
            }
        }
        let expected = binding.map(|b| b.id);
        let reserved = match &cookie {
            Some(old) => store.next_id(old),
            None => SessionId::generate(),
        };
        let bound = store
            .bind_token(
                &token,
                expected.as_ref(),
                &reserved,
                SessionState::Temporary,
                policy,
            )
            .await?;
        if bound != reserved {
            // Another browser of this user bound the token a moment ago.
            return Ok(match store.touch(&bound, &access).await? {
                Some(record) => Found::Session {
                    id: bound,
                    previous: None,
                    permanent: persist(&shared, &token, &bound, &record).await,
                    record,
                },
                // Reserved by it and not created yet: both create it.
                None => Found::Fresh {
                    reserved: Some(bound),
                },
            });
        }
        if let Some(old) = cookie {
            if let Some(record) = store.cycle(&old, &reserved, &access).await? {
                return Ok(Found::Session {
                    id: reserved,
                    previous: Some(old),
                    permanent: persist(&shared, &token, &reserved, &record).await,
                    record,
                });
            }
        }
        Ok(Found::Fresh {
            reserved: Some(reserved),
        })
    })
}

/// Makes `token`'s binding to `id` permanent if its session is; whether it
/// is now. A failure is logged: the binding then lives like a temporary one
/// until the next visit with the token makes it permanent.
async fn persist(
    shared: &Shared,
    token: &TokenHash,
    id: &SessionId,
    record: &SessionRecord,
) -> bool {
    if record.state != SessionState::Permanent {
        return false;
    }
    let bound = shared
        .store
        .bind_token(token, Some(id), id, SessionState::Permanent, &shared.policy)
        .await;
    best_effort("persist", bound.map(|_| ())).is_some()
}

/// The outcome of a binding update made after its session's own write
/// succeeded: a failure is logged, and the write stands as done.
pub(crate) fn best_effort<T>(what: &'static str, result: Result<T, StoreError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(%error, what, "a continuity token's binding was not updated");
            None
        }
    }
}
