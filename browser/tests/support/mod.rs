//! The main crate's test harness, shared (not copied): child processes that
//! die with the test binary, the demo, and Redis servers.
#![allow(dead_code)]

#[path = "../../../tests/support/demo.rs"]
pub(crate) mod demo;
#[path = "../../../tests/support/process.rs"]
pub(crate) mod process;
#[path = "../../../tests/support/redis_servers.rs"]
pub(crate) mod redis_servers;
#[path = "../../../tests/support/temp.rs"]
pub(crate) mod temp;
