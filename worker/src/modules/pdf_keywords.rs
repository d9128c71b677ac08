//! Keyword counts over a PDF's bytes in the manner of pdfid: the file is
//! cut into words (runs of ASCII letters and digits), a word right after
//! `/` is a name, `#XX` inside a name is decoded (and counted, since it
//! hides a name from naive scanners), and words equal to a keyword are
//! counted wherever they are, inside streams too.

use std::collections::BTreeMap;

/// Counted always (pdfid's list, plus `/URI`).
pub const KEYWORDS: &[&str] = &[
    "obj",
    "endobj",
    "stream",
    "endstream",
    "xref",
    "trailer",
    "startxref",
    "/Page",
    "/Encrypt",
    "/ObjStm",
    "/JS",
    "/JavaScript",
    "/AA",
    "/OpenAction",
    "/AcroForm",
    "/JBIG2Decode",
    "/RichMedia",
    "/Launch",
    "/EmbeddedFile",
    "/XFA",
    "/URI",
];

#[derive(Debug, Default)]
pub struct Counts {
    /// Occurrences of each keyword.
    pub keywords: BTreeMap<&'static str, u64>,
    /// Occurrences written with `#XX` escapes in them.
    pub hex_escaped: BTreeMap<&'static str, u64>,
    /// `/Colors` followed by a number above 2^24 (CVE-2009-3459).
    pub colors_over_2_24: u64,
}

/// Where pdfid starts reading words: after the `%PDF` header line (looked
/// for in the first 1,024 bytes). `None` when there is no header.
pub fn header(bytes: &[u8]) -> Option<(usize, String)> {
    let head = &bytes[..bytes.len().min(1024)];
    let at = head.windows(4).position(|w| w == b"%PDF")?;
    let limit = (at + 14).min(head.len());
    let end = (at + 4..limit)
        .find(|&i| head[i] == b'\n' || head[i] == b'\r')
        .unwrap_or_else(|| (at + 13).min(head.len()));
    Some((end, String::from_utf8_lossy(&head[at..end]).into_owned()))
}

fn hex_digit(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

struct Scanner {
    counts: Counts,
    word: Vec<u8>,
    hexcode: bool,
    /// Whether the current word follows a `/`.
    slash: bool,
    last_name: Vec<u8>,
}

impl Scanner {
    fn flush(&mut self) {
        if !self.word.is_empty() {
            let mut name = Vec::with_capacity(self.word.len() + 1);
            if self.slash {
                name.push(b'/');
            }
            name.extend_from_slice(&self.word);
            if let Some(k) = KEYWORDS.iter().find(|k| k.as_bytes() == name) {
                *self.counts.keywords.entry(k).or_default() += 1;
                if self.hexcode {
                    *self.counts.hex_escaped.entry(k).or_default() += 1;
                }
            }
            if self.slash {
                self.last_name = name;
            }
        }
        self.word.clear();
        self.hexcode = false;
    }

    /// CVE-2009-3459: a colour count that does not fit in three bytes.
    fn check_colors(&mut self) {
        if self.last_name == b"/Colors"
            && !self.word.is_empty()
            && self.word.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(&self.word)
                .ok()
                .and_then(|w| w.parse::<u128>().ok())
                .is_none_or(|n| n > 1 << 24)
        {
            self.counts.colors_over_2_24 += 1;
        }
    }
}

/// Counts keywords in `bytes` from `start` on.
pub fn count(bytes: &[u8], start: usize) -> Counts {
    let mut s = Scanner {
        counts: Counts {
            keywords: KEYWORDS.iter().map(|k| (*k, 0)).collect(),
            ..Counts::default()
        },
        word: Vec::new(),
        hexcode: false,
        slash: false,
        last_name: Vec::new(),
    };
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() {
            s.word.push(b);
        } else if s.slash && b == b'#' {
            match bytes.get(i + 1..i + 3) {
                Some([d1, d2]) if hex_digit(*d1) && hex_digit(*d2) => {
                    let text = [*d1, *d2];
                    let v = u8::from_str_radix(std::str::from_utf8(&text).unwrap_or("0"), 16);
                    s.word.push(v.unwrap_or(0));
                    s.hexcode = true;
                    i += 2;
                }
                // Not an escape: the word ends, and the next one still
                // counts as a name.
                _ => s.flush(),
            }
        } else {
            s.check_colors();
            s.flush();
            s.slash = b == b'/';
        }
        i += 1;
    }
    s.flush();
    s.counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_words_and_escapes() {
        let pdf = b"%PDF-1.7\n1 0 obj <</Type/Pages/Kids[]>> endobj\n\
            2 0 obj <</S/J#61vaScript/JS(app.alert(1))/Page 3>> endobj\n\
            3 0 obj <</Colors 16777217/Colors 5>>stream\nxx\nendstream endobj";
        let (start, h) = header(pdf).unwrap();
        assert_eq!(h, "%PDF-1.7");
        let c = count(pdf, start);
        assert_eq!(c.keywords["obj"], 3);
        assert_eq!(c.keywords["endobj"], 3);
        assert_eq!(c.keywords["stream"], 1);
        // `/Pages` is not `/Page`.
        assert_eq!(c.keywords["/Page"], 1);
        assert_eq!(c.keywords["/JavaScript"], 1);
        assert_eq!(c.hex_escaped["/JavaScript"], 1);
        assert_eq!(c.keywords["/JS"], 1);
        assert_eq!(c.colors_over_2_24, 1);
    }

    #[test]
    fn no_header_is_not_a_pdf() {
        assert!(header(b"just text").is_none());
        assert!(header(b"").is_none());
        // A header cut short by the end of the file.
        assert_eq!(header(b"%PDF").unwrap().1, "%PDF");
    }
}
