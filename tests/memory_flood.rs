//! SPEC §4, §5: `MemoryStore` holds at most its capacity; past it, new
//! visitors are served without a session and nothing is evicted. A flood of
//! cookieless requests keeps the process's resident memory under the bound
//! README states ("What a visitor can make the server keep"). Its own test
//! binary: resident memory is a property of the whole process.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::*;
use visitor_session::MemoryStore;

/// README's bound on what one temporary session without data costs the
/// memory store, index included.
const BYTES_PER_EMPTY_SESSION: u64 = 1024;

/// The process's resident memory in bytes (`/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_flood_of_new_visitors_stays_within_the_capacity_and_its_memory_bound() {
    let capacity = 10_000;
    let store = MemoryStore::with_capacity(capacity);
    let svc = service(store.clone(), config(), act);
    // A visitor with a conversation, before the flood.
    let kept = bound_id(&send(&svc, at("/promote", None)).await).unwrap();
    let before = resident_bytes();
    let flood = 5 * capacity;
    let mut served_without = 0;
    for i in 0..flood {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32);
        let res = send(&svc, from_ip(ip.into())).await;
        assert_eq!(res.status(), StatusCode::OK);
        served_without += usize::from(bound_id(&res).is_none());
    }
    let grown = resident_bytes().saturating_sub(before);
    assert_eq!(store.len(), capacity, "the store holds its capacity");
    assert_eq!(
        served_without,
        flood - capacity + 1,
        "the rest had no session"
    );
    let bound = capacity as u64 * BYTES_PER_EMPTY_SESSION;
    eprintln!(
        "memory store: {} bytes of resident memory per stored session",
        grown / capacity as u64
    );
    assert!(
        grown < bound,
        "{flood} new visitors grew the process by {grown} bytes, over {bound} \
         ({} bytes per stored session)",
        grown / capacity as u64
    );
    // The permanent session was never evicted.
    let res = send(&svc, at("/", Some(&kept))).await;
    assert_eq!(bound_id(&res), Some(kept));
    assert_eq!(seen(&res)["state"], "permanent");
    // A write that cannot be kept is not dropped silently.
    let res = send(&svc, at("/write", None)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Once the temporary sessions expire, new visitors get sessions again.
    tokio::time::advance(Duration::from_secs(30 * 60 + 1)).await;
    let res = send(&svc, at("/", None)).await;
    assert!(bound_id(&res).is_some(), "room again after the idle TTL");
}
