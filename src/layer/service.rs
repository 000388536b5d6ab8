//! [`SessionService`]: the middleware service built by [`SessionLayer`](super::SessionLayer).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::Shared;
use super::future::ResponseFuture;
use crate::cookie::CookieRead;

/// Wraps an inner service and gives each request a [`Session`](crate::Session).
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (cookie, mut ctx) = self.shared.inspect(&req);
        let mut req = req;
        let mut token = None;
        if self.shared.config.continuity.is_some() {
            // Only then is the request taken apart (the extractor reads its parts).
            let (parts, found) = self.shared.token(req);
            req = parts;
            token = found;
        }
        if let Some(token) = token {
            // A continuity token: the store finds the session through it.
            ctx.token = Some(Box::new(token));
            let cookie = match cookie {
                CookieRead::Valid(id) => Some(id),
                CookieRead::Absent | CookieRead::Unusable { .. } => None,
            };
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::load_token(ctx, token, cookie, inner, req);
        }
        match cookie {
            CookieRead::Valid(id) => {
                // The inner service is called once the session is loaded; take
                // the instance that `poll_ready` prepared, leave a clone behind.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::load(ctx, id, inner, req)
            }
            CookieRead::Absent | CookieRead::Unusable { .. } => {
                let (mut req, session) = self.shared.fresh_session(req, ctx.ip, None);
                req.extensions_mut().insert(session.clone());
                ctx.session = Some(session);
                ResponseFuture::call(ctx, self.inner.call(req))
            }
        }
    }
}
