//! `strings`: printable ASCII and UTF-16LE strings of a file, the way GNU
//! `strings -a` finds them (runs of printable ASCII or tab; `-e l` for
//! UTF-16LE), and the indicators in them: URLs, e-mail addresses, IPv4
//! addresses and domain names.
//!
//! The file is read once, in blocks; memory stays bounded whatever its size:
//! at most `max_strings` strings of each kind are kept (each cut at
//! `max_string_length` characters), and every string found is counted and
//! searched for indicators (at most `max_indicators` of each kind kept).

use std::{collections::BTreeSet, io::Read, sync::LazyLock};

use futures::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Settings of the `strings` module (`[worker.modules.strings]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StringsConfig {
    /// Shortest run of characters that counts as a string.
    pub min_length: usize,
    /// Strings of each kind (ASCII, UTF-16) kept in the report.
    pub max_strings: usize,
    /// Characters kept of one string.
    pub max_string_length: usize,
    /// Indicators of each kind kept in the report.
    pub max_indicators: usize,
}

impl Default for StringsConfig {
    fn default() -> Self {
        Self {
            min_length: 4,
            max_strings: 2000,
            max_string_length: 256,
            max_indicators: 1000,
        }
    }
}

#[derive(Debug, Default)]
pub struct Strings {
    pub config: StringsConfig,
}

impl Module for Strings {
    fn name(&self) -> &'static str {
        "strings"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn config(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }

    fn check(&self) -> Result<(), String> {
        if self.config.min_length == 0 {
            return Err("min_length must be at least 1".into());
        }
        Ok(())
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let config = self.config.clone();
        blocking(move || {
            let file = std::fs::File::open(&*input.path)?;
            let found = extract(file, &config)?;
            Ok(ModuleOutput::result(found.into_json()))
        })
    }
}

/// A run being collected: its text (capped) and its full length.
#[derive(Default)]
struct Run {
    text: String,
    len: usize,
}

fn printable(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

/// What was found in one file.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    pub ascii: Vec<String>,
    pub utf16: Vec<String>,
    pub ascii_total: u64,
    pub utf16_total: u64,
    pub indicators: Indicators,
}

impl Found {
    fn into_json(self) -> Value {
        let i = self.indicators;
        json!({
            "ascii": self.ascii,
            "utf16": self.utf16,
            "ascii_count": self.ascii_total,
            "utf16_count": self.utf16_total,
            "urls": i.urls,
            "emails": i.emails,
            "ipv4": i.ipv4,
            "domains": i.domains,
        })
    }
}

/// Collects strings as runs end.
struct Collector<'a> {
    config: &'a StringsConfig,
    found: Found,
}

impl Collector<'_> {
    fn push(&self, run: &mut Run, c: u8) {
        if run.len < self.config.max_string_length {
            run.text.push(c as char);
        }
        run.len += 1;
    }

    fn end(&mut self, run: &mut Run, wide: bool) {
        if run.len >= self.config.min_length {
            let f = &mut self.found;
            f.indicators.scan(&run.text);
            let (list, total) = if wide {
                (&mut f.utf16, &mut f.utf16_total)
            } else {
                (&mut f.ascii, &mut f.ascii_total)
            };
            *total += 1;
            if list.len() < self.config.max_strings {
                list.push(std::mem::take(&mut run.text));
            }
        }
        run.text.clear();
        run.len = 0;
    }
}

/// Reads `reader` to its end and collects its strings.
pub fn extract(mut reader: impl Read, config: &StringsConfig) -> std::io::Result<Found> {
    let mut c = Collector {
        config,
        found: Found {
            indicators: Indicators::new(config.max_indicators),
            ..Default::default()
        },
    };
    let mut ascii = Run::default();
    // UTF-16LE characters are a printable byte and a zero byte. A string
    // may start at an even or an odd offset: one run per parity ("lane").
    let mut wide = [Run::default(), Run::default()];
    let mut prev: Option<u8> = None;
    let mut offset: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if printable(b) {
                c.push(&mut ascii, b);
            } else {
                c.end(&mut ascii, false);
            }
            // `b` ends the two-byte character that began one byte before.
            if let Some(low) = prev {
                let lane = &mut wide[((offset - 1) % 2) as usize];
                if b == 0 && printable(low) {
                    c.push(lane, low);
                } else {
                    c.end(lane, true);
                }
            }
            prev = Some(b);
            offset += 1;
        }
    }
    c.end(&mut ascii, false);
    // The lane that ends last holds the later string.
    let first = (offset % 2) as usize;
    for lane in [first, 1 - first] {
        c.end(&mut wide[lane], true);
    }
    Ok(c.found)
}

/// Indicators found in strings, each kind sorted, deduplicated and capped.
#[derive(Debug, Default, PartialEq)]
pub struct Indicators {
    cap: usize,
    pub urls: BTreeSet<String>,
    pub emails: BTreeSet<String>,
    pub ipv4: BTreeSet<String>,
    pub domains: BTreeSet<String>,
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:https?|ftp)://[a-z0-9\-._~%!$&'()*+,;=:@/?#\[\]]+"#).unwrap()
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+\-]+@(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,24}\b")
        .unwrap()
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b").unwrap()
});
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})\b").unwrap()
});

/// Top-level domains accepted for bare domain names: the generic ones and
/// the country codes seen most in samples. A name ending otherwise
/// (`kernel32.dll`, `setup.exe`) is not taken for a domain; inside a URL or
/// an e-mail address any name counts.
const TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "io", "co", "me", "xyz", "top", "online", "site", "club",
    "app", "dev", "cloud", "gov", "edu", "mil", "int", "ru", "cn", "de", "uk", "fr", "jp", "br",
    "in", "it", "nl", "pl", "es", "ca", "au", "kr", "ir", "ua", "tk", "cc", "tv", "us", "eu", "su",
    "ws", "pw", "onion", "live", "shop", "icu", "link",
];

impl Indicators {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            ..Default::default()
        }
    }

    fn add(set: &mut BTreeSet<String>, cap: usize, v: &str) {
        if set.len() < cap {
            set.insert(v.to_owned());
        }
    }

    /// Adds the indicators in one string.
    pub fn scan(&mut self, s: &str) {
        if self.cap == 0 || s.len() < 4 {
            return;
        }
        for m in URL.find_iter(s) {
            Self::add(&mut self.urls, self.cap, m.as_str());
        }
        for m in EMAIL.find_iter(s) {
            Self::add(&mut self.emails, self.cap, m.as_str());
        }
        for m in IPV4.find_iter(s) {
            Self::add(&mut self.ipv4, self.cap, m.as_str());
        }
        for c in DOMAIN.captures_iter(s) {
            let tld = c[1].to_ascii_lowercase();
            if TLDS.contains(&tld.as_str()) {
                Self::add(&mut self.domains, self.cap, &c[0].to_ascii_lowercase());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Write, path::Path, process::Command};

    use super::*;

    /// What GNU `strings -a -n 4` (with `extra` arguments) prints.
    fn gnu_strings(path: &Path, extra: &[&str]) -> Vec<String> {
        let out = Command::new("strings")
            .args(["-a", "-n", "4"])
            .args(extra)
            .arg(path)
            .output()
            .expect("GNU strings (Debian package binutils; the README's test command installs it)");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn generated() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut data = b"\x00\x01hello world\x00abc\x00\tindented\x7fdel".to_vec();
        data.extend(utf16("Visit http://evil.example.com/a?b=1 now"));
        data.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        data.extend(b"mail bob@contoso.com from 10.1.2.3 or 300.1.2.3\x00kernel32.dll\x00");
        data.push(1);
        data.extend(utf16("OddAligned"));
        data.extend(b"\xff\xfeend");
        f.write_all(&data).unwrap();
        f
    }

    fn everything() -> StringsConfig {
        StringsConfig {
            max_strings: usize::MAX,
            max_string_length: usize::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn ascii_and_utf16_strings_match_gnu_strings() {
        let made = generated();
        for path in [
            made.path(),
            Path::new("/usr/bin/ls"),
            Path::new("/usr/bin/strings"),
        ] {
            let found = extract(std::fs::File::open(path).unwrap(), &everything()).unwrap();
            let ascii = gnu_strings(path, &[]);
            assert_eq!(found.ascii, ascii, "{}", path.display());
            assert_eq!(found.ascii_total, ascii.len() as u64);
            assert_eq!(
                found.utf16,
                gnu_strings(path, &["-e", "l"]),
                "{}",
                path.display()
            );
        }
        let found = extract(std::fs::File::open(made.path()).unwrap(), &everything()).unwrap();
        assert!(found.utf16.contains(&"OddAligned".to_owned()));
    }

    #[test]
    fn indicators_are_found_in_both_kinds() {
        let made = generated();
        let found = extract(std::fs::File::open(made.path()).unwrap(), &everything()).unwrap();
        let i = &found.indicators;
        let has = |set: &BTreeSet<String>, v: &str| set.contains(v);
        assert!(
            has(&i.urls, "http://evil.example.com/a?b=1"),
            "{:?}",
            i.urls
        );
        assert!(has(&i.emails, "bob@contoso.com"), "{:?}", i.emails);
        assert_eq!(i.ipv4.iter().collect::<Vec<_>>(), vec!["10.1.2.3"]);
        assert!(has(&i.domains, "evil.example.com") && has(&i.domains, "contoso.com"));
        assert!(
            !i.domains.iter().any(|d| d.contains("kernel32")),
            "{:?}",
            i.domains
        );
    }

    #[test]
    fn caps_bound_what_is_kept_but_everything_is_counted() {
        let capped = StringsConfig {
            max_strings: 2,
            max_string_length: 5,
            max_indicators: 1,
            ..Default::default()
        };
        let made = generated();
        let all = extract(std::fs::File::open(made.path()).unwrap(), &everything()).unwrap();
        let some = extract(std::fs::File::open(made.path()).unwrap(), &capped).unwrap();
        assert_eq!(some.ascii, vec!["hello", "\tinde"]);
        assert_eq!(some.ascii_total, all.ascii_total);
        assert_eq!(some.utf16_total, all.utf16_total);
        assert!(some.indicators.urls.len() <= 1 && some.indicators.emails.len() <= 1);
    }
}
