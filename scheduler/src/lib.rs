//! The scheduler: owns the task lifecycle.
//!
//! - [`server`]: binding and serving the gRPC API ([`run`]).
//! - [`grpc`]: thin handlers for the public `Tasks`/`Reports` services and
//!   the internal `WorkerHub`.
//! - [`core`]: submissions, dispatch, results, completion — no transport.
//! - [`dispatch`]: connected workers and their free slots.
//! - [`store`]: task, report and sample storage behind traits.
//! - [`report`]: merging module results into a report.
//! - [`catalog`]: search, tags, notes and report import — no transport.
//! - [`events`]: task events for `WatchTask`.

mod cache;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod core;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod grpc;
pub mod report;
pub mod server;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod test_services;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod upload;

#[cfg(test)]
mod lease_test;
#[cfg(test)]
mod replicas_test;

pub use config::SchedulerConfig;
pub use server::{BoundScheduler, run};
