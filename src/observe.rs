//! What the layer tells its operators (SPEC §7): a `tracing` span per store
//! call (operation, redacted session id, duration, outcome), and, with the
//! `metrics` feature, counters and latency histograms through the `metrics`
//! facade, for whichever exporter the application installs:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `visitor_session_store_calls_total` | counter | `op`, `outcome` |
//! | `visitor_session_store_call_seconds` | histogram | `op` |
//! | `visitor_session_sessions_created_total` | counter | |
//! | `visitor_session_sessions_promoted_total` | counter | |
//! | `visitor_session_sessions_reset_total` | counter | |
//! | `visitor_session_sessions_deleted_total` | counter | |
//! | `visitor_session_fail_open_total` | counter | |
//! | `visitor_session_store_full_total` | counter | |
//!
//! `outcome` is `ok` or a [`StoreErrorKind`](crate::StoreErrorKind) name.

use std::time::Instant;

use tracing::Span;
use tracing::field::{Empty, display};

use crate::error::StoreError;
use crate::id::SessionId;

/// One store call being watched: its span, and when it started; nothing
/// (one word) when nobody listens, so that request futures stay small.
#[derive(Debug)]
pub(crate) struct StoreCall(Option<Box<Watched>>);

#[derive(Debug)]
struct Watched {
    op: &'static str,
    span: Span,
    started: Instant,
}

impl StoreCall {
    /// The start of the store call `op` for session `id`.
    #[inline]
    pub(crate) fn start(op: &'static str, id: Option<&SessionId>) -> Self {
        // Nobody listens at debug level and no metrics: nothing to do (the
        // common case in production, and on the hot path).
        if !tracing::level_enabled!(tracing::Level::DEBUG) && !cfg!(feature = "metrics") {
            return Self(None);
        }
        let span = tracing::debug_span!(
            "store_call",
            op,
            session = Empty,
            outcome = Empty,
            duration_us = Empty
        );
        if span.is_disabled() && !cfg!(feature = "metrics") {
            return Self(None);
        }
        if let (false, Some(id)) = (span.is_disabled(), id) {
            span.record("session", display(id));
        }
        Self(Some(Box::new(Watched {
            op,
            span,
            started: Instant::now(),
        })))
    }

    /// The end of the call, with its result.
    #[inline]
    pub(crate) fn finish<T>(self, result: &Result<T, StoreError>) {
        if let Some(watched) = self.0 {
            let outcome = match result {
                Ok(_) => "ok",
                Err(error) => error.kind().as_str(),
            };
            (*watched).finish(outcome);
        }
    }
}

impl Watched {
    fn finish(self, outcome: &'static str) {
        let Watched { op, span, started } = self;
        let elapsed = started.elapsed();
        if !span.is_disabled() {
            span.record("outcome", outcome);
            span.record("duration_us", elapsed.as_micros() as u64);
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("visitor_session_store_calls_total", "op" => op, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("visitor_session_store_call_seconds", "op" => op)
                .record(elapsed.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = op;
    }
}

/// A session event worth counting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Created,
    Promoted,
    Reset,
    Deleted,
    FailOpen,
    StoreFull,
}

/// Counts `event` (with the `metrics` feature; nothing otherwise).
#[inline]
pub(crate) fn count(event: Event) {
    #[cfg(feature = "metrics")]
    {
        let name = match event {
            Event::Created => "visitor_session_sessions_created_total",
            Event::Promoted => "visitor_session_sessions_promoted_total",
            Event::Reset => "visitor_session_sessions_reset_total",
            Event::Deleted => "visitor_session_sessions_deleted_total",
            Event::FailOpen => "visitor_session_fail_open_total",
            Event::StoreFull => "visitor_session_store_full_total",
        };
        metrics::counter!(name).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}
