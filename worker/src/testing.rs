//! Helpers for the crate's unit tests.

use futures::future::BoxFuture;

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

/// A module that does nothing: a name and the modules it requires.
pub struct Fake(pub &'static str, pub &'static [&'static str]);

impl Module for Fake {
    fn name(&self) -> &'static str {
        self.0
    }
    fn version(&self) -> &'static str {
        "1"
    }
    fn module_type(&self) -> &'static str {
        "Test"
    }
    fn requires(&self) -> &'static [&'static str] {
        self.1
    }
    fn scan(&self, _: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        Box::pin(async { Ok(ModuleOutput::default()) })
    }
}
