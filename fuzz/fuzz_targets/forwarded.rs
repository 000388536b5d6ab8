//! The `Forwarded` / `X-Forwarded-For` resolver (SPEC §3.3, §5): any header
//! bytes never panic, and a peer that is not a trusted proxy is always its
//! own client IP.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use visitor_session::TrustedProxies;
use visitor_session::client_ip::resolve;

fuzz_target!(|input: (bool, [u8; 4], Vec<(bool, &[u8])>)| {
    let (via_proxy, octets, values) = input;
    let trusted = TrustedProxies::parse("10.0.0.0/8, fd00::/8").unwrap();
    let peer: IpAddr = if via_proxy {
        [10, octets[1], octets[2], octets[3]].into()
    } else {
        [203, 0, 113, octets[3]].into()
    };
    let mut headers = HeaderMap::new();
    for (forwarded, bytes) in values.iter().take(8) {
        let name = if *forwarded { "forwarded" } else { "x-forwarded-for" };
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let ip = resolve(peer, &headers, &trusted);
    if !via_proxy {
        assert_eq!(ip, peer);
    }
});
