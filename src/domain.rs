//! Domain names: the one check of what a DNS name is, shared by the
//! configured cookie `Domain` and the auto domain of a request host
//! (SPEC §2), the registrable domain of a host, and which names are public
//! suffixes (SPEC §5), all from the one public-suffix list.

use std::net::IpAddr;

/// Whether `name` is a plain DNS host name: dot-separated labels of 1 to 63
/// ASCII letters, digits and hyphens, 253 bytes at most in all (no trailing
/// dot, no port).
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `name`, a DNS name, is a public suffix: a name under which anyone
/// may register (`com`, `co.uk`, `github.io`), so that a cookie for it would
/// reach every site below it, and browsers refuse it. Case and a leading dot
/// do not matter. A single label is one too: the list's default rule (`*`)
/// makes every unlisted top-level name a suffix.
pub(crate) fn is_public_suffix(name: &str) -> bool {
    let name = name.trim_start_matches('.').to_ascii_lowercase();
    // A name with no registrable domain of its own is a suffix, by the same
    // reading of the list that `registrable_domain` makes.
    psl::domain_str(&name).is_none()
}

/// The registrable domain ("eTLD+1") of a request host, or `None` where a
/// `Domain` attribute must not be set: IP addresses, `localhost`, single-label
/// hosts, public suffixes themselves and anything that is not a plain DNS name.
pub(crate) fn registrable_domain(host: &str) -> Option<String> {
    let host = strip_port(host.trim())?;
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if !is_dns_name(&host)
        || !host.contains('.')
        || host == "localhost"
        || host.ends_with(".localhost")
    {
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

    #[test]
    fn registrable_domain_is_etld_plus_one_or_none() {
        assert_eq!(
            registrable_domain("a.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registrable_domain("foo.github.io:8443").as_deref(),
            Some("foo.github.io")
        );
        assert_eq!(registrable_domain("127.0.0.1:3000"), None);
        assert_eq!(registrable_domain("localhost"), None);
    }

    #[test]
    fn dns_names_are_labels_of_letters_digits_and_hyphens() {
        for good in [
            "example.com",
            "a-b.example.co.uk",
            "localhost",
            "xn--bcher-kva.example",
        ] {
            assert!(is_dns_name(good), "{good}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = vec!["abcdefghi"; 26].join(".");
        for bad in [
            "",
            "exa mple.com",
            "a..b",
            ".example.com",
            "example.com.",
            "a_b.com",
            "é.com",
            "host:80",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(!is_dns_name(&long_label));
        assert!(!is_dns_name(&long_name), "{} bytes", long_name.len());
    }

    #[test]
    fn public_suffixes_are_those_of_the_list_in_any_case() {
        // SPEC §5: `com`, `co.uk`, and private-section suffixes like `github.io`.
        for suffix in ["com", "co.uk", "github.io", "CO.UK", ".co.uk", "uk", "test"] {
            assert!(is_public_suffix(suffix), "{suffix}");
        }
        for domain in ["example.com", "example.co.uk", "me.github.io", "chat.test"] {
            assert!(!is_public_suffix(domain), "{domain}");
        }
    }

    #[test]
    fn the_domain_is_that_of_the_trimmed_lowercase_host() {
        // Found by the `cookie_domain` fuzz target: whitespace around the
        // host and upper case are not part of the name.
        assert_eq!(registrable_domain("k.A\t").as_deref(), Some("k.a"));
        assert_eq!(
            registrable_domain(" WWW.Chat.Test:80 ").as_deref(),
            Some("chat.test")
        );
    }
}
