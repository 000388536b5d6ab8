//! The session cookie: reading it from `Cookie` headers and writing
//! `Set-Cookie` (SPEC §2, §5).

use std::net::IpAddr;
use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

use crate::config::{CookieDomain, SessionConfig};
use crate::id::SessionId;

/// More occurrences of our cookie name than this in one request is abuse,
/// read as "no cookie".
const MAX_OCCURRENCES: usize = 8;

/// What the request's `Cookie` headers say about the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieRead {
    /// No session cookie.
    Absent,
    /// Exactly one well-formed session id (possibly sent more than once).
    Valid(SessionId),
    /// A session cookie was sent, but not one usable id: garbage, oversized,
    /// non-UTF-8, or two different values. Treated as no cookie, without a
    /// store call.
    Unusable {
        /// Two different values were sent under our name, typically a host-only
        /// and a domain cookie; the response also clears the other form.
        conflicting: bool,
    },
}

/// Reads and writes the session cookie as configured.
#[derive(Debug, Clone)]
pub(crate) struct CookieCodec {
    plain_name: String,
    encoded_name: String,
    /// `encoded_name` with lowercase percent-escapes (`%2f`), which some
    /// clients produce when they re-encode.
    encoded_lower: String,
    max_age: Duration,
    domain: CookieDomain,
    allow_list: Vec<String>,
    same_site: SameSite,
    secure: bool,
    http_only: bool,
    partitioned: bool,
}

impl CookieCodec {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        let plain_name = config.cookie_name();
        let encoded_name = plain_name.replace('/', "%2F");
        let encoded_lower = plain_name.replace('/', "%2f");
        Self {
            plain_name,
            encoded_name,
            encoded_lower,
            max_age: config.cookie_max_age,
            domain: match &config.domain {
                CookieDomain::Fixed(d) => {
                    CookieDomain::Fixed(d.trim_start_matches('.').to_ascii_lowercase())
                }
                other => other.clone(),
            },
            allow_list: config.domain_allow_list.clone(),
            same_site: if config.cross_origin {
                SameSite::None
            } else {
                SameSite::Lax
            },
            secure: config.secure || config.cross_origin,
            http_only: config.http_only,
            partitioned: config.cross_origin && config.partitioned,
        }
    }

    /// Finds the session cookie in every `Cookie` header of the request. Both the
    /// percent-encoded name and the plain name are accepted.
    pub(crate) fn read(&self, headers: &HeaderMap) -> CookieRead {
        let mut found: Option<Result<SessionId, ()>> = None;
        let mut occurrences = 0;
        let mut conflicting = false;
        for value in headers.get_all(header::COOKIE) {
            for pair in value.as_bytes().split(|&b| b == b';') {
                let pair = pair.trim_ascii();
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
                    None => continue,
                };
                if !self.is_our_name(name) {
                    continue;
                }
                occurrences += 1;
                if occurrences > MAX_OCCURRENCES {
                    return CookieRead::Unusable { conflicting: true };
                }
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .and_then(SessionId::parse)
                    .ok_or(());
                match found {
                    None => found = Some(parsed),
                    Some(previous) if previous == parsed => {}
                    Some(_) => {
                        conflicting = true;
                        found = Some(Err(()));
                    }
                }
            }
        }
        match found {
            None => CookieRead::Absent,
            Some(Ok(id)) => CookieRead::Valid(id),
            Some(Err(())) => CookieRead::Unusable { conflicting },
        }
    }

    fn is_our_name(&self, name: &[u8]) -> bool {
        name == self.plain_name.as_bytes()
            || name == self.encoded_name.as_bytes()
            || name == self.encoded_lower.as_bytes()
    }

    /// The `Domain` attribute for a response to a request for `host`
    /// (a `Host` header value or URI authority, port allowed).
    pub(crate) fn domain_for(&self, host: Option<&str>) -> Option<String> {
        match &self.domain {
            CookieDomain::HostOnly => None,
            CookieDomain::Fixed(d) => Some(d.clone()),
            CookieDomain::Auto => {
                let domain = registrable_domain(host?)?;
                if self.allow_list.is_empty()
                    || self.allow_list.iter().any(|allowed| {
                        domain == *allowed
                            || domain
                                .strip_suffix(allowed.as_str())
                                .is_some_and(|rest| rest.ends_with('.'))
                    })
                {
                    Some(domain)
                } else {
                    None
                }
            }
        }
    }

    /// `Set-Cookie` binding the browser to `id` for a full `Max-Age`.
    pub(crate) fn set_cookie(&self, id: &SessionId, domain: Option<&str>) -> HeaderValue {
        let max_age = time::Duration::seconds(self.max_age.as_secs() as i64);
        let expires = time::OffsetDateTime::now_utc() + max_age;
        self.build(id.as_str(), max_age, expires, domain)
    }

    /// `Set-Cookie` removing the session cookie (empty value, `Max-Age=0`).
    pub(crate) fn removal(&self, domain: Option<&str>) -> HeaderValue {
        self.build(
            "",
            time::Duration::ZERO,
            time::OffsetDateTime::UNIX_EPOCH,
            domain,
        )
    }

    fn build(
        &self,
        value: &str,
        max_age: time::Duration,
        expires: time::OffsetDateTime,
        domain: Option<&str>,
    ) -> HeaderValue {
        let mut cookie = Cookie::build((self.plain_name.as_str(), value))
            .path("/")
            .max_age(max_age)
            .expires(expires)
            .same_site(self.same_site)
            .secure(self.secure)
            .http_only(self.http_only)
            .partitioned(self.partitioned);
        if let Some(domain) = domain {
            cookie = cookie.domain(domain);
        }
        let text = cookie.build().encoded().to_string();
        HeaderValue::try_from(text).expect(
            "Set-Cookie holds only a validated name, a session id, a validated domain and fixed attributes",
        )
    }
}

/// The registrable domain ("eTLD+1") of a request host, or `None` where a
/// `Domain` attribute must not be set: IP addresses, `localhost`, single-label
/// hosts, public suffixes themselves and anything that is not a plain DNS name.
///
/// ```
/// use visitor_session::registrable_domain;
///
/// assert_eq!(registrable_domain("a.example.com").as_deref(), Some("example.com"));
/// assert_eq!(registrable_domain("foo.github.io:8443").as_deref(), Some("foo.github.io"));
/// assert_eq!(registrable_domain("127.0.0.1:3000"), None);
/// assert_eq!(registrable_domain("localhost"), None);
/// ```
pub fn registrable_domain(host: &str) -> Option<String> {
    let host = strip_port(host.trim())?;
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let plain_dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !plain_dns || !host.contains('.') || host == "localhost" || host.ends_with(".localhost") {
        return None;
    }
    // A host whose last label is numeric is an IPv4 literal in some shorter
    // form, never a DNS name under a public suffix.
    if host.rsplit('.').next()?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    psl::domain_str(&host).map(str::to_owned)
}

/// `host[:port]` or `[v6]:port` without the port; `None` for a bracketed IPv6
/// literal (never a cookie domain).
fn strip_port(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None;
    }
    match host.rsplit_once(':') {
        // Exactly one colon: a port. More colons: a bare IPv6 literal.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(name)
        }
        Some(_) => Some(host),
        None => Some(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "session_1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    const OTHER: &str = "session_9f0c7a6e-4b1d-4c3a-9e2f-5a6b7c8d9e0f";

    fn codec(config: SessionConfig) -> CookieCodec {
        CookieCodec::new(&config)
    }

    fn headers(cookies: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for c in cookies {
            map.append(header::COOKIE, HeaderValue::from_bytes(c).unwrap());
        }
        map
    }

    fn id() -> SessionId {
        SessionId::parse(ID).unwrap()
    }

    #[test]
    fn reads_the_percent_encoded_name() {
        let c = codec(SessionConfig::new().site_id("site1"));
        let h = headers(&[format!("other=1; crisp-client%2Fsession%2Fsite1={ID}").as_bytes()]);
        assert_eq!(c.read(&h), CookieRead::Valid(id()));
    }

    #[test]
    fn reads_the_plain_name() {
        let c = codec(SessionConfig::new().site_id("site1"));
        let h = headers(&[format!("crisp-client/session/site1={ID}; x=y").as_bytes()]);
        assert_eq!(c.read(&h), CookieRead::Valid(id()));
    }

    #[test]
    fn reads_across_several_cookie_headers() {
        let c = codec(SessionConfig::new());
        let h = headers(&[b"a=b", format!("crisp-client%2Fsession={ID}").as_bytes()]);
        assert_eq!(c.read(&h), CookieRead::Valid(id()));
    }

    #[test]
    fn another_sites_cookie_is_not_ours() {
        let c = codec(SessionConfig::new().site_id("site1"));
        let h = headers(&[format!("crisp-client%2Fsession%2Fsite2={ID}").as_bytes()]);
        assert_eq!(c.read(&h), CookieRead::Absent);
    }

    #[test]
    fn malformed_value_is_unusable() {
        let c = codec(SessionConfig::new());
        let non_utf8 = [&b"crisp-client%2Fsession=session_\xff\xfe"[..], &[b'a'; 34]].concat();
        for bad in [
            "crisp-client%2Fsession=session_nope".as_bytes(),
            b"crisp-client%2Fsession=",
            &non_utf8,
        ] {
            assert_eq!(
                c.read(&headers(&[bad])),
                CookieRead::Unusable { conflicting: false }
            );
        }
    }

    #[test]
    fn oversized_value_is_unusable() {
        let c = codec(SessionConfig::new());
        let big = format!("crisp-client%2Fsession={ID}{}", "a".repeat(8000));
        assert_eq!(
            c.read(&headers(&[big.as_bytes()])),
            CookieRead::Unusable { conflicting: false }
        );
    }

    #[test]
    fn same_value_twice_is_one_cookie() {
        let c = codec(SessionConfig::new());
        let h = headers(&[
            format!("crisp-client%2Fsession={ID}; crisp-client/session={ID}").as_bytes(),
        ]);
        assert_eq!(c.read(&h), CookieRead::Valid(id()));
    }

    #[test]
    fn two_different_values_are_a_conflict() {
        let c = codec(SessionConfig::new());
        let h = headers(&[
            format!("crisp-client%2Fsession={ID}; crisp-client%2Fsession={OTHER}").as_bytes(),
        ]);
        assert_eq!(c.read(&h), CookieRead::Unusable { conflicting: true });
    }

    #[test]
    fn flood_of_duplicates_is_unusable() {
        let c = codec(SessionConfig::new());
        let one = format!("crisp-client%2Fsession={ID}; ");
        assert_eq!(
            c.read(&headers(&[one.repeat(50).as_bytes()])),
            CookieRead::Unusable { conflicting: true }
        );
    }

    #[test]
    fn set_cookie_carries_every_spec_attribute() {
        let c = codec(SessionConfig::new().site_id("site1"));
        let v = c.set_cookie(&id(), Some("example.com"));
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with(&format!("crisp-client%2Fsession%2Fsite1={ID};")),
            "{v}"
        );
        for attr in [
            "Max-Age=15768000",
            "Path=/",
            "Domain=example.com",
            "SameSite=Lax",
            "Secure",
            "HttpOnly",
            "Expires=",
        ] {
            assert!(v.contains(attr), "{attr} missing in {v}");
        }
        assert!(!v.contains("Partitioned"));
    }

    #[test]
    fn expires_is_max_age_from_now() {
        let c = codec(SessionConfig::new().cookie_max_age(Duration::from_secs(86_400)));
        let v = c.set_cookie(&id(), None);
        let text = v.to_str().unwrap();
        let expires = text
            .split("; ")
            .find_map(|a| a.strip_prefix("Expires="))
            .unwrap();
        let parsed = ::cookie::Cookie::parse(format!("a=b; Expires={expires}")).unwrap();
        let at = parsed.expires_datetime().unwrap();
        let delta = at - time::OffsetDateTime::now_utc();
        assert!((delta.whole_seconds() - 86_400).abs() <= 2, "{delta}");
    }

    #[test]
    fn cross_origin_mode_is_samesite_none_secure_partitioned() {
        let c = codec(SessionConfig::new().cross_origin(true).partitioned(true));
        let v = c.set_cookie(&id(), None);
        let v = v.to_str().unwrap();
        assert!(v.contains("SameSite=None"), "{v}");
        assert!(v.contains("Secure"));
        assert!(v.contains("Partitioned"));
    }

    #[test]
    fn secure_and_http_only_can_be_turned_off() {
        let c = codec(SessionConfig::new().secure(false).http_only(false));
        let v = c.set_cookie(&id(), None);
        let v = v.to_str().unwrap();
        assert!(!v.contains("Secure"), "{v}");
        assert!(!v.contains("HttpOnly"), "{v}");
    }

    #[test]
    fn removal_has_empty_value_and_zero_max_age() {
        let c = codec(SessionConfig::new());
        let v = c.removal(Some("example.com"));
        let v = v.to_str().unwrap();
        assert!(v.starts_with("crisp-client%2Fsession=;"), "{v}");
        assert!(v.contains("Max-Age=0"));
        assert!(v.contains("Domain=example.com"));
    }

    #[test]
    fn auto_domain_shares_subdomains_of_a_registrable_domain() {
        assert_eq!(
            registrable_domain("a.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registrable_domain("b.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registrable_domain("A.Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registrable_domain("www.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
    }

    #[test]
    fn auto_domain_stops_at_a_public_suffix_like_github_io() {
        assert_eq!(
            registrable_domain("foo.github.io").as_deref(),
            Some("foo.github.io")
        );
        assert_eq!(
            registrable_domain("bar.foo.github.io").as_deref(),
            Some("foo.github.io")
        );
        assert_eq!(registrable_domain("github.io"), None);
        assert_eq!(registrable_domain("co.uk"), None);
    }

    #[test]
    fn auto_domain_is_none_for_ip_addresses_localhost_and_single_labels() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "[::1]:3000",
            "::1",
            "localhost",
            "localhost:3000",
            "app.localhost",
            "intranet",
            "",
            "bad host.com",
            "evil.com\r\nx",
            "1.2.3.4.5",
        ] {
            assert_eq!(registrable_domain(host), None, "{host:?}");
        }
    }

    #[test]
    fn auto_domain_respects_the_allow_list() {
        let c = codec(SessionConfig::new().domain_allow_list(["example.com"]));
        assert_eq!(
            c.domain_for(Some("a.example.com")).as_deref(),
            Some("example.com")
        );
        assert_eq!(c.domain_for(Some("evil.test")), None);
        assert_eq!(c.domain_for(Some("notexample.com")), None);
    }

    #[test]
    fn fixed_and_host_only_domains() {
        let fixed = codec(SessionConfig::new().domain(CookieDomain::Fixed(".Example.com".into())));
        assert_eq!(
            fixed.domain_for(Some("a.other.org")).as_deref(),
            Some("example.com")
        );
        let host = codec(SessionConfig::new().domain(CookieDomain::HostOnly));
        assert_eq!(host.domain_for(Some("a.example.com")), None);
    }
}
