//! Session continuity tokens (SPEC §3.7): a site gives a logged-in user's
//! browsers one session, found through a keyed hash of a token the site
//! supplies.
//!
//! The raw token never leaves this module: the layer hashes it with
//! HMAC-SHA-256 (the `hmac` and `sha2` crates of RustCrypto, audited and
//! used across the ecosystem) under the site's secret and its site id, and
//! only that hash reaches the store.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use http::request::Parts;
use sha2::Sha256;

/// Shortest token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 256;
/// Shortest secret accepted, in bytes (SPEC §5): 32, the output size of
/// SHA-256; RFC 2104 §3 discourages HMAC keys shorter than that. Use random
/// bytes.
pub const MIN_SECRET_LEN: usize = 32;

type Extract = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Where the layer finds a request's continuity token, and the secret it
/// hashes tokens with (SPEC §3.7).
///
/// The extractor sees the request's parts: read a header the site's
/// front-end sets for logged-in users, or the site's own authentication.
/// A token is 16 to 256 visible ASCII characters; anything else is ignored
/// with a warning, as if the request carried none.
///
/// ```
/// use visitor_session::{ContinuityTokens, SessionConfig};
///
/// # let secret_from_your_vault = || "32 or more random bytes, kept by the site".as_bytes();
/// let tokens = ContinuityTokens::new(
///     secret_from_your_vault(),
///     |parts| {
///         parts
///             .headers
///             .get("x-visitor-token")
///             .and_then(|v| v.to_str().ok())
///             .map(str::to_owned)
///     },
/// );
/// let config = SessionConfig::new().continuity(tokens);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct ContinuityTokens {
    secret: Arc<[u8]>,
    extract: Arc<Extract>,
    /// Whether a token-bound session opens only with its token.
    token_required: bool,
}

impl fmt::Debug for ContinuityTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuityTokens")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("token_required", &self.token_required)
            .finish_non_exhaustive()
    }
}

impl ContinuityTokens {
    /// Tokens found by `extract`, hashed under `secret`: at least
    /// [`MIN_SECRET_LEN`] (32) random bytes, which
    /// [`SessionConfig::validate`](crate::SessionConfig::validate) checks.
    /// Keep the secret stable: changing it unbinds every token from its session.
    pub fn new<F>(secret: impl AsRef<[u8]>, extract: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self {
            secret: secret.as_ref().into(),
            extract: Arc::new(extract),
            token_required: true,
        }
    }

    /// **Weaker**: a session bound to a token also opens for a request that
    /// carries no token at all (a request with another token never opens
    /// it). By default (`true`) such a request gets a fresh session, so that
    /// after the site stops sending the token (logout, or the next person on
    /// a shared computer) the browser no longer shows the user's
    /// conversation. Pass `false` only if every visitor of the browser may
    /// see it, e.g. a site whose logout also calls
    /// [`Session::reset`](crate::Session::reset).
    pub fn require_token(mut self, required: bool) -> Self {
        self.token_required = required;
        self
    }

    pub(crate) fn token_required(&self) -> bool {
        self.token_required
    }

    /// Tokens read from the request header `name`.
    pub fn from_header(secret: impl AsRef<[u8]>, name: http::HeaderName) -> Self {
        Self::new(secret, move |parts| {
            parts
                .headers
                .get(&name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
    }

    pub(crate) fn secret_len(&self) -> usize {
        self.secret.len()
    }

    /// Whether the secret is one byte over and over (`aaaa...`): a
    /// placeholder someone forgot to replace, whatever its length.
    pub(crate) fn secret_repeats_one_byte(&self) -> bool {
        self.secret.windows(2).all(|pair| pair[0] == pair[1])
    }

    /// The keyed hash of the request's token for site `site`, if it carries
    /// a well-formed one.
    pub(crate) fn hash(&self, parts: &Parts, site: &str) -> Option<TokenHash> {
        let token = (self.extract)(parts)?;
        if !well_formed(&token) {
            // Never the token itself: it is a credential of the user.
            tracing::warn!(
                length = token.len(),
                "ignored a continuity token that is not 16 to 256 visible ASCII characters"
            );
            return None;
        }
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        // The site id first, so one token never reaches another site's session.
        mac.update(site.as_bytes());
        mac.update(&[0]);
        mac.update(token.as_bytes());
        Some(TokenHash(mac.finalize().into_bytes().into()))
    }
}

fn well_formed(token: &str) -> bool {
    (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The keyed hash of a continuity token: what the store keeps instead of
/// the token. Its `Debug` shows a prefix only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// A hash from its 32 bytes (for stores and tests).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from its 64 hexadecimal digits; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let nibble = |d: u8| char::from(d).to_digit(16).map(|n| n as u8);
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// Its 64 lowercase hexadecimal digits, as stores key it.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(DIGITS[usize::from(byte >> 4)] as char);
            out.push(DIGITS[usize::from(byte & 15)] as char);
        }
        out
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(token: &str) -> Parts {
        http::Request::builder()
            .header("x-visitor-token", token)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn tokens() -> ContinuityTokens {
        ContinuityTokens::from_header(
            "0123456789abcdef0123456789abcdef",
            http::HeaderName::from_static("x-visitor-token"),
        )
    }

    #[test]
    fn tokens_outside_16_to_256_visible_ascii_are_ignored() {
        let t = tokens();
        for bad in [
            "short",
            &"x".repeat(257),
            "sixteen chars with spaces",
            "tab\tinside-the-token",
        ] {
            assert_eq!(t.hash(&parts(bad), "site"), None, "{bad:?}");
        }
        assert!(t.hash(&parts(&"x".repeat(16)), "site").is_some());
        assert!(t.hash(&parts(&"x".repeat(256)), "site").is_some());
    }

    #[test]
    fn the_hash_depends_on_token_secret_and_site() {
        let t = tokens();
        let token = "user-42-abcdefghijkl";
        let here = t.hash(&parts(token), "site-a").unwrap();
        assert_eq!(t.hash(&parts(token), "site-a"), Some(here));
        assert_ne!(t.hash(&parts(token), "site-b"), Some(here));
        assert_ne!(t.hash(&parts("user-43-abcdefghijkl"), "site-a"), Some(here));
        let other = ContinuityTokens::from_header(
            "another secret, at least 32 bytes",
            http::HeaderName::from_static("x-visitor-token"),
        );
        assert_ne!(other.hash(&parts(token), "site-a"), Some(here));
    }

    #[test]
    fn hex_round_trips_and_refuses_other_text() {
        let hash = TokenHash::from_bytes([0xab; 32]);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        for bad in [
            "",
            "ab",
            &"zz".repeat(32),
            &"a".repeat(65),
            &"+a".repeat(32),
        ] {
            assert_eq!(TokenHash::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_the_hash_in_full() {
        let t = tokens();
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
        let hash = t.hash(&parts("user-42-abcdefghijkl"), "s").unwrap();
        let shown = format!("{hash:?}");
        assert!(!shown.contains(&hash.to_hex()));
        assert_eq!(hash.to_hex().len(), 64);
    }
}
