//! The session-id parser (SPEC §5): any text is an id or `None`, never a
//! panic; an id it accepts prints back to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visitor_session::SessionId;

fuzz_target!(|text: &str| {
    if let Some(id) = SessionId::parse(text) {
        assert_eq!(id.as_str(), text);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
    }
});
