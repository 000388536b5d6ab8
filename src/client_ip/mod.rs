//! Client-IP resolution: which address a session is bound to (SPEC §3.3).
//!
//! # Trust model
//!
//! The client IP is the socket peer of the connection, unless that peer is one
//! of the configured [`TrustedProxies`]. Only then is a forwarding header
//! read, and only **one**: the [`ClientIpHeader`] the operator names as the
//! one its proxies write.
//!
//! - [`ClientIpHeader::XForwardedFor`] (the default) or
//!   [`ClientIpHeader::Forwarded`] (RFC 7239): a list each proxy appends to.
//!   All lines of the header count, in order. The hops are walked right to
//!   left, skipping trusted proxies; the first untrusted hop is the client.
//!   If every hop is trusted, the leftmost is.
//! - [`ClientIpHeader::SingleAddress`] (`X-Real-IP` and the like): one
//!   address that the proxy sets, replacing whatever the client sent. A
//!   header with more than one line is not the proxy's alone and counts as
//!   malformed.
//! - Every other forwarding header is ignored, whatever it says. A proxy
//!   passes on the headers it does not write untouched: behind nginx
//!   appending `X-Forwarded-For`, a client's own `Forwarded: for=6.6.6.6`
//!   arrives as the client sent it, so reading it (or falling back to it)
//!   would let the client choose its IP.
//! - A hop that has to be examined but is not an IP address (garbage,
//!   `unknown`, an obfuscated `_name`, a non-UTF-8 value) ends the walk with
//!   the socket peer: a header the proxies did not write correctly is never
//!   guessed at. So does a chain of more than 32 trusted hops.
//!
//! With no trusted proxy configured, forwarding headers are ignored entirely,
//! so a client cannot choose its own IP by sending them. IPv4-mapped IPv6
//! addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address everywhere.
//!
//! The socket peer comes from the request extensions: a [`PeerAddr`], which a
//! plain hyper server inserts per connection, or, with the `axum` feature,
//! axum's `ConnectInfo<SocketAddr>`.
//!
//! # Example
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use visitor_session::client_ip::{ClientIpHeader, PeerAddr, TrustedProxies};
//!
//! // The load balancers in front of the app, e.g. from `TRUSTED_PROXIES`,
//! // and the one header they write, e.g. from `TRUSTED_PROXY_HEADER`.
//! let trusted = TrustedProxies::parse("10.0.0.0/8, 2001:db8::1")?
//!     .header("x-real-ip".parse::<ClientIpHeader>()?);
//! assert!(trusted.contains("10.1.2.3".parse::<IpAddr>()?));
//! assert!(trusted.contains("::ffff:10.1.2.3".parse::<IpAddr>()?));
//! assert!(!trusted.contains("203.0.113.7".parse::<IpAddr>()?));
//!
//! // A plain hyper server tags each request with its connection's peer.
//! let peer: SocketAddr = "10.1.2.3:51234".parse()?;
//! let mut request = http::Request::new(());
//! request.extensions_mut().insert(PeerAddr(peer));
//! request.headers_mut().insert("x-real-ip", "203.0.113.7".parse()?);
//! // The client's own `X-Forwarded-For` is not the header the proxy writes.
//! request.headers_mut().insert("x-forwarded-for", "6.6.6.6".parse()?);
//! let client = trusted.client_ip(peer.ip(), request.headers());
//! assert_eq!(client, "203.0.113.7".parse::<IpAddr>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv4Net};

use crate::ConfigError;

mod forwarded;

use forwarded::MAX_HOPS;

/// The one forwarding header read from a trusted proxy (SPEC §3.3): the one
/// the operator's proxies write. Every other forwarding header is ignored.
///
/// Parsed from a header name, case-insensitively, as the environment variable
/// `TRUSTED_PROXY_HEADER` gives it: `x-forwarded-for`, `forwarded`, or any
/// other name for a single-address header.
///
/// ```
/// use visitor_session::client_ip::ClientIpHeader;
///
/// assert_eq!("X-Forwarded-For".parse::<ClientIpHeader>()?, ClientIpHeader::XForwardedFor);
/// assert_eq!("forwarded".parse::<ClientIpHeader>()?, ClientIpHeader::Forwarded);
/// assert_eq!(
///     "X-Real-IP".parse::<ClientIpHeader>()?,
///     ClientIpHeader::SingleAddress(http::HeaderName::from_static("x-real-ip")),
/// );
/// assert!("not a header".parse::<ClientIpHeader>().is_err());
/// # Ok::<(), visitor_session::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, a list each proxy appends its peer to (nginx's
    /// `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`, most
    /// cloud load balancers). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), a list of elements each proxy appends to; the
    /// `for=` parameter of each is its hop.
    Forwarded,
    /// A header holding one address, which the proxy sets and so replaces
    /// whatever the client sent: `X-Real-IP` (nginx's
    /// `proxy_set_header X-Real-IP $remote_addr`), `True-Client-IP`,
    /// `CF-Connecting-IP`, `Fly-Client-IP`. An IPv4 or IPv6 address, with or
    /// without a port (`[IPv6]:port`).
    SingleAddress(HeaderName),
}

impl FromStr for ClientIpHeader {
    type Err = ConfigError;

    /// `x-forwarded-for`, `forwarded` (any case), or another header name, read
    /// as a single address.
    fn from_str(name: &str) -> Result<Self, ConfigError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            return Ok(Self::XForwardedFor);
        }
        if name.eq_ignore_ascii_case("forwarded") {
            return Ok(Self::Forwarded);
        }
        HeaderName::from_bytes(name.as_bytes())
            .map(Self::SingleAddress)
            .map_err(|_| {
                ConfigError::new(
                    "TrustedProxies::header",
                    format!(
                        "{name:?} is not a header name; name the one header your proxies \
                         write: `x-forwarded-for` (the default), `forwarded`, or a \
                         single-address header such as `x-real-ip`"
                    ),
                )
            })
    }
}

/// Networks whose requests may carry a forwarding header (CIDRs or bare
/// IPs), and the one header they write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ClientIpHeader,
}

impl TrustedProxies {
    /// Trusts no proxy: forwarding headers are ignored and the client IP is the socket peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of CIDR networks or bare IPs, such as
    /// `"10.0.0.0/8, 192.168.1.1, 2001:db8::/32"`; an empty string trusts
    /// none. The header read is the default, `X-Forwarded-For`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the setting `trusted_proxies` that names the
    /// first entry that is empty or neither a CIDR network nor an IP address.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        if list.trim().is_empty() {
            return Ok(Self::none());
        }
        list.split(',').map(str::trim).enumerate().try_fold(
            Self::none(),
            |trusted, (index, entry)| {
                if entry.is_empty() {
                    return Err(ConfigError::new(
                        "trusted_proxies",
                        format!(
                            "entry {} is empty; expected comma-separated CIDR networks \
                             or IP addresses, e.g. `10.0.0.0/8, 192.168.1.1`",
                            index + 1
                        ),
                    ));
                }
                let net = entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "trusted_proxies",
                            format!(
                                "`{entry}` is neither a CIDR network nor an IP address; \
                                 expected e.g. `10.0.0.0/8`, `192.168.1.1` or `2001:db8::/32`"
                            ),
                        )
                    })?;
                Ok(trusted.with(net))
            },
        )
    }

    /// Also trusts the network `net`.
    #[must_use]
    pub fn with(mut self, net: IpNet) -> Self {
        self.nets.push(canonical_net(net));
        self
    }

    /// The one header the trusted proxies write (default [`ClientIpHeader::XForwardedFor`]).
    #[must_use]
    pub fn header(mut self, header: ClientIpHeader) -> Self {
        self.header = header;
        self
    }

    /// The header read from a trusted proxy.
    pub(crate) fn client_ip_header(&self) -> &ClientIpHeader {
        &self.header
    }

    /// Whether `ip` is in a trusted network; an IPv4-mapped IPv6 address is compared as IPv4.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The client IP of a request from the socket `peer` with `headers`, as
    /// the layer binds it to the session (SPEC §3.3): the peer itself, or,
    /// when the peer is a trusted proxy, the address its [`header`](Self::header)
    /// names: for a list header, the rightmost hop that is not a trusted
    /// proxy itself. Malformed, obfuscated (`for=_hidden`, `unknown`) or
    /// overlong values give the peer; no other forwarding header is looked at.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use http::HeaderMap;
    /// use visitor_session::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::parse("10.0.0.0/8")?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse()?);
    /// // Not the header these proxies write: ignored.
    /// headers.insert("forwarded", "for=6.6.6.6".parse()?);
    /// let proxy: IpAddr = "10.0.0.1".parse()?;
    /// assert_eq!(trusted.client_ip(proxy, &headers), "203.0.113.7".parse::<IpAddr>()?);
    /// // A peer that is no trusted proxy cannot choose its IP.
    /// let client: IpAddr = "198.51.100.9".parse()?;
    /// assert_eq!(trusted.client_ip(client, &headers), client);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        // The common case, kept small enough to inline: the peer is the client.
        if !self.contains(peer) {
            return peer;
        }
        self.walk(peer, headers)
    }

    /// The walk of [`client_ip`](Self::client_ip) through the header of a trusted peer.
    fn walk(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let hops = forwarded::hops(headers, &self.header);
        let mut leftmost = None;
        for (examined, hop) in hops.iter().rev().enumerate() {
            if examined == MAX_HOPS {
                return fall_back(peer, "more trusted hops than the limit");
            }
            let Some(ip) = hop.ip() else {
                return fall_back(peer, "a forwarding hop is not an IP address");
            };
            if !self.contains(ip) {
                return ip;
            }
            leftmost = Some(ip);
        }
        leftmost.unwrap_or(peer)
    }
}

/// Stores an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4
/// network it covers, since addresses are canonicalized before lookup.
fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(prefix)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            if let Ok(v4) = Ipv4Net::new(v4, prefix) {
                return IpNet::V4(v4);
            }
        }
    }
    net
}

/// The socket peer address of a connection, for plain hyper servers: insert it
/// into each request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

fn fall_back(peer: IpAddr, reason: &'static str) -> IpAddr {
    // The header content is the client's and stays out of the logs.
    tracing::debug!(%peer, reason, "client IP falls back to the socket peer");
    peer
}

/// The client network of `ip`, the unit of the new-session limit and of the
/// per-network statistics (SPEC §3.6): an IPv4 address itself (also when
/// written as an IPv4-mapped IPv6 address), or the /64 of an IPv6 address,
/// since one IPv6 subscriber is usually given a whole /64.
///
/// ```
/// use std::net::IpAddr;
/// use visitor_session::client_ip::client_network;
///
/// let ip: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// assert_eq!(client_network(ip).to_string(), "2001:db8:1:2::");
/// let v4: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
/// assert_eq!(client_network(v4).to_string(), "192.0.2.7");
/// ```
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use http::header::{FORWARDED, HeaderValue};

    use super::forwarded::X_FORWARDED_FOR;
    use super::*;

    #[test]
    fn ipv6_networks_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
    }

    const PROXY: &str = "10.0.0.1";
    const CLIENT: &str = "203.0.113.7";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IPs are valid")
    }

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).expect("test proxy lists are valid")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for &(name, value) in pairs {
            headers.append(
                name,
                HeaderValue::from_str(value).expect("test header values are valid"),
            );
        }
        headers
    }

    /// The client IP of a request from the socket peer `peer` behind the
    /// proxies `10.0.0.0/8`, which write the default header, `X-Forwarded-For`.
    fn resolve_behind_proxies(peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        behind_proxies_writing(ClientIpHeader::XForwardedFor, peer, pairs)
    }

    /// The same, behind proxies that write `header`.
    fn behind_proxies_writing(
        header: ClientIpHeader,
        peer: &str,
        pairs: &[(&'static str, &str)],
    ) -> IpAddr {
        trusted("10.0.0.0/8")
            .header(header)
            .client_ip(ip(peer), &headers(pairs))
    }

    fn forwarded(peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        behind_proxies_writing(ClientIpHeader::Forwarded, peer, pairs)
    }

    fn x_real_ip(peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        behind_proxies_writing(
            ClientIpHeader::SingleAddress(HeaderName::from_static("x-real-ip")),
            peer,
            pairs,
        )
    }

    #[test]
    fn no_trusted_proxy_ignores_forged_forwarding_headers() {
        // SPEC §3.3: with no trusted proxy configured, forwarding headers are ignored.
        let forged = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            let none = TrustedProxies::none().header(header.parse().unwrap());
            assert_eq!(none.client_ip(ip(PROXY), &forged), ip(PROXY), "{header}");
        }
    }

    #[test]
    fn trusted_peer_uses_rightmost_untrusted_x_forwarded_for_hop() {
        // SPEC §3.3: the forged left entry is not the client; the one the proxy appended is.
        let client =
            resolve_behind_proxies(PROXY, &[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]);
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn chain_of_trusted_hops_is_skipped() {
        // SPEC §3.3: walking right to left, skipping trusted hops.
        let client = resolve_behind_proxies(
            PROXY,
            &[(
                "x-forwarded-for",
                "198.51.100.1, 203.0.113.7, 10.0.0.3, 10.0.0.2",
            )],
        );
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn all_header_lines_are_read_in_order() {
        // SPEC §3.3: a second line is the continuation of the first.
        let client = resolve_behind_proxies(
            PROXY,
            &[
                ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
                ("x-forwarded-for", "10.0.0.2"),
            ],
        );
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn untrusted_peer_with_forged_header_gets_peer() {
        // SPEC §3.3 and §5: forwarding headers are trusted only from configured proxies.
        let client = resolve_behind_proxies(
            CLIENT,
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("forwarded", "for=198.51.100.2"),
                ("x-real-ip", "198.51.100.3"),
            ],
        );
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn no_forwarding_header_gets_peer() {
        // SPEC §3.3
        assert_eq!(resolve_behind_proxies(PROXY, &[]), ip(PROXY));
    }

    #[test]
    fn x_forwarded_for_is_the_default_and_a_clients_forwarded_is_ignored() {
        // SPEC §3.3: a proxy appending X-Forwarded-For passes the client's own
        // `Forwarded` through untouched; reading it would let the client choose.
        let client = resolve_behind_proxies(
            PROXY,
            &[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", CLIENT),
                ("x-real-ip", "6.6.6.7"),
            ],
        );
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn forwarded_when_named_is_the_only_header_read() {
        // SPEC §3.3: the one header the operator names.
        let client = forwarded(
            PROXY,
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=203.0.113.7;proto=https"),
                ("x-real-ip", "6.6.6.7"),
            ],
        );
        assert_eq!(client, ip(CLIENT));
        let without_forwarded = forwarded(PROXY, &[("x-forwarded-for", CLIENT)]);
        assert_eq!(without_forwarded, ip(PROXY));
    }

    #[test]
    fn x_real_ip_when_named_is_the_only_header_read() {
        // SPEC §3.3: a single-address header the proxy sets.
        let client = x_real_ip(
            PROXY,
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=6.6.6.7"),
                ("x-real-ip", CLIENT),
            ],
        );
        assert_eq!(client, ip(CLIENT));
        let without_x_real_ip = x_real_ip(PROXY, &[("x-forwarded-for", CLIENT)]);
        assert_eq!(without_x_real_ip, ip(PROXY));
    }

    #[test]
    fn x_real_ip_takes_ipv4_ipv6_and_ports() {
        // SPEC §3.3: the address, with or without a port, IPv6 in brackets with one.
        for (value, expected) in [
            ("203.0.113.7", CLIENT),
            (" 203.0.113.7 ", CLIENT),
            ("203.0.113.7:51234", CLIENT),
            ("2001:db8:cafe::17", "2001:db8:cafe::17"),
            ("[2001:db8:cafe::17]", "2001:db8:cafe::17"),
            ("[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"),
            ("::ffff:203.0.113.7", CLIENT),
        ] {
            assert_eq!(
                x_real_ip(PROXY, &[("x-real-ip", value)]),
                ip(expected),
                "X-Real-IP: {value}"
            );
        }
    }

    #[test]
    fn x_real_ip_garbage_falls_back_to_peer() {
        // SPEC §3.3: malformed headers fall back to the peer, never panic, never error.
        for value in [
            "",
            "not-an-ip",
            "unknown",
            "203.0.113.7, 198.51.100.1",
            "for=203.0.113.7",
            "203.0.113.7:port",
            "[2001:db8::1",
            "999.0.0.1",
        ] {
            assert_eq!(
                x_real_ip(PROXY, &[("x-real-ip", value)]),
                ip(PROXY),
                "X-Real-IP: {value:?}"
            );
        }
        let mut non_utf8 = HeaderMap::new();
        non_utf8.insert(
            "x-real-ip",
            HeaderValue::from_bytes(b"203.0.113.7\xff").expect("obs-text is allowed"),
        );
        let reading = trusted("10.0.0.0/8").header("x-real-ip".parse().unwrap());
        assert_eq!(reading.client_ip(ip(PROXY), &non_utf8), ip(PROXY));
    }

    #[test]
    fn x_real_ip_with_several_lines_falls_back_to_peer() {
        // SPEC §3.3: the proxy sets the header; a second line means someone
        // else wrote one too, and which is the proxy's cannot be told.
        let client = x_real_ip(PROXY, &[("x-real-ip", "6.6.6.6"), ("x-real-ip", CLIENT)]);
        assert_eq!(client, ip(PROXY));
    }

    #[test]
    fn x_real_ip_naming_a_trusted_address_is_that_address() {
        // SPEC §3.3: a request from inside the trusted network, as for a list
        // whose every hop is trusted.
        assert_eq!(
            x_real_ip(PROXY, &[("x-real-ip", "10.0.0.9")]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn client_ip_header_parses_names_case_insensitively() {
        for (text, header) in [
            ("x-forwarded-for", ClientIpHeader::XForwardedFor),
            (" X-Forwarded-For ", ClientIpHeader::XForwardedFor),
            ("Forwarded", ClientIpHeader::Forwarded),
            (
                "X-Real-IP",
                ClientIpHeader::SingleAddress(HeaderName::from_static("x-real-ip")),
            ),
            (
                "cf-connecting-ip",
                ClientIpHeader::SingleAddress(HeaderName::from_static("cf-connecting-ip")),
            ),
        ] {
            assert_eq!(text.parse::<ClientIpHeader>().unwrap(), header, "{text:?}");
        }
    }

    #[test]
    fn client_ip_header_refuses_what_is_no_header_name() {
        for text in ["", "  ", "x real ip", "x-real-ip:", "é"] {
            let error = text.parse::<ClientIpHeader>().unwrap_err();
            assert_eq!(error.setting(), "TrustedProxies::header", "{text:?}");
        }
    }

    #[test]
    fn forwarded_quoted_ipv6_with_port_is_parsed() {
        // SPEC §3.3: RFC 7239 §6 quoted `"[IPv6]:port"`, parameter name case-insensitive.
        let client = forwarded(
            PROXY,
            &[(
                "forwarded",
                r#"for=198.51.100.1, For="[2001:db8:cafe::17]:4711"; proto=https, for=10.0.0.2"#,
            )],
        );
        assert_eq!(client, ip("2001:db8:cafe::17"));
    }

    #[test]
    fn x_forwarded_for_entries_with_ports_are_parsed() {
        // SPEC §3.3: tolerate `IPv4:port` and `[IPv6]:port` entries.
        let v4 = resolve_behind_proxies(PROXY, &[("x-forwarded-for", "203.0.113.7:51234")]);
        let v6 = resolve_behind_proxies(PROXY, &[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!((v4, v6), (ip(CLIENT), ip("2001:db8::1")));
    }

    #[test]
    fn malformed_header_falls_back_to_peer() {
        // SPEC §3.3: malformed headers fall back to the peer, never panic, never error.
        for value in ["not-an-ip", "203.0.113.7:port", "[2001:db8::1", "999.0.0.1"] {
            let client = resolve_behind_proxies(PROXY, &[("x-forwarded-for", value)]);
            assert_eq!(client, ip(PROXY), "X-Forwarded-For: {value}");
        }
        let client = forwarded(PROXY, &[("forwarded", "for=garbage")]);
        assert_eq!(client, ip(PROXY));
    }

    #[test]
    fn unparsable_forwarded_falls_back_to_the_peer_not_to_x_forwarded_for() {
        // SPEC §3.3: the client writes X-Forwarded-For as it likes when the
        // proxies write `Forwarded`; a bad `Forwarded` never hands over to it.
        for value in [r#"for="203.0.113.9"#, "for", "proto=https", ";;=="] {
            let client = forwarded(
                PROXY,
                &[("forwarded", value), ("x-forwarded-for", "6.6.6.6")],
            );
            assert_eq!(client, ip(PROXY), "Forwarded: {value}");
        }
    }

    #[test]
    fn malformed_forwarded_element_left_of_the_client_is_not_examined() {
        // SPEC §3.3: the proxy's own element decides; a client's garbage before it
        // does not hide it.
        let client = forwarded(
            PROXY,
            &[
                ("forwarded", r#"for="oops, for=203.0.113.7"#),
                ("x-forwarded-for", "198.51.100.1"),
            ],
        );
        assert_eq!(client, ip(CLIENT));
    }

    #[test]
    fn non_utf8_header_falls_back_to_peer() {
        // SPEC §3.3 and §5: non-UTF-8 headers never panic.
        for (name, header) in [
            (X_FORWARDED_FOR, ClientIpHeader::XForwardedFor),
            (FORWARDED, ClientIpHeader::Forwarded),
        ] {
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_bytes(b"for=\xff\xfe, \xc3\x28")
                .expect("obs-text bytes are allowed in header values");
            headers.insert(name.clone(), value);
            let trusted = trusted("10.0.0.0/8").header(header);
            assert_eq!(trusted.client_ip(ip(PROXY), &headers), ip(PROXY), "{name}");
        }
    }

    #[test]
    fn non_utf8_entry_left_of_the_client_is_not_examined() {
        // SPEC §3.3: only hops up to the first untrusted one are examined.
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.7")
            .expect("obs-text bytes are allowed in header values");
        headers.insert(X_FORWARDED_FOR, value);
        assert_eq!(
            trusted("10.0.0.0/8").client_ip(ip(PROXY), &headers),
            ip(CLIENT)
        );
    }

    #[test]
    fn unknown_hop_falls_back_to_peer() {
        // SPEC §3.3: RFC 7239 `unknown` and obfuscated identifiers are not IPs.
        for value in ["for=unknown", "for=_hidden", r#"for="_gazonk:_port""#] {
            let client = forwarded(PROXY, &[("forwarded", value)]);
            assert_eq!(client, ip(PROXY), "Forwarded: {value}");
        }
        let client = resolve_behind_proxies(PROXY, &[("x-forwarded-for", "unknown")]);
        assert_eq!(client, ip(PROXY));
    }

    #[test]
    fn all_trusted_hops_return_leftmost() {
        // SPEC §3.3: a request from inside the trusted network.
        let client = resolve_behind_proxies(PROXY, &[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]);
        assert_eq!(client, ip("10.0.0.9"));
    }

    #[test]
    fn ipv4_mapped_peer_is_canonicalized() {
        // SPEC §3.3: an IPv4-mapped IPv6 peer is the IPv4 address, untrusted or trusted.
        let untrusted = resolve_behind_proxies("::ffff:203.0.113.7", &[]);
        let trusted = resolve_behind_proxies(
            "::ffff:10.0.0.1",
            &[("x-forwarded-for", "::ffff:203.0.113.7")],
        );
        assert_eq!((untrusted, trusted), (ip(CLIENT), ip(CLIENT)));
    }

    #[test]
    fn ipv4_mapped_trusted_network_matches_ipv4() {
        // SPEC §3.3: mapped networks in the configuration are compared as IPv4.
        let trusted = trusted("::ffff:10.0.0.0/104");
        assert_eq!(trusted, TrustedProxies::parse("10.0.0.0/8").unwrap());
        assert!(trusted.contains(ip("10.1.2.3")));
    }

    #[test]
    fn parse_accepts_cidrs_and_bare_ips_with_whitespace() {
        let parsed = trusted(" 10.0.0.0/8 ,192.168.1.1,\t2001:db8::/32 ");
        let built = TrustedProxies::none()
            .with("10.0.0.0/8".parse().unwrap())
            .with("192.168.1.1/32".parse().unwrap())
            .with("2001:db8::/32".parse().unwrap());
        assert_eq!(parsed, built);
        assert!(parsed.contains(ip("192.168.1.1")) && !parsed.contains(ip("192.168.1.2")));
    }

    #[test]
    fn parse_of_empty_string_trusts_none() {
        assert!(trusted("").is_empty());
        assert!(trusted("  ").is_empty());
    }

    #[test]
    fn parse_errors_name_the_bad_entry() {
        for (list, bad) in [
            ("10.0.0.0/8, 10.0.0.0/33", "`10.0.0.0/33`"),
            ("proxy.internal", "`proxy.internal`"),
            ("10.0.0.1,,10.0.0.2", "entry 2 is empty"),
        ] {
            let error = TrustedProxies::parse(list).unwrap_err();
            assert_eq!(error.setting(), "trusted_proxies");
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn hops_beyond_the_cap_fall_back_to_peer() {
        // SPEC §3.3 and §5: hostile input is walked no further than MAX_HOPS hops.
        let chain = |trusted_hops: usize| {
            let mut hops = vec![CLIENT.to_owned()];
            hops.extend((0..trusted_hops).map(|hop| format!("10.0.{}.{}", hop / 250, hop % 250)));
            hops.join(", ")
        };
        let within = resolve_behind_proxies(PROXY, &[("x-forwarded-for", &chain(MAX_HOPS - 1))]);
        let beyond = resolve_behind_proxies(PROXY, &[("x-forwarded-for", &chain(MAX_HOPS))]);
        let hostile = resolve_behind_proxies(PROXY, &[("x-forwarded-for", &chain(100_000))]);
        assert_eq!(
            (within, beyond, hostile),
            (ip(CLIENT), ip(PROXY), ip(PROXY))
        );
    }
}
