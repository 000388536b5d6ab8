//! What the layer does to the response: the `Set-Cookie` headers, the store
//! calls after the handler, and the status that replaces the handler's
//! response when the session cannot be honoured (SPEC §2, §3.4, §3.6, §4).

use std::future::Future;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::request::RequestContext;
use crate::config::{FailureMode, LimitAction};
use crate::domain::registrable_domain;
use crate::error::{StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::observe::{self, Event, StoreCall};
use crate::session::{Binding, Plan, Session};
use crate::store::{Committed, Created, SessionRecord, SessionState};

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

/// The session a request gets once the store answered for its cookie, or,
/// when loading failed in fail-closed mode, the `503` answered instead of
/// calling the handler (SPEC §4).
pub(crate) fn loaded<B>(
    ctx: &mut RequestContext,
    cookie: Option<SessionId>,
    loaded: Result<Option<(SessionId, SessionRecord)>, StoreError>,
    req: Request<B>,
) -> Result<(Request<B>, Session), Outcome> {
    let limits = ctx.shared.policy.limits;
    match loaded {
        Ok(Some((id, record))) => Ok((req, Session::loaded(id, record, limits))),
        Ok(None) => {
            // The cookie named no session this request may use.
            ctx.stale_cookie = cookie.is_some();
            Ok(ctx.shared.fresh_session(req, ctx.ip))
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
    let mut plan = session.take_plan();
    // A session created for this request is bound to its token.
    plan.changes.token = ctx.token.as_deref().copied();
    log_request(&ctx, &plan);
    if plan.unbound.is_some() {
        observe::count(Event::Reset);
    }
    let needs_store = match &plan.binding {
        Binding::Existing { .. } => !plan.changes.is_empty(),
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
        Binding::Existing { .. } => u8::from(!plan.changes.is_empty()),
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
    let codec = &ctx.shared.codec;
    outcome
        .set_cookies
        .push(codec.set_cookie(id, ctx.domain(), ctx.at_ms));
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
/// short may still have been applied, so it fails as an unknown outcome.
async fn with_timeout<T>(
    ctx: &RequestContext,
    op: &'static str,
    id: &SessionId,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let watched = StoreCall::start(op, Some(id));
    let timeout = ctx.shared.config.store_timeout;
    let result = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::timeout(op, timeout, true)));
    watched.finish(&result);
    result
}

/// Runs the store calls of a finished request and decides its outcome.
async fn commit(ctx: RequestContext, plan: Plan) -> Outcome {
    let mut outcome = store_changes(&ctx, &plan).await;
    clear_if_unbound(&ctx, &plan, &mut outcome);
    outcome
}

/// The store calls of a finished request. A write that fails is never
/// reported as success: the handler's response is replaced by an error.
async fn store_changes(ctx: &RequestContext, plan: &Plan) -> Outcome {
    let store = &ctx.shared.store;
    let access = &ctx.access();
    let mut outcome = Outcome::default();
    if let Some((old, SessionState::Temporary)) = &plan.unbound {
        if let Err(error) = with_timeout(ctx, "reset", old, store.reset(old)).await {
            // The browser is unbound all the same; the session ends with its idle TTL.
            tracing::warn!(session = %old, %error, "deleting a reset temporary session failed");
        }
    }
    match &plan.binding {
        Binding::Existing { id, .. } if !plan.changes.is_empty() => {
            match with_timeout(ctx, "commit", id, store.commit(id, access, &plan.changes)).await {
                Ok(Committed::Applied) => bind(ctx, &mut outcome, id),
                Ok(Committed::Missing) => {
                    // Deleted or expired while the handler ran: the deletion
                    // wins, the session is not recreated (SPEC §3.4), and the
                    // client learns that its write was not kept.
                    tracing::info!(session = %id, "session vanished before its changes were committed");
                    outcome = Outcome::replaced(StatusCode::CONFLICT, None);
                    outcome
                        .set_cookies
                        .push(ctx.shared.codec.removal(ctx.domain()));
                }
                Ok(Committed::OverLimit) => {
                    // Concurrent requests filled the session meanwhile.
                    tracing::info!(session = %id, "session changes refused: data limits");
                    outcome = Outcome::replaced(StatusCode::PAYLOAD_TOO_LARGE, None);
                    bind(ctx, &mut outcome, id);
                }
                Err(error) => {
                    log_failed_write(id, &error, "committing session changes");
                    return Outcome::replaced(StatusCode::SERVICE_UNAVAILABLE, None);
                }
            }
        }
        Binding::Existing { id, .. } => bind(ctx, &mut outcome, id),
        Binding::New { id, explicit, .. } => {
            let limit = ctx.create_limit();
            let created = with_timeout(
                ctx,
                "create",
                id,
                store.create(id, access, &plan.changes, limit.as_ref()),
            )
            .await;
            let wrote = *explicit || !plan.changes.is_empty();
            match created {
                Ok(Created::Created) => {
                    observe::count(Event::Created);
                    bind(ctx, &mut outcome, id);
                }
                // The token's session, created a moment ago by another
                // browser of the same user: the changes went there.
                Ok(Created::Joined { id }) => bind(ctx, &mut outcome, &id),
                Ok(Created::Limited { retry_after }) => {
                    let action = ctx.shared.config.new_session_limit.map(|l| l.action);
                    tracing::info!(ip = ?access.ip, "new-session limit reached");
                    // Data the handler wrote cannot be kept: say so, never drop it silently.
                    if wrote || action == Some(LimitAction::TooManyRequests) {
                        return Outcome::replaced(StatusCode::TOO_MANY_REQUESTS, Some(retry_after));
                    }
                }
                Ok(Created::Exists) => {
                    tracing::error!(session = %id, "a freshly generated session id already exists");
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
        }
        Binding::None | Binding::Unavailable(_) => {}
    }
    outcome
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

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r: Response<String> = layer_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
