//! The mesh's contracts: generated gRPC code for package `multiscanner.v1`
//! ([`pb`]), the domain types the rest of the workspace works with
//! ([`domain`]), their conversions from wire messages ([`convert`]) and the
//! error codes shared by gRPC and HTTP ([`error`]).
//!
//! Generated code stays here: other crates convert wire messages into domain
//! types with `TryFrom` once, at the edge, so a malformed message is rejected
//! with the offending field named.

pub mod auth;
pub mod convert;
pub mod domain;
pub mod error;
pub mod trace;

/// Code generated from `proto/multiscanner/v1/*.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("multiscanner.v1");

    /// Encoded `FileDescriptorSet` of every service, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/multiscanner_descriptor.bin"));
}

pub use error::{ErrorCode, FieldError};
