//! The index templates: four indices, each with an explicit mapping.
//!
//! Why four and not MultiScanner's one index with a sample → report/note
//! join: a join field needs the `parent-join` module and routing on every
//! call, which the core engines do not have, and tags and notes change far
//! more often than reports. See docs/report-index.md.

use serde_json::{Value, json};

/// The indices, by what they hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One document per finished task: curated fields plus the whole report
    /// kept unindexed.
    Reports,
    /// One document per module result, `TASK-NODE-MODULE`.
    Results,
    /// One document per sample (its SHA-256): its tags.
    Samples,
    /// One document per note.
    Notes,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Reports, Kind::Results, Kind::Samples, Kind::Notes];

    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Reports => "reports",
            Kind::Results => "results",
            Kind::Samples => "samples",
            Kind::Notes => "notes",
        }
    }

    fn properties(self) -> Value {
        let keyword = json!({"type": "keyword"});
        let keyword_and_text = json!({"type": "keyword", "ignore_above": 4096,
                                      "fields": {"text": {"type": "text"}}});
        // Free text: words for phrases, and each value whole (up to a
        // length) for the substring search.
        let text_and_values = |longest: u32| {
            json!({"type": "text",
                   "fields": {"raw": {"type": "keyword", "ignore_above": longest}}})
        };
        let date = json!({"type": "date", "format": "epoch_millis"});
        let long = json!({"type": "long"});
        // Kept in _source, never parsed into the mapping: no module's output
        // can clash with a type there.
        let opaque = json!({"type": "object", "enabled": false});
        match self {
            Kind::Reports => json!({
                "task_id": long, "sha256": keyword, "md5": keyword, "sha1": keyword,
                "sha512": keyword, "filename": keyword_and_text,
                "filetype": keyword_and_text, "mimetype": keyword, "filesize": long,
                "ssdeep": keyword, "ssdeep_blocksize": long, "ssdeep_grams": keyword,
                "tlsh": keyword, "yara_rules": keyword, "av_detections": keyword,
                "child_sha256": keyword, "status": keyword, "submitted_at": date,
                "scan_time": date, "text": text_and_values(MAX_STRING_CHARS), "report": opaque,
            }),
            Kind::Results => json!({
                "task_id": long, "node_id": long, "sha256": keyword, "module": keyword,
                "module_version": keyword, "config_hash": keyword, "ok": {"type": "boolean"},
                "result": opaque, "error": {"type": "text", "index": false},
                "duration_ms": long,
            }),
            Kind::Samples => json!({
                "sha256": keyword, "tags": keyword, "updated_at": date,
            }),
            Kind::Notes => json!({
                "note_id": keyword, "sha256": keyword, "text": text_and_values(MAX_NOTE_CHARS),
                "created_at": date, "updated_at": date,
            }),
        }
    }
}

/// The composable index template for `index` (created before the index, so
/// an index created by any later write gets the same mapping).
pub fn template(kind: Kind, index: &str, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [index],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                // Every acknowledged write is on disk (the default; stated
                // because the guarantee rests on it).
                "index.translog.durability": "request",
            },
            "mappings": {
                // Fields not listed are kept in _source but not indexed.
                "dynamic": false,
                "properties": kind.properties(),
            },
        },
    })
}

/// Longest string of a report found by a substring search (longer ones are
/// found by words and phrases only).
pub const MAX_STRING_CHARS: u32 = 1024;
/// Longest note found by a substring search (a Lucene term holds at most
/// 32,766 bytes).
pub const MAX_NOTE_CHARS: u32 = 8000;

/// Keyword fields of a report searched by the default and exact searches.
pub const REPORT_KEYWORDS: &[&str] = &[
    "sha256",
    "md5",
    "sha1",
    "sha512",
    "filename",
    "filetype",
    "mimetype",
    "ssdeep",
    "tlsh",
    "yara_rules",
    "av_detections",
    "child_sha256",
    "text.raw",
];

/// Text fields of a report.
pub const REPORT_TEXT: &[&str] = &["filename.text", "filetype.text", "text"];
