//! VBA macros out of a compound file (a `.doc`/`.xls` or an OOXML
//! document's `vbaProject.bin`), following MS-OVBA: the `VBA/dir` stream
//! (compressed) lists each module's name, stream and where its compressed
//! source starts in that stream.

use std::io::Read;

use cfb::CompoundFile;

use super::le_bytes::{u16_at, u32_at};

/// Source text kept of one module.
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// Modules listed at most.
const MAX_MODULES: usize = 500;

/// One VBA module.
#[derive(Debug, PartialEq, Eq)]
pub struct VbaModule {
    pub name: String,
    /// The module's stream, as a path inside the compound file.
    pub stream: String,
    pub code: String,
    pub truncated: bool,
}

/// Bytes a decompressed `dir` stream may reach.
const MAX_DIR_BYTES: usize = 16 << 20;
/// Bytes one chunk decompresses to (MS-OVBA 2.4.1.1.4).
const CHUNK_BYTES: usize = 4096;

/// MS-OVBA 2.4.1 decompression of a CompressedContainer, stopping at
/// `cap` bytes out (copy tokens make a hostile container expand three
/// orders of magnitude). Damaged input gives what decompressed before the
/// damage.
pub fn decompress(data: &[u8], cap: usize) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    if data.first() != Some(&1) {
        return out;
    }
    let mut pos = 1;
    while pos + 2 <= data.len() {
        let header = u16::from_le_bytes([data[pos], data[pos + 1]]);
        let chunk_end = (pos + (header & 0x0fff) as usize + 3).min(data.len());
        let compressed = header & 0x8000 != 0;
        pos += 2;
        let chunk_start = out.len();
        if !compressed {
            let end = (pos + CHUNK_BYTES).min(data.len());
            out.extend_from_slice(&data[pos..end]);
            pos = end;
            continue;
        }
        while pos < chunk_end {
            if out.len() >= cap || out.len() - chunk_start >= CHUNK_BYTES {
                break;
            }
            let flags = data[pos];
            pos += 1;
            for bit in 0..8 {
                if pos >= chunk_end {
                    break;
                }
                if flags & (1 << bit) == 0 {
                    out.push(data[pos]);
                    pos += 1;
                    continue;
                }
                if pos + 2 > chunk_end {
                    return out;
                }
                let token = u16::from_le_bytes([data[pos], data[pos + 1]]);
                pos += 2;
                let difference = out.len() - chunk_start;
                let mut bit_count = 4;
                while (1usize << bit_count) < difference {
                    bit_count += 1;
                }
                let length_mask = 0xffffu16 >> bit_count;
                let length = (token & length_mask) as usize + 3;
                let offset = ((token & !length_mask) >> (16 - bit_count)) as usize + 1;
                if offset > out.len() - chunk_start {
                    return out;
                }
                let from = out.len() - offset;
                for i in 0..length {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
        pos = chunk_end;
        if out.len() >= cap {
            break;
        }
    }
    out.truncate(cap);
    out
}

/// Text in a Windows code page; bytes past ASCII read as Latin-1 where
/// the page is not known.
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

#[derive(Default)]
struct Entry {
    name: String,
    stream: String,
    offset: u32,
}

/// The modules the `dir` stream names: (name, stream name, source offset).
fn modules_in_dir(dir: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    let mut pos = 0;
    while pos + 6 <= dir.len() && out.len() < MAX_MODULES {
        let (Some(id), Some(size)) = (u16_at(dir, pos), u32_at(dir, pos + 2)) else {
            break;
        };
        pos += 6;
        // PROJECTVERSION says 4 but holds 6 bytes.
        let len = if id == 0x0009 { 6 } else { size as usize };
        let Some(data) = dir.get(pos..pos + len) else {
            break;
        };
        pos += len;
        match id {
            // MODULENAME starts a module.
            0x0019 => {
                if let Some(m) = current.take() {
                    out.push(m);
                }
                current = Some(Entry {
                    name: decode(data),
                    ..Entry::default()
                });
            }
            // MODULESTREAMNAME
            0x001a => {
                if let Some(m) = current.as_mut() {
                    m.stream = decode(data);
                }
            }
            // MODULEOFFSET
            0x0031 => {
                if let (Some(m), Some(offset)) = (current.as_mut(), u32_at(data, 0)) {
                    m.offset = offset;
                }
            }
            // The module's terminator.
            0x002b => {
                if let Some(m) = current.take() {
                    out.push(m);
                }
            }
            // The dir stream's terminator.
            0x0010 => break,
            _ => {}
        }
    }
    out.extend(current);
    out
}

fn read_stream<F: Read + std::io::Seek>(
    cf: &mut CompoundFile<F>,
    path: &str,
) -> std::io::Result<Vec<u8>> {
    let mut s = cf.open_stream(path)?;
    let mut buf = Vec::new();
    s.by_ref().take(64 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Every VBA project's modules in the compound file: one project per
/// storage holding a `VBA/dir` stream.
pub fn extract<F: Read + std::io::Seek>(cf: &mut CompoundFile<F>) -> Vec<VbaModule> {
    let dirs: Vec<String> = cf
        .walk()
        .filter(|e| e.is_stream() && e.name().eq_ignore_ascii_case("dir"))
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.to_ascii_lowercase().ends_with("vba/dir"))
        .collect();
    let mut out = Vec::new();
    for dir_path in dirs {
        let Ok(raw) = read_stream(cf, &dir_path) else {
            continue;
        };
        let vba = &dir_path[..dir_path.len() - "dir".len()];
        for m in modules_in_dir(&decompress(&raw, MAX_DIR_BYTES)) {
            let stream = format!("{vba}{}", m.stream);
            let Ok(bytes) = read_stream(cf, &stream) else {
                continue;
            };
            let source = bytes.get(m.offset as usize..).unwrap_or_default();
            let mut code = decompress(source, MAX_CODE_BYTES + 1);
            let truncated = code.len() > MAX_CODE_BYTES;
            code.truncate(MAX_CODE_BYTES);
            out.push(VbaModule {
                name: m.name,
                stream,
                code: decode(&code),
                truncated,
            });
        }
    }
    out
}

/// Names of procedures that run by themselves, and calls that droppers
/// use, found in the source (case-insensitively).
pub fn indicators(code: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    const AUTO: &[&str] = &[
        "AutoOpen",
        "AutoExec",
        "AutoClose",
        "Auto_Open",
        "Auto_Close",
        "Document_Open",
        "Document_Close",
        "DocumentOpen",
        "Workbook_Open",
        "Workbook_Activate",
        "Workbook_BeforeClose",
    ];
    const SUSPICIOUS: &[&str] = &[
        "Shell",
        "WScript.Shell",
        "CreateObject",
        "GetObject",
        "URLDownloadToFile",
        "XMLHTTP",
        "ADODB.Stream",
        "Environ",
        "Kill",
        "CallByName",
        "ExecuteExcel4Macro",
        "Lib ",
        "VirtualAlloc",
        "RtlMoveMemory",
        "PowerShell",
        "Chr(",
        "StrReverse",
        "Base64",
    ];
    let lower = code.to_ascii_lowercase();
    let found = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter()
            .copied()
            .filter(|k| lower.contains(&k.to_ascii_lowercase()))
            .collect()
    };
    (found(AUTO), found(SUSPICIOUS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_chunks_decompress() {
        // MS-OVBA 3.2.1: no copy tokens.
        let data = [
            0x01, 0x19, 0xb0, 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x00, 0x69,
            0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x00, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76,
            0x2e,
        ];
        assert_eq!(decompress(&data, 1 << 20), b"abcdefghijklmnopqrstuv.");
        assert_eq!(decompress(&data, 5), b"abcde");
    }

    #[test]
    fn copy_tokens_repeat_earlier_bytes() {
        // "abc" then a token copying 6 bytes from 3 back: "abcabcabc".
        // Token at difference 3: bit_count 4, length = (t & 0x0fff) + 3,
        // offset = (t >> 12) + 1.
        let token: u16 = ((3 - 1) << 12) | (6 - 3);
        let body = [
            0b0000_1000u8,
            b'a',
            b'b',
            b'c',
            token as u8,
            (token >> 8) as u8,
        ];
        let size = (body.len() + 2 - 3) as u16;
        let header = 0xb000 | size;
        let mut data = vec![1, header as u8, (header >> 8) as u8];
        data.extend_from_slice(&body);
        assert_eq!(decompress(&data, 1 << 20), b"abcabcabc");
    }

    #[test]
    fn expansion_stops_at_the_cap() {
        // Each chunk: one literal, then seven copies of 4,098 bytes.
        let body = [
            0xfe, b'a', 0xff, 0x0f, 0xff, 0x0f, 0xff, 0x0f, 0xff, 0x0f, 0xff, 0x0f, 0xff, 0x0f,
            0xff, 0x0f,
        ];
        let header = 0xb000u16 | (body.len() as u16 + 2 - 3);
        let mut bomb = vec![1u8];
        for _ in 0..10_000 {
            bomb.extend_from_slice(&header.to_le_bytes());
            bomb.extend_from_slice(&body);
        }
        let out = decompress(&bomb, 1 << 20);
        assert_eq!(out.len(), 1 << 20);
        assert!(out.iter().all(|b| *b == b'a'));
    }

    #[test]
    fn damaged_input_stops_without_panicking() {
        assert!(decompress(&[], 100).is_empty());
        assert!(decompress(&[0x02, 0, 0], 100).is_empty());
        // A copy token pointing before the chunk.
        let data = [1, 0x03, 0xb0, 0x01, 0xff, 0xff];
        assert!(decompress(&data, 100).is_empty());
        let (auto, sus) = indicators("Sub AutoOpen()\n Shell \"calc\"\nEnd Sub");
        assert_eq!(auto, ["AutoOpen"]);
        assert_eq!(sus, ["Shell"]);
    }
}
