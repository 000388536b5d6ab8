//! The client-IP resolver (SPEC §3.3, §5) for each header an operator can
//! name: any header bytes never panic, and a peer that is not a trusted
//! proxy is always its own client IP.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use visitor_session::{ClientIpHeader, TrustedProxies};

fuzz_target!(|input: (u8, bool, [u8; 4], Vec<(u8, &[u8])>)| {
    let (choice, via_proxy, octets, values) = input;
    const NAMES: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];
    let header: ClientIpHeader = NAMES[usize::from(choice) % NAMES.len()].parse().unwrap();
    let trusted = TrustedProxies::parse("10.0.0.0/8, fd00::/8")
        .unwrap()
        .header(header);
    let peer: IpAddr = if via_proxy {
        [10, octets[1], octets[2], octets[3]].into()
    } else {
        [203, 0, 113, octets[3]].into()
    };
    let mut headers = HeaderMap::new();
    for (name, bytes) in values.iter().take(8) {
        let name = NAMES[usize::from(*name) % NAMES.len()];
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let ip = trusted.client_ip(peer, &headers);
    if !via_proxy {
        assert_eq!(ip, peer);
    }
});
