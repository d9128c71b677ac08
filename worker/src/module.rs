//! The contract every analysis module follows.
//!
//! A module receives a [`ScanInput`] (the sample spilled to a local file, its
//! facts, and the results of the modules it requires) and returns a JSON
//! result. Modules that compute run their work on the blocking pool (see
//! [`blocking`]); modules that talk to services stay async. Either way the
//! runner bounds each call with a timeout and drops it when the time is up.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use futures::future::BoxFuture;
use multiscanner_proto::domain::Sha256;
use serde_json::Value;

/// What a module is given to analyse. Everything in it that came from the
/// sample (the file name above all) is hostile: shown, never executed, never
/// used as a path.
#[derive(Clone, Debug)]
pub struct ScanInput {
    /// A private local copy of the sample.
    pub path: Arc<PathBuf>,
    /// The name it was submitted under.
    pub filename: String,
    pub sha256: Sha256,
    pub size: u64,
    /// Depth in the task's tree: 0 for the submitted file.
    pub depth: u32,
    /// Results of the modules named in [`Module::requires`] that succeeded.
    pub upstream: Arc<BTreeMap<String, Value>>,
    pub archive_password: Option<String>,
}

/// A file a module found inside the one it analysed.
#[derive(Debug)]
pub struct ExtractedFile {
    pub filename: String,
    /// A temporary file holding the bytes; removed when dropped.
    pub file: tempfile::NamedTempFile,
}

/// What a module returns.
#[derive(Debug, Default)]
pub struct ModuleOutput {
    /// `None` when the module has nothing to say about this file (wrong type).
    pub result: Option<Value>,
    pub children: Vec<ExtractedFile>,
}

impl ModuleOutput {
    pub fn result(value: Value) -> Self {
        Self {
            result: Some(value),
            children: Vec::new(),
        }
    }
}

/// Why a module produced no result.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot read the sample: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// One analysis module. Implementations are registered in
/// [`crate::registry`].
pub trait Module: Send + Sync + 'static {
    /// The key of its result in the report.
    fn name(&self) -> &'static str;
    /// Changes whenever its output for the same input may change.
    fn version(&self) -> &'static str;
    /// MultiScanner's category: `Metadata`, `Signature`, `Antivirus`, ...
    fn module_type(&self) -> &'static str;
    /// Modules whose results this one reads from [`ScanInput::upstream`].
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }
    /// The settings its output depends on, as JSON. A stored result is
    /// reused only for the same name, version and settings.
    fn config(&self) -> Value {
        Value::Null
    }
    /// Whether the module can run on this machine, and if not, why.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>>;
}

/// Runs CPU-bound or blocking module work on tokio's blocking pool.
pub fn blocking<F>(f: F) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>>
where
    F: FnOnce() -> Result<ModuleOutput, ModuleError> + Send + 'static,
{
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ModuleError::Failed(format!("module panicked: {e}")))?
    })
}
