//! Helpers shared by the integration tests. Each test crate uses a part of
//! them, so the rest would be reported as unused there.
#![allow(dead_code)]

pub mod http;
