//! Session identifiers: `session_<uuid v4>` from the OS CSPRNG (SPEC §2).

use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "session_";
/// `session_` plus a lowercase hyphenated UUID.
const LEN: usize = PREFIX.len() + 36;

/// Where the hyphens of a hyphenated UUID are.
const DASHES: [bool; 36] = {
    let mut dashes = [false; 36];
    dashes[8] = true;
    dashes[13] = true;
    dashes[18] = true;
    dashes[23] = true;
    dashes
};

/// A session identifier, exactly as it appears in the cookie value:
/// `session_` followed by a lowercase, hyphenated UUID v4.
///
/// Values of this type are always well-formed: the only ways to get one are
/// [`SessionId::generate`] and [`SessionId::parse`], which rejects anything
/// else. Store keys are built from it, never from unchecked input (SPEC §5).
///
/// `Display` and `Debug` print a shortened form (`session_1b4e28ba…`) so an id
/// never lands in a log in full; [`SessionId::as_str`] gives the whole value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; LEN]);

impl SessionId {
    /// A new random id (UUID v4, drawn from the operating system's CSPRNG).
    pub fn generate() -> Self {
        Self::from_uuid(uuid::Uuid::new_v4())
    }

    fn from_uuid(uuid: uuid::Uuid) -> Self {
        let mut buf = [0u8; LEN];
        buf[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        uuid.hyphenated().encode_lower(&mut buf[PREFIX.len()..]);
        Self(buf)
    }

    /// Parses a cookie value; `None` unless it is exactly
    /// `session_<lowercase hyphenated uuid v4>`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::parse_bytes(value.as_bytes())
    }

    /// [`parse`](Self::parse) on raw header bytes (no UTF-8 check needed:
    /// anything but the ASCII shape is refused).
    pub(crate) fn parse_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; LEN] = bytes.try_into().ok()?;
        let (prefix, uuid) = bytes.split_at(PREFIX.len());
        // Every position at once, without early exits, so the compiler can
        // check all 36 bytes in a few vector instructions: a hyphen where
        // the layout has one, a lowercase hex digit elsewhere.
        let layout_ok = uuid.iter().zip(DASHES).fold(true, |ok, (&b, dash)| {
            let hex = (b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6);
            ok & if dash { b == b'-' } else { hex }
        });
        let shape_ok = prefix == PREFIX.as_bytes()
            // the version nibble, and the RFC 4122 variant (8, 9, a or b)
            && uuid[14] == b'4'
            && matches!(uuid[19], b'8' | b'9' | b'a' | b'b');
        (shape_ok && layout_ok).then_some(Self(*bytes))
    }

    /// The full id as bytes (ASCII), without a UTF-8 check.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The full id, as sent in the cookie.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("SessionId holds only ASCII by construction")
    }

    /// The UUID part alone (no `session_` prefix), used to build store keys.
    pub fn uuid_str(&self) -> &str {
        &self.as_str()[PREFIX.len()..]
    }

    /// The UUID's 16 bytes: how a store that keys by bytes keeps the id.
    #[cfg(feature = "sqlite")]
    pub(crate) fn uuid_bytes(&self) -> [u8; 16] {
        uuid::Uuid::try_parse_ascii(&self.0[PREFIX.len()..])
            .expect("SessionId holds a hyphenated UUID by construction")
            .into_bytes()
    }

    /// The id of the UUID `bytes`, if they are a UUID v4 as every id is.
    #[cfg(feature = "sqlite")]
    pub(crate) fn from_uuid_bytes(bytes: [u8; 16]) -> Option<Self> {
        let id = Self::from_uuid(uuid::Uuid::from_bytes(bytes));
        // Holds the invariant of the type: only the shape `parse` accepts.
        Self::parse_bytes(&id.0)
    }

    /// A shortened form safe for logs: the prefix and the first 8 hex digits.
    pub fn redacted(&self) -> &str {
        &self.as_str()[..PREFIX.len() + 8]
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.redacted())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.redacted())
    }
}

/// The error of [`SessionId::from_str`]: the text is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id: expected `session_` followed by a lowercase hyphenated UUID v4")]
pub struct InvalidSessionId;

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidSessionId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_id_has_the_cookie_value_shape() {
        let id = SessionId::generate();
        assert!(id.as_str().starts_with("session_"));
        assert_eq!(id.as_str().len(), 44);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(SessionId::generate(), SessionId::generate());
    }

    #[test]
    fn parse_rejects_anything_but_the_exact_shape() {
        let good = "session_1b4e28ba-2fa1-41d2-883f-0016d3cca427";
        assert!(SessionId::parse(good).is_some());
        for bad in [
            "",
            "session_",
            "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
            "session_1B4E28BA-2FA1-41D2-883F-0016D3CCA427",
            "session_1b4e28ba2fa141d2883f0016d3cca427",
            "session_1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "session_1b4e28ba-2fa1-41d2-c83f-0016d3cca427",
            "session_1b4e28ba-2fa1-41d2-883f-0016d3cca427 ",
            "session_1b4e28ba-2fa1-41d2-883f-0016d3cca42g",
            "xession_1b4e28ba-2fa1-41d2-883f-0016d3cca427",
            "session_1b4e28ba-2fa1-41d2-883f-0016d3cca4é",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?} must be rejected");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn uuid_bytes_round_trip_and_only_a_uuid_v4_comes_back() {
        let id = SessionId::generate();
        assert_eq!(SessionId::from_uuid_bytes(id.uuid_bytes()), Some(id));
        // Version nibble 1, not 4.
        let mut v1 = id.uuid_bytes();
        v1[6] = (v1[6] & 0x0f) | 0x10;
        assert_eq!(SessionId::from_uuid_bytes(v1), None);
    }

    #[test]
    fn display_and_debug_never_show_the_full_id() {
        let id = SessionId::generate();
        let tail = &id.as_str()[20..];
        assert!(!format!("{id}").contains(tail));
        assert!(!format!("{id:?}").contains(tail));
    }
}
