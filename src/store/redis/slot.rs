//! Session ids in a given Redis Cluster slot, so that renaming a session
//! (`cycle`) stays one script on one node.
//!
//! A key's slot is the CRC16 (XMODEM) of its hash tag, modulo 16 384. That
//! CRC has no initial value and no final XOR, so it is linear over GF(2):
//! for a tag `P || S` (same lengths), `crc(P || S) = crc(P || 0…0) ^ crc(S)`.
//! A new id is drawn at random, then its last five hex digits are replaced
//! by five whose CRC makes up the difference to the wanted slot, found in a
//! table built once. The id keeps 102 random bits; drawing ids until one
//! falls in the slot would take tens of thousands of tries (milliseconds of
//! CPU per rotation, a lever for a flood of logins).

use std::sync::LazyLock;

use crate::id::SessionId;

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16_384;
/// The hex digits at the end of the UUID that are chosen for the slot.
const TAIL: usize = 5;

fn crc16(bytes: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(bytes)
}

/// The slot of a session's keys (their hash tag is the id's UUID).
pub(super) fn slot_of(id: &SessionId) -> u16 {
    crc16(id.uuid_str().as_bytes()) % SLOTS
}

/// For each slot remainder, `TAIL` lowercase hex digits whose CRC16 has it.
static TAILS: LazyLock<Vec<[u8; TAIL]>> = LazyLock::new(|| {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tails = vec![None; usize::from(SLOTS)];
    let mut missing = usize::from(SLOTS);
    for n in 0u32..1 << (4 * TAIL) {
        let tail: [u8; TAIL] = std::array::from_fn(|i| HEX[(n >> (4 * i)) as usize & 15]);
        let slot = usize::from(crc16(&tail) % SLOTS);
        if tails[slot].is_none() {
            tails[slot] = Some(tail);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    tails
        .into_iter()
        .map(|t| t.expect("five hex digits reach every CRC16 remainder"))
        .collect()
});

/// A fresh random id whose keys live in `slot`.
pub(super) fn id_in_slot(slot: u16) -> SessionId {
    let drawn = SessionId::generate();
    let mut uuid: [u8; 36] = drawn
        .uuid_str()
        .as_bytes()
        .try_into()
        .expect("a UUID is 36 characters");
    let tail = 36 - TAIL;
    uuid[tail..].fill(0);
    let rest = crc16(&uuid) % SLOTS;
    uuid[tail..].copy_from_slice(&TAILS[usize::from(rest ^ slot)]);
    let uuid = std::str::from_utf8(&uuid).expect("hex digits and hyphens");
    SessionId::parse(&format!("session_{uuid}")).expect("the UUID keeps its v4 shape")
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn ids_land_in_the_asked_slot_as_redis_computes_it() {
        for _ in 0..200 {
            let old = SessionId::generate();
            let new = id_in_slot(slot_of(&old));
            assert_ne!(new, old);
            assert_eq!(Slot::for_key(new.uuid_str()), Slot::for_key(old.uuid_str()));
            assert_eq!(
                Slot::new(slot_of(&new)),
                Some(Slot::for_key(new.uuid_str()))
            );
        }
    }

    #[test]
    fn every_slot_is_reachable_and_ids_stay_random() {
        assert_eq!(TAILS.len(), usize::from(SLOTS));
        let a = id_in_slot(7);
        let b = id_in_slot(7);
        assert_ne!(a, b, "each id starts from fresh random bits");
        assert_ne!(a.uuid_str()[..31], b.uuid_str()[..31]);
    }
}
