//! `archive`: unpacks zip (with passwords), 7z, tar, gzip, bzip2 and xz.
//! Every member becomes an extracted file, which the scheduler adds to the
//! task's tree as a child node and analyses with the same modules; a tar
//! inside a gzip is two levels (the `.tar`, then its members).
//!
//! The format is read from the file's first bytes, never from its name.
//! Member names are kept as text only: nothing is ever written under them.
//! Extraction stops at the first limit reached — depth, member count, bytes
//! of one member, bytes in all, or expansion ratio (bytes out per byte of
//! archive) — and the report says which one.

use std::{
    fs::File,
    io::{self, Read, Seek, Write},
    path::Path,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::module::{ExtractedFile, Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Settings of the `archive` module (`[worker.modules.archive]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Passwords tried on encrypted zip and 7z archives, after the one given
    /// with the submission.
    pub passwords: Vec<String>,
    /// Deepest level extracted files may have (the submitted file is 0).
    pub max_depth: u32,
    /// Members extracted from one archive.
    pub max_members: usize,
    /// Bytes of one extracted member.
    pub max_member_bytes: u64,
    /// Bytes extracted from one archive in all.
    pub max_total_bytes: u64,
    /// Bytes extracted per byte of archive, at most (bombs); archives under
    /// 1 MiB are held to what 1 MiB would allow.
    pub max_ratio: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            passwords: vec!["infected".into()],
            max_depth: 8,
            max_members: 1000,
            max_member_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 100,
        }
    }
}

#[derive(Debug, Default)]
pub struct Archive {
    pub config: ArchiveConfig,
}

/// The formats recognised, by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    SevenZip,
    Tar,
    Gzip,
    Bzip2,
    Xz,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::SevenZip => "7z",
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
        }
    }

    /// The format whose signature `head` (the file's first 512 bytes or
    /// fewer) starts with.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let starts = |sig: &[u8]| head.starts_with(sig);
        if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
            Some(Format::Zip)
        } else if starts(b"7z\xbc\xaf\x27\x1c") {
            Some(Format::SevenZip)
        } else if starts(b"\x1f\x8b") {
            Some(Format::Gzip)
        } else if starts(b"BZh") && head.len() > 3 && (b'1'..=b'9').contains(&head[3]) {
            Some(Format::Bzip2)
        } else if starts(b"\xfd7zXZ\x00") {
            Some(Format::Xz)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Format::Tar)
        } else {
            None
        }
    }
}

impl Module for Archive {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Extraction"
    }

    fn config(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let config = self.config.clone();
        blocking(move || unpack(&input, &config))
    }
}

/// Unpacks the file of `input`, if it is an archive.
pub fn unpack(input: &ScanInput, config: &ArchiveConfig) -> Result<ModuleOutput, ModuleError> {
    let mut file = File::open(&*input.path)?;
    let mut head = Vec::with_capacity(512);
    (&mut file).take(512).read_to_end(&mut head)?;
    let Some(format) = Format::sniff(&head) else {
        return Ok(ModuleOutput::default());
    };
    file.rewind()?;
    let dir = input.path.parent().unwrap_or(Path::new("."));
    let mut out = Extraction::new(config, dir, input.size);
    if input.depth + 1 > config.max_depth {
        out.limit = Some(format!(
            "max_depth: members would be at depth {}, deeper than {}",
            input.depth + 1,
            config.max_depth
        ));
    } else {
        let mut passwords: Vec<&str> = input.archive_password.as_deref().into_iter().collect();
        passwords.extend(config.passwords.iter().map(String::as_str));
        match format {
            Format::Zip => zip_members(file, &passwords, &mut out)?,
            Format::SevenZip => seven_zip_members(&input.path, &passwords, &mut out)?,
            Format::Tar => tar_members(file, &mut out)?,
            Format::Gzip => {
                let decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
                let name = decoder
                    .header()
                    .and_then(|h| h.filename())
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .unwrap_or_else(|| stripped(&input.filename, &[".gz", ".tgz", ".gzip"]));
                single(decoder, name, &mut out)?;
            }
            Format::Bzip2 => {
                let decoder = bzip2::read::MultiBzDecoder::new(io::BufReader::new(file));
                single(
                    decoder,
                    stripped(&input.filename, &[".bz2", ".tbz2", ".tbz"]),
                    &mut out,
                )?;
            }
            Format::Xz => {
                // 256 MiB of dictionary at most per block.
                let decoder =
                    lzma_rust2::XzReader::new_mem_limit(io::BufReader::new(file), true, 256 * 1024);
                single(
                    decoder,
                    stripped(&input.filename, &[".xz", ".txz"]),
                    &mut out,
                )?;
            }
        }
    }
    Ok(out.finish(format))
}

/// The member name of a one-file compressed stream: the archive's name
/// without its suffix (`.tgz` and the like become `.tar`).
fn stripped(name: &str, suffixes: &[&str]) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    for s in suffixes {
        if base.len() > s.len() && base.to_ascii_lowercase().ends_with(s) {
            let stem = &base[..base.len() - s.len()];
            return if s.starts_with(".t") && *s != ".tar" {
                format!("{stem}.tar")
            } else {
                stem.to_owned()
            };
        }
    }
    format!("{base}.out")
}

/// Members taken so far and the limits left.
struct Extraction<'a> {
    config: &'a ArchiveConfig,
    dir: &'a Path,
    /// Most bytes the expansion ratio allows in all.
    ratio_cap: u64,
    total: u64,
    members: Vec<Value>,
    children: Vec<ExtractedFile>,
    limit: Option<String>,
    password: Option<String>,
}

/// Whether to go on with the next member.
enum Next {
    Continue,
    Stop,
}

impl<'a> Extraction<'a> {
    fn new(config: &'a ArchiveConfig, dir: &'a Path, archive_size: u64) -> Self {
        Self {
            config,
            dir,
            ratio_cap: config.max_ratio.saturating_mul(archive_size.max(1 << 20)),
            total: 0,
            members: Vec::new(),
            children: Vec::new(),
            limit: None,
            password: None,
        }
    }

    /// Copies one member into a temporary file, within the limits. A
    /// member cut short by a limit is dropped and extraction stops.
    fn take(&mut self, name: String, reader: &mut dyn Read) -> io::Result<Next> {
        if self.children.len() >= self.config.max_members {
            self.limit = Some(format!(
                "max_members: more than {} members",
                self.config.max_members
            ));
            return Ok(Next::Stop);
        }
        let room = [
            (self.config.max_member_bytes, "max_member_bytes"),
            (
                self.config.max_total_bytes.saturating_sub(self.total),
                "max_total_bytes",
            ),
            (self.ratio_cap.saturating_sub(self.total), "max_ratio"),
        ];
        let (allowed, which) = room.into_iter().min_by_key(|(n, _)| *n).unwrap_or((0, ""));
        let mut file = tempfile::NamedTempFile::new_in(self.dir)?;
        let copied = io::copy(&mut reader.take(allowed + 1), &mut file)?;
        if copied > allowed {
            let what = match which {
                "max_member_bytes" => format!("{name:?} is larger than {allowed} bytes"),
                "max_total_bytes" => {
                    format!("more than {} bytes in all", self.config.max_total_bytes)
                }
                _ => format!(
                    "more than {} bytes out per byte of archive",
                    self.config.max_ratio
                ),
            };
            self.limit = Some(format!("{which}: {what}"));
            self.members
                .push(json!({"name": name, "extracted": false, "size": null}));
            return Ok(Next::Stop);
        }
        file.flush()?;
        self.total += copied;
        self.members
            .push(json!({"name": name, "size": copied, "extracted": true}));
        self.children.push(ExtractedFile {
            filename: name,
            file,
        });
        Ok(Next::Continue)
    }

    fn skipped(&mut self, name: String, why: &str) {
        if self.members.len() < self.config.max_members {
            self.members
                .push(json!({"name": name, "extracted": false, "reason": why}));
        }
    }

    fn finish(self, format: Format) -> ModuleOutput {
        let result = json!({
            "format": format.name(),
            "members": self.members,
            "extracted": self.children.len(),
            "extracted_bytes": self.total,
            "password": self.password,
            "limit": self.limit,
        });
        ModuleOutput {
            result: Some(result),
            children: self.children,
        }
    }
}

fn broken(format: Format, e: impl std::fmt::Display) -> ModuleError {
    ModuleError::Failed(format!("not a readable {} archive: {e}", format.name()))
}

/// A one-file compressed stream (gzip, bzip2, xz): one member.
fn single(
    mut decoder: impl Read,
    name: String,
    out: &mut Extraction<'_>,
) -> Result<(), ModuleError> {
    out.take(name, &mut decoder)
        .map(|_| ())
        .map_err(|e| ModuleError::Failed(format!("cannot decompress: {e}")))
}

fn zip_members(
    file: File,
    passwords: &[&str],
    out: &mut Extraction<'_>,
) -> Result<(), ModuleError> {
    let mut zip =
        zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| broken(Format::Zip, e))?;
    for i in 0..zip.len() {
        let (name, is_dir, encrypted) = match zip.by_index_raw(i) {
            Ok(f) => (
                f.name()
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|_| format!("member {i}")),
                f.is_dir(),
                f.encrypted(),
            ),
            Err(e) => return Err(broken(Format::Zip, e)),
        };
        if is_dir {
            continue;
        }
        if !encrypted {
            let mut member = zip.by_index(i).map_err(|e| broken(Format::Zip, e))?;
            match out.take(name.clone(), &mut member) {
                Ok(Next::Continue) => continue,
                Ok(Next::Stop) => return Ok(()),
                Err(e) => {
                    out.skipped(name, &format!("cannot decompress: {e}"));
                    continue;
                }
            }
        }
        // Each password in turn; a wrong one fails its check or, for
        // ZipCrypto, the CRC at the end of the member.
        let mut done = false;
        for pw in passwords {
            let Ok(mut member) = zip.by_index_decrypt(i, pw.as_bytes()) else {
                continue;
            };
            let before = out.children.len();
            match out.take(name.clone(), &mut member) {
                Ok(next) => {
                    out.password = Some((*pw).to_owned());
                    done = true;
                    if matches!(next, Next::Stop) {
                        return Ok(());
                    }
                    break;
                }
                // A wrong password: nothing was kept; try the next.
                Err(_) => debug_assert_eq!(out.children.len(), before),
            }
        }
        if !done {
            out.skipped(name, "encrypted, and no password given fits");
        }
    }
    Ok(())
}

fn tar_members(file: File, out: &mut Extraction<'_>) -> Result<(), ModuleError> {
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let entries = tar.entries().map_err(|e| broken(Format::Tar, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| broken(Format::Tar, e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        match out.take(name, &mut entry) {
            Ok(Next::Continue) => {}
            Ok(Next::Stop) => return Ok(()),
            Err(e) => return Err(broken(Format::Tar, e)),
        }
    }
    Ok(())
}

fn seven_zip_members(
    path: &Path,
    passwords: &[&str],
    out: &mut Extraction<'_>,
) -> Result<(), ModuleError> {
    use sevenz_rust2::{ArchiveReader, EntryDecision, Error, Password};
    let mut candidates = vec![None];
    candidates.extend(passwords.iter().map(|p| Some(*p)));
    let mut last_error = None;
    for pw in candidates {
        let password = pw.map_or_else(Password::empty, Password::from);
        let reader = ArchiveReader::new_with_memory_limit(File::open(path)?, password, 256 * 1024);
        let mut reader = match reader {
            Ok(r) => r,
            Err(e @ (Error::PasswordRequired | Error::MaybeBadPassword(_))) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => return Err(broken(Format::SevenZip, e)),
        };
        let (members, children) = (out.members.len(), out.children.len());
        let total = out.total;
        let outcome = reader.for_each_entries_with_decision(|entry, data| {
            if entry.is_directory() || !entry.has_stream {
                return Ok(EntryDecision::Continue);
            }
            match out.take(entry.name().to_owned(), data) {
                Ok(Next::Continue) => Ok(EntryDecision::Continue),
                Ok(Next::Stop) => Ok(EntryDecision::Stop),
                Err(e) => Err(Error::from(e)),
            }
        });
        match outcome {
            Ok(()) => {
                out.password = pw.map(str::to_owned);
                return Ok(());
            }
            Err(e @ (Error::PasswordRequired | Error::MaybeBadPassword(_))) => {
                // Undo this attempt and try the next password.
                out.members.truncate(members);
                out.children.truncate(children);
                out.total = total;
                out.limit = None;
                last_error = Some(e.to_string());
            }
            Err(e) if out.children.len() > children => {
                out.skipped(
                    "(rest of the archive)".into(),
                    &format!("cannot decompress: {e}"),
                );
                return Ok(());
            }
            Err(e) => return Err(broken(Format::SevenZip, e)),
        }
    }
    out.skipped(
        "(whole archive)".into(),
        &format!(
            "encrypted, and no password given fits ({})",
            last_error.unwrap_or_default()
        ),
    );
    Ok(())
}
