//! `pe`: Windows executables (PE32 and PE32+): header, compile timestamp,
//! sections with entropy and MD5, imports and their imphash, exports, debug
//! (PDB) path, TLS callbacks, version information, whether an Authenticode
//! signature is present, and the overlay after the last section.

use std::{collections::BTreeMap, io::Read};

use futures::future::BoxFuture;
use goblin::pe::PE;
use md5::{Digest, Md5};

use serde_json::{Value, json};

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Executables larger than this are not parsed (the whole file is read).
pub const MAX_BYTES: u64 = 512 << 20;

#[derive(Debug, Default)]
pub struct Pe;

impl Module for Pe {
    fn name(&self) -> &'static str {
        "pe"
    }

    fn version(&self) -> &'static str {
        "1.1.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            let Some(bytes) = read_if(&input.path, b"MZ")? else {
                return Ok(ModuleOutput::default());
            };
            // Permissive: packers overlap headers in ways Windows loads.
            let opts = goblin::pe::options::ParseOptions::default()
                .with_parse_mode(goblin::options::ParseMode::Permissive);
            let pe = PE::parse_with_opts(&bytes, &opts)
                .map_err(|e| ModuleError::Failed(format!("not a readable PE file: {e}")))?;
            // Raw pointers the loader rounds down: parse a copy with them
            // rounded, so that tables inside those sections are found.
            let end = sections_end(&pe);
            if let Some(aligned) = loader_aligned(&pe, &bytes) {
                let pe = PE::parse_with_opts(&aligned, &opts)
                    .map_err(|e| ModuleError::Failed(format!("not a readable PE file: {e}")))?;
                // Hashes and the overlay are of the file as it is.
                return Ok(ModuleOutput::result(describe(&pe, &bytes, end)));
            }
            Ok(ModuleOutput::result(describe(&pe, &bytes, end)))
        })
    }
}

/// The whole file if it starts with `magic` (and is not too large to
/// parse).
pub fn read_if(path: &std::path::Path, magic: &[u8]) -> Result<Option<Vec<u8>>, ModuleError> {
    read_if_within(path, magic, 0)
}

/// Like [`read_if`], with `magic` anywhere in the first `within` bytes
/// (0: at the start only).
pub fn read_if_within(
    path: &std::path::Path,
    magic: &[u8],
    within: usize,
) -> Result<Option<Vec<u8>>, ModuleError> {
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    (&mut file)
        .take((within.max(magic.len())) as u64)
        .read_to_end(&mut head)?;
    let found = if within == 0 {
        head.starts_with(magic)
    } else {
        head.windows(magic.len()).any(|w| w == magic)
    };
    if !found {
        return Ok(None);
    }
    let size = file.metadata()?.len();
    if size > MAX_BYTES {
        return Err(ModuleError::Failed(format!(
            "{size} bytes: larger than the {MAX_BYTES} bytes parsed"
        )));
    }
    let mut bytes = head;
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Shannon entropy in bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for b in data {
        counts[*b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// `bytes[offset..offset + size]`, clipped to the file.
pub fn slice(bytes: &[u8], offset: u64, size: u64) -> &[u8] {
    let start = (offset as usize).min(bytes.len());
    let end = (offset.saturating_add(size) as usize).min(bytes.len());
    &bytes[start..end]
}

fn hex32(v: u64) -> String {
    format!("0x{v:x}")
}

/// The import hash: MD5 of `library.function` for every import, in order,
/// library names lower-cased without `.dll`/`.ocx`/`.sys`, functions
/// imported by ordinal as `ordN`.
pub fn imphash(pe: &PE<'_>) -> Option<String> {
    if pe.imports.is_empty() {
        return None;
    }
    let items: Vec<String> = pe
        .imports
        .iter()
        .map(|i| {
            let lib = i.dll.to_lowercase();
            let lib = match lib.rsplit_once('.') {
                Some((stem, "dll" | "ocx" | "sys")) => stem.to_owned(),
                _ => lib,
            };
            let func = match i.name.strip_prefix("ORDINAL ") {
                Some(n) if i.name.len() > 8 => format!("ord{n}"),
                _ => i.name.to_lowercase(),
            };
            format!("{lib}.{func}")
        })
        .collect();
    Some(md5_hex(items.join(",").as_bytes()))
}

/// Where the loader reads a section from: with a file alignment of 512 or
/// more, the raw pointer rounded down to a multiple of 512.
pub(crate) fn raw_start(pe: &PE<'_>, pointer: u32) -> u64 {
    let alignment = pe
        .header
        .optional_header
        .as_ref()
        .map_or(0, |o| o.windows_fields.file_alignment);
    if alignment >= 0x200 {
        u64::from(pointer / 0x200 * 0x200)
    } else {
        u64::from(pointer)
    }
}

/// A copy of `bytes` whose section headers hold the raw pointers the loader
/// uses ([`raw_start`]), if any differs from what the file says.
fn loader_aligned(pe: &PE<'_>, bytes: &[u8]) -> Option<Vec<u8>> {
    let misaligned = pe
        .sections
        .iter()
        .any(|s| raw_start(pe, s.pointer_to_raw_data) != u64::from(s.pointer_to_raw_data));
    if !misaligned {
        return None;
    }
    let table = pe.header.dos_header.pe_pointer as usize
        + 4
        + goblin::pe::header::SIZEOF_COFF_HEADER
        + pe.header.coff_header.size_of_optional_header as usize;
    let mut copy = bytes.to_vec();
    for (i, s) in pe.sections.iter().enumerate() {
        let at = table + i * goblin::pe::section_table::SIZEOF_SECTION_TABLE + 20;
        let aligned = raw_start(pe, s.pointer_to_raw_data) as u32;
        copy.get_mut(at..at + 4)?
            .copy_from_slice(&aligned.to_le_bytes());
    }
    Some(copy)
}

/// Where the last section's raw data ends, as the section table says: the
/// overlay starts there.
fn sections_end(pe: &PE<'_>) -> u64 {
    pe.sections
        .iter()
        .map(|s| u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data))
        .max()
        .unwrap_or(0)
}

fn describe(pe: &PE<'_>, bytes: &[u8], end: u64) -> Value {
    let coff = &pe.header.coff_header;
    let timestamp = coff.time_date_stamp;
    let sections: Vec<Value> = pe
        .sections
        .iter()
        .map(|s| {
            // Section names are bytes; each is shown as its Latin-1 character,
            // so none is lost.
            let name = s.real_name.clone().unwrap_or_else(|| {
                let end = s.name.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                s.name[..end].iter().map(|b| char::from(*b)).collect()
            });
            let data = slice(
                bytes,
                raw_start(pe, s.pointer_to_raw_data),
                s.size_of_raw_data.into(),
            );
            json!({
                "name": name,
                "virtual_address": hex32(s.virtual_address.into()),
                "virtual_size": s.virtual_size,
                "raw_size": s.size_of_raw_data,
                "characteristics": hex32(s.characteristics.into()),
                "entropy": (entropy(data) * 1000.0).round() / 1000.0,
                "md5": md5_hex(data),
            })
        })
        .collect();
    let mut imports: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in &pe.imports {
        let name = match i.name.strip_prefix("ORDINAL ") {
            Some(n) => format!("ord{n}"),
            None => i.name.to_string(),
        };
        imports.entry(i.dll).or_default().push(name);
    }
    let exports: Vec<&str> = pe.exports.iter().filter_map(|e| e.name).collect();
    let pdb = pe
        .debug_data
        .as_ref()
        .and_then(|d| d.codeview_pdb70_debug_info.as_ref())
        .map(|c| {
            String::from_utf8_lossy(c.filename)
                .trim_end_matches('\0')
                .to_owned()
        });
    let tls: Vec<String> = pe
        .tls_data
        .as_ref()
        .map(|t| t.callbacks.iter().map(|c| hex32(*c)).collect())
        .unwrap_or_default();
    // The overlay: bytes past the end of the last section's raw data.
    let overlay = (end > 0 && (end as usize) < bytes.len()).then(|| {
        let data = &bytes[end as usize..];
        json!({"offset": end, "size": data.len(), "md5": md5_hex(data)})
    });
    let version_info = pe
        .resource_data
        .as_ref()
        .and_then(|r| r.version_info.as_ref())
        .map(|v| {
            let s = &v.string_info;
            let fields = [
                ("CompanyName", s.company_name()),
                ("FileDescription", s.file_description()),
                ("FileVersion", s.file_version()),
                ("InternalName", s.internal_name()),
                ("LegalCopyright", s.legal_copyright()),
                ("OriginalFilename", s.original_filename()),
                ("ProductName", s.product_name()),
                ("ProductVersion", s.product_version()),
                ("Comments", s.comments()),
            ];
            let present: BTreeMap<&str, String> = fields
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
            json!(present)
        });
    let optional = pe.header.optional_header.as_ref();
    json!({
        "machine": hex32(coff.machine.into()),
        "is_64": pe.is_64,
        "is_dll": pe.is_lib,
        "timestamp": timestamp,
        "compile_time": multiscanner_proto::domain::iso8601(i64::from(timestamp) * 1000),
        "characteristics": hex32(coff.characteristics.into()),
        "subsystem": optional.map(|o| o.windows_fields.subsystem),
        "entry_point": hex32(pe.entry as u64),
        "image_base": hex32(pe.image_base),
        "sections": sections,
        "imports": imports,
        "imphash": imphash(pe),
        "exports": exports,
        "pdb_path": pdb,
        "tls_callbacks": tls,
        "signed": !pe.certificates.is_empty(),
        "overlay": overlay,
        "version_info": version_info,
        "resources": super::pe_resources::resources(pe, bytes),
        "rich_header": super::pe_resources::rich_header(pe, bytes),
    })
}
