//! The forwarding-header grammars (SPEC §3.3): the lists `X-Forwarded-For`
//! and `Forwarded` (RFC 7239), and single-address headers such as
//! `X-Real-IP`, each read into the hops that
//! [`TrustedProxies::client_ip`](super::TrustedProxies::client_ip) walks.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{FORWARDED, GetAll, HeaderMap, HeaderName, HeaderValue};

use super::ClientIpHeader;

/// The most hops examined in a forwarding header; a longer chain of trusted
/// hops falls back to the peer instead of being walked to its end.
pub(super) const MAX_HOPS: usize = 32;

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The hops of `header`, the one forwarding header the trusted proxies
/// write, nearest proxy last; no other header is looked at. At most
/// `MAX_HOPS + 1` of them.
pub(super) fn hops<'a>(headers: &'a HeaderMap, header: &ClientIpHeader) -> VecDeque<Hop<'a>> {
    match header {
        ClientIpHeader::XForwardedFor => last_hops(
            headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .flat_map(x_forwarded_for_hops),
        ),
        ClientIpHeader::Forwarded => {
            last_hops(headers.get_all(FORWARDED).iter().flat_map(forwarded_hops))
        }
        ClientIpHeader::SingleAddress(name) => single_address_hop(headers.get_all(name))
            .into_iter()
            .collect(),
    }
}

/// One hop of a forwarding header, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hop<'a> {
    /// The node text: an `X-Forwarded-For` entry, a `Forwarded` `for=` value,
    /// or a single-address header's value.
    Node(&'a str),
    /// An element that is not valid UTF-8, malformed, (`Forwarded`) has no
    /// `for=`, or (single address) is one of several lines.
    Unusable,
}

impl Hop<'_> {
    pub(super) fn ip(self) -> Option<IpAddr> {
        match self {
            Hop::Node(node) => parse_node(node),
            Hop::Unusable => None,
        }
    }
}

/// The last `MAX_HOPS + 1` hops, in order: enough to walk the cap and see
/// whether anything lies beyond it, without holding a hostile header's every hop.
fn last_hops<'a>(hops: impl Iterator<Item = Hop<'a>>) -> VecDeque<Hop<'a>> {
    let mut last = VecDeque::new();
    for hop in hops {
        if last.len() > MAX_HOPS {
            last.pop_front();
        }
        last.push_back(hop);
    }
    last
}

/// The one hop of a single-address header: its value, trimmed. A header
/// with a second line was not written by the proxy alone (it sets the
/// header, replacing the client's), and which line is the proxy's cannot be
/// told, so it is unusable.
fn single_address_hop(lines: GetAll<'_, HeaderValue>) -> Option<Hop<'_>> {
    let mut lines = lines.into_iter();
    let only = lines.next()?;
    if lines.next().is_some() {
        return Some(Hop::Unusable);
    }
    Some(std::str::from_utf8(only.as_bytes().trim_ascii()).map_or(Hop::Unusable, Hop::Node))
}

/// The entries of one `X-Forwarded-For` line. Empty list elements are ignored
/// (RFC 9110 §5.6.1); UTF-8 is checked per entry so a client's garbage on the
/// left of a line does not hide the entry its proxy appended on the right.
fn x_forwarded_for_hops(line: &HeaderValue) -> impl Iterator<Item = Hop<'_>> {
    line.as_bytes()
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
        .map(|entry| std::str::from_utf8(entry).map_or(Hop::Unusable, Hop::Node))
}

/// The `for=` values of the elements of one `Forwarded` line (RFC 7239 §4).
///
/// Elements are split at every comma, quoted or not: no node contains one,
/// and a quote a client leaves open must not swallow the element its proxy
/// appends after it. Empty list elements are ignored, as for `X-Forwarded-For`.
fn forwarded_hops(line: &HeaderValue) -> impl Iterator<Item = Hop<'_>> {
    line.as_bytes()
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty())
        .map(|element| forwarded_for(element).map_or(Hop::Unusable, Hop::Node))
}

/// The `for=` value of a forwarded-element, or `None` if the element is
/// malformed, not UTF-8, has no `for=`, or has more than one.
///
/// Whitespace around `;` and `=` is tolerated, as real proxies emit it.
fn forwarded_for(element: &[u8]) -> Option<&str> {
    let element = std::str::from_utf8(element).ok()?;
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return None;
        }
        let value = forwarded_value(value.trim())?;
        if name.eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

/// A parameter value: a quoted string, returned without its quotes, or a bare
/// run of visible ASCII (leniently wider than a token, so that unquoted
/// `1.2.3.4:80` and `[::1]` from sloppy proxies still parse). Escapes are left
/// in place: no IP address contains one, so such a hop is rejected later.
fn forwarded_value(value: &str) -> Option<&str> {
    let bare = match value.strip_prefix('"') {
        Some(quoted) => quoted
            .strip_suffix('"')
            .filter(|inner| !inner.contains('"'))?,
        None => value
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'"')
            .then_some(value)?,
    };
    (!bare.is_empty()).then_some(bare)
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// An IP from a node: a bare IPv4 or IPv6 address, `IPv4:port`, `[IPv6]` or
/// `[IPv6]:port` (a port may be an RFC 7239 obfuscated `_port`). `unknown` and
/// obfuscated `_names` are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let ip = if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else {
        let (v4, port) = node.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

/// RFC 7239 `node-port`: 1 to 5 digits, or `_` and obfuscation characters.
fn is_port(port: &str) -> bool {
    if let Some(obfuscated) = port.strip_prefix('_') {
        return !obfuscated.is_empty()
            && obfuscated
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
    }
    (1..=5).contains(&port.len()) && port.bytes().all(|byte| byte.is_ascii_digit())
}
