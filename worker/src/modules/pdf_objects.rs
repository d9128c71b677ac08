//! A forgiving reader of a PDF's indirect objects: finds every `N G obj`
//! in the bytes (no cross-reference table is trusted, so truncated and
//! damaged files still yield what they hold), with its dictionary and
//! stream, and decodes the few things the `pdf` module reports: `/Type`
//! names, the `/Info` strings and embedded files.

use std::io::Read;

/// One indirect object as found in the file.
#[derive(Debug)]
pub struct Object<'a> {
    pub id: u64,
    pub generation: u64,
    /// The text between `obj` and `stream` / `endobj`.
    pub dict: &'a [u8],
    /// The raw (still encoded) stream bytes, when it has a stream.
    pub stream: Option<&'a [u8]>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn is_delimiter(b: u8) -> bool {
    is_space(b) || b"()<>[]{}/%".contains(&b)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Reads `digits` backwards from just before `end`; returns the number and
/// where it starts.
fn number_before(bytes: &[u8], end: usize) -> Option<(u64, usize)> {
    let mut start = end;
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == end || end - start > 10 {
        return None;
    }
    let n = std::str::from_utf8(&bytes[start..end]).ok()?.parse().ok()?;
    Some((n, start))
}

fn skip_space_back(bytes: &[u8], mut at: usize) -> usize {
    while at > 0 && is_space(bytes[at - 1]) {
        at -= 1;
    }
    at
}

/// Every `N G obj ... endobj` in the file, in file order.
pub fn objects(bytes: &[u8]) -> Vec<Object<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(kw) = find(bytes, b"obj", at) {
        at = kw + 3;
        // `obj` as a word of its own, after two numbers.
        if bytes.get(kw + 3).is_some_and(|b| !is_delimiter(*b)) || kw == 0 {
            continue;
        }
        let g_end = skip_space_back(bytes, kw);
        if g_end == kw {
            continue;
        }
        let Some((generation, g_start)) = number_before(bytes, g_end) else {
            continue;
        };
        let n_end = skip_space_back(bytes, g_start);
        let Some((id, n_start)) = number_before(bytes, n_end) else {
            continue;
        };
        if n_end == g_start || (n_start > 0 && !is_delimiter(bytes[n_start - 1])) {
            continue;
        }
        let body = kw + 3;
        let end = find(bytes, b"endobj", body).unwrap_or(bytes.len());
        let stream_kw = find(&bytes[..end], b"stream", body).filter(|&s| {
            // `stream`, not the tail of `endstream`.
            s < 3 || &bytes[s - 3..s] != b"end"
        });
        let (dict, stream) = match stream_kw {
            Some(s) => {
                let mut data = s + 6;
                if bytes.get(data) == Some(&b'\r') {
                    data += 1;
                }
                if bytes.get(data) == Some(&b'\n') {
                    data += 1;
                }
                let stream_end = find(&bytes[..end], b"endstream", data).unwrap_or(end);
                let declared = length(&bytes[body..s])
                    .and_then(|n| data.checked_add(n))
                    .filter(|&e| e <= stream_end);
                // Trust /Length when it fits before `endstream`; otherwise
                // the bytes up to `endstream`, less the end-of-line.
                let data_end = declared.unwrap_or_else(|| {
                    let mut e = stream_end;
                    if e > data && bytes[e - 1] == b'\n' {
                        e -= 1;
                    }
                    if e > data && bytes[e - 1] == b'\r' {
                        e -= 1;
                    }
                    e
                });
                (&bytes[body..s], Some(&bytes[data..data_end.max(data)]))
            }
            None => (&bytes[body..end], None),
        };
        out.push(Object {
            id,
            generation,
            dict,
            stream,
        });
        at = end.max(at);
    }
    out
}

/// The value of a name key as a name (`/Type /Page` → `Page`).
pub fn name_value(dict: &[u8], key: &[u8]) -> Option<String> {
    let rest = value_after(dict, key)?;
    let rest = rest.strip_prefix(b"/")?;
    let end = rest
        .iter()
        .position(|b| is_delimiter(*b))
        .unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The bytes after `/key` and the spaces that follow it.
fn value_after<'a>(dict: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    loop {
        let at = find(dict, key, from)?;
        from = at + key.len();
        let after = at + key.len();
        if at > 0 && dict[at - 1] == b'/' && dict.get(after).is_none_or(|b| is_delimiter(*b)) {
            let mut v = after;
            while v < dict.len() && is_space(dict[v]) {
                v += 1;
            }
            return Some(&dict[v..]);
        }
    }
}

/// An integer value (`/Length 123`), not a reference (`/Length 5 0 R`).
pub fn length(dict: &[u8]) -> Option<usize> {
    let rest = value_after(dict, b"Length")?;
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let n: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let tail = &rest[end..];
    let next = tail.iter().position(|b| !is_space(*b)).map(|p| &tail[p..]);
    // `5 0 R` is a reference, not a length.
    if next.is_some_and(|t| t.first().is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    Some(n)
}

/// `N G R` after `/key`.
pub fn reference(dict: &[u8], key: &[u8]) -> Option<u64> {
    let rest = value_after(dict, key)?;
    let text = String::from_utf8_lossy(&rest[..rest.len().min(32)]).into_owned();
    let mut parts = text.split_ascii_whitespace();
    let id = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next()?.starts_with('R').then_some(id)
}

/// A string value: `(literal)` with its escapes, or `<hex>`; UTF-16BE
/// when it starts with a byte-order mark, else read as Latin-1.
pub fn string_value(dict: &[u8], key: &[u8]) -> Option<String> {
    let rest = value_after(dict, key)?;
    let raw = match rest.first()? {
        b'(' => literal(&rest[1..]),
        b'<' if rest.get(1) != Some(&b'<') => {
            let end = rest.iter().position(|b| *b == b'>')?;
            let digits: Vec<u8> = rest[1..end]
                .iter()
                .copied()
                .filter(u8::is_ascii_hexdigit)
                .collect();
            let mut digits = digits;
            if digits.len() % 2 == 1 {
                digits.push(b'0');
            }
            hex::decode(digits).ok()?
        }
        _ => return None,
    };
    Some(text(&raw))
}

fn literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        match b {
            b'\\' => {
                i += 1;
                let Some(&e) = s.get(i) else { break };
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'0'..=b'7' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 3 && s.get(i).is_some_and(|d| (b'0'..=b'7').contains(d)) {
                            v = v * 8 + u32::from(s[i] - b'0');
                            i += 1;
                            n += 1;
                        }
                        out.push(v as u8);
                        continue;
                    }
                    b'\r' | b'\n' => {}
                    other => out.push(other),
                }
            }
            b'(' => {
                depth += 1;
                out.push(b);
            }
            b')' if depth == 0 => break,
            b')' => {
                depth -= 1;
                out.push(b);
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn text(raw: &[u8]) -> String {
    if let Some(utf16) = raw.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = utf16
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    raw.iter().map(|&b| char::from(b)).collect()
}

/// Decodes a stream with no filter or `/FlateDecode`, reading at most
/// `cap` bytes. `Err` names a filter this reader does not decode.
pub fn decode(dict: &[u8], data: &[u8], cap: u64) -> Result<Vec<u8>, String> {
    let filter = name_value(dict, b"Filter").or_else(|| {
        // `/Filter [/FlateDecode]`
        let rest = value_after(dict, b"Filter")?;
        let inner = rest.strip_prefix(b"[")?;
        let close = inner.iter().position(|b| *b == b']')?;
        let names: Vec<&[u8]> = inner[..close]
            .split(|b| is_space(*b) || *b == b'/')
            .filter(|n| !n.is_empty())
            .collect();
        match names.as_slice() {
            [one] => Some(String::from_utf8_lossy(one).into_owned()),
            _ => Some(format!("{} filters", names.len())),
        }
    });
    let mut out = Vec::new();
    match filter.as_deref() {
        None => out.extend_from_slice(&data[..data.len().min(cap as usize)]),
        Some("FlateDecode" | "Fl") => {
            // Damaged streams still give what inflated before the damage.
            let mut reader = flate2::read::ZlibDecoder::new(data).take(cap);
            if let Err(e) = reader.read_to_end(&mut out)
                && out.is_empty()
            {
                return Err(format!("FlateDecode failed: {e}"));
            }
        }
        Some(other) => return Err(format!("filter {other} is not decoded")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_dictionaries_and_streams() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<</Type /Catalog /Pages 2 0 R>>\nendobj\n\
            12 0 obj <</Length 5>>stream\r\nhello\r\nendstream\nendobj\n\
            3 0 obj <</Length 9 0 R>>stream\nabc\nendstream endobj\n\
            4 0 obj <</Title (a \\(b\\) \\101) /Author <FEFF00e9>>> endobj";
        let objs = objects(pdf);
        assert_eq!(objs.len(), 4);
        assert_eq!((objs[1].id, objs[1].generation), (12, 0));
        assert_eq!(
            name_value(objs[0].dict, b"Type").as_deref(),
            Some("Catalog")
        );
        assert_eq!(reference(objs[0].dict, b"Pages"), Some(2));
        assert_eq!(objs[1].stream.unwrap(), b"hello");
        assert_eq!(objs[2].stream.unwrap(), b"abc");
        assert_eq!(length(objs[2].dict), None);
        assert_eq!(string_value(objs[3].dict, b"Title").unwrap(), "a (b) A");
        assert_eq!(string_value(objs[3].dict, b"Author").unwrap(), "é");
    }

    #[test]
    fn truncated_files_yield_what_they_hold() {
        let pdf = b"%PDF-1.4\n1 0 obj <</Type/Page>> endobj 2 0 obj <</Length 100>>stream\nabc";
        let objs = objects(pdf);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].stream.unwrap(), b"abc");
    }

    #[test]
    fn flate_streams_decode_within_a_cap() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&[7u8; 10_000]).unwrap();
        let data = z.finish().unwrap();
        let got = decode(b"/Filter /FlateDecode", &data, 100).unwrap();
        assert_eq!(got.len(), 100);
        let got = decode(b"/Filter [/FlateDecode]", &data, 1 << 20).unwrap();
        assert_eq!(got.len(), 10_000);
        assert!(decode(b"/Filter /LZWDecode", &data, 10).is_err());
    }
}
