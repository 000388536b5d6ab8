//! Browser tests only: see `tests/browser.rs`.
