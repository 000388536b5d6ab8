//! The session cookie: reading it from `Cookie` headers and writing
//! `Set-Cookie` (SPEC §2, §5).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

use crate::config::{CookieDomain, SessionConfig};
use crate::domain::registrable_domain;
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
    /// The fixed `Domain`, when [`CookieDomain::Fixed`].
    fixed_domain: Option<Arc<str>>,
    allow_list: Vec<String>,
    /// `; HttpOnly; SameSite=...; Secure; Path=/` as configured: the
    /// attributes every `Set-Cookie` carries before `Domain`.
    attributes: String,
}

impl CookieCodec {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        let plain_name = config.cookie_name();
        // The cookie crate's encoding of the name (`/` is `%2F`).
        let encoded_name = Cookie::new(plain_name.as_str(), "")
            .encoded()
            .to_string()
            .trim_end_matches('=')
            .to_owned();
        let encoded_lower = plain_name.replace('/', "%2f");
        let same_site = if config.cross_origin {
            SameSite::None
        } else {
            SameSite::Lax
        };
        let partitioned = config.cross_origin && config.partitioned;
        // The attributes in the order the cookie crate writes them.
        let mut attributes = String::new();
        if config.http_only {
            attributes.push_str("; HttpOnly");
        }
        attributes.push_str(&format!("; SameSite={same_site}"));
        if partitioned {
            attributes.push_str("; Partitioned");
        }
        if config.secure || config.cross_origin {
            attributes.push_str("; Secure");
        }
        attributes.push_str("; Path=/");
        let domain = match &config.domain {
            CookieDomain::Fixed(d) => {
                CookieDomain::Fixed(d.trim_start_matches('.').to_ascii_lowercase())
            }
            other => other.clone(),
        };
        Self {
            fixed_domain: match &domain {
                CookieDomain::Fixed(d) => Some(d.as_str().into()),
                _ => None,
            },
            plain_name,
            encoded_name,
            encoded_lower,
            max_age: config.cookie_max_age,
            domain,
            allow_list: config.domain_allow_list.clone(),
            attributes,
        }
    }

    /// Finds the session cookie in every `Cookie` header of the request. Both the
    /// percent-encoded name and the plain name are accepted.
    pub(crate) fn read(&self, headers: &HeaderMap) -> CookieRead {
        let mut found: Option<Result<SessionId, ()>> = None;
        let mut occurrences = 0;
        let mut conflicting = false;
        for value in headers.get_all(header::COOKIE) {
            let mut rest = value.as_bytes();
            while !rest.is_empty() {
                let pair = match memchr::memchr(b';', rest) {
                    Some(end) => {
                        let pair = &rest[..end];
                        rest = &rest[end + 1..];
                        pair
                    }
                    None => std::mem::take(&mut rest),
                };
                let Some(eq) = memchr::memchr(b'=', pair) else {
                    continue;
                };
                if !self.is_our_name(pair[..eq].trim_ascii()) {
                    continue;
                }
                occurrences += 1;
                if occurrences > MAX_OCCURRENCES {
                    return CookieRead::Unusable { conflicting: true };
                }
                let value = pair[eq + 1..].trim_ascii();
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                let parsed = SessionId::parse_bytes(value).ok_or(());
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
        // The encoded name first: it is the one the layer sets.
        name == self.encoded_name.as_bytes()
            || name == self.plain_name.as_bytes()
            || name == self.encoded_lower.as_bytes()
    }

    /// The `Domain` attribute for a response to a request for `host`
    /// (a `Host` header value or URI authority, port allowed).
    pub(crate) fn domain_for(&self, host: Option<&[u8]>) -> Option<Arc<str>> {
        match &self.domain {
            CookieDomain::HostOnly => None,
            CookieDomain::Fixed(_) => self.fixed_domain.clone(),
            CookieDomain::Auto => {
                let host = host?;
                // Requests of one site name few hosts: the last answer of
                // this thread is reused (a public-suffix lookup saved).
                let key = (self as *const Self as usize, host);
                if let Some(domain) = LAST_DOMAIN.with_borrow(|last| {
                    last.as_ref()
                        .filter(|(codec, h, _)| (*codec, &h[..]) == key)
                        .map(|(_, _, d)| d.clone())
                }) {
                    return domain;
                }
                let domain = std::str::from_utf8(host)
                    .ok()
                    .and_then(registrable_domain)
                    .filter(|domain| self.allowed(domain))
                    .map(Arc::from);
                LAST_DOMAIN.set(Some((key.0, host.into(), domain.clone())));
                domain
            }
        }
    }

    fn allowed(&self, domain: &str) -> bool {
        self.allow_list.is_empty()
            || self.allow_list.iter().any(|allowed| {
                domain == *allowed
                    || domain
                        .strip_suffix(allowed.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
    }

    /// `Set-Cookie` binding the browser to `id` for a full `Max-Age` from
    /// `now_ms` (ms since the Unix epoch).
    pub(crate) fn set_cookie(
        &self,
        id: &SessionId,
        domain: Option<&str>,
        now_ms: u64,
    ) -> HeaderValue {
        let max_age = self.max_age.as_secs();
        self.build(
            id.as_bytes(),
            max_age,
            &http_date(now_ms / 1000 + max_age),
            domain,
        )
    }

    /// `Set-Cookie` removing the session cookie (empty value, `Max-Age=0`).
    pub(crate) fn removal(&self, domain: Option<&str>) -> HeaderValue {
        self.build(b"", 0, b"Thu, 01 Jan 1970 00:00:00 GMT", domain)
    }

    fn build(
        &self,
        value: &[u8],
        max_age: u64,
        expires: &[u8],
        domain: Option<&str>,
    ) -> HeaderValue {
        let mut digits = itoa::Buffer::new();
        let max_age = digits.format(max_age);
        // Exactly the length: a full `Vec` becomes the header's `Bytes`
        // without another allocation.
        let mut text = Vec::with_capacity(
            self.encoded_name.len()
                + 1
                + value.len()
                + self.attributes.len()
                + domain.map_or(0, |d| d.len() + "; Domain=".len())
                + "; Max-Age=".len()
                + max_age.len()
                + "; Expires=".len()
                + expires.len(),
        );
        text.extend_from_slice(self.encoded_name.as_bytes());
        text.push(b'=');
        text.extend_from_slice(value);
        text.extend_from_slice(self.attributes.as_bytes());
        if let Some(domain) = domain {
            text.extend_from_slice(b"; Domain=");
            text.extend_from_slice(domain.as_bytes());
        }
        text.extend_from_slice(b"; Max-Age=");
        text.extend_from_slice(max_age.as_bytes());
        text.extend_from_slice(b"; Expires=");
        text.extend_from_slice(expires);
        HeaderValue::try_from(text).expect(
            "Set-Cookie holds only an encoded name, a session id, a validated domain and fixed attributes",
        )
    }
}

/// A `Domain` computed for a host by one codec: (codec, host, domain).
type DomainOfHost = (usize, Box<[u8]>, Option<Arc<str>>);

thread_local! {
    /// The last `Domain` computed on this thread.
    static LAST_DOMAIN: RefCell<Option<DomainOfHost>> = const { RefCell::new(None) };
    /// The last `Expires` date formatted on this thread: (unix second, date).
    static LAST_DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// The HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) of a Unix second,
/// formatted once per second and thread.
fn http_date(unix_secs: u64) -> [u8; 29] {
    let (cached_secs, cached) = LAST_DATE.get();
    if cached_secs == unix_secs {
        return cached;
    }
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix_secs));
    // Dates of years 1970 to 9999 take exactly 29 bytes; a cookie's expiry
    // is at most 400 days ahead of a sane clock.
    let text = if text.len() == 29 {
        text.as_bytes()
    } else {
        b"Fri, 31 Dec 9999 23:59:59 GMT"
    };
    let mut date = [0u8; 29];
    date.copy_from_slice(text);
    LAST_DATE.set((unix_secs, date));
    date
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

    /// The `Set-Cookie` the cookie crate writes for the same settings.
    fn reference(
        config: &SessionConfig,
        value: &str,
        expires_secs: u64,
        domain: Option<&str>,
    ) -> String {
        let expires = time::OffsetDateTime::from_unix_timestamp(expires_secs as i64).unwrap();
        let mut cookie = Cookie::build((config.cookie_name(), value))
            .path("/")
            .max_age(time::Duration::seconds(
                config.cookie_max_age.as_secs() as i64
            ))
            .expires(expires)
            .same_site(if config.cross_origin {
                SameSite::None
            } else {
                SameSite::Lax
            })
            .secure(config.secure || config.cross_origin)
            .http_only(config.http_only)
            .partitioned(config.cross_origin && config.partitioned);
        if let Some(domain) = domain {
            cookie = cookie.domain(domain.to_owned());
        }
        cookie.build().encoded().to_string()
    }

    #[test]
    fn set_cookie_is_byte_for_byte_what_the_cookie_crate_writes() {
        let configs = [
            SessionConfig::new(),
            SessionConfig::new().site_id("8c842203-7ed8-4e29-a608-7cf78a7d2fcc"),
            SessionConfig::new().secure(false).http_only(false),
            SessionConfig::new().cross_origin(true).partitioned(true),
            SessionConfig::new().cookie_max_age(Duration::from_secs(60)),
        ];
        for config in configs {
            let c = codec(config.clone());
            for domain in [None, Some("example.com")] {
                let secs = 1_795_391_699;
                let ours = c.build(
                    ID.as_bytes(),
                    config.cookie_max_age.as_secs(),
                    &http_date(secs),
                    domain,
                );
                assert_eq!(
                    ours.to_str().unwrap(),
                    reference(&config, ID, secs, domain),
                    "{config:?} {domain:?}"
                );
            }
        }
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
        let v = c.set_cookie(&id(), Some("example.com"), crate::store::Access::now_ms());
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
        let v = c.set_cookie(&id(), None, crate::store::Access::now_ms());
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
        let v = c.set_cookie(&id(), None, crate::store::Access::now_ms());
        let v = v.to_str().unwrap();
        assert!(v.contains("SameSite=None"), "{v}");
        assert!(v.contains("Secure"));
        assert!(v.contains("Partitioned"));
    }

    #[test]
    fn secure_and_http_only_can_be_turned_off() {
        let c = codec(SessionConfig::new().secure(false).http_only(false));
        let v = c.set_cookie(&id(), None, crate::store::Access::now_ms());
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
            c.domain_for(Some(b"a.example.com")).as_deref(),
            Some("example.com")
        );
        assert_eq!(c.domain_for(Some(b"evil.test")), None);
        assert_eq!(c.domain_for(Some(b"notexample.com")), None);
    }

    #[test]
    fn fixed_and_host_only_domains() {
        let fixed = codec(SessionConfig::new().domain(CookieDomain::Fixed(".Example.com".into())));
        assert_eq!(
            fixed.domain_for(Some(b"a.other.org")).as_deref(),
            Some("example.com")
        );
        let host = codec(SessionConfig::new().domain(CookieDomain::HostOnly));
        assert_eq!(host.domain_for(Some(b"a.example.com")), None);
    }
}
