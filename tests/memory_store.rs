//! The store conformance suite on the embedded `MemoryStore`, on tokio's
//! paused clock (SPEC §3, §4).

mod support;

store_conformance!(
    #[tokio::test(start_paused = true)]
    support::conformance::Memory
);
