//! The parts of a PE file that goblin does not describe the way analysts
//! compare them: every resource (type, name, language) with the size and
//! MD5 of its data, and the Rich header (the linker's record of the tools
//! that built the file) with its hash.

use goblin::pe::PE;
use serde_json::{Value, json};

use super::le_bytes::{u16_at, u32_at};
use super::pe::{entropy, md5_hex, raw_start, slice};

/// Resources listed at most.
const MAX_RESOURCES: usize = 1000;

/// Where an RVA lies in the file (as the loader maps sections).
pub fn rva_to_offset(pe: &PE<'_>, rva: u32) -> Option<usize> {
    pe.sections.iter().find_map(|s| {
        let size = s.virtual_size.max(s.size_of_raw_data);
        (rva >= s.virtual_address && rva - s.virtual_address < size).then(|| {
            raw_start(pe, s.pointer_to_raw_data) as usize + (rva - s.virtual_address) as usize
        })
    })
}

/// The predefined resource types by id.
fn type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        1 => "RT_CURSOR",
        2 => "RT_BITMAP",
        3 => "RT_ICON",
        4 => "RT_MENU",
        5 => "RT_DIALOG",
        6 => "RT_STRING",
        7 => "RT_FONTDIR",
        8 => "RT_FONT",
        9 => "RT_ACCELERATOR",
        10 => "RT_RCDATA",
        11 => "RT_MESSAGETABLE",
        12 => "RT_GROUP_CURSOR",
        14 => "RT_GROUP_ICON",
        16 => "RT_VERSION",
        17 => "RT_DLGINCLUDE",
        19 => "RT_PLUGPLAY",
        20 => "RT_VXD",
        21 => "RT_ANICURSOR",
        22 => "RT_ANIICON",
        23 => "RT_HTML",
        24 => "RT_MANIFEST",
        _ => return None,
    })
}

/// An entry's name: a number, or a UTF-16 string in the resource section.
fn entry_name(bytes: &[u8], base: usize, raw: u32) -> Value {
    if raw & 0x8000_0000 == 0 {
        return json!(raw);
    }
    let at = base + (raw & 0x7fff_ffff) as usize;
    let Some(len) = u16_at(bytes, at) else {
        return Value::Null;
    };
    let units: Vec<u16> = (0..usize::from(len))
        .map_while(|i| u16_at(bytes, at + 2 + 2 * i))
        .collect();
    json!(String::from_utf16_lossy(&units))
}

/// The entries of the directory at `dir`: (name, child offset, is a
/// directory).
fn entries(bytes: &[u8], base: usize, dir: usize) -> Vec<(u32, u32)> {
    let named = u16_at(bytes, dir + 12).unwrap_or(0);
    let ids = u16_at(bytes, dir + 14).unwrap_or(0);
    (0..usize::from(named) + usize::from(ids))
        .map_while(|i| {
            let at = dir + 16 + 8 * i;
            Some((u32_at(bytes, at)?, u32_at(bytes, at + 4)?))
        })
        .take(MAX_RESOURCES)
        .filter(|_| base <= dir)
        .collect()
}

/// Every resource: the three levels type → name → language.
pub fn resources(pe: &PE<'_>, bytes: &[u8]) -> Vec<Value> {
    let Some(dir) = pe
        .header
        .optional_header
        .as_ref()
        .and_then(|o| o.data_directories.get_resource_table().copied())
    else {
        return Vec::new();
    };
    let Some(base) = rva_to_offset(pe, dir.virtual_address) else {
        return Vec::new();
    };
    let subdir = |off: u32| (off & 0x8000_0000 != 0).then(|| base + (off & 0x7fff_ffff) as usize);
    let mut out = Vec::new();
    for (type_raw, type_off) in entries(bytes, base, base) {
        let Some(names_dir) = subdir(type_off) else {
            continue;
        };
        let kind = entry_name(bytes, base, type_raw);
        let kind = match kind.as_u64().and_then(|id| type_name(id as u32)) {
            Some(n) => json!(n),
            None => kind,
        };
        for (name_raw, name_off) in entries(bytes, base, names_dir) {
            let Some(langs_dir) = subdir(name_off) else {
                continue;
            };
            for (lang, data_off) in entries(bytes, base, langs_dir) {
                if out.len() >= MAX_RESOURCES || data_off & 0x8000_0000 != 0 {
                    continue;
                }
                let entry = base + data_off as usize;
                let (Some(rva), Some(size)) = (u32_at(bytes, entry), u32_at(bytes, entry + 4))
                else {
                    continue;
                };
                let data = rva_to_offset(pe, rva)
                    .map(|o| slice(bytes, o as u64, size.into()))
                    .unwrap_or_default();
                out.push(json!({
                    "type": kind,
                    "name": entry_name(bytes, base, name_raw),
                    "language": lang & 0xffff,
                    "size": size,
                    "md5": md5_hex(data),
                    "entropy": (entropy(data) * 1000.0).round() / 1000.0,
                }));
            }
        }
    }
    out
}

const DANS: u32 = 0x536e_6144;

/// The Rich header between the DOS stub and the PE header: its XOR key,
/// the tools it lists (product id, build, count) and the MD5 of its
/// decoded bytes (from offset 0x80 to the `Rich` marker, as pefile hashes
/// them).
pub fn rich_header(pe: &PE<'_>, bytes: &[u8]) -> Option<Value> {
    let limit = (pe.header.dos_header.pe_pointer as usize).min(bytes.len());
    let area = bytes.get(0x80..limit)?;
    let at = area.windows(4).position(|w| w == b"Rich")?;
    let key = u32_at(area, at + 4)?;
    let raw = &area[..at];
    let clear: Vec<u8> = raw
        .iter()
        .zip(key.to_le_bytes().iter().cycle())
        .map(|(b, k)| b ^ k)
        .collect();
    // A header in Microsoft's form starts with DanS and three padding
    // dwords, then (id, count) pairs; others are hashed all the same.
    let microsoft = u32_at(&clear, 0) == Some(DANS);
    let tools: Vec<Value> = clear
        .get(16..)
        .filter(|_| microsoft)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| {
            let id = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let count = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            json!({"product": id >> 16, "build": id & 0xffff, "count": count})
        })
        .collect();
    Some(json!({
        "key": format!("0x{key:08x}"),
        "microsoft_format": microsoft,
        "tools": tools,
        "md5": md5_hex(&clear),
    }))
}
