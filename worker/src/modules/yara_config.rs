//! Settings of the `yara` module, known even to builds without it (so that
//! one configuration file serves every build).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the `yara` module (`[worker.modules.yara]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct YaraConfig {
    /// Rule files and directories of rule files.
    pub rules: Vec<PathBuf>,
    /// Longest scan of one file, in seconds.
    pub timeout_secs: u64,
    /// Matched strings listed per rule.
    pub max_strings_per_rule: usize,
    /// Bytes shown of each matched string.
    pub max_string_bytes: usize,
}

impl Default for YaraConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            timeout_secs: 60,
            max_strings_per_rule: 20,
            max_string_bytes: 64,
        }
    }
}
