//! `office`: Microsoft Office documents. For the old compound-file formats
//! (`.doc`, `.xls`, `.ppt`, `.msg`, ...): the streams, the summary
//! property sets (title, author, application, dates, company, ...) and VBA
//! macro source. For OOXML (`.docx`, `.xlsm`, ...): the core and app
//! properties, the parts, and the macros of its `vbaProject.bin`. Each
//! macro module is listed with the procedures that run by themselves and
//! the calls droppers use.

use std::io::{Cursor, Read};

use cfb::CompoundFile;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::office_props::{property_set, xml_properties};
use super::office_vba::{VbaModule, extract, indicators};
use super::pe::MAX_BYTES;
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

const OLE_MAGIC: &[u8] = &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
/// Streams and parts listed at most.
const MAX_LISTED: usize = 500;
/// Bytes read of one OOXML part.
const MAX_PART_BYTES: u64 = 32 << 20;

#[derive(Debug, Default)]
pub struct Office;

impl Module for Office {
    fn name(&self) -> &'static str {
        "office"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            let mut file = std::fs::File::open(&*input.path)?;
            let mut head = [0u8; 8];
            let n = file.read(&mut head)?;
            let is_ole = head[..n] == *OLE_MAGIC;
            let is_zip = head[..n].starts_with(b"PK\x03\x04");
            if !is_ole && !is_zip {
                return Ok(ModuleOutput::default());
            }
            // A zip is read where it lies (archives can be large and most
            // are not Office documents); a compound file is read whole.
            let result = if is_zip {
                ooxml(file)?
            } else if file.metadata()?.len() > MAX_BYTES {
                return Err(ModuleError::Failed(format!(
                    "larger than the {MAX_BYTES} bytes parsed"
                )));
            } else {
                Some(compound(&std::fs::read(&*input.path)?)?)
            };
            Ok(ModuleOutput {
                result,
                children: Vec::new(),
            })
        })
    }
}

fn macros_json(modules: &[VbaModule]) -> Value {
    let list: Vec<Value> = modules
        .iter()
        .map(|m| {
            let (auto, suspicious) = indicators(&m.code);
            json!({
                "module": m.name, "stream": m.stream, "code": m.code,
                "truncated": m.truncated, "autoexec": auto, "suspicious": suspicious,
            })
        })
        .collect();
    Value::Array(list)
}

/// A compound file: streams, property sets, macros.
fn compound(bytes: &[u8]) -> Result<Value, ModuleError> {
    let mut cf = CompoundFile::open(Cursor::new(bytes))
        .map_err(|e| ModuleError::Failed(format!("not a readable compound file: {e}")))?;
    let streams: Vec<Value> = cf
        .walk()
        .filter(|e| e.is_stream())
        .take(MAX_LISTED)
        .map(|e| json!({"path": e.path().to_string_lossy(), "size": e.len()}))
        .collect();
    let mut read = |path: &str| -> Option<Vec<u8>> {
        let mut s = cf.open_stream(path).ok()?;
        let mut buf = Vec::new();
        s.by_ref().take(1 << 20).read_to_end(&mut buf).ok()?;
        Some(buf)
    };
    let summary = read("/\u{5}SummaryInformation")
        .map(|s| property_set(&s, true))
        .unwrap_or_default();
    let doc_summary = read("/\u{5}DocumentSummaryInformation")
        .map(|s| property_set(&s, false))
        .unwrap_or_default();
    let mut properties = summary;
    properties.extend(doc_summary);
    let modules = extract(&mut cf);
    Ok(json!({
        "format": "OLE",
        "properties": properties,
        "streams": streams,
        "encrypted": cf.exists("/EncryptedPackage") || cf.exists("/EncryptionInfo"),
        "has_macros": !modules.is_empty(),
        "macros": macros_json(&modules),
    }))
}

/// An OOXML package; `None` for a zip that is not one.
fn ooxml(file: std::fs::File) -> Result<Option<Value>, ModuleError> {
    let Ok(mut zip) = zip::ZipArchive::new(std::io::BufReader::new(file)) else {
        return Ok(None);
    };
    if zip.by_name("[Content_Types].xml").is_err() {
        return Ok(None);
    }
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    let mut part = |name: &str| -> Option<Vec<u8>> {
        let f = zip.by_name(name).ok()?;
        let mut buf = Vec::new();
        f.take(MAX_PART_BYTES).read_to_end(&mut buf).ok()?;
        Some(buf)
    };
    let mut properties = Map::new();
    if let Some(core) = part("docProps/core.xml") {
        properties.extend(xml_properties(&core));
    }
    if let Some(app) = part("docProps/app.xml") {
        properties.extend(xml_properties(&app));
    }
    let mut modules = Vec::new();
    let mut vba_errors = Vec::new();
    for name in names
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with("vbaproject.bin"))
    {
        let Some(bin) = part(name) else { continue };
        match CompoundFile::open(Cursor::new(&bin[..])) {
            Ok(mut cf) => modules.extend(extract(&mut cf)),
            Err(e) => vba_errors.push(format!("{name}: {e}")),
        }
    }
    let parts: Vec<&String> = names.iter().take(MAX_LISTED).collect();
    let kind = if names.iter().any(|n| n.starts_with("word/")) {
        "Word"
    } else if names.iter().any(|n| n.starts_with("xl/")) {
        "Excel"
    } else if names.iter().any(|n| n.starts_with("ppt/")) {
        "PowerPoint"
    } else {
        "other"
    };
    Ok(Some(json!({
        "format": "OOXML",
        "application": kind,
        "properties": properties,
        "parts": parts,
        "has_macros": !modules.is_empty(),
        "macros": macros_json(&modules),
        "macro_errors": vba_errors,
    })))
}
