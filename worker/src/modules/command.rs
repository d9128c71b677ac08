//! External tools as modules, by configuration alone: `command` modules
//! (`[worker.modules.commands.NAME]`, any program) and the built-in
//! `exiftool` (ExifTool's JSON output).
//!
//! The program is run directly, never through a shell, with `{file}` in its
//! arguments replaced by the path of the worker's private copy of the sample
//! (never a name that came with the sample). It is killed when its time is
//! up; its output is read up to a cap and parsed as JSON or kept as text.

use std::{process::Stdio, time::Duration};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Standard output parsed as JSON.
    Json,
    /// Standard output kept as text.
    #[default]
    Text,
}

/// One external tool (`[worker.modules.commands.NAME]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments; `{file}` stands for the sample.
    pub argv: Vec<String>,
    pub output: OutputKind,
    /// Longest run, in seconds (the module timeout applies too).
    pub timeout_secs: u64,
    /// Bytes of standard output read at most.
    pub max_output_bytes: usize,
    /// Shown as the module's version; change it when the tool changes, so
    /// that cached results are not reused.
    pub version: String,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            argv: Vec::new(),
            output: OutputKind::Text,
            timeout_secs: 120,
            max_output_bytes: 1 << 20,
            version: "1".into(),
        }
    }
}

/// ExifTool's settings (`[worker.modules.exiftool]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExiftoolConfig {
    /// The program (Debian: `libimage-exiftool-perl`).
    pub program: String,
    pub timeout_secs: u64,
}

impl Default for ExiftoolConfig {
    fn default() -> Self {
        Self {
            program: "exiftool".into(),
            timeout_secs: 60,
        }
    }
}

/// ExifTool tags that describe the worker's copy of the sample, not the
/// sample.
const EXIFTOOL_LOCAL: &[&str] = &[
    "SourceFile",
    "File:FileName",
    "File:Directory",
    "File:FileModifyDate",
    "File:FileAccessDate",
    "File:FileInodeChangeDate",
    "File:FilePermissions",
];

#[derive(Debug)]
pub struct Command {
    name: &'static str,
    module_type: &'static str,
    version: &'static str,
    config: CommandConfig,
    /// Why this command cannot be used, if it cannot (a name taken).
    refused: Option<String>,
    exiftool: bool,
}

impl Command {
    /// A configured command. Its name lives as long as the process (modules
    /// are made once, at start).
    pub fn configured(name: &str, config: CommandConfig, refused: Option<String>) -> Self {
        Self {
            name: Box::leak(name.to_owned().into_boxed_str()),
            module_type: "Command",
            version: Box::leak(config.version.clone().into_boxed_str()),
            config,
            refused,
            exiftool: false,
        }
    }

    pub fn exiftool(config: &ExiftoolConfig) -> Self {
        Self {
            name: "exiftool",
            module_type: "Metadata",
            version: "1.0.0",
            config: CommandConfig {
                argv: [config.program.as_str(), "-j", "-n", "-G", "-a", "{file}"]
                    .map(str::to_owned)
                    .to_vec(),
                output: OutputKind::Json,
                timeout_secs: config.timeout_secs,
                ..Default::default()
            },
            refused: None,
            exiftool: true,
        }
    }
}

/// Whether `program` can be started: a path to a file, or a name found on
/// `PATH`.
fn find_program(program: &str) -> Result<(), String> {
    if program.contains('/') {
        return std::path::Path::new(program)
            .is_file()
            .then_some(())
            .ok_or_else(|| format!("{program} not found"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .any(|dir| dir.join(program).is_file())
        .then_some(())
        .ok_or_else(|| format!("{program} not found on PATH"))
}

impl Module for Command {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> &'static str {
        self.version
    }

    fn module_type(&self) -> &'static str {
        self.module_type
    }

    fn config(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(why) = &self.refused {
            return Err(why.clone());
        }
        let program = self
            .config
            .argv
            .first()
            .ok_or("argv is empty: name a program")?;
        find_program(program)
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let checked = self.check();
        let config = self.config.clone();
        let exiftool = self.exiftool;
        Box::pin(async move {
            checked.map_err(ModuleError::Failed)?;
            let path = input.path.to_string_lossy().into_owned();
            let args: Vec<String> = config.argv[1..]
                .iter()
                .map(|a| a.replace("{file}", &path))
                .collect();
            let mut child = tokio::process::Command::new(&config.argv[0])
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    ModuleError::Failed(format!("cannot start {}: {e}", config.argv[0]))
                })?;
            let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
            let limit = config.max_output_bytes as u64;
            let run = async {
                let mut out = Vec::new();
                let mut err = Vec::new();
                let read_out = async {
                    if let Some(s) = stdout.as_mut() {
                        s.take(limit + 1).read_to_end(&mut out).await?;
                    }
                    Ok::<_, std::io::Error>(())
                };
                let read_err = async {
                    if let Some(s) = stderr.as_mut() {
                        s.take(64 * 1024).read_to_end(&mut err).await?;
                    }
                    Ok::<_, std::io::Error>(())
                };
                let (a, b) = tokio::join!(read_out, read_err);
                a?;
                b?;
                let status = child.wait().await?;
                Ok::<_, std::io::Error>((status, out, err))
            };
            let timeout = Duration::from_secs(config.timeout_secs.max(1));
            let (status, out, err) = tokio::time::timeout(timeout, run).await.map_err(|_| {
                ModuleError::Failed(format!(
                    "{} took longer than {} s and was stopped",
                    config.argv[0], config.timeout_secs
                ))
            })??;
            if out.len() as u64 > limit {
                return Err(ModuleError::Failed(format!(
                    "{} wrote more than {limit} bytes",
                    config.argv[0]
                )));
            }
            let stderr_tail = String::from_utf8_lossy(&err)
                .trim()
                .chars()
                .take(500)
                .collect::<String>();
            // ExifTool exits 1 for files it cannot read, with JSON saying so.
            let answered = exiftool && !out.is_empty();
            if !status.success() && !answered {
                return Err(ModuleError::Failed(format!(
                    "{} failed ({status}): {stderr_tail}",
                    config.argv[0]
                )));
            }
            let result = match config.output {
                OutputKind::Text => json!(String::from_utf8_lossy(&out)),
                OutputKind::Json => serde_json::from_slice::<Value>(&out).map_err(|e| {
                    ModuleError::Failed(format!("{} did not print JSON: {e}", config.argv[0]))
                })?,
            };
            if exiftool {
                let mut tags = match result {
                    Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
                    other => other,
                };
                if let Some(map) = tags.as_object_mut() {
                    for k in EXIFTOOL_LOCAL {
                        map.remove(*k);
                    }
                }
                return Ok(ModuleOutput::result(tags));
            }
            Ok(ModuleOutput::result(result))
        })
    }
}
