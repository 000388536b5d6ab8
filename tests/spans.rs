//! Observability (SPEC §7): what a store call leaves in the logs. Its own
//! test binary, with one test: `tracing` caches per callsite whether anyone
//! listens, so a subscriber set for one test is reliable only when no other
//! test runs beside it.

mod support;

use support::*;
use visitor_session::MemoryStore;

#[tokio::test]
async fn every_store_call_is_a_span_with_op_redacted_id_duration_and_outcome() {
    // SPEC §7 and §5: the span names the operation and outcome, and the
    // session id only by its prefix.
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("visitor_session=debug")
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = service(MemoryStore::new(), config(), act);
    let id = bound_id(&send(&svc, request()).await).unwrap();
    send(&svc, at("/write", Some(&id))).await;
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for op in ["create", "touch", "commit"] {
        let line = log
            .lines()
            .find(|l| l.contains("store_call") && l.contains(&format!("op=\"{op}\"")))
            .unwrap_or_else(|| panic!("no span for {op}:\n{log}"));
        assert!(line.contains("outcome=\"ok\""), "{line}");
        assert!(line.contains("duration_us="), "{line}");
        assert!(line.contains("session=session_"), "{line}");
    }
    assert!(
        !log.contains(id.as_str()),
        "a full session id in the log:\n{log}"
    );
    assert!(log.contains("request"), "one line per request:\n{log}");
}
