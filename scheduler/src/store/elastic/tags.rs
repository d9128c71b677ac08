//! Tags (on the sample's document, changed with optimistic concurrency:
//! read, change, write only if nobody wrote in between) and notes.
//!
//! Both are written with `refresh=wait_for`, so that once a call returns,
//! searches and listings show the change.

use elasticsearch::http::Method;
use multiscanner_proto::domain::{Sha256, now_millis};
use serde_json::{Value, json};

use super::{ElasticReportStore, engine::Body, engine::reason, mappings::Kind};
use crate::store::{
    StoreError, StoreResult,
    search::{Note, TagCount},
};

/// Attempts at a tag change that races with another.
const CONFLICT_RETRIES: u32 = 20;

impl ElasticReportStore {
    /// The sample's tags and, if its document exists, its version
    /// (`if_seq_no`, `if_primary_term`).
    pub(super) async fn sample_tags(
        &self,
        sha256: Sha256,
    ) -> StoreResult<(Vec<String>, Option<(u64, u64)>)> {
        let path = format!("/{}/_doc/{}", self.index(Kind::Samples), sha256.to_hex());
        let (status, answer) = self.engine.call(Method::Get, &path, Body::None).await?;
        match status {
            200 => {
                let tags = answer["_source"]["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect();
                let version = answer["_seq_no"]
                    .as_u64()
                    .zip(answer["_primary_term"].as_u64());
                Ok((tags, version))
            }
            404 => Ok((Vec::new(), None)),
            _ => Err(StoreError::Internal(reason(&answer))),
        }
    }

    /// Applies `change` to the sample's tags; returns them as stored.
    pub(super) async fn change_tags(
        &self,
        sha256: Sha256,
        change: impl Fn(&mut Vec<String>),
    ) -> StoreResult<Vec<String>> {
        let index = self.index(Kind::Samples);
        for _ in 0..CONFLICT_RETRIES {
            let (mut tags, version) = self.sample_tags(sha256).await?;
            let before = tags.clone();
            change(&mut tags);
            if tags == before && version.is_some() {
                return Ok(tags);
            }
            let condition = match version {
                Some((seq, term)) => format!("if_seq_no={seq}&if_primary_term={term}"),
                None => "op_type=create".to_owned(),
            };
            let path = format!(
                "/{index}/_doc/{}?{condition}&refresh=wait_for",
                sha256.to_hex()
            );
            let doc = json!({"sha256": sha256.to_hex(), "tags": tags, "updated_at": now_millis()});
            let (status, answer) = self
                .engine
                .call(Method::Put, &path, Body::Json(doc))
                .await?;
            match status {
                200 | 201 => return Ok(tags),
                409 => continue,
                _ => return Err(StoreError::Internal(reason(&answer))),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the tags of {sha256} keep changing under this write; try again"
        )))
    }

    pub(super) async fn count_tags(&self) -> StoreResult<Vec<TagCount>> {
        let body = json!({"size": 0, "aggs": {"t": {"terms": {"field": "tags", "size": 10000}}}});
        let answer = self.search_in(Kind::Samples, body).await?;
        let mut out: Vec<TagCount> = answer["aggregations"]["t"]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some(TagCount {
                    tag: b["key"].as_str()?.to_owned(),
                    count: b["doc_count"].as_u64()?,
                })
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.tag.cmp(&b.tag)));
        Ok(out)
    }

    pub(super) async fn create_note(&self, sha256: Sha256, text: &str) -> StoreResult<Note> {
        let now = now_millis();
        let note = Note {
            id: uuid::Uuid::new_v4().simple().to_string(),
            sha256,
            text: text.to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.write_note(&note, "op_type=create").await?;
        Ok(note)
    }

    async fn write_note(&self, note: &Note, condition: &str) -> StoreResult<()> {
        let path = format!(
            "/{}/_doc/{}?{condition}&refresh=wait_for",
            self.index(Kind::Notes),
            note.id
        );
        let doc = json!({
            "note_id": note.id, "sha256": note.sha256.to_hex(), "text": note.text,
            "created_at": note.created_at, "updated_at": note.updated_at,
        });
        self.engine
            .ok(Method::Put, &path, Body::Json(doc))
            .await
            .map(|_| ())
    }

    /// The note `id` of sample `sha256`, or NotFound.
    async fn note(&self, sha256: Sha256, id: &str) -> StoreResult<Note> {
        let not_found = || StoreError::NotFound(format!("note {id:?} of sample {sha256}"));
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) || id.is_empty() {
            return Err(not_found());
        }
        let path = format!("/{}/_doc/{id}", self.index(Kind::Notes));
        let (status, answer) = self.engine.call(Method::Get, &path, Body::None).await?;
        match status {
            200 => note_of(&answer["_source"])
                .filter(|n| n.sha256 == sha256)
                .ok_or_else(not_found),
            404 => Err(not_found()),
            _ => Err(StoreError::Internal(reason(&answer))),
        }
    }

    pub(super) async fn update_note(
        &self,
        sha256: Sha256,
        id: &str,
        text: &str,
    ) -> StoreResult<Note> {
        let mut note = self.note(sha256, id).await?;
        note.text = text.to_owned();
        note.updated_at = now_millis();
        self.write_note(&note, "op_type=index").await?;
        Ok(note)
    }

    pub(super) async fn remove_note(&self, sha256: Sha256, id: &str) -> StoreResult<()> {
        let note = self.note(sha256, id).await?;
        let path = format!(
            "/{}/_doc/{}?refresh=wait_for",
            self.index(Kind::Notes),
            note.id
        );
        self.engine
            .ok(Method::Delete, &path, Body::None)
            .await
            .map(|_| ())
    }

    pub(super) async fn list_notes(
        &self,
        sha256: Sha256,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<Note>> {
        let body = json!({
            "from": offset, "size": limit,
            "query": {"term": {"sha256": sha256.to_hex()}},
            "sort": [{"created_at": "asc"}, {"note_id": "asc"}],
        });
        let answer = self.search_in(Kind::Notes, body).await?;
        Ok(answer["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| note_of(&h["_source"]))
            .collect())
    }
}

fn note_of(s: &Value) -> Option<Note> {
    Some(Note {
        id: s["note_id"].as_str()?.to_owned(),
        sha256: s["sha256"].as_str()?.parse().ok()?,
        text: s["text"].as_str()?.to_owned(),
        created_at: s["created_at"].as_i64()?,
        updated_at: s["updated_at"].as_i64()?,
    })
}
