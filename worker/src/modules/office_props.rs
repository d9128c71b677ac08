//! Document properties: the OLE property set streams (MS-OLEPS:
//! `\x05SummaryInformation`, `\x05DocumentSummaryInformation`) and the
//! OOXML `docProps/core.xml` and `docProps/app.xml` parts.

use serde_json::{Map, Value, json};

use super::le_bytes::{u16_at, u32_at, u64_at};

/// SummaryInformation property ids and the names reported for them.
const SUMMARY: &[(u32, &str)] = &[
    (2, "title"),
    (3, "subject"),
    (4, "author"),
    (5, "keywords"),
    (6, "comments"),
    (7, "template"),
    (8, "last_saved_by"),
    (9, "revision_number"),
    (11, "last_printed"),
    (12, "create_time"),
    (13, "last_saved_time"),
    (14, "num_pages"),
    (15, "num_words"),
    (16, "num_chars"),
    (18, "creating_application"),
    (19, "security"),
];

/// DocumentSummaryInformation property ids.
const DOC_SUMMARY: &[(u32, &str)] = &[
    (2, "category"),
    (3, "presentation_target"),
    (4, "bytes"),
    (5, "lines"),
    (6, "paragraphs"),
    (7, "slides"),
    (8, "notes"),
    (9, "hidden_slides"),
    (14, "manager"),
    (15, "company"),
];

/// A FILETIME (100 ns since 1601) as RFC 3339 UTC.
pub fn filetime(ticks: u64) -> Option<String> {
    let ms = (ticks / 10_000).checked_sub(11_644_473_600_000)?;
    Some(multiscanner_proto::domain::iso8601(i64::try_from(ms).ok()?))
}

/// Text stored in the document's code page: UTF-8 if it is, else each
/// byte as Latin-1; trailing NULs dropped.
fn text(bytes: &[u8]) -> String {
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// One typed property value (the types these property sets use).
fn value(b: &[u8], at: usize) -> Option<Value> {
    let kind = u16_at(b, at)?;
    let v = at + 4;
    Some(match kind {
        // VT_I2, VT_BOOL
        0x02 | 0x0b => json!(u16_at(b, v)? as i16),
        // VT_I4, VT_UI4
        0x03 => json!(u32_at(b, v)? as i32),
        0x13 => json!(u32_at(b, v)?),
        // VT_LPSTR: byte count, then the bytes.
        0x1e => {
            let n = u32_at(b, v)? as usize;
            json!(text(b.get(v + 4..v + 4 + n.min(1 << 16))?))
        }
        // VT_LPWSTR: character count, then UTF-16.
        0x1f => {
            let n = u32_at(b, v)? as usize;
            let raw = b.get(v + 4..v + 4 + 2 * n.min(1 << 15))?;
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            json!(String::from_utf16_lossy(&units))
        }
        // VT_FILETIME
        0x40 => json!(filetime(u64_at(b, v)?)),
        _ => return None,
    })
}

/// The first property set of a property set stream, by name.
pub fn property_set(stream: &[u8], summary: bool) -> Map<String, Value> {
    let names = if summary { SUMMARY } else { DOC_SUMMARY };
    let mut out = Map::new();
    // Header: byte order, version, system id, CLSID, count; then the
    // first set's FMTID and offset.
    let Some(set) = u32_at(stream, 44).map(|o| o as usize) else {
        return out;
    };
    let Some(count) = u32_at(stream, set + 4) else {
        return out;
    };
    for i in 0..count.min(1024) as usize {
        let entry = set + 8 + 8 * i;
        let (Some(id), Some(offset)) = (u32_at(stream, entry), u32_at(stream, entry + 4)) else {
            break;
        };
        let Some((_, name)) = names.iter().find(|(n, _)| *n == id) else {
            continue;
        };
        if let Some(v) = value(stream, set + offset as usize) {
            out.insert((*name).to_owned(), v);
        }
    }
    out
}

/// The text of each child of an OOXML properties part's root, by local
/// name (`dc:creator` → `creator`).
pub fn xml_properties(xml: &[u8]) -> Map<String, Value> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Map::new();
    let mut depth = 0usize;
    // The child being read: its name and text so far.
    let mut current: Option<(String, String)> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth == 2 {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    current = Some((name, String::new()));
                }
            }
            Ok(Event::End(_)) => {
                if depth == 2
                    && let Some((name, text)) = current.take()
                    && !text.trim().is_empty()
                    && out.len() < 100
                {
                    out.insert(name, json!(text.trim()));
                }
                depth = depth.saturating_sub(1);
            }
            Ok(Event::Text(t)) => {
                if let (Some((_, text)), Ok(t)) = (current.as_mut(), t.decode()) {
                    text.push_str(&t);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, text)) = current.as_mut() {
                    let name = r.decode().unwrap_or_default();
                    let c = match name.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => r.resolve_char_ref().ok().flatten(),
                    };
                    text.extend(c);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_become_dates() {
        // 2009-02-13T23:31:30Z is Unix 1234567890.
        let ticks = (1_234_567_890u64 + 11_644_473_600) * 10_000_000;
        assert_eq!(filetime(ticks).unwrap(), "2009-02-13T23:31:30.000Z");
        assert_eq!(filetime(0), None);
    }

    #[test]
    fn ooxml_core_properties() {
        let xml = br#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="x" xmlns:dc="y">
            <dc:title>Q3 &amp; Q4</dc:title><dc:creator>Alice</dc:creator>
            <cp:lastModifiedBy>Bob</cp:lastModifiedBy><dcterms:created>2020-01-02T03:04:05Z</dcterms:created>
            </cp:coreProperties>"#;
        let p = xml_properties(xml);
        assert_eq!(p["title"], "Q3 & Q4");
        assert_eq!(p["creator"], "Alice");
        assert_eq!(p["lastModifiedBy"], "Bob");
        assert_eq!(p["created"], "2020-01-02T03:04:05Z");
    }

    #[test]
    fn damaged_property_sets_give_what_they_hold() {
        assert!(property_set(&[], true).is_empty());
        assert!(property_set(&[0xff; 60], true).is_empty());
    }
}
