//! `pdf`: what an analyst looks at first in a PDF. Keyword counts in the
//! manner of pdfid (`/JS`, `/JavaScript`, `/OpenAction`, `/AA`, `/Launch`,
//! `/EmbeddedFile`, `/ObjStm`, `/XFA`, `/URI`, ... with the ones hidden by
//! `#XX` escapes counted apart), object statistics by `/Type`, the
//! document information strings, `%%EOF` markers and bytes after the last,
//! and embedded files, which become children analysed like any file.

use std::{collections::BTreeMap, io::Write, path::Path};

use futures::future::BoxFuture;
use serde_json::{Value, json};

pub use super::pdf_keywords::KEYWORDS;
use super::pdf_keywords::{count, header};
use super::pdf_objects::{Object, decode, name_value, objects, reference, string_value};
use super::pe::{md5_hex, read_if_within};
use crate::module::{ExtractedFile, Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Files taken out of one PDF at most, and bytes of each.
pub const MAX_EMBEDDED: usize = 100;
pub const MAX_EMBEDDED_BYTES: u64 = 64 << 20;
/// Bytes taken out of one PDF in all (compressed streams can be bombs).
pub const MAX_TOTAL_EMBEDDED_BYTES: u64 = 256 << 20;
/// The document information keys reported.
const INFO_KEYS: &[&str] = &[
    "Title",
    "Author",
    "Subject",
    "Keywords",
    "Creator",
    "Producer",
    "CreationDate",
    "ModDate",
];

#[derive(Debug, Default)]
pub struct Pdf;

impl Module for Pdf {
    fn name(&self) -> &'static str {
        "pdf"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            // pdfid looks for the header anywhere in the first 1,024 bytes.
            let Some(bytes) = read_if_within(&input.path, b"%PDF", 1024)? else {
                return Ok(ModuleOutput::default());
            };
            let dir = input.path.parent().unwrap_or(Path::new("."));
            analyse(&bytes, dir)
        })
    }
}

fn analyse(bytes: &[u8], dir: &Path) -> Result<ModuleOutput, ModuleError> {
    let Some((start, header_line)) = header(bytes) else {
        return Ok(ModuleOutput::default());
    };
    let counts = count(bytes, start);
    let objs = objects(bytes);
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    for o in &objs {
        let t = name_value(o.dict, b"Type").unwrap_or_else(|| "(none)".into());
        *types.entry(t).or_default() += 1;
    }
    let eof_at: Vec<usize> = bytes
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"%%EOF")
        .map(|(i, _)| i)
        .collect();
    let after_eof = eof_at.last().map(|&i| {
        let tail = &bytes[i + 5..];
        tail.iter()
            .skip_while(|b| matches!(b, b'\r' | b'\n'))
            .count()
    });
    let (embedded, children) = embedded_files(&objs, dir)?;
    let hex_escaped: BTreeMap<_, _> = counts.hex_escaped.iter().filter(|(_, n)| **n > 0).collect();
    let result = json!({
        "header": header_line,
        "version": header_line.strip_prefix("%PDF-").map(|v| v.trim()),
        "keywords": counts.keywords,
        "hex_escaped_keywords": hex_escaped,
        "colors_over_2_24": counts.colors_over_2_24,
        "objects": objs.len(),
        "streams": objs.iter().filter(|o| o.stream.is_some()).count(),
        "object_types": types,
        "encrypted": encrypted(&objs, bytes),
        "info": info(&objs, bytes),
        "eof_markers": eof_at.len(),
        "bytes_after_last_eof": after_eof,
        "embedded_files": embedded,
    });
    Ok(ModuleOutput {
        result: Some(result),
        children,
    })
}

/// The trailer dictionaries: after each `trailer`, and cross-reference
/// streams (`/Type /XRef`) which carry the same keys.
fn trailers<'a>(objs: &'a [Object<'a>], bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    while let Some(p) = bytes[at..].windows(7).position(|w| w == b"trailer") {
        let s = at + p + 7;
        let end = bytes[s..]
            .windows(9)
            .position(|w| w == b"startxref")
            .map_or(bytes.len(), |e| s + e);
        out.push(&bytes[s..end]);
        at = s;
    }
    out.extend(
        objs.iter()
            .filter(|o| name_value(o.dict, b"Type").as_deref() == Some("XRef"))
            .map(|o| o.dict),
    );
    out
}

/// Whether a trailer names an `/Encrypt` dictionary (strings and streams
/// are then encrypted, embedded files too).
fn encrypted(objs: &[Object<'_>], bytes: &[u8]) -> bool {
    trailers(objs, bytes)
        .iter()
        .any(|t| t.windows(8).any(|w| w == b"/Encrypt"))
}

/// The `/Info` dictionary's strings (the last trailer's wins, as in an
/// incremental update).
fn info(objs: &[Object<'_>], bytes: &[u8]) -> Value {
    let Some(id) = trailers(objs, bytes)
        .iter()
        .rev()
        .find_map(|t| reference(t, b"Info"))
    else {
        return Value::Null;
    };
    let Some(obj) = objs.iter().rev().find(|o| o.id == id) else {
        return Value::Null;
    };
    let mut out = serde_json::Map::new();
    for key in INFO_KEYS {
        if let Some(v) = string_value(obj.dict, key.as_bytes()) {
            out.insert((*key).to_owned(), Value::String(v));
        }
    }
    Value::Object(out)
}

/// Streams of `/Type /EmbeddedFile`, decoded, named after the file
/// specification that points at them.
fn embedded_files(
    objs: &[Object<'_>],
    dir: &Path,
) -> Result<(Vec<Value>, Vec<ExtractedFile>), ModuleError> {
    // Which file specification names which stream: `/EF <</F 12 0 R>>`.
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for o in objs {
        if let Some(ef) = find_sub(o.dict, b"/EF")
            && let Some(target) = reference(ef, b"F").or_else(|| reference(ef, b"UF"))
        {
            let name = string_value(o.dict, b"UF").or_else(|| string_value(o.dict, b"F"));
            if let Some(name) = name {
                names.insert(target, name);
            }
        }
    }
    let mut listed = Vec::new();
    let mut children = Vec::new();
    let mut total: u64 = 0;
    for o in objs {
        if name_value(o.dict, b"Type").as_deref() != Some("EmbeddedFile") {
            continue;
        }
        let Some(data) = o.stream else { continue };
        let name = names
            .get(&o.id)
            .cloned()
            .unwrap_or_else(|| format!("embedded-{}-{}", o.id, o.generation));
        if children.len() >= MAX_EMBEDDED {
            listed.push(json!({"name": name, "object": o.id, "extracted": false,
                "reason": format!("more than {MAX_EMBEDDED} embedded files")}));
            continue;
        }
        let room = MAX_TOTAL_EMBEDDED_BYTES - total;
        if room == 0 {
            listed.push(json!({"name": name, "object": o.id, "extracted": false,
                "reason": format!("{MAX_TOTAL_EMBEDDED_BYTES} bytes already taken out")}));
            continue;
        }
        let limit = MAX_EMBEDDED_BYTES.min(room);
        match decode(o.dict, data, limit + 1) {
            Ok(mut content) => {
                let truncated = content.len() as u64 > limit;
                content.truncate(limit as usize);
                total += content.len() as u64;
                let mut file = tempfile::NamedTempFile::new_in(dir)?;
                file.write_all(&content)?;
                file.flush()?;
                listed.push(json!({
                    "name": name, "object": o.id, "size": content.len(),
                    "md5": md5_hex(&content), "extracted": true, "truncated": truncated,
                }));
                children.push(ExtractedFile {
                    filename: name,
                    file,
                });
            }
            Err(why) => listed.push(json!({
                "name": name, "object": o.id, "extracted": false, "reason": why,
            })),
        }
    }
    Ok((listed, children))
}

/// The text after `key` (for a nested dictionary such as `/EF <<...>>`).
fn find_sub<'a>(dict: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = dict.windows(key.len()).position(|w| w == key)?;
    let rest = &dict[at + key.len()..];
    (rest.first().is_some_and(|b| !b.is_ascii_alphanumeric())).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn embedded_files_become_children_with_their_names() {
        let payload = b"MZ pretend executable";
        let packed = deflate(payload);
        let mut pdf = b"%PDF-1.7\n1 0 obj <</Type/Catalog/OpenAction 5 0 R>> endobj\n\
            2 0 obj <</Type/Filespec/F (report.exe)/EF <</F 3 0 R>>>> endobj\n"
            .to_vec();
        pdf.extend_from_slice(
            format!(
                "3 0 obj <</Type/EmbeddedFile/Filter/FlateDecode/Length {}>>stream\n",
                packed.len()
            )
            .as_bytes(),
        );
        pdf.extend_from_slice(&packed);
        pdf.extend_from_slice(
            b"\nendstream endobj\n4 0 obj <</Title (Invoice) /Producer <FEFF0041>>> endobj\n\
              trailer <</Root 1 0 R /Info 4 0 R>>\nstartxref\n0\n%%EOF\nGARBAGE",
        );
        let dir = tempfile::tempdir().unwrap();
        let out = analyse(&pdf, dir.path()).unwrap();
        let r = out.result.unwrap();
        assert_eq!(r["version"], "1.7");
        assert_eq!(r["keywords"]["/OpenAction"], 1);
        assert_eq!(r["keywords"]["/EmbeddedFile"], 1);
        assert_eq!(r["object_types"]["EmbeddedFile"], 1);
        assert_eq!(r["info"]["Title"], "Invoice");
        assert_eq!(r["info"]["Producer"], "A");
        assert_eq!(r["bytes_after_last_eof"], 7);
        assert_eq!(r["encrypted"], false);
        assert_eq!(r["embedded_files"][0]["name"], "report.exe");
        assert_eq!(r["embedded_files"][0]["size"], payload.len());
        assert_eq!(out.children.len(), 1);
        assert_eq!(out.children[0].filename, "report.exe");
        assert_eq!(std::fs::read(out.children[0].file.path()).unwrap(), payload);
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_cap() {
        let bomb = deflate(&vec![0u8; (MAX_EMBEDDED_BYTES + (1 << 20)) as usize]);
        let mut pdf =
            b"%PDF-1.4\n1 0 obj <</Type /EmbeddedFile /Filter /FlateDecode>>stream\n".to_vec();
        pdf.extend_from_slice(&bomb);
        pdf.extend_from_slice(b"\nendstream\nendobj\n");
        let dir = tempfile::tempdir().unwrap();
        let out = analyse(&pdf, dir.path()).unwrap();
        let r = out.result.unwrap();
        assert_eq!(r["embedded_files"][0]["truncated"], true);
        assert_eq!(r["embedded_files"][0]["size"], MAX_EMBEDDED_BYTES);
    }

    #[test]
    fn many_bombs_stop_at_the_total() {
        let bomb = deflate(&vec![0u8; (MAX_EMBEDDED_BYTES + 1) as usize]);
        let mut pdf = b"%PDF-1.4\n".to_vec();
        for id in 1..=6 {
            pdf.extend_from_slice(
                format!("{id} 0 obj <</Type /EmbeddedFile /Filter /FlateDecode>>stream\n")
                    .as_bytes(),
            );
            pdf.extend_from_slice(&bomb);
            pdf.extend_from_slice(b"\nendstream\nendobj\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let out = analyse(&pdf, dir.path()).unwrap();
        let taken: u64 = out
            .children
            .iter()
            .map(|c| c.file.as_file().metadata().unwrap().len())
            .sum();
        assert_eq!(taken, MAX_TOTAL_EMBEDDED_BYTES);
        let r = out.result.unwrap();
        assert_eq!(r["embedded_files"][5]["extracted"], false);
    }
}
