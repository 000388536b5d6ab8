//! Property tests of client-IP selection (SPEC §3.3, §5) with proptest:
//! thousands of generated peers and forwarding headers per run, shrunk to
//! the smallest failing case when one breaks a rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use visitor_session::TrustedProxies;
use visitor_session::client_ip::resolve;

fn trusted() -> TrustedProxies {
    TrustedProxies::parse("10.0.0.0/8, fd00::/8").unwrap()
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

/// A public address: outside the trusted networks.
fn client_ip() -> impl Strategy<Value = IpAddr> {
    any_ip().prop_filter("not a trusted proxy", |ip| {
        !trusted().contains(ip.to_canonical()) && !ip.to_canonical().is_unspecified()
    })
}

fn proxy_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c))),
        any::<u64>().prop_map(|v| IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | u128::from(v)))),
    ]
}

fn forwarding_header() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        Just(HeaderName::from_static("forwarded")),
        Just(HeaderName::from_static("x-forwarded-for")),
    ]
}

fn headers(values: &[(HeaderName, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, bytes) in values {
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            map.append(name.clone(), value);
        }
    }
    map
}

/// An IP as a `Forwarded` node: IPv6 in brackets and quotes, some with a port.
fn forwarded_node(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (IpAddr::V4(v4), None) => format!("for={v4}"),
        (IpAddr::V4(v4), Some(p)) => format!("for=\"{v4}:{p}\""),
        (IpAddr::V6(v6), None) => format!("for=\"[{v6}]\""),
        (IpAddr::V6(v6), Some(p)) => format!("for=\"[{v6}]:{p}\""),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary header bytes never panic, and the answer is the peer or an
    /// address the headers named.
    #[test]
    fn arbitrary_header_bytes_never_panic(
        peer in prop_oneof![proxy_ip(), any_ip()],
        values in proptest::collection::vec(
            (forwarding_header(), proptest::collection::vec(any::<u8>(), 0..200)),
            0..4,
        ),
    ) {
        let headers = headers(&values);
        let ip = resolve(peer, &headers, &trusted());
        let named = values.iter().any(|(_, bytes)| {
            String::from_utf8_lossy(bytes).contains(&ip.to_string())
        });
        prop_assert!(ip == peer.to_canonical() || named, "{ip} came from nowhere");
    }

    /// A client never chooses its own IP unless its peer is a trusted proxy.
    #[test]
    fn an_untrusted_peer_cannot_choose_its_ip(
        peer in client_ip(),
        claimed in any_ip(),
        name in forwarding_header(),
        port in proptest::option::of(any::<u16>()),
    ) {
        let value = if name == "forwarded" {
            forwarded_node(claimed, port)
        } else {
            claimed.to_string()
        };
        let headers = headers(&[(name, value.into_bytes())]);
        prop_assert_eq!(resolve(peer, &headers, &trusted()), peer.to_canonical());
    }

    /// Behind a chain of trusted proxies, the client is the rightmost
    /// untrusted hop, written with or without ports and brackets.
    #[test]
    fn behind_trusted_proxies_the_client_is_the_rightmost_untrusted_hop(
        spoofed in proptest::collection::vec(any_ip(), 0..3),
        client in client_ip(),
        proxies in proptest::collection::vec(proxy_ip(), 0..4),
        peer in proxy_ip(),
        port in proptest::option::of(any::<u16>()),
        use_forwarded in any::<bool>(),
    ) {
        let chain: Vec<IpAddr> = spoofed.iter().copied()
            .chain(std::iter::once(client))
            .chain(proxies.iter().copied())
            .collect();
        let (name, value) = if use_forwarded {
            let nodes: Vec<String> = chain.iter().map(|ip| forwarded_node(*ip, port)).collect();
            (HeaderName::from_static("forwarded"), nodes.join(", "))
        } else {
            let hops: Vec<String> = chain.iter().map(IpAddr::to_string).collect();
            (HeaderName::from_static("x-forwarded-for"), hops.join(", "))
        };
        let headers = headers(&[(name, value.into_bytes())]);
        prop_assert_eq!(resolve(peer, &headers, &trusted()), client.to_canonical());
    }

    /// RFC 7239 obfuscated identifiers and `unknown` are not addresses: the
    /// walk stops and the peer is the client IP, never a forged hop beyond.
    #[test]
    fn obfuscated_identifiers_are_not_addresses(
        forged in client_ip(),
        hidden in "_[A-Za-z0-9._-]{1,20}",
        unknown in any::<bool>(),
        peer in proxy_ip(),
    ) {
        let node = if unknown { "unknown".to_owned() } else { hidden };
        let value = format!("{}, for={node}", forwarded_node(forged, None));
        let headers = headers(&[(HeaderName::from_static("forwarded"), value.into_bytes())]);
        prop_assert_eq!(resolve(peer, &headers, &trusted()), peer);
    }
}
