//! Property tests of client-IP selection (SPEC §3.3, §5) with proptest:
//! thousands of generated peers and forwarding headers per run, shrunk to
//! the smallest failing case when one breaks a rule. Everything goes through
//! the public [`TrustedProxies::client_ip`], the call the layer makes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use visitor_session::{ClientIpHeader, TrustedProxies};

/// The proxies of these tests, writing the default header, `X-Forwarded-For`.
fn trusted() -> TrustedProxies {
    TrustedProxies::parse("10.0.0.0/8, fd00::/8").unwrap()
}

/// The forwarding headers clients send and proxies write. Behind proxies
/// that write one of them, every other one is the client's to fill.
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fly-client-ip",
    "x-client-ip",
];

/// The header choices an operator can make: the two lists, and single-address headers.
fn configured_header() -> impl Strategy<Value = ClientIpHeader> {
    prop_oneof![
        Just(ClientIpHeader::XForwardedFor),
        Just(ClientIpHeader::Forwarded),
        Just(ClientIpHeader::SingleAddress(HeaderName::from_static(
            "x-real-ip"
        ))),
        Just(ClientIpHeader::SingleAddress(HeaderName::from_static(
            "true-client-ip"
        ))),
        Just(ClientIpHeader::SingleAddress(HeaderName::from_static(
            "cf-connecting-ip"
        ))),
    ]
}

/// The name of the header `choice` reads.
fn read_header(choice: &ClientIpHeader) -> HeaderName {
    match choice {
        ClientIpHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
        ClientIpHeader::Forwarded => HeaderName::from_static("forwarded"),
        ClientIpHeader::SingleAddress(name) => name.clone(),
        other => unreachable!("a header choice this test does not make: {other:?}"),
    }
}

/// A value a client might put in any forwarding header: an address in the
/// shape of one of the grammars, a list of them, or arbitrary bytes.
fn client_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any_ip(), proptest::option::of(any::<u16>()))
            .prop_map(|(ip, port)| forwarded_node(ip, port).into_bytes()),
        any_ip().prop_map(|ip| ip.to_string().into_bytes()),
        proptest::collection::vec(any_ip(), 1..4).prop_map(|ips| {
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            ips.join(", ").into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..100),
    ]
}

/// An address as the proxy writes it in the header `choice` reads: a
/// `Forwarded` node, or the address with an optional port (`[IPv6]:port`).
fn proxy_value(choice: &ClientIpHeader, ip: IpAddr, port: Option<u16>) -> String {
    match (choice, ip, port) {
        (ClientIpHeader::Forwarded, ..) => forwarded_node(ip, port),
        (_, IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        (_, ip, Some(p)) => format!("{ip}:{p}"),
        (_, ip, None) => ip.to_string(),
    }
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
    proptest::sample::select(FORWARDING_HEADERS.to_vec()).prop_map(HeaderName::from_static)
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
    /// address the headers named, whichever header is configured.
    #[test]
    fn arbitrary_header_bytes_never_panic(
        choice in configured_header(),
        peer in prop_oneof![proxy_ip(), any_ip()],
        values in proptest::collection::vec(
            (forwarding_header(), proptest::collection::vec(any::<u8>(), 0..200)),
            0..4,
        ),
    ) {
        let headers = headers(&values);
        let ip = trusted().header(choice).client_ip(peer, &headers);
        let named = values.iter().any(|(_, bytes)| {
            String::from_utf8_lossy(bytes).contains(&ip.to_string())
        });
        prop_assert!(ip == peer.to_canonical() || named, "{ip} came from nowhere");
    }

    /// A client never chooses its own IP unless its peer is a trusted proxy,
    /// not even in the header the proxies write.
    #[test]
    fn an_untrusted_peer_cannot_choose_its_ip(
        choice in configured_header(),
        peer in client_ip(),
        claimed in any_ip(),
        port in proptest::option::of(any::<u16>()),
    ) {
        let value = proxy_value(&choice, claimed, port);
        let headers = headers(&[(read_header(&choice), value.into_bytes())]);
        let trusted = trusted().header(choice);
        prop_assert_eq!(trusted.client_ip(peer, &headers), peer.to_canonical());
    }

    /// Behind a chain of trusted proxies writing a list header, the client is
    /// the rightmost untrusted hop, written with or without ports and brackets.
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
        let (choice, value) = if use_forwarded {
            let nodes: Vec<String> = chain.iter().map(|ip| forwarded_node(*ip, port)).collect();
            (ClientIpHeader::Forwarded, nodes.join(", "))
        } else {
            let hops: Vec<String> = chain.iter().map(IpAddr::to_string).collect();
            (ClientIpHeader::XForwardedFor, hops.join(", "))
        };
        let headers = headers(&[(read_header(&choice), value.into_bytes())]);
        let trusted = trusted().header(choice);
        prop_assert_eq!(trusted.client_ip(peer, &headers), client.to_canonical());
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
        let trusted = trusted().header(ClientIpHeader::Forwarded);
        prop_assert_eq!(trusted.client_ip(peer, &headers), peer);
    }

    /// SPEC §3.3: behind proxies that write one header, whatever a client
    /// puts in every other forwarding header (`Forwarded`, `X-Forwarded-For`,
    /// `X-Real-IP`, `True-Client-IP`, `CF-Connecting-IP`...) changes nothing:
    /// the client IP is the same with and without them, for any peer and any
    /// value of the header that is read.
    #[test]
    fn headers_other_than_the_configured_one_never_change_the_client_ip(
        choice in configured_header(),
        peer in prop_oneof![proxy_ip(), any_ip()],
        read in proptest::option::of((any_ip(), proptest::option::of(any::<u16>()))),
        read_garbage in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
        others in proptest::collection::vec(
            (proptest::sample::select(FORWARDING_HEADERS.to_vec()), client_value()),
            1..8,
        ),
    ) {
        let trusted = trusted().header(choice.clone());
        let read_name = read_header(&choice);
        let mut values = Vec::new();
        if let Some(garbage) = read_garbage {
            values.push((read_name.clone(), garbage));
        }
        if let Some((ip, port)) = read {
            values.push((read_name.clone(), proxy_value(&choice, ip, port).into_bytes()));
        }
        let without = headers(&values);
        values.extend(
            others
                .into_iter()
                .map(|(name, value)| (HeaderName::from_static(name), value))
                .filter(|(name, _)| *name != read_name),
        );
        let with = headers(&values);
        prop_assert_eq!(
            trusted.client_ip(peer, &with),
            trusted.client_ip(peer, &without)
        );
    }

    /// SPEC §3.3: the address the proxy wrote in the configured header is the
    /// client IP, whatever the client sent in the others.
    #[test]
    fn the_configured_header_names_the_client(
        choice in configured_header(),
        client in client_ip(),
        port in proptest::option::of(any::<u16>()),
        peer in proxy_ip(),
        others in proptest::collection::vec(
            (proptest::sample::select(FORWARDING_HEADERS.to_vec()), client_value()),
            0..8,
        ),
    ) {
        let read_name = read_header(&choice);
        let mut values = vec![(read_name.clone(), proxy_value(&choice, client, port).into_bytes())];
        values.extend(
            others
                .into_iter()
                .map(|(name, value)| (HeaderName::from_static(name), value))
                .filter(|(name, _)| *name != read_name),
        );
        let trusted = trusted().header(choice);
        prop_assert_eq!(trusted.client_ip(peer, &headers(&values)), client.to_canonical());
    }
}
