//! [`ResponseFuture`]: load, call the inner service, commit, set the cookie.
//! The polling lives here; every decision about the session, the store calls
//! and the response lives in [`outcome`](super::outcome).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tower_service::Service;

use super::continuity::{self, Found};
use super::outcome::{self, Finish, Outcome};
use super::request::RequestContext;
use crate::error::StoreError;
use crate::id::SessionId;
use crate::observe::StoreCall;
use crate::store::{SessionRecord, StoreFuture, TokenHash};

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

impl<S, ReqBody> std::fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Loading { .. } => "loading",
            State::Calling { .. } => "calling",
            State::Committing { .. } => "committing",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A store call bounded by the layer's `store_timeout`. A call answered
    /// at once (the memory store) needs no timer.
    #[project = BoundedProj]
    pub(super) enum Bounded<T> {
        Ready { result: Option<Result<T, StoreError>> },
        Waiting {
            #[pin] future: Timeout<StoreFuture<T>>,
            after: Duration,
            op: &'static str,
            writes: bool,
            call: Option<StoreCall>,
        },
    }
}

impl<T> Bounded<T> {
    /// `future`, the store's operation `op` on session `id`, bounded by
    /// `timeout` and watched (logs, metrics). Past the timeout it fails: a
    /// timeout for a read, an unknown outcome for a write (`writes`).
    #[inline]
    pub(super) fn new(
        mut future: StoreFuture<T>,
        timeout: Duration,
        (op, writes): (&'static str, bool),
        id: Option<&SessionId>,
    ) -> Self {
        let call = StoreCall::start(op, id);
        match future.take_ready() {
            Some(result) => {
                call.finish(&result);
                Self::Ready {
                    result: Some(result),
                }
            }
            None => Self::Waiting {
                future: tokio::time::timeout(timeout, future),
                after: timeout,
                op,
                writes,
                call: Some(call),
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
            BoundedProj::Waiting {
                future,
                after,
                op,
                writes,
                call,
            } => {
                let result = ready!(future.poll(cx))
                    .unwrap_or_else(|_| Err(StoreError::timeout(op, *after, *writes)));
                if let Some(call) = call.take() {
                    call.finish(&result);
                }
                Poll::Ready(result)
            }
        }
    }
}

pin_project! {
    /// The store call that loads a request's session: by its cookie, or
    /// through its continuity token (with the cookie, if any).
    #[project = LoadProj]
    enum Load {
        Cookie { id: SessionId, #[pin] touch: Bounded<Option<SessionRecord>> },
        Token { cookie: Option<SessionId>, #[pin] load: Bounded<Found> },
    }
}

/// The cookie the request carried, and what loading its session found.
type Loaded = (Option<SessionId>, Result<Found, StoreError>);

impl Future for Load {
    type Output = Loaded;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Loaded> {
        Poll::Ready(match self.project() {
            LoadProj::Cookie { id, touch } => {
                let id = *id;
                let found = ready!(touch.poll(cx)).map(|record| match record {
                    Some(record) => Found::Session {
                        id,
                        record,
                        previous: None,
                        permanent: false,
                    },
                    None => Found::Fresh { reserved: None },
                });
                (Some(id), found)
            }
            LoadProj::Token { cookie, load } => (*cookie, ready!(load.poll(cx))),
        })
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Loading {
            #[pin]
            load: Load,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Committing {
            commit: Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>,
            response: Option<S::Response>,
        },
        Done,
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    #[inline]
    pub(super) fn load(
        ctx: RequestContext,
        id: SessionId,
        service: S,
        request: Request<ReqBody>,
    ) -> Self {
        let touch = Bounded::new(
            ctx.shared.store.touch(&id, &ctx.access()),
            ctx.shared.config.store_timeout,
            ("touch", false),
            Some(&id),
        );
        Self::loading(ctx, Load::Cookie { id, touch }, service, request)
    }

    pub(super) fn load_token(
        ctx: RequestContext,
        token: TokenHash,
        cookie: Option<SessionId>,
        service: S,
        request: Request<ReqBody>,
    ) -> Self {
        let load = Bounded::new(
            continuity::load(ctx.shared.clone(), token, cookie, ctx.ip, ctx.at_ms()),
            ctx.shared.config.store_timeout,
            ("load_token", false),
            cookie.as_ref(),
        );
        Self::loading(ctx, Load::Token { cookie, load }, service, request)
    }

    #[inline]
    fn loading(mut ctx: RequestContext, load: Load, service: S, request: Request<ReqBody>) -> Self {
        ctx.store_calls = 1;
        Self {
            state: State::Loading {
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
                    load,
                    service,
                    request,
                } => {
                    let (cookie, loaded) = ready!(load.poll(cx));
                    let ctx = this.ctx.as_mut().expect("context is kept until Done");
                    let request = request
                        .take()
                        .expect("request is taken once, when loading ends");
                    let (mut request, session) = match outcome::loaded(ctx, cookie, loaded, request)
                    {
                        Ok(loaded) => loaded,
                        Err(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(outcome.apply(Response::default())));
                        }
                    };
                    request.extensions_mut().insert(session.clone());
                    ctx.session = Some(session);
                    let mut service = service
                        .take()
                        .expect("service is taken once, when loading ends");
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    let ctx = this.ctx.take().expect("context is kept until Done");
                    match outcome::finish(ctx) {
                        Finish::Now(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(outcome.apply(response)));
                        }
                        Finish::Later(commit) => {
                            // Keep the handler's response while the store commits.
                            this.state.set(State::Committing {
                                commit,
                                response: Some(response),
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
