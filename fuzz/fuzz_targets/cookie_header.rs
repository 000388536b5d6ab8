//! The cookie header reader (SPEC §2, §5): any `Cookie` header bytes give a
//! well-formed session id or none, never a panic.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use visitor_session::SessionConfig;
use visitor_session::fuzzing::read_cookie;

fuzz_target!(|values: Vec<&[u8]>| {
    let config = SessionConfig::new().site_id("fuzz");
    let mut headers = HeaderMap::new();
    for bytes in values.iter().take(8) {
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            headers.append(header::COOKIE, value);
        }
    }
    if let Some(id) = read_cookie(&config, &headers) {
        assert!(visitor_session::SessionId::parse(id.as_str()).is_some());
    }
});
