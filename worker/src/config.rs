//! Worker settings (the `[worker]` section of the config file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::registry::ModulesConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Scheduler URLs (`http://HOST:PORT`); the worker uses one at a time
    /// and moves to the next when it cannot reach it.
    pub schedulers: Vec<String>,
    /// Files analysed at once; 0 means one per CPU core.
    pub concurrency: u32,
    /// Name shown to the scheduler; empty means `HOSTNAME-PID`.
    pub worker_id: String,
    /// Where samples are spilled while analysed; empty means the system's
    /// temporary directory.
    pub work_dir: PathBuf,
    /// On shutdown, how long to finish held work before handing the rest
    /// back.
    pub shutdown_grace_secs: u64,
    pub modules: ModulesConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            schedulers: vec!["http://127.0.0.1:7700".into()],
            concurrency: 0,
            worker_id: String::new(),
            work_dir: PathBuf::new(),
            shutdown_grace_secs: 30,
            modules: ModulesConfig::default(),
        }
    }
}

impl WorkerConfig {
    pub fn effective_concurrency(&self) -> u32 {
        match self.concurrency {
            0 => std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            n => n,
        }
    }

    pub fn effective_worker_id(&self) -> String {
        if self.worker_id.is_empty() {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        } else {
            self.worker_id.clone()
        }
    }
}
