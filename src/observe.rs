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
//!
//! `outcome` is `ok` or a [`StoreErrorKind`](crate::StoreErrorKind) name.

use std::time::Instant;

use tracing::Span;
use tracing::field::{Empty, display};

use crate::error::StoreError;
use crate::id::SessionId;

/// One store call being watched: its span, and when it started (read only
/// when a span or the metrics want it).
#[derive(Debug)]
pub(crate) struct StoreCall {
    op: &'static str,
    span: Span,
    started: Option<Instant>,
}

impl StoreCall {
    /// The start of the store call `op` for session `id`.
    pub(crate) fn start(op: &'static str, id: Option<&SessionId>) -> Self {
        let span = tracing::debug_span!(
            "store_call",
            op,
            session = Empty,
            outcome = Empty,
            duration_us = Empty
        );
        if !span.is_disabled() {
            if let Some(id) = id {
                span.record("session", display(id));
            }
        }
        let timed = !span.is_disabled() || cfg!(feature = "metrics");
        Self {
            op,
            span,
            started: timed.then(Instant::now),
        }
    }

    /// The end of the call, with its result.
    pub(crate) fn finish<T>(self, result: &Result<T, StoreError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.kind().as_str(),
        };
        let elapsed = self.started.map(|at| at.elapsed());
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome);
            if let Some(elapsed) = elapsed {
                self.span.record("duration_us", elapsed.as_micros() as u64);
            }
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("visitor_session_store_calls_total", "op" => self.op, "outcome" => outcome)
                .increment(1);
            if let Some(elapsed) = elapsed {
                metrics::histogram!("visitor_session_store_call_seconds", "op" => self.op)
                    .record(elapsed.as_secs_f64());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = self.op;
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
}

/// Counts `event` (with the `metrics` feature; nothing otherwise).
pub(crate) fn count(event: Event) {
    #[cfg(feature = "metrics")]
    {
        let name = match event {
            Event::Created => "visitor_session_sessions_created_total",
            Event::Promoted => "visitor_session_sessions_promoted_total",
            Event::Reset => "visitor_session_sessions_reset_total",
            Event::Deleted => "visitor_session_sessions_deleted_total",
            Event::FailOpen => "visitor_session_fail_open_total",
        };
        metrics::counter!(name).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}
