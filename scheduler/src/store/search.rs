//! What every report store answers besides storing results: searches over
//! reports, sample tags and notes; tags and notes themselves; and the
//! curated fields a report is searched by ([`Curated`]), taken from its JSON
//! the same way for every backend.
//!
//! Tags and notes belong to a sample (every task of one SHA-256 shares
//! them), as in MultiScanner.

use multiscanner_proto::domain::{Sha256, Task, TaskId, TaskStatus, UnixMillis};
use serde_json::Value;

/// How the search text is read (MultiScanner's three search types).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchKind {
    /// Substring, case-insensitive; special characters are literal.
    #[default]
    Default,
    /// The whole value of a field, or a phrase in free text.
    Exact,
    /// The engine's own query language: Lucene query string on
    /// Elasticsearch/OpenSearch, FTS5 query syntax on SQLite.
    Advanced,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortField {
    #[default]
    TaskId,
    ScanTime,
    Filename,
    Sha256,
    Filesize,
}

/// A search over reports. Empty `text` matches every report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub text: String,
    pub kind: SearchKind,
    /// One hit per sample (its newest task), as on the Analyses page;
    /// otherwise every task (History).
    pub latest_per_sample: bool,
    /// Only reports of this sample.
    pub sha256: Option<Sha256>,
    pub sort: SortField,
    pub ascending: bool,
    pub offset: u32,
    pub limit: u32,
}

/// `offset + limit` may not pass this (the engines' result window).
pub const MAX_RESULT_WINDOW: u32 = 10_000;
/// Longest tag, in bytes (the same limit as on a submission's tags).
pub const MAX_TAG_BYTES: usize = multiscanner_proto::domain::MAX_TAG_LEN;
/// Longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// How many samples a tag or note match may contribute to one search.
pub const MAX_SAMPLE_MATCHES: usize = 10_000;

/// One report found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    pub task_id: TaskId,
    pub sha256: Sha256,
    pub filename: String,
    pub filetype: String,
    pub filesize: u64,
    pub status: TaskStatus,
    pub scan_time: Option<UnixMillis>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// Reports (or samples, with `latest_per_sample`) matching in all.
    pub total: u64,
    pub hits: Vec<SearchHit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub id: String,
    pub sha256: Sha256,
    pub text: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagCount {
    pub tag: String,
    /// Samples carrying it.
    pub count: u64,
}

/// Modules whose results name antivirus detections.
const AV_MODULES: &[&str] = &["clamav", "virustotal", "metadefender"];
/// Keys under which those modules put a detection name.
const AV_KEYS: &[&str] = &["result", "detection", "signature", "threat", "malware"];
/// Free text kept for searching, at most.
const MAX_TEXT_BYTES: usize = 32 * 1024;

/// The typed, searchable fields of a report. The report itself is kept
/// whole but not indexed, so no module's output can clash with a mapping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curated {
    pub task_id: i64,
    pub sha256: String,
    pub md5: String,
    pub sha1: String,
    pub sha512: String,
    pub filename: String,
    pub filetype: String,
    pub mimetype: String,
    pub filesize: u64,
    pub ssdeep: String,
    pub ssdeep_blocksize: u64,
    /// `BLOCKSIZE:GRAM` for every 7-character run of the two ssdeep
    /// chunks, for finding similar samples.
    pub ssdeep_grams: Vec<String>,
    pub tlsh: String,
    pub yara_rules: Vec<String>,
    pub av_detections: Vec<String>,
    /// SHA-256 of every file extracted from the sample, at any depth.
    pub child_sha256: Vec<String>,
    pub status: &'static str,
    pub submitted_at: UnixMillis,
    pub scan_time: Option<UnixMillis>,
    /// Every string in the report, joined by newlines (capped).
    pub text: String,
}

impl Curated {
    /// Takes the curated fields of `report`, the merged report of `task`
    /// (whose status is the one it ends with).
    pub fn from_report(task: &Task, report: &Value) -> Self {
        let meta = &report["filemeta"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let ssdeep = s(&meta["ssdeep"]);
        let (blocksize, grams) = ssdeep_grams(&ssdeep);
        let mut c = Curated {
            task_id: task.id.0,
            sha256: task.sha256.to_hex(),
            md5: s(&meta["md5"]),
            sha1: s(&meta["sha1"]),
            sha512: s(&meta["sha512"]),
            filename: task.submission.filename.clone(),
            filetype: s(&meta["filetype"]),
            mimetype: s(&meta["mimetype"]),
            filesize: meta["filesize"].as_u64().unwrap_or(task.size),
            ssdeep,
            ssdeep_blocksize: blocksize,
            ssdeep_grams: grams,
            tlsh: s(&meta["tlsh"]),
            status: task.status.as_str(),
            submitted_at: task.submitted_at,
            scan_time: task.finished_at,
            ..Default::default()
        };
        c.collect_node(report, true);
        for list in [&mut c.yara_rules, &mut c.av_detections, &mut c.child_sha256] {
            list.sort();
            list.dedup();
        }
        let mut text = String::new();
        strings_of(report, &mut text);
        c.text = text;
        c
    }

    fn collect_node(&mut self, node: &Value, root: bool) {
        if !root && let Some(h) = node["filemeta"]["sha256"].as_str() {
            self.child_sha256.push(h.to_owned());
        }
        values_under_key(&node["yara"], &["rule"], &mut self.yara_rules);
        for m in AV_MODULES {
            values_under_key(&node[*m], AV_KEYS, &mut self.av_detections);
        }
        for child in node["children"].as_array().into_iter().flatten() {
            self.collect_node(child, false);
        }
    }

    /// The hashes as one space-separated string.
    pub fn hashes(&self) -> String {
        [&self.sha256, &self.md5, &self.sha1, &self.sha512]
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Block size and `BLOCKSIZE:GRAM` 7-grams of an ssdeep digest
/// (`BS:CHUNK:DOUBLE_CHUNK`); the double chunk is at twice the block size.
pub fn ssdeep_grams(digest: &str) -> (u64, Vec<String>) {
    let mut parts = digest.splitn(3, ':');
    let (Some(bs), Some(chunk), Some(double)) = (parts.next(), parts.next(), parts.next()) else {
        return (0, Vec::new());
    };
    let Ok(bs) = bs.parse::<u64>() else {
        return (0, Vec::new());
    };
    let mut grams = Vec::new();
    for (size, chunk) in [(bs, chunk), (bs * 2, double)] {
        let chars: Vec<char> = chunk.chars().collect();
        for w in chars.windows(7) {
            grams.push(format!("{size}:{}", w.iter().collect::<String>()));
        }
    }
    grams.sort();
    grams.dedup();
    (bs, grams)
}

/// Every string found under a key in `keys` (case-insensitive), anywhere
/// below `v`.
fn values_under_key(v: &Value, keys: &[&str], out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if keys.iter().any(|key| key.eq_ignore_ascii_case(k))
                    && let Some(s) = child.as_str()
                    && !s.is_empty()
                {
                    out.push(s.to_owned());
                } else {
                    values_under_key(child, keys, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| values_under_key(i, keys, out)),
        _ => {}
    }
}

fn strings_of(v: &Value, out: &mut String) {
    if out.len() >= MAX_TEXT_BYTES {
        return;
    }
    match v {
        Value::String(s) => {
            let room = MAX_TEXT_BYTES - out.len();
            let mut end = s.len().min(room);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&s[..end]);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| strings_of(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings_of(i, out)),
        _ => {}
    }
}

/// Checks a tag: not empty, not too long, no control characters.
pub fn valid_tag(tag: &str) -> Result<String, String> {
    let tag = tag.trim();
    if tag.is_empty() {
        return Err("a tag may not be empty".into());
    }
    if tag.len() > MAX_TAG_BYTES {
        return Err(format!("a tag is at most {MAX_TAG_BYTES} bytes"));
    }
    if tag.chars().any(char::is_control) {
        return Err("a tag may not hold control characters".into());
    }
    Ok(tag.to_owned())
}

/// Checks a note's text: not empty, not too long.
pub fn valid_note(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("a note may not be empty".into());
    }
    if text.len() > MAX_NOTE_BYTES {
        return Err(format!("a note is at most {MAX_NOTE_BYTES} bytes"));
    }
    Ok(())
}

/// Checks the paging of a query against [`MAX_RESULT_WINDOW`].
pub fn check_window(query: &SearchQuery) -> Result<(), String> {
    if u64::from(query.offset) + u64::from(query.limit) > u64::from(MAX_RESULT_WINDOW) {
        return Err(format!(
            "offset + limit may not pass {MAX_RESULT_WINDOW}; narrow the search instead"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssdeep_grams_cover_both_chunks_at_their_block_sizes() {
        let (bs, grams) = ssdeep_grams("3:abcdefgh:XYZ1234");
        assert_eq!(bs, 3);
        assert_eq!(grams, vec!["3:abcdefg", "3:bcdefgh", "6:XYZ1234"]);
        assert_eq!(ssdeep_grams("garbage"), (0, vec![]));
        assert_eq!(ssdeep_grams("x:abcdefgh:y"), (0, vec![]));
    }

    #[test]
    fn detections_and_rules_are_found_at_any_depth_and_children_listed() {
        let report = serde_json::json!({
            "filemeta": {"sha256": "aa", "filesize": 10},
            "yara": {"matches": [{"rule": "Evil", "meta": {"rule": 5}}]},
            "clamav": {"detection": "Eicar-Test-Signature"},
            "children": [{
                "filemeta": {"sha256": "bb"},
                "yara": [{"rule": "Inner"}],
                "virustotal": {"scans": {"X": {"result": "Trojan.Gen", "version": "1"}}}
            }]
        });
        let task = crate::testing::task_for_tests();
        let c = Curated::from_report(&task, &report);
        assert_eq!(c.yara_rules, vec!["Evil", "Inner"]);
        assert_eq!(c.av_detections, vec!["Eicar-Test-Signature", "Trojan.Gen"]);
        assert_eq!(c.child_sha256, vec!["bb"]);
        assert!(c.text.contains("Trojan.Gen") && c.text.contains("Inner"));
    }
}
