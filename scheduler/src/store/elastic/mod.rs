//! The report store on Elasticsearch or OpenSearch (the core engines: no
//! scripts, no ingest pipelines, no join, no delete-by-query are needed).
//!
//! - [`engine`]: the HTTP conversation and its errors.
//! - [`bulk`]: writes gathered into `_bulk` requests, with backpressure.
//! - [`mappings`]: the four indices and their explicit mappings.
//! - [`query`]: the search bodies.
//! - [`tags`]: tags and notes.
//!
//! URL: `http://HOST:PORT` (or `https://`, with `USER:PASSWORD@` if the
//! engine asks), optionally `?index=PREFIX&shards=N&replicas=N`; indices
//! are named `PREFIX-reports`, `PREFIX-results`, `PREFIX-samples`,
//! `PREFIX-notes` (prefix `multiscanner` by default).

mod bulk;
mod engine;
mod mappings;
mod query;
mod tags;

use async_trait::async_trait;
use elasticsearch::http::Method;
use multiscanner_proto::domain::{NodeId, Sha256, Task, TaskId, TaskStatus};
use serde_json::{Value, json};

use self::{
    bulk::{Action, Bulk},
    engine::{Body, Engine},
    mappings::Kind,
};
use super::{
    CacheKey, ModuleRecord, ReportStore, StoreError, StoreResult,
    search::{Curated, Note, SearchHit, SearchPage, SearchQuery, TagCount, check_window},
};

/// Documents read per page when listing.
const PAGE: usize = 1000;

#[derive(Debug)]
pub struct ElasticReportStore {
    engine: Engine,
    bulk: Bulk,
    prefix: String,
}

impl ElasticReportStore {
    /// Connects, installs the index templates and creates the indices that
    /// are missing.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let parsed = url::Url::parse(url).map_err(|e| StoreError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let mut prefix = "multiscanner".to_owned();
        let (mut shards, mut replicas) = (1u32, 1u32);
        for (k, v) in parsed.query_pairs() {
            let bad = |reason: String| StoreError::BadUrl {
                url: url.to_owned(),
                reason,
            };
            match &*k {
                "index" => prefix = valid_prefix(&v).map_err(bad)?,
                "shards" => shards = v.parse().map_err(|_| bad(format!("shards={v}")))?,
                "replicas" => replicas = v.parse().map_err(|_| bad(format!("replicas={v}")))?,
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?}; known: index, shards, replicas"
                    )));
                }
            }
        }
        let mut base = parsed.clone();
        base.set_query(None);
        let engine = Engine::new(base.as_str())?;
        let store = Self {
            bulk: Bulk::start(engine.clone()),
            engine,
            prefix,
        };
        store.install(shards, replicas).await?;
        Ok(store)
    }

    fn index(&self, kind: Kind) -> String {
        format!("{}-{}", self.prefix, kind.suffix())
    }

    async fn install(&self, shards: u32, replicas: u32) -> StoreResult<()> {
        for kind in Kind::ALL {
            let index = self.index(kind);
            let body = mappings::template(kind, &index, shards, replicas);
            self.engine
                .ok(
                    Method::Put,
                    &format!("/_index_template/{index}"),
                    Body::Json(body),
                )
                .await?;
            let (status, answer) = self
                .engine
                .call(Method::Put, &format!("/{index}"), Body::None)
                .await?;
            let exists = answer["error"]["type"] == "resource_already_exists_exception";
            if !(200..300).contains(&status) && !exists {
                return Err(StoreError::Internal(format!(
                    "cannot create index {index}: {}",
                    engine::reason(&answer)
                )));
            }
        }
        let indices: Vec<String> = Kind::ALL.iter().map(|k| self.index(*k)).collect();
        self.engine
            .ok(
                Method::Get,
                &format!(
                    "/_cluster/health/{}?wait_for_status=yellow&timeout=30s",
                    indices.join(",")
                ),
                Body::None,
            )
            .await?;
        Ok(())
    }

    /// Runs a search on one index.
    async fn search_in(&self, kind: Kind, body: Value) -> StoreResult<Value> {
        self.engine
            .ok(
                Method::Post,
                &format!("/{}/_search", self.index(kind)),
                Body::Json(body),
            )
            .await
    }

    /// Every hit of `query` on `kind`, sorted by `sort`, page by page.
    async fn all_hits(&self, kind: Kind, query: Value, sort: Value) -> StoreResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({"query": query, "size": PAGE, "sort": sort});
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let answer = self.search_in(kind, body).await?;
            let hits = answer["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let n = hits.len();
            after = hits.last().map(|h| h["sort"].clone());
            out.extend(hits);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    async fn refresh_index(&self, kind: Kind) -> StoreResult<()> {
        self.engine
            .ok(
                Method::Post,
                &format!("/{}/_refresh", self.index(kind)),
                Body::None,
            )
            .await
            .map(|_| ())
    }

    /// SHA-256s whose tags or notes match the search text.
    async fn matching_samples(&self, q: &SearchQuery) -> StoreResult<Vec<String>> {
        let text = q.text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (kind, keywords, texts) in [
            (Kind::Samples, &["tags"][..], &[][..]),
            (Kind::Notes, &["text.raw"][..], &["text"][..]),
        ] {
            let body = json!({
                "size": 0,
                "query": query::matching(q.kind, text, keywords, texts),
                "aggs": {"s": {"terms": {"field": "sha256",
                                          "size": super::search::MAX_SAMPLE_MATCHES}}},
            });
            let answer = self.search_in(kind, body).await?;
            for b in answer["aggregations"]["s"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(s) = b["key"].as_str() {
                    out.push(s.to_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn valid_prefix(p: &str) -> Result<String, String> {
    let ok = !p.is_empty()
        && p.len() <= 100
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !p.starts_with(['-', '_']);
    ok.then(|| p.to_owned()).ok_or_else(|| {
        format!("index prefix {p:?}: lower-case letters, digits, - and _ only, not first")
    })
}

fn result_id(task: TaskId, node: NodeId, module: &str) -> String {
    format!("{}-{}-{module}", task.0, node.0)
}

fn record_of(source: &Value) -> StoreResult<ModuleRecord> {
    let s = |k: &str| source[k].as_str().unwrap_or_default().to_owned();
    let outcome = if source["ok"].as_bool() == Some(true) {
        Ok(source["result"]["v"].clone())
    } else {
        Err(s("error"))
    };
    Ok(ModuleRecord {
        node_id: NodeId(
            source["node_id"]
                .as_i64()
                .ok_or_else(|| StoreError::Internal("a stored result has no node_id".into()))?,
        ),
        module: s("module"),
        module_version: s("module_version"),
        config_hash: s("config_hash"),
        outcome,
        duration_ms: source["duration_ms"].as_u64().unwrap_or(0),
    })
}

fn hit_of(source: &Value) -> Option<SearchHit> {
    Some(SearchHit {
        task_id: TaskId(source["task_id"].as_i64()?),
        sha256: source["sha256"].as_str()?.parse().ok()?,
        filename: source["filename"].as_str().unwrap_or_default().to_owned(),
        filetype: source["filetype"].as_str().unwrap_or_default().to_owned(),
        filesize: source["filesize"].as_u64().unwrap_or(0),
        status: source["status"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(TaskStatus::Complete),
        scan_time: source["scan_time"].as_i64(),
    })
}

fn report_doc(task: &Task, report: &Value) -> Value {
    let c = Curated::from_report(task, report);
    json!({
        "task_id": c.task_id, "sha256": c.sha256, "md5": c.md5, "sha1": c.sha1,
        "sha512": c.sha512, "filename": c.filename, "filetype": c.filetype,
        "mimetype": c.mimetype, "filesize": c.filesize, "ssdeep": c.ssdeep,
        "ssdeep_blocksize": c.ssdeep_blocksize, "ssdeep_grams": c.ssdeep_grams,
        "tlsh": c.tlsh, "yara_rules": c.yara_rules, "av_detections": c.av_detections,
        "child_sha256": c.child_sha256, "status": c.status,
        "submitted_at": c.submitted_at, "scan_time": c.scan_time,
        "text": c.text.lines().collect::<Vec<_>>(),
        "report": report,
    })
}

#[async_trait]
impl ReportStore for ElasticReportStore {
    async fn put_result(
        &self,
        task: TaskId,
        sha256: Sha256,
        record: &ModuleRecord,
    ) -> StoreResult<()> {
        let (ok, result, error) = match &record.outcome {
            Ok(v) => (true, json!({"v": v}), Value::Null),
            Err(e) => (false, Value::Null, json!(e)),
        };
        let doc = json!({
            "task_id": task.0, "node_id": record.node_id.0, "sha256": sha256.to_hex(),
            "module": record.module, "module_version": record.module_version,
            "config_hash": record.config_hash, "ok": ok, "result": result, "error": error,
            "duration_ms": record.duration_ms,
        });
        let id = result_id(task, record.node_id, &record.module);
        self.bulk
            .write(Action::Create, &self.index(Kind::Results), &id, Some(doc))
            .await
    }

    async fn results(&self, task: TaskId) -> StoreResult<Vec<ModuleRecord>> {
        // Searches see writes after a refresh; a task's results must all be
        // there when its report is assembled.
        self.refresh_index(Kind::Results).await?;
        let hits = self
            .all_hits(
                Kind::Results,
                json!({"term": {"task_id": task.0}}),
                json!([{"node_id": "asc"}, {"module": "asc"}]),
            )
            .await?;
        hits.iter().map(|h| record_of(&h["_source"])).collect()
    }

    async fn cached_keys(&self, sha256: Sha256) -> StoreResult<Vec<CacheKey>> {
        // Results written a moment ago (an extracted file analysed twice in
        // one task) must count.
        self.refresh_index(Kind::Results).await?;
        let hits = self
            .all_hits(
                Kind::Results,
                json!({"bool": {"filter": [{"term": {"sha256": sha256.to_hex()}},
                                           {"term": {"ok": true}}]}}),
                json!([{"task_id": "asc"}, {"node_id": "asc"}, {"module": "asc"}]),
            )
            .await?;
        let mut keys: Vec<CacheKey> = hits
            .iter()
            .map(|h| {
                let s = &h["_source"];
                let f = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                CacheKey {
                    module: f("module"),
                    module_version: f("module_version"),
                    config_hash: f("config_hash"),
                }
            })
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn cached_result(
        &self,
        sha256: Sha256,
        key: &CacheKey,
    ) -> StoreResult<Option<(TaskId, ModuleRecord)>> {
        let body = json!({
            "size": 1,
            "sort": [{"task_id": "desc"}],
            "query": {"bool": {"filter": [
                {"term": {"sha256": sha256.to_hex()}}, {"term": {"ok": true}},
                {"term": {"module": key.module}}, {"term": {"module_version": key.module_version}},
                {"term": {"config_hash": key.config_hash}},
            ]}},
        });
        let answer = self.search_in(Kind::Results, body).await?;
        match answer["hits"]["hits"].get(0) {
            Some(h) => {
                let s = &h["_source"];
                let task = TaskId(s["task_id"].as_i64().unwrap_or(0));
                Ok(Some((task, record_of(s)?)))
            }
            None => Ok(None),
        }
    }

    async fn put_report(&self, task: &Task, report: &Value) -> StoreResult<()> {
        self.bulk
            .write(
                Action::Index,
                &self.index(Kind::Reports),
                &task.id.0.to_string(),
                Some(report_doc(task, report)),
            )
            .await?;
        for tag in &task.submission.tags {
            if let Ok(tag) = super::search::valid_tag(tag) {
                self.change_tags(task.sha256, |tags| {
                    if !tags.contains(&tag) {
                        tags.push(tag.clone());
                    }
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn get_report(&self, task: TaskId) -> StoreResult<Option<Value>> {
        let path = format!(
            "/{}/_doc/{}?_source_includes=report",
            self.index(Kind::Reports),
            task.0
        );
        let (status, answer) = self.engine.call(Method::Get, &path, Body::None).await?;
        match status {
            200 => Ok(Some(answer["_source"]["report"].clone())),
            404 => Ok(None),
            _ => Err(StoreError::Internal(engine::reason(&answer))),
        }
    }

    async fn delete_task(&self, task: TaskId) -> StoreResult<()> {
        self.refresh_index(Kind::Results).await?;
        let hits = self
            .all_hits(
                Kind::Results,
                json!({"term": {"task_id": task.0}}),
                json!([{"node_id": "asc"}, {"module": "asc"}]),
            )
            .await?;
        let results = self.index(Kind::Results);
        for h in hits {
            if let Some(id) = h["_id"].as_str() {
                self.bulk.write(Action::Delete, &results, id, None).await?;
            }
        }
        self.bulk
            .write(
                Action::Delete,
                &self.index(Kind::Reports),
                &task.0.to_string(),
                None,
            )
            .await?;
        // A deleted task leaves searches and the result cache at once.
        self.refresh_index(Kind::Results).await?;
        self.refresh_index(Kind::Reports).await
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage> {
        check_window(query).map_err(StoreError::BadQuery)?;
        let samples = self.matching_samples(query).await?;
        let body = query::search_body(query, &samples);
        let answer = self.search_in(Kind::Reports, body).await?;
        let hits = answer["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let hits: Vec<SearchHit> = hits
            .iter()
            .filter_map(|h| {
                let latest = &h["inner_hits"]["latest"]["hits"]["hits"][0]["_source"];
                hit_of(if latest.is_object() {
                    latest
                } else {
                    &h["_source"]
                })
            })
            .collect();
        let total = if query.latest_per_sample {
            answer["aggregations"]["samples"]["value"]
                .as_u64()
                .unwrap_or(0)
        } else {
            answer["hits"]["total"]["value"].as_u64().unwrap_or(0)
        };
        Ok(SearchPage { total, hits })
    }

    async fn tags_of(&self, sha256: Sha256) -> StoreResult<Vec<String>> {
        Ok(self.sample_tags(sha256).await?.0)
    }

    async fn add_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>> {
        self.change_tags(sha256, |tags| {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        })
        .await
    }

    async fn remove_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>> {
        self.change_tags(sha256, |tags| tags.retain(|t| t != tag))
            .await
    }

    async fn tag_counts(&self) -> StoreResult<Vec<TagCount>> {
        self.count_tags().await
    }

    async fn add_note(&self, sha256: Sha256, text: &str) -> StoreResult<Note> {
        self.create_note(sha256, text).await
    }

    async fn edit_note(&self, sha256: Sha256, id: &str, text: &str) -> StoreResult<Note> {
        self.update_note(sha256, id, text).await
    }

    async fn delete_note(&self, sha256: Sha256, id: &str) -> StoreResult<()> {
        self.remove_note(sha256, id).await
    }

    async fn notes(&self, sha256: Sha256, offset: u32, limit: u32) -> StoreResult<Vec<Note>> {
        self.list_notes(sha256, offset, limit).await
    }

    async fn refresh(&self) -> StoreResult<()> {
        for kind in Kind::ALL {
            self.refresh_index(kind).await?;
        }
        Ok(())
    }
}
