//! `yara`: matches YARA rules (with yara-x) against each file.
//!
//! Rules come from files and directories (`.yar`, `.yara`, searched
//! recursively); each file is compiled in a namespace named after it, so a
//! broken file is reported under `rule_errors` while the others still load.
//! The rules are compiled again when any of their files changes (checked at
//! most every two seconds). Matched strings are listed with their offsets,
//! a bounded number per rule, their bytes escaped as text.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

pub use super::yara_config::YaraConfig;
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// What a rule file looked like when compiled.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

struct Compiled {
    rules: Arc<yara_x::Rules>,
    errors: Map<String, Value>,
    stamp: Stamp,
    checked: Instant,
}

pub struct Yara {
    config: YaraConfig,
    compiled: Mutex<Option<Arc<Compiled>>>,
}

impl std::fmt::Debug for Yara {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Yara")
            .field("config", &self.config)
            .finish()
    }
}

impl Yara {
    pub fn new(config: YaraConfig) -> Self {
        Self {
            config,
            compiled: Mutex::new(None),
        }
    }

    /// The current rules, compiled again if a file changed.
    fn rules(&self) -> Result<Arc<Compiled>, String> {
        let mut slot = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref()
            && c.checked.elapsed() < Duration::from_secs(2)
        {
            return Ok(Arc::clone(c));
        }
        let files = rule_files(&self.config.rules)?;
        let stamp = stamp_of(&files);
        if let Some(c) = slot.as_mut()
            && c.stamp == stamp
        {
            let fresh = Arc::new(Compiled {
                rules: Arc::clone(&c.rules),
                errors: c.errors.clone(),
                stamp,
                checked: Instant::now(),
            });
            *c = Arc::clone(&fresh);
            return Ok(fresh);
        }
        let compiled = Arc::new(compile(&files, stamp)?);
        *slot = Some(Arc::clone(&compiled));
        Ok(compiled)
    }
}

/// Every `.yar`/`.yara` file named or under a named directory, sorted.
fn rule_files(roots: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    if roots.is_empty() {
        return Err("no rules configured (set rules in [worker.modules.yara])".into());
    }
    let mut out = Vec::new();
    for root in roots {
        if root.is_file() {
            out.push(root.clone());
            continue;
        }
        if !root.is_dir() {
            return Err(format!("rules path {} does not exist", root.display()));
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("yar") || x.eq_ignore_ascii_case("yara")
                }) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err("no .yar or .yara files under the configured rules paths".into());
    }
    Ok(out)
}

fn stamp_of(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            (f.clone(), modified, meta.map_or(0, |m| m.len()))
        })
        .collect()
}

/// A namespace name from a file name: letters, digits and `_` only.
fn namespace_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let mut ns: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !ns.starts_with(|c: char| c.is_ascii_alphabetic()) {
        ns.insert(0, 'r');
    }
    ns
}

fn compile(files: &[PathBuf], stamp: Stamp) -> Result<Compiled, String> {
    let mut compiler = yara_x::Compiler::new();
    let mut errors = Map::new();
    let mut loaded = 0;
    for file in files {
        let key = file.display().to_string();
        let source = match std::fs::read(file) {
            Ok(s) => s,
            Err(e) => {
                errors.insert(key, json!(format!("cannot read: {e}")));
                continue;
            }
        };
        compiler.new_namespace(&namespace_of(file));
        let code = yara_x::SourceCode::from(source.as_slice()).with_origin(key.clone());
        match compiler.add_source(code) {
            Ok(_) => loaded += 1,
            Err(e) => {
                errors.insert(key, json!(e.to_string()));
            }
        }
    }
    if loaded == 0 {
        return Err(format!("no rule file compiled: {}", Value::Object(errors)));
    }
    Ok(Compiled {
        rules: Arc::new(compiler.build()),
        errors,
        stamp,
        checked: Instant::now(),
    })
}

/// Bytes as text: printable ASCII kept, the rest as `\xNN`.
fn escaped(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len());
    for &b in data {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn meta_value(v: yara_x::MetaValue<'_>) -> Value {
    match v {
        yara_x::MetaValue::Integer(i) => json!(i),
        yara_x::MetaValue::Float(f) => json!(f),
        yara_x::MetaValue::Bool(b) => json!(b),
        yara_x::MetaValue::String(s) => json!(s),
        yara_x::MetaValue::Bytes(b) => json!(escaped(b)),
    }
}

impl Module for Yara {
    fn name(&self) -> &'static str {
        "yara"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Signature"
    }

    fn config(&self) -> Value {
        // The rules' contents change results: they are part of the settings.
        let stamp = rule_files(&self.config.rules)
            .map(|f| {
                f.iter()
                    .map(|p| {
                        use sha2::Digest;
                        let body = std::fs::read(p).unwrap_or_default();
                        json!([
                            p.display().to_string(),
                            hex::encode(sha2::Sha256::digest(&body))
                        ])
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        json!({"settings": self.config, "rules": stamp})
    }

    fn check(&self) -> Result<(), String> {
        self.rules().map(|_| ())
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let compiled = self.rules();
        let config = self.config.clone();
        blocking(move || {
            let compiled = compiled.map_err(ModuleError::Failed)?;
            let mut scanner = yara_x::Scanner::new(&compiled.rules);
            scanner.set_timeout(Duration::from_secs(config.timeout_secs.max(1)));
            let results = scanner.scan_file(&*input.path).map_err(|e| match e {
                yara_x::errors::ScanError::Timeout => ModuleError::Failed(format!(
                    "the scan took longer than {} s",
                    config.timeout_secs
                )),
                other => ModuleError::Failed(other.to_string()),
            })?;
            let matches: Vec<Value> = results
                .matching_rules()
                .map(|rule| {
                    let meta: Map<String, Value> = rule
                        .metadata()
                        .map(|(k, v)| (k.to_owned(), meta_value(v)))
                        .collect();
                    let mut strings = Vec::new();
                    'patterns: for pattern in rule.patterns() {
                        for m in pattern.matches() {
                            if strings.len() >= config.max_strings_per_rule {
                                break 'patterns;
                            }
                            let data = m.data();
                            let shown = &data[..data.len().min(config.max_string_bytes)];
                            strings.push(json!({
                                "identifier": pattern.identifier(),
                                "offset": m.range().start,
                                "length": m.range().len(),
                                "data": escaped(shown),
                            }));
                        }
                    }
                    json!({
                        "rule": rule.identifier(),
                        "namespace": rule.namespace(),
                        "tags": rule.tags().map(|t| t.identifier()).collect::<Vec<_>>(),
                        "meta": meta,
                        "strings": strings,
                    })
                })
                .collect();
            let mut result = json!({"matches": matches});
            if !compiled.errors.is_empty() {
                result["rule_errors"] = Value::Object(compiled.errors.clone());
            }
            Ok(ModuleOutput::result(result))
        })
    }
}
