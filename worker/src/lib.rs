//! The worker: dials a scheduler, runs analysis modules on the files it is
//! assigned, and streams each module's result back as soon as it is ready.
//!
//! - [`client`]: the `WorkerHub.Connect` session and assignment handling.
//! - [`runner`]: runs one file's modules in dependency order with timeouts.
//! - [`registry`]: the list of built-in modules and their selection.
//! - [`module`]: the contract a module implements.
//! - [`modules`]: the built-in modules, one file each.

pub mod client;
pub mod config;
pub mod fuzz;
pub mod module;
pub mod modules;
pub mod registry;
pub mod runner;
#[cfg(test)]
mod testing;

use std::{future::Future, sync::Arc};

pub use config::WorkerConfig;
pub use registry::{ModulesConfig, Registry};

/// Runs a worker with the built-in modules named in its config.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = Registry::from_config(&config.modules)?;
    client::run_with(Arc::new(registry), config, shutdown).await
}
