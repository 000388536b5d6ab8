//! Set-up mistakes that compile and run but silently cost a feature are
//! logged once per layer, at `warn` level: a `Secure` cookie set on a
//! plain-http request (browsers drop it), and requests without a peer
//! address (no IP binding, no new-session limit). A test binary of its own:
//! `tracing` caches per callsite whether anyone listens, so every test here
//! installs the same capturing subscriber.

mod support;

use std::sync::{Arc, Mutex};

use http::header;
use support::*;
use visitor_session::MemoryStore;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The warnings logged so far, one per line.
    fn warnings(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

/// Captures the warnings of this thread (the tests run on a current-thread runtime).
fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("visitor_session=warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

/// A request to `app.test:3000` from the page `page` (its `Origin`).
fn from_page(page: &str) -> http::request::Builder {
    let mut req = request().header(header::ORIGIN, page);
    let headers = req.headers_mut().expect("a valid request");
    headers.insert(header::HOST, "app.test:3000".parse().unwrap());
    req
}

#[tokio::test]
async fn a_secure_cookie_on_a_plain_http_request_is_warned_about_once() {
    let (log, _guard) = capture();
    // The default: `Secure` on. Requests from the site's own https page say nothing.
    let svc = service(MemoryStore::new(), config(), act);
    send(&svc, from_page("https://app.test:3000")).await;
    assert_eq!(log.warnings(), Vec::<String>::new());
    // From its page over http (Chromium drops the cookie): once, however many.
    for _ in 0..3 {
        let res = send(&svc, from_page("http://app.test:3000")).await;
        assert!(set_cookies(&res)[0].contains("Secure"));
    }
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("plain http"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("SessionConfig::secure(false)"),
        "{}",
        warnings[0]
    );
    // With `secure(false)`, as for plain-http development, nothing to say.
    let plain = service(MemoryStore::new(), config().secure(false), act);
    send(&plain, from_page("http://app.test:3000")).await;
    assert_eq!(log.warnings().len(), 1);
}

#[tokio::test]
async fn requests_without_a_peer_address_are_warned_about_once() {
    let (log, _guard) = capture();
    let svc = service(MemoryStore::new(), config(), act);
    send(&svc, request()).await;
    assert_eq!(
        log.warnings(),
        Vec::<String>::new(),
        "the harness sets a peer"
    );
    for _ in 0..3 {
        let bare = http::Request::builder()
            .uri("/")
            .header(header::HOST, "app.example.com");
        let res = send(&svc, bare).await;
        assert_eq!(seen(&res)["ip"], serde_json::Value::Null);
    }
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("into_make_service_with_connect_info"),
        "{}",
        warnings[0]
    );
}
