//! [`ResponseFuture`]: load, call the inner service, commit, set the cookie.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tower_service::Service;

use super::{RequestContext, layer_response};
use crate::config::{FailureMode, LimitAction};
use crate::cookie::registrable_domain;
use crate::error::{StoreError, StoreErrorKind};
use crate::id::SessionId;
use crate::session::{Binding, Plan, Session};
use crate::store::{Committed, Created, SessionRecord, SessionState, StoreFuture};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`SessionService`](super::SessionService).
    ///
    /// It moves through three states: loading the session (only when the
    /// request carried a well-formed cookie), waiting for the inner service,
    /// and committing the handler's changes (only when there are any or a new
    /// session must be created); then it adds `Set-Cookie` to the response.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
        ctx: Option<RequestContext>,
    }
}

pin_project! {
    /// A store call bounded by the layer's `store_timeout`. A call answered
    /// at once (the memory store) needs no timer.
    #[project = BoundedProj]
    enum Bounded<T> {
        Ready { result: Option<Result<T, StoreError>> },
        Waiting { #[pin] future: Timeout<StoreFuture<T>>, after: std::time::Duration },
    }
}

impl<T> Bounded<T> {
    fn new(mut future: StoreFuture<T>, timeout: std::time::Duration) -> Self {
        match future.take_ready() {
            Some(result) => Self::Ready {
                result: Some(result),
            },
            None => Self::Waiting {
                future: tokio::time::timeout(timeout, future),
                after: timeout,
            },
        }
    }
}

impl<T> Future for Bounded<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            BoundedProj::Ready { result } => {
                Poll::Ready(result.take().expect("Bounded polled after it completed"))
            }
            BoundedProj::Waiting { future, after } => Poll::Ready(
                ready!(future.poll(cx))
                    .unwrap_or_else(|_| Err(StoreError::timeout("touch", *after, false))),
            ),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Loading {
            id: SessionId,
            #[pin]
            load: Bounded<Option<SessionRecord>>,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Committing {
            commit: BoxFuture<Outcome>,
            response: Option<S::Response>,
        },
        Done,
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn load(
        ctx: RequestContext,
        id: SessionId,
        service: S,
        request: Request<ReqBody>,
    ) -> Self {
        let load = Bounded::new(
            ctx.shared.store.touch(&id, &ctx.access()),
            ctx.shared.config.store_timeout,
        );
        Self {
            state: State::Loading {
                id,
                load,
                service: Some(service),
                request: Some(request),
            },
            ctx: Some(ctx),
        }
    }

    pub(super) fn call(ctx: RequestContext, future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
            ctx: Some(ctx),
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Loading {
                    id,
                    load,
                    service,
                    request,
                } => {
                    let id = *id;
                    let loaded = ready!(load.poll(cx));
                    let ctx = this.ctx.as_mut().expect("context is kept until Done");
                    let mut req = request
                        .take()
                        .expect("request is taken once, when loading ends");
                    let session = match loaded {
                        Ok(Some(record)) => Session::loaded(id, record, ctx.shared.limits),
                        Ok(None) => {
                            ctx.stale_cookie = true;
                            let (r, session) = ctx.shared.fresh_session(req, ctx.ip);
                            req = r;
                            session
                        }
                        Err(error) => {
                            tracing::error!(session = %id, %error, "loading the session failed");
                            if ctx.shared.config.failure_mode == FailureMode::Closed {
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(layer_response(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    None,
                                )));
                            }
                            Session::unavailable(error, ctx.ip, ctx.shared.limits)
                        }
                    };
                    req.extensions_mut().insert(session.clone());
                    ctx.session = Some(session);
                    let mut service = service
                        .take()
                        .expect("service is taken once, when loading ends");
                    let future = service.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let mut response = ready!(future.poll(cx))?;
                    let ctx = this.ctx.take().expect("context is kept until Done");
                    match finish(ctx) {
                        Finish::Now(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(outcome.apply(response)));
                        }
                        Finish::Later(commit) => {
                            // Keep the handler's response while the store commits.
                            let r =
                                std::mem::replace(&mut response, Response::new(ResBody::default()));
                            this.state.set(State::Committing {
                                commit,
                                response: Some(r),
                            });
                        }
                    }
                }
                StateProj::Committing { commit, response } => {
                    let outcome = ready!(commit.as_mut().poll(cx));
                    let response = response
                        .take()
                        .expect("response is taken once, when committing ends");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(outcome.apply(response)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

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
    replace: Option<(StatusCode, Option<std::time::Duration>)>,
}

impl Outcome {
    fn apply<B: Default>(self, mut response: Response<B>) -> Response<B> {
        if let Some((status, retry_after)) = self.replace {
            response = layer_response(status, retry_after);
        }
        for cookie in self.set_cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    fn replaced(status: StatusCode, retry_after: Option<std::time::Duration>) -> Self {
        Self {
            set_cookies: SetCookies::default(),
            replace: Some((status, retry_after)),
        }
    }
}

enum Finish {
    Now(Outcome),
    Later(BoxFuture<Outcome>),
}

/// Decides the store calls and cookies of a finished request.
fn finish(ctx: RequestContext) -> Finish {
    let Some(session) = &ctx.session else {
        return Finish::Now(Outcome::default());
    };
    let plan = session.take_plan();
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
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let timeout = ctx.shared.config.store_timeout;
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::timeout(op, timeout, true)))
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
        if let Err(error) = with_timeout(ctx, "reset", store.reset(old)).await {
            // The browser is unbound all the same; the session ends with its idle TTL.
            tracing::warn!(session = %old, %error, "deleting a reset temporary session failed");
        }
    }
    match &plan.binding {
        Binding::Existing { id, .. } if !plan.changes.is_empty() => {
            match with_timeout(ctx, "commit", store.commit(id, access, &plan.changes)).await {
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
            let limit = ctx.shared.create_limit(access.ip);
            let created = with_timeout(
                ctx,
                "create",
                store.create(id, access, &plan.changes, limit.as_ref()),
            )
            .await;
            let wrote = *explicit || !plan.changes.is_empty();
            match created {
                Ok(Created::Created) => bind(ctx, &mut outcome, id),
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
