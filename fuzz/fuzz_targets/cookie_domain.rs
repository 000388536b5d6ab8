//! The host → cookie `Domain` rule (SPEC §2): any `Host` bytes give no
//! `Domain` or a registrable domain that the host itself is within.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visitor_session::SessionConfig;
use visitor_session::fuzzing::cookie_domain;

fuzz_target!(|host: &[u8]| {
    // What a server can hand the layer: a header value's bytes (no CR, LF or
    // other control characters but tab).
    if http::HeaderValue::from_bytes(host).is_err() {
        return;
    }
    let config = SessionConfig::new();
    if let Some(domain) = cookie_domain(&config, host) {
        let host = std::str::from_utf8(host).expect("a domain comes from a UTF-8 host");
        // Whitespace around the value is not part of it (RFC 9110 §5.5).
        let host = host.trim();
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        assert!(
            name == domain || name.ends_with(&format!(".{domain}")),
            "{host:?} got Domain={domain}"
        );
        assert!(domain.contains('.'), "never a bare TLD: {domain}");
    }
});
