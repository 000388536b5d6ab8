//! What the layer does to the response: the `Set-Cookie` headers, the store
//! calls after the handler, and the status that replaces the handler's
//! response when the session cannot be honoured (SPEC §2, §3.4, §3.6, §4).

use std::future::Future;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::continuity::{self, Found};
use super::future::Bounded;
use super::request::RequestContext;
use crate::config::{FailureMode, LimitAction};
use crate::domain::registrable_domain;
use crate::error::{StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::observe::{self, Event};
use crate::session::{Binding, Plan, Session};
use crate::store::{Committed, Created, SessionState, StoreFuture};

/// The `Set-Cookie` headers of a response: at most two (the session's, and
/// the removal of a conflicting copy), kept inline.
#[derive(Debug, Default)]
struct SetCookies([Option<HeaderValue>; 2]);

impl SetCookies {
    fn push(&mut self, cookie: HeaderValue) {
        let slot = self
            .0
            .iter_mut()
            .find(|slot| slot.is_none())
            .expect("a response sets at most two cookies");
        *slot = Some(cookie);
    }

    fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }
}

impl IntoIterator for SetCookies {
    type Item = HeaderValue;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<HeaderValue>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// What the layer does to the handler's response.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    set_cookies: SetCookies,
    /// Replace the handler's response with an empty one of this status.
    replace: Option<(StatusCode, Option<Duration>)>,
}

impl Outcome {
    /// The handler's response with the layer's changes.
    pub(crate) fn apply<B: Default>(self, mut response: Response<B>) -> Response<B> {
        // A handler's own server error already tells the client the request
        // failed, in the handler's words: it is kept.
        if let Some((status, retry_after)) = self.replace {
            if !response.status().is_server_error() {
                response = layer_response(status, retry_after);
            }
        }
        for cookie in self.set_cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    fn replaced(status: StatusCode, retry_after: Option<Duration>) -> Self {
        Self {
            set_cookies: SetCookies::default(),
            replace: Some((status, retry_after)),
        }
    }
}

/// An empty response with `status` (and `Retry-After`), answered by the
/// layer instead of the handler's.
pub(crate) fn layer_response<B: Default>(
    status: StatusCode,
    retry_after: Option<Duration>,
) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// The session a request gets once the store answered for its cookie (or
/// token), or, when loading failed in fail-closed mode, the `503` answered
/// instead of calling the handler (SPEC §4).
pub(crate) fn loaded<B>(
    ctx: &mut RequestContext,
    cookie: Option<SessionId>,
    found: Result<Found, StoreError>,
    req: Request<B>,
) -> Result<(Request<B>, Session), Outcome> {
    let limits = ctx.shared.policy.limits;
    match found {
        Ok(Found::Session {
            id,
            record,
            previous,
            permanent,
        }) => {
            ctx.token_permanent = permanent;
            Ok((req, Session::loaded(id, record, limits).renamed(previous)))
        }
        Ok(Found::Fresh { reserved }) => {
            // The cookie named no session this request may use.
            ctx.stale_cookie = cookie.is_some();
            Ok(ctx.shared.fresh_session(req, ctx.ip, reserved))
        }
        Err(error) => {
            match cookie {
                Some(id) => tracing::error!(session = %id, %error, "loading the session failed"),
                None => tracing::error!(%error, "loading the session of a continuity token failed"),
            }
            match ctx.shared.config.failure_mode {
                FailureMode::Closed => {
                    Err(Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None))
                }
                FailureMode::Open => {
                    observe::count(Event::FailOpen);
                    Ok((req, Session::unavailable(error, ctx.ip, limits)))
                }
            }
        }
    }
}

/// What the layer does once the handler answered: at once, or after store calls.
pub(crate) enum Finish {
    Now(Outcome),
    Later(std::pin::Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>),
}

/// Decides the store calls and cookies of a finished request.
pub(crate) fn finish(ctx: RequestContext) -> Finish {
    let Some(session) = &ctx.session else {
        return Finish::Now(Outcome::default());
    };
    let plan = session.take_plan();
    log_request(&ctx, &plan);
    if plan.unbound.is_some() {
        observe::count(Event::Reset);
    }
    let needs_store = match &plan.binding {
        Binding::Existing { .. } => !plan.changes.is_empty() || plan.cycle,
        Binding::New { .. } => true,
        Binding::None | Binding::Unavailable(_) => false,
    } || matches!(plan.unbound, Some((_, SessionState::Temporary)));
    if needs_store {
        Finish::Later(Box::pin(commit(ctx, plan)))
    } else {
        // Renewal, removal or nothing.
        let mut outcome = Outcome::default();
        if let Binding::Existing { id, .. } = &plan.binding {
            bind(&ctx, &mut outcome, id);
        }
        clear_if_unbound(&ctx, &plan, &mut outcome);
        Finish::Now(outcome)
    }
}

/// The request's line in the log (debug level): the session's redacted id,
/// its state, and the store calls the request cost (the load, and the
/// commit, create or reset it is about to make).
#[inline]
fn log_request(ctx: &RequestContext, plan: &Plan) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        log_request_line(ctx, plan);
    }
}

#[cold]
fn log_request_line(ctx: &RequestContext, plan: &Plan) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let after = match &plan.binding {
        Binding::Existing { .. } => u8::from(!plan.changes.is_empty()) + u8::from(plan.cycle),
        Binding::New { .. } => 1,
        Binding::None | Binding::Unavailable(_) => 0,
    } + u8::from(matches!(plan.unbound, Some((_, SessionState::Temporary))));
    let calls = ctx.store_calls + after;
    match &plan.binding {
        Binding::Existing { id, state } | Binding::New { id, state, .. } => {
            let new = matches!(plan.binding, Binding::New { .. });
            tracing::debug!(session = %id, state = state.as_str(), new, store_calls = calls, "request");
        }
        Binding::None => tracing::debug!(session = "none", store_calls = calls, "request"),
        Binding::Unavailable(_) => {
            tracing::debug!(session = "unavailable", store_calls = calls, "request");
        }
    }
}

/// Clears the cookie when the browser's session is gone (reset, deleted,
/// expired) and no session was bound in its place, or every later request
/// pays a lookup.
fn clear_if_unbound(ctx: &RequestContext, plan: &Plan, outcome: &mut Outcome) {
    if (plan.unbound.is_some() || ctx.stale_cookie) && outcome.set_cookies.is_empty() {
        outcome
            .set_cookies
            .push(ctx.shared.codec.removal(ctx.domain()));
    }
}

/// Adds the `Set-Cookie` binding the browser to `id` (and clears a
/// conflicting duplicate of the other form).
fn bind(ctx: &RequestContext, outcome: &mut Outcome, id: &SessionId) {
    if let Some(seen) = &ctx.insecure_seen {
        ctx.shared.warnings.insecure(seen);
    }
    let codec = &ctx.shared.codec;
    outcome
        .set_cookies
        .push(codec.set_cookie(id, ctx.domain(), ctx.at_ms()));
    if ctx.conflicting {
        let other = match ctx.domain() {
            Some(_) => None,
            None => ctx
                .host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .and_then(registrable_domain),
        };
        if ctx.domain().is_some() || other.is_some() {
            outcome.set_cookies.push(codec.removal(other.as_deref()));
        }
    }
}

/// Bounds a write to the store by the layer's `store_timeout`; a write cut
/// short may still have been applied, so it fails as an unknown outcome. A
/// combinator, not an `async fn`: the call's future is held once, and an
/// answer already there (the memory store) needs no timer.
fn with_timeout<T>(
    ctx: &RequestContext,
    op: &'static str,
    id: &SessionId,
    call: StoreFuture<T>,
) -> Bounded<T> {
    let timeout = ctx.shared.config.store_timeout;
    Bounded::new(call, timeout, (op, true), Some(id))
}

/// Runs the store calls of a finished request and decides its outcome.
///
/// An `async` block, not an `async fn`: its future holds `ctx` and `plan`
/// once, where an `async fn`'s keeps its arguments twice (760 bytes against
/// 1 032, allocated for every request that commits).
#[expect(clippy::manual_async_fn, reason = "the future's size, above")]
fn commit(ctx: RequestContext, plan: Plan) -> impl Future<Output = Outcome> {
    async move {
        let mut outcome = store_changes(&ctx, &plan).await;
        clear_if_unbound(&ctx, &plan, &mut outcome);
        outcome
    }
}

/// The store calls of a finished request. A write that fails is never
/// reported as success: the handler's response is replaced by an error.
async fn store_changes(ctx: &RequestContext, plan: &Plan) -> Outcome {
    if let Some((old, SessionState::Temporary)) = &plan.unbound {
        // The rare paths' futures are boxed (here, the rotation and the
        // token's binding below): room for them would otherwise be
        // carried, and allocated, by every commit.
        Box::pin(end_unbound(ctx, old)).await;
    }
    match &plan.binding {
        Binding::Existing { id, .. } => existing(ctx, plan, id).await,
        Binding::New { id, explicit, .. } => {
            let wrote = *explicit || !plan.changes.is_empty();
            new_session(ctx, plan, id, wrote).await
        }
        Binding::None | Binding::Unavailable(_) => Outcome::default(),
    }
}

/// Deletes the temporary session `reset()` unbound, and its token binding.
async fn end_unbound(ctx: &RequestContext, old: &SessionId) {
    let store = &ctx.shared.store;
    match with_timeout(ctx, "reset", old, store.reset(old)).await {
        Ok(removed) => {
            if let Some(token) = &removed.token {
                let dropped =
                    with_timeout(ctx, "unbind_token", old, store.unbind_token(token, old));
                continuity::best_effort("unbind", dropped.await);
            }
        }
        // The browser is unbound all the same; the session ends with its idle TTL.
        Err(error) => {
            tracing::warn!(session = %old, %error, "deleting a reset temporary session failed");
        }
    }
}

/// The commit (and rotation) of a loaded session.
async fn existing(ctx: &RequestContext, plan: &Plan, id: &SessionId) -> Outcome {
    let mut outcome = match commit_plan(ctx, plan, id, "committing session changes").await {
        Ok(outcome) => outcome,
        Err(replaced) => return replaced,
    };
    let bound = match plan.cycle {
        true => match Box::pin(cycle(ctx, id)).await {
            Ok(Some(new)) => new,
            Ok(None) => return Outcome::replaced(StatusCode::CONFLICT, None),
            Err(replaced) => return replaced,
        },
        false => *id,
    };
    bind(ctx, &mut outcome, &bound);
    outcome
}

/// `cycle_id()`: renames session `id` and moves its token binding along.
/// `Ok(None)` when the session vanished meanwhile.
async fn cycle(ctx: &RequestContext, id: &SessionId) -> Result<Option<SessionId>, Outcome> {
    let store = &ctx.shared.store;
    let new = store.next_id(id);
    match with_timeout(ctx, "cycle", id, store.cycle(id, &new, &ctx.access())).await {
        Ok(Some(record)) => {
            if let Some(token) = ctx.token.as_deref() {
                let rebound =
                    store.bind_token(token, Some(id), &new, record.state, &ctx.shared.policy);
                continuity::best_effort(
                    "rebind",
                    with_timeout(ctx, "bind_token", &new, rebound).await,
                );
            }
            Ok(Some(new))
        }
        Ok(None) => {
            tracing::info!(session = %id, "session vanished before its id was cycled");
            Ok(None)
        }
        Err(error) => {
            log_failed_write(id, &error, "cycling the session id");
            Err(Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None))
        }
    }
}

/// After a write that made session `id` permanent: its token's binding too
/// (SPEC §3.7), once.
async fn promoted(ctx: &RequestContext, plan: &Plan, id: &SessionId) {
    let Some(token) = ctx.token.as_deref() else {
        return;
    };
    if !plan.changes.promote || ctx.token_permanent {
        return;
    }
    let store = &ctx.shared.store;
    let bound = store.bind_token(
        token,
        Some(id),
        id,
        SessionState::Permanent,
        &ctx.shared.policy,
    );
    let bound = Box::pin(with_timeout(ctx, "bind_token", id, bound));
    continuity::best_effort("persist", bound.await);
}

/// The creation of the session `id` of a request that had none.
async fn new_session(ctx: &RequestContext, plan: &Plan, id: &SessionId, wrote: bool) -> Outcome {
    // The store's future owns what it needs: the access and the limit are
    // not kept across the wait (every creation's future would carry them).
    let create = {
        let limit = ctx.create_limit();
        ctx.shared
            .store
            .create(id, &ctx.access(), &plan.changes, limit.as_ref())
    };
    match with_timeout(ctx, "create", id, create).await {
        Ok(Created::Created) => {
            observe::count(Event::Created);
            promoted(ctx, plan, id).await;
            let mut outcome = Outcome::default();
            bind(ctx, &mut outcome, id);
            return outcome;
        }
        // The id was reserved in the token's binding and another browser of
        // the same user created it a moment ago: the changes go there.
        Ok(Created::Exists) if ctx.token.is_some() => return Box::pin(join(ctx, plan, id)).await,
        Ok(Created::Exists) => {
            tracing::error!(session = %id, "a freshly generated session id already exists");
            if wrote {
                return Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None);
            }
        }
        Ok(Created::Limited { retry_after }) => {
            let action = ctx.shared.config.new_session_limit.map(|l| l.action);
            tracing::info!(ip = ?ctx.ip, "new-session limit reached");
            // Data the handler wrote cannot be kept: say so, never drop it silently.
            if wrote || action == Some(LimitAction::TooManyRequests) {
                return Outcome::replaced(StatusCode::TOO_MANY_REQUESTS, Some(retry_after));
            }
        }
        Ok(Created::Full) => {
            observe::count(Event::StoreFull);
            tracing::warn!("the session store is full: a visitor is served without a session");
            if wrote {
                return Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None);
            }
        }
        Err(error) => {
            log_failed_write(id, &error, "creating the session");
            if wrote || ctx.shared.config.failure_mode == FailureMode::Closed {
                return Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None);
            }
        }
    }
    Outcome::default()
}

/// The changes of a request whose reserved session another browser of the
/// same user created first, committed to that session.
async fn join(ctx: &RequestContext, plan: &Plan, id: &SessionId) -> Outcome {
    let mut outcome = match commit_plan(ctx, plan, id, "committing to the token's session").await {
        Ok(outcome) => outcome,
        Err(replaced) => return replaced,
    };
    bind(ctx, &mut outcome, id);
    outcome
}

/// Commits the plan's changes (if any) to session `id` and says what that
/// means for the response: `Ok` with the outcome the session is still bound
/// in (`413` when concurrent requests filled it meanwhile), `Err` with the
/// response that replaces the handler's and binds nothing (`409` for a
/// session gone meanwhile, `503` for a failed write, described by `what`).
async fn commit_plan(
    ctx: &RequestContext,
    plan: &Plan,
    id: &SessionId,
    what: &str,
) -> Result<Outcome, Outcome> {
    if plan.changes.is_empty() {
        return Ok(Outcome::default());
    }
    let commit = ctx.shared.store.commit(id, &ctx.access(), &plan.changes);
    match with_timeout(ctx, "commit", id, commit).await {
        Ok(Committed::Applied) => {
            promoted(ctx, plan, id).await;
            Ok(Outcome::default())
        }
        Ok(Committed::Missing) => {
            // Deleted, expired or renamed while the handler ran: the
            // deletion wins, the session is not recreated (SPEC §3.4), and
            // the client learns that its write was not kept. The cookie is
            // left alone: after a rotation it is the new one.
            tracing::info!(session = %id, "session vanished before its changes were committed");
            Err(Outcome::replaced(StatusCode::CONFLICT, None))
        }
        Ok(Committed::OverLimit) => {
            // Concurrent requests filled the session meanwhile.
            tracing::info!(session = %id, "session changes refused: data limits");
            Ok(Outcome::replaced(StatusCode::PAYLOAD_TOO_LARGE, None))
        }
        Err(error) => {
            log_failed_write(id, &error, what);
            Err(Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None))
        }
    }
}

/// Logs a failed write, saying whether it may have been applied.
fn log_failed_write(id: &SessionId, error: &StoreError, what: &str) {
    if error.kind() == StoreErrorKind::OutcomeUnknown {
        tracing::error!(session = %id, %error, "{what}: outcome unknown, it may have been applied");
    } else {
        tracing::error!(session = %id, %error, "{what} failed, nothing was applied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SessionConfig, SessionLayer};

    /// The commit of a request's changes is a future allocated for every
    /// request that commits or creates: the rare paths are boxed, and the
    /// context and plan held once, so that it stays under glibc's 1 KB
    /// threshold (it was 1 464 bytes).
    #[test]
    fn a_commits_future_stays_under_a_kilobyte() {
        let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::new()).unwrap();
        let request = Request::new(());
        let (_, ctx) = layer.shared.inspect(&request);
        let session = Session::fresh(true, None, None, ctx.shared.policy.limits);
        let commit = commit(ctx, session.take_plan());
        assert!(
            std::mem::size_of_val(&commit) < 1024,
            "{} bytes",
            std::mem::size_of_val(&commit)
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r: Response<String> = layer_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
