//! A session's data as one blob in its row: each key with its JSON text,
//! both as their length (LEB128) and bytes. One row per session, as one
//! hash per session in Redis: a returning visitor is one row read and
//! rewritten, a new visitor one row written.

use super::super::SessionData;

/// The blob of `data`; `None` for no data (the column is then NULL).
pub(super) fn encode(data: &SessionData) -> Option<Vec<u8>> {
    if data.is_empty() {
        return None;
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in data.iter() {
        put(&mut out, key.as_bytes());
        put(&mut out, value.as_bytes());
    }
    Some(out)
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

/// The data in `blob`; `None` when it is not one this module wrote (cut,
/// an overlong length, not UTF-8).
pub(super) fn decode(mut blob: &[u8]) -> Option<SessionData> {
    let mut entries = Vec::new();
    while !blob.is_empty() {
        let key = take(&mut blob)?;
        let value = take(&mut blob)?;
        entries.push((key, value));
    }
    Some(entries.into_iter().collect())
}

fn take(blob: &mut &[u8]) -> Option<String> {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let (&byte, rest) = blob.split_first()?;
        *blob = rest;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    if len > blob.len() {
        return None;
    }
    let (text, rest) = blob.split_at(len);
    *blob = rest;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> SessionData {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn data_round_trips_every_byte_of_every_key() {
        let long = "x".repeat(70_000);
        let original = data(&[
            ("note", "\"hello\""),
            ("nul\0byte", "1"),
            ("é", "\"é\""),
            ("", "null"),
            ("big", &long),
        ]);
        let blob = encode(&original).unwrap();
        assert_eq!(decode(&blob), Some(original));
        assert_eq!(encode(&SessionData::new()), None);
        assert_eq!(decode(&[]), Some(SessionData::new()));
    }

    #[test]
    fn a_blob_this_module_did_not_write_is_refused() {
        let blob = encode(&data(&[("key", "\"value\"")])).unwrap();
        for bad in [
            &blob[..blob.len() - 1],
            &[0x05, b'a'][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
            &[0x01, 0xff, 0x00][..],
            &[0x01, b'k'][..],
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
