//! The store conformance suite on the embedded `MemoryStore`, on tokio's
//! paused clock (SPEC §3, §4).

visitor_session::store_conformance!(
    #[tokio::test(start_paused = true)]
    visitor_session::conformance::Memory
);
