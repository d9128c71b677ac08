//! `nsrl`: known-file lookup. The sample's MD5, SHA-1 and SHA-256 (from
//! `filemeta`) are looked up in local hash sets: NIST NSRL RDS 2.x
//! `NSRLFile.txt` files, the output of `md5sum` / `sha1sum` / `sha256sum`,
//! or plain lists of hashes, one per line. A match names the file the set
//! knows it as. The sets are read once, on first use, and again when one
//! of them changes.

use std::{
    collections::HashMap,
    io::BufRead,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Settings of the `nsrl` module (`[worker.modules.nsrl]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NsrlConfig {
    /// Hash set files.
    pub hash_files: Vec<PathBuf>,
}

/// What a set knows about one hash.
#[derive(Clone, Debug)]
struct Known {
    name: Option<String>,
    set: Arc<str>,
}

#[derive(Default)]
struct Sets {
    /// Lower-case hex digest → entries.
    by_hash: HashMap<Box<str>, Vec<Known>>,
    /// Modification times the sets were read at.
    read_at: Vec<Option<SystemTime>>,
}

pub struct Nsrl {
    config: NsrlConfig,
    /// The sets as last read, shared with scans on the blocking pool.
    sets: Arc<Mutex<Option<Arc<Sets>>>>,
}

impl std::fmt::Debug for Nsrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nsrl")
            .field("config", &self.config)
            .finish()
    }
}

impl Nsrl {
    pub fn new(config: NsrlConfig) -> Self {
        Self {
            config,
            sets: Arc::default(),
        }
    }
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The sets, read again if a file changed since they were read.
fn load(files: &[PathBuf], cache: &Mutex<Option<Arc<Sets>>>) -> Result<Arc<Sets>, ModuleError> {
    let mut slot = cache.lock().unwrap_or_else(|e| e.into_inner());
    let now = modified(files);
    if let Some(s) = slot.as_ref()
        && s.read_at == now
    {
        return Ok(Arc::clone(s));
    }
    let mut sets = Sets {
        read_at: now,
        ..Sets::default()
    };
    for path in files {
        read_set(path, &mut sets)?;
    }
    let sets = Arc::new(sets);
    *slot = Some(Arc::clone(&sets));
    Ok(sets)
}

fn is_hex_digest(s: &str) -> bool {
    matches!(s.len(), 32 | 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One line of a set: `(hash, name)` pairs it declares.
fn parse_line(line: &str) -> Vec<(String, Option<String>)> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with('"') {
        // NSRL RDS 2.x: "SHA-1","MD5","CRC32","FileName","FileSize",...
        let fields = csv_fields(line);
        let name = fields.get(3).cloned();
        return fields
            .iter()
            .take(2)
            .filter(|f| is_hex_digest(f))
            .map(|f| (f.to_ascii_lowercase(), name.clone()))
            .collect();
    }
    let mut parts = line.splitn(2, char::is_whitespace);
    let hash = parts.next().unwrap_or("");
    if !is_hex_digest(hash) {
        return Vec::new();
    }
    // `sha256sum` writes `HASH  NAME` (or `HASH *NAME` in binary mode).
    let name = parts
        .next()
        .map(|n| n.trim_start().trim_start_matches('*'))
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    vec![(hash.to_ascii_lowercase(), name)]
}

/// Comma-separated fields, some in double quotes (`""` inside quotes is
/// one quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn read_set(path: &std::path::Path, sets: &mut Sets) -> Result<(), ModuleError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ModuleError::Failed(format!("hash set {}: {e}", path.display())))?;
    let set: Arc<str> = path
        .file_name()
        .map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
        .into();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        for (hash, name) in parse_line(&String::from_utf8_lossy(&line)) {
            sets.by_hash.entry(hash.into()).or_default().push(Known {
                name,
                set: Arc::clone(&set),
            });
        }
    }
    Ok(())
}

impl Module for Nsrl {
    fn name(&self) -> &'static str {
        "nsrl"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Database"
    }

    fn requires(&self) -> &'static [&'static str] {
        &["filemeta"]
    }

    /// The sets' names and modification times: a changed set is a changed
    /// configuration, so cached results are not reused against it.
    fn config(&self) -> Value {
        let stamps: Vec<Value> = self
            .config
            .hash_files
            .iter()
            .zip(modified(&self.config.hash_files))
            .map(|(p, t)| {
                let secs = t
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                json!({"path": p, "modified": secs})
            })
            .collect();
        json!({ "hash_files": stamps })
    }

    fn check(&self) -> Result<(), String> {
        if self.config.hash_files.is_empty() {
            return Err("no hash sets: name files under [worker.modules.nsrl] hash_files".into());
        }
        for p in &self.config.hash_files {
            if !p.is_file() {
                return Err(format!("hash set {} does not exist", p.display()));
            }
        }
        Ok(())
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let checked = self.check();
        let files = self.config.hash_files.clone();
        let cache = Arc::clone(&self.sets);
        blocking(move || {
            checked.map_err(ModuleError::Failed)?;
            let sets = load(&files, &cache)?;
            let meta = input
                .upstream
                .get("filemeta")
                .ok_or_else(|| ModuleError::Failed("needs the filemeta module's hashes".into()))?;
            let mut matches = Vec::new();
            for kind in ["md5", "sha1", "sha256"] {
                let Some(digest) = meta[kind].as_str() else {
                    continue;
                };
                for k in sets.by_hash.get(digest).into_iter().flatten() {
                    matches.push(json!({"hash": kind, "name": k.name, "set": &*k.set}));
                }
            }
            Ok(ModuleOutput::result(json!({
                "known": !matches.is_empty(),
                "matches": matches,
            })))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_each_format() {
        let nsrl = r#""000000206738748EDD92C4E3D2E823896700F849","392126E756571EBF112CB1C1CDEDF926","EBD105A0","I05002T2.PFB",98865,3095,"WIN","""#;
        let got = parse_line(nsrl);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "000000206738748edd92c4e3d2e823896700f849");
        assert_eq!(got[1].0, "392126e756571ebf112cb1c1cdedf926");
        assert_eq!(got[0].1.as_deref(), Some("I05002T2.PFB"));
        let sum = parse_line("d41d8cd98f00b204e9800998ecf8427e *empty file.txt");
        assert_eq!(sum[0].1.as_deref(), Some("empty file.txt"));
        assert_eq!(parse_line("D41D8CD98F00B204E9800998ECF8427E")[0].1, None);
        assert!(parse_line("not a hash at all").is_empty());
        assert!(parse_line("\"SHA-1\",\"MD5\",\"CRC32\",\"FileName\"").is_empty());
    }
}
