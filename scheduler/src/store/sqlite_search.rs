//! Search, tags and notes of the embedded report store.
//!
//! A finished report's curated fields ([`Curated`]) are kept in
//! `report_fields` (one row per task), `report_terms` (the lists: YARA
//! rules, detections, extracted files' hashes, ssdeep grams) and the FTS5
//! table `report_fts` with the trigram tokenizer, which finds any substring
//! of three characters or more through its index. The advanced search type
//! is FTS5's own query syntax over `report_fts`'s columns (a near relative
//! of Lucene's: `filename:invoice AND yara_rules:evil`, `"a phrase"`, `OR`,
//! `NOT`, `pre*`).

use multiscanner_proto::domain::{Sha256, Task, TaskId, now_millis};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value as Sql};

use super::{
    StoreError, StoreResult,
    search::{
        Curated, Note, SearchHit, SearchKind, SearchPage, SearchQuery, SortField, TagCount,
        check_window,
    },
};

/// Schema of this file's tables (a migration of the report store).
pub const MIGRATION: &str = "
CREATE TABLE report_fields (
    task_id      INTEGER PRIMARY KEY,
    sha256       TEXT    NOT NULL,
    md5          TEXT    NOT NULL,
    sha1         TEXT    NOT NULL,
    sha512       TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    filetype     TEXT    NOT NULL,
    mimetype     TEXT    NOT NULL,
    filesize     INTEGER NOT NULL,
    ssdeep       TEXT    NOT NULL,
    tlsh         TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    submitted_at INTEGER NOT NULL,
    scan_time    INTEGER
);
CREATE INDEX report_fields_sample ON report_fields (sha256, task_id);
-- The exact search compares keyword columns without regard to case.
CREATE INDEX report_fields_sha256_nocase ON report_fields (sha256 COLLATE NOCASE);
CREATE INDEX report_fields_md5 ON report_fields (md5 COLLATE NOCASE);
CREATE INDEX report_fields_sha1 ON report_fields (sha1 COLLATE NOCASE);
CREATE INDEX report_fields_sha512 ON report_fields (sha512 COLLATE NOCASE);
CREATE INDEX report_fields_filename ON report_fields (filename COLLATE NOCASE);
CREATE INDEX report_fields_filetype ON report_fields (filetype COLLATE NOCASE);
CREATE INDEX report_fields_mimetype ON report_fields (mimetype COLLATE NOCASE);
CREATE INDEX report_fields_ssdeep ON report_fields (ssdeep COLLATE NOCASE);
CREATE INDEX report_fields_tlsh ON report_fields (tlsh COLLATE NOCASE);
CREATE TABLE report_terms (
    task_id INTEGER NOT NULL,
    field   TEXT    NOT NULL,
    value   TEXT    NOT NULL
);
CREATE INDEX report_terms_value ON report_terms (field, value COLLATE NOCASE);
CREATE INDEX report_terms_task ON report_terms (task_id);
CREATE VIRTUAL TABLE report_fts USING fts5(
    sha256, md5, sha1, sha512, filename, filetype, mimetype, ssdeep, tlsh,
    yara_rules, av_detections, child_sha256, text, tokenize = 'trigram'
);
CREATE TABLE sample_tags (
    sha256   TEXT    NOT NULL,
    tag      TEXT    NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (sha256, tag)
);
CREATE INDEX sample_tags_tag ON sample_tags (tag);
CREATE TABLE notes (
    id         TEXT    PRIMARY KEY,
    sha256     TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX notes_sample ON notes (sha256, created_at, id);
";

/// Keyword columns of `report_fields` matched whole by the exact search.
const KEYWORDS: &[&str] = &[
    "sha256", "md5", "sha1", "sha512", "filename", "filetype", "mimetype", "ssdeep", "tlsh",
];
/// `report_terms` fields searched.
const TERM_FIELDS: &[&str] = &["yara_rules", "av_detections", "child_sha256"];
/// `report_fts` columns, for the substring search of short terms.
const FTS_COLUMNS: &[&str] = &[
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
    "text",
];

/// Writes a finished report's searchable rows (in the caller's transaction).
pub fn index_report(conn: &Connection, task: &Task, report: &serde_json::Value) -> StoreResult<()> {
    let c = Curated::from_report(task, report);
    unindex_report(conn, task.id)?;
    conn.prepare_cached(
        "INSERT INTO report_fields (task_id, sha256, md5, sha1, sha512, filename, filetype, \
         mimetype, filesize, ssdeep, tlsh, status, submitted_at, scan_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        c.task_id,
        c.sha256,
        c.md5,
        c.sha1,
        c.sha512,
        c.filename,
        c.filetype,
        c.mimetype,
        c.filesize as i64,
        c.ssdeep,
        c.tlsh,
        c.status,
        c.submitted_at,
        c.scan_time
    ])?;
    let mut term = conn
        .prepare_cached("INSERT INTO report_terms (task_id, field, value) VALUES (?1, ?2, ?3)")?;
    for (field, values) in [
        ("yara_rules", &c.yara_rules),
        ("av_detections", &c.av_detections),
        ("child_sha256", &c.child_sha256),
        ("ssdeep_grams", &c.ssdeep_grams),
    ] {
        for v in values {
            term.execute(params![c.task_id, field, v])?;
        }
    }
    conn.prepare_cached(
        "INSERT INTO report_fts (rowid, sha256, md5, sha1, sha512, filename, filetype, mimetype, \
         ssdeep, tlsh, yara_rules, av_detections, child_sha256, text) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        c.task_id,
        c.sha256,
        c.md5,
        c.sha1,
        c.sha512,
        c.filename,
        c.filetype,
        c.mimetype,
        c.ssdeep,
        c.tlsh,
        c.yara_rules.join("\n"),
        c.av_detections.join("\n"),
        c.child_sha256.join("\n"),
        c.text
    ])?;
    let mut tag = conn.prepare_cached(
        "INSERT OR IGNORE INTO sample_tags (sha256, tag, added_at) VALUES (?1, ?2, ?3)",
    )?;
    for t in &task.submission.tags {
        if let Ok(t) = super::search::valid_tag(t) {
            tag.execute(params![c.sha256, t, now_millis()])?;
        }
    }
    Ok(())
}

pub fn unindex_report(conn: &Connection, task: TaskId) -> StoreResult<()> {
    for sql in [
        "DELETE FROM report_fields WHERE task_id = ?1",
        "DELETE FROM report_terms WHERE task_id = ?1",
        "DELETE FROM report_fts WHERE rowid = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([task.0])?;
    }
    Ok(())
}

/// Whether `phrase` occurs in `text` as whole words: case-insensitive, with
/// no letter or digit right before or after it. The trigram index finds
/// substrings; this narrows them to what a word-based engine calls a
/// phrase.
pub fn phrase_in(text: &str, phrase: &str) -> bool {
    let (text, phrase) = (text.to_lowercase(), phrase.to_lowercase());
    if phrase.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !word(before) && !word(after)
    })
}

/// Makes [`phrase_in`] callable from SQL as `phrase_in(text, phrase)`.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "phrase_in",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = ctx.get::<Option<String>>(0)?.unwrap_or_default();
            let phrase = ctx.get::<Option<String>>(1)?.unwrap_or_default();
            Ok(phrase_in(&text, &phrase))
        },
    )
}

/// `%term%` for LIKE with `\` as the escape character.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// An FTS5 string literal: the text as one phrase, quotes doubled.
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The condition on `report_fields AS f` that a query's text sets, and its
/// parameters.
fn text_condition(kind: SearchKind, text: &str, params: &mut Vec<Sql>) -> String {
    let mut p = |v: String| {
        params.push(Sql::Text(v));
        format!("?{}", params.len())
    };
    match kind {
        SearchKind::Default => {
            let like = p(like_pattern(text));
            let own = if text.chars().count() >= 3 {
                let m = p(fts_phrase(text));
                format!("f.task_id IN (SELECT rowid FROM report_fts WHERE report_fts MATCH {m})")
            } else {
                let any: Vec<String> = FTS_COLUMNS
                    .iter()
                    .map(|c| format!("{c} LIKE {like} ESCAPE '\\'"))
                    .collect();
                format!(
                    "f.task_id IN (SELECT rowid FROM report_fts WHERE {})",
                    any.join(" OR ")
                )
            };
            format!(
                "({own} OR f.sha256 IN (SELECT sha256 FROM sample_tags WHERE tag LIKE {like} \
                 ESCAPE '\\') OR f.sha256 IN (SELECT sha256 FROM notes WHERE text LIKE {like} \
                 ESCAPE '\\'))"
            )
        }
        SearchKind::Exact => {
            let v = p(text.to_owned());
            let like = p(like_pattern(text));
            let mut any: Vec<String> = KEYWORDS
                .iter()
                .map(|c| format!("f.{c} = {v} COLLATE NOCASE"))
                .collect();
            let fields = TERM_FIELDS
                .iter()
                .map(|f| format!("'{f}'"))
                .collect::<Vec<_>>()
                .join(", ");
            any.push(format!(
                "f.task_id IN (SELECT task_id FROM report_terms WHERE field IN ({fields}) \
                 AND value = {v} COLLATE NOCASE)"
            ));
            if text.chars().count() >= 3 {
                let m = p(format!("text : {}", fts_phrase(text)));
                any.push(format!(
                    "f.task_id IN (SELECT rowid FROM report_fts WHERE report_fts MATCH {m} \
                     AND phrase_in(text, {v}))"
                ));
            }
            any.push(format!(
                "f.sha256 IN (SELECT sha256 FROM sample_tags WHERE tag = {v} COLLATE NOCASE)"
            ));
            any.push(format!(
                "f.sha256 IN (SELECT sha256 FROM notes WHERE text LIKE {like} ESCAPE '\\' \
                 AND phrase_in(text, {v}))"
            ));
            format!("({})", any.join(" OR "))
        }
        SearchKind::Advanced => {
            let m = p(text.to_owned());
            format!("f.task_id IN (SELECT rowid FROM report_fts WHERE report_fts MATCH {m})")
        }
    }
}

fn order_by(query: &SearchQuery) -> String {
    let dir = if query.ascending { "ASC" } else { "DESC" };
    let col = match query.sort {
        SortField::TaskId => return format!("task_id {dir}"),
        SortField::ScanTime => "scan_time",
        SortField::Filename => "filename",
        SortField::Sha256 => "sha256",
        SortField::Filesize => "filesize",
    };
    format!("{col} IS NULL, {col} {dir}, task_id DESC")
}

pub fn search(conn: &Connection, query: &SearchQuery) -> StoreResult<SearchPage> {
    check_window(query).map_err(StoreError::BadQuery)?;
    let mut params = Vec::new();
    let mut conditions = vec!["1".to_owned()];
    let text = query.text.trim();
    if !text.is_empty() {
        conditions.push(text_condition(query.kind, text, &mut params));
    }
    if let Some(sha) = query.sha256 {
        params.push(Sql::Text(sha.to_hex()));
        conditions.push(format!("f.sha256 = ?{}", params.len()));
    }
    let matched = format!(
        "SELECT f.* FROM report_fields f WHERE {}",
        conditions.join(" AND ")
    );
    let rows = if query.latest_per_sample {
        format!(
            "WITH m AS ({matched}) SELECT * FROM m \
             WHERE task_id IN (SELECT MAX(task_id) FROM m GROUP BY sha256)"
        )
    } else {
        matched
    };
    let refused = |e: rusqlite::Error| match query.kind {
        // Only the advanced type passes the user's words to the engine.
        SearchKind::Advanced => StoreError::BadQuery(e.to_string()),
        _ => StoreError::from(e),
    };
    let total: i64 = conn
        .prepare(&format!("SELECT COUNT(*) FROM ({rows})"))
        .and_then(|mut s| s.query_row(params_from_iter(params.iter()), |r| r.get(0)))
        .map_err(refused)?;
    let page_sql = format!(
        "SELECT task_id, sha256, filename, filetype, filesize, status, scan_time FROM ({rows}) \
         ORDER BY {} LIMIT {} OFFSET {}",
        order_by(query),
        query.limit,
        query.offset
    );
    let mut stmt = conn.prepare(&page_sql).map_err(refused)?;
    let hits = stmt
        .query_map(params_from_iter(params.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })
        .map_err(refused)?
        .map(|row| {
            let (id, sha, filename, filetype, size, status, scan_time) = row.map_err(refused)?;
            Ok(SearchHit {
                task_id: TaskId(id),
                sha256: sha.parse().map_err(StoreError::Internal)?,
                filename,
                filetype,
                filesize: size as u64,
                status: status.parse().map_err(StoreError::Internal)?,
                scan_time,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(SearchPage {
        total: total as u64,
        hits,
    })
}

pub fn tags_of(conn: &Connection, sha256: Sha256) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT tag FROM sample_tags WHERE sha256 = ?1 ORDER BY added_at, tag")?;
    let rows = stmt.query_map([sha256.to_hex()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn add_tag(conn: &Connection, sha256: Sha256, tag: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO sample_tags (sha256, tag, added_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![sha256.to_hex(), tag, now_millis()])?;
    Ok(())
}

pub fn remove_tag(conn: &Connection, sha256: Sha256, tag: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM sample_tags WHERE sha256 = ?1 AND tag = ?2")?
        .execute(params![sha256.to_hex(), tag])?;
    Ok(())
}

pub fn tag_counts(conn: &Connection) -> StoreResult<Vec<TagCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tag, COUNT(*) FROM sample_tags GROUP BY tag ORDER BY COUNT(*) DESC, tag",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TagCount {
            tag: r.get(0)?,
            count: r.get::<_, i64>(1)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn note_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn note_of(row: (String, String, String, i64, i64)) -> StoreResult<Note> {
    let (id, sha, text, created_at, updated_at) = row;
    Ok(Note {
        id,
        sha256: sha.parse().map_err(StoreError::Internal)?,
        text,
        created_at,
        updated_at,
    })
}

pub fn add_note(conn: &Connection, sha256: Sha256, text: &str) -> StoreResult<Note> {
    let now = now_millis();
    let note = Note {
        id: uuid::Uuid::new_v4().simple().to_string(),
        sha256,
        text: text.to_owned(),
        created_at: now,
        updated_at: now,
    };
    conn.prepare_cached(
        "INSERT INTO notes (id, sha256, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![note.id, sha256.to_hex(), note.text, now])?;
    Ok(note)
}

pub fn edit_note(conn: &Connection, sha256: Sha256, id: &str, text: &str) -> StoreResult<Note> {
    let changed = conn
        .prepare_cached(
            "UPDATE notes SET text = ?1, updated_at = ?2 WHERE id = ?3 AND sha256 = ?4",
        )?
        .execute(params![text, now_millis(), id, sha256.to_hex()])?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "note {id:?} of sample {sha256}"
        )));
    }
    let row = conn
        .prepare_cached("SELECT id, sha256, text, created_at, updated_at FROM notes WHERE id = ?1")?
        .query_row([id], note_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("note {id:?}")))?;
    note_of(row)
}

pub fn delete_note(conn: &Connection, sha256: Sha256, id: &str) -> StoreResult<()> {
    let gone = conn
        .prepare_cached("DELETE FROM notes WHERE id = ?1 AND sha256 = ?2")?
        .execute(params![id, sha256.to_hex()])?;
    if gone == 0 {
        return Err(StoreError::NotFound(format!(
            "note {id:?} of sample {sha256}"
        )));
    }
    Ok(())
}

pub fn notes(conn: &Connection, sha256: Sha256, offset: u32, limit: u32) -> StoreResult<Vec<Note>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, sha256, text, created_at, updated_at FROM notes WHERE sha256 = ?1 \
         ORDER BY created_at, id LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![sha256.to_hex(), limit, offset], note_row)?;
    rows.map(|r| note_of(r?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_whole_words() {
        assert!(phrase_in(
            "Seen in the Contoso campaign",
            "contoso CAMPAIGN"
        ));
        assert!(phrase_in("evil.example/x", "evil"));
        assert!(!phrase_in("setupx.exe", "setup"));
        assert!(!phrase_in("0000abcd", "0000"));
        assert!(phrase_in("x 0000 y 0000abcd", "0000"));
        assert!(!phrase_in("anything", ""));
    }

    #[test]
    fn like_and_fts_quoting_keep_special_characters_literal() {
        assert_eq!(like_pattern(r"50%_a\b"), r"%50\%\_a\\b%");
        assert_eq!(fts_phrase(r#"say "hi""#), r#""say ""hi""""#);
    }
}
