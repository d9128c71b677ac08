//! Search bodies for the three search types.

use serde_json::{Value, json};

use super::mappings::{REPORT_KEYWORDS, REPORT_TEXT};
use crate::store::search::{SearchKind, SearchQuery, SortField};

/// `*` and `?` are the wildcard query's only special characters.
fn escape_wildcard(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Clauses matching `text` in the given keyword and text fields.
pub fn matching(kind: SearchKind, text: &str, keywords: &[&str], texts: &[&str]) -> Value {
    let mut should = Vec::new();
    match kind {
        // A substring of a whole value: words and phrases would also find
        // text that does not hold it character for character.
        SearchKind::Default => {
            let pattern = format!("*{}*", escape_wildcard(text));
            for f in keywords {
                should
                    .push(json!({"wildcard": {*f: {"value": pattern, "case_insensitive": true}}}));
            }
        }
        SearchKind::Exact => {
            for f in keywords {
                should.push(json!({"term": {*f: {"value": text, "case_insensitive": true}}}));
            }
            for f in texts {
                should.push(json!({"match_phrase": {*f: text}}));
            }
        }
        SearchKind::Advanced => {
            let fields: Vec<&str> = keywords.iter().chain(texts).copied().collect();
            should.push(json!({"query_string": {
                "query": text, "default_operator": "AND", "fields": fields,
                "allow_leading_wildcard": true,
            }}));
        }
    }
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

/// The report query: the text matched in the reports' own fields, or in
/// the tags or notes of their sample (`samples`).
pub fn reports(query: &SearchQuery, samples: &[String]) -> Value {
    let mut filter = Vec::new();
    if let Some(sha) = query.sha256 {
        filter.push(json!({"term": {"sha256": sha.to_hex()}}));
    }
    let mut must = Vec::new();
    if !query.text.trim().is_empty() {
        let mut own = matching(query.kind, query.text.trim(), REPORT_KEYWORDS, REPORT_TEXT);
        if !samples.is_empty() {
            own["bool"]["should"]
                .as_array_mut()
                .expect("should is an array")
                .push(json!({"terms": {"sha256": samples}}));
        }
        must.push(own);
    }
    json!({"bool": {"filter": filter, "must": must}})
}

fn sort_field(f: SortField) -> &'static str {
    match f {
        SortField::TaskId => "task_id",
        SortField::ScanTime => "scan_time",
        SortField::Filename => "filename",
        SortField::Sha256 => "sha256",
        SortField::Filesize => "filesize",
    }
}

/// The whole search body, paged and sorted; one hit per sample with
/// `latest_per_sample` (the newest matching task of each).
pub fn search_body(query: &SearchQuery, samples: &[String]) -> Value {
    let order = if query.ascending { "asc" } else { "desc" };
    let mut sort = vec![json!({sort_field(query.sort): {"order": order, "missing": "_last"}})];
    if query.sort != SortField::TaskId {
        sort.push(json!({"task_id": {"order": "desc"}}));
    }
    let mut body = json!({
        "query": reports(query, samples),
        "from": query.offset,
        "size": query.limit,
        "sort": sort,
        "track_total_hits": true,
        "_source": ["task_id", "sha256", "filename", "filetype", "filesize", "status", "scan_time"],
    });
    if query.latest_per_sample {
        body["collapse"] = json!({
            "field": "sha256",
            "inner_hits": {"name": "latest", "size": 1, "sort": [{"task_id": "desc"}],
                           "_source": ["task_id", "sha256", "filename", "filetype", "filesize",
                                       "status", "scan_time"]},
        });
        body["aggs"] = json!({"samples": {"cardinality": {"field": "sha256",
                                                          "precision_threshold": 40000}}});
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_specials_are_escaped_and_nothing_else() {
        assert_eq!(escape_wildcard(r"a*b?c\d (e)"), r"a\*b\?c\\d (e)");
    }
}
