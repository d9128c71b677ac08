//! The embedded report store: module results and merged reports in SQLite.

use std::path::Path;

use async_trait::async_trait;
use multiscanner_proto::domain::{NodeId, Sha256, Task, TaskId, now_millis};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{
    CacheKey, ModuleRecord, ReportStore, StoreError, StoreResult,
    search::{Note, SearchPage, SearchQuery, TagCount},
    sqlite::Db,
    sqlite_search as search,
};

// Stores made before migrations were counted have the first one already:
// it only creates what is missing.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS results (
    task_id        INTEGER NOT NULL,
    node_id        INTEGER NOT NULL,
    module         TEXT    NOT NULL,
    module_version TEXT    NOT NULL,
    result         TEXT,
    error          TEXT,
    duration_ms    INTEGER NOT NULL,
    PRIMARY KEY (task_id, node_id, module)
);
CREATE TABLE IF NOT EXISTS reports (
    task_id    INTEGER PRIMARY KEY,
    sha256     TEXT    NOT NULL,
    report     TEXT    NOT NULL,
    stored_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_sample ON reports (sha256, task_id);
",
    // The result cache: successful results found by sample, module, module
    // version and settings.
    "
ALTER TABLE results ADD COLUMN sha256 TEXT;
ALTER TABLE results ADD COLUMN config_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX results_cache ON results (sha256, module, module_version, config_hash)
    WHERE error IS NULL AND sha256 IS NOT NULL;
",
    // Search, tags and notes.
    super::sqlite_search::MIGRATION,
];

#[derive(Clone)]
pub struct SqliteReportStore {
    db: Db,
}

impl SqliteReportStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self {
            db: Db::open(path, MIGRATIONS).await?,
        })
    }
}

fn to_json(v: &Value) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

#[async_trait]
impl ReportStore for SqliteReportStore {
    async fn put_result(
        &self,
        task: TaskId,
        sha256: Sha256,
        record: &ModuleRecord,
    ) -> StoreResult<()> {
        let (result, error) = match &record.outcome {
            Ok(v) => (Some(to_json(v)?), None),
            Err(e) => (None, Some(e.clone())),
        };
        let r = record.clone();
        self.db
            .call(move |conn| {
                // The first stored result of (task, node, module) wins; a
                // repeat (a retried assignment) changes nothing.
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO results (task_id, node_id, module, module_version, \
                     result, error, duration_ms, sha256, config_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    task.0,
                    r.node_id.0,
                    r.module,
                    r.module_version,
                    result,
                    error,
                    r.duration_ms as i64,
                    sha256.to_hex(),
                    r.config_hash,
                ])?;
                Ok(())
            })
            .await
    }

    async fn results(&self, task: TaskId) -> StoreResult<Vec<ModuleRecord>> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM results WHERE task_id = ?1 \
                     ORDER BY node_id, module"
                ))?;
                let rows = stmt.query_map([task.0], raw_record)?;
                rows.map(|row| record(row?)).collect()
            })
            .await
    }

    async fn cached_keys(&self, sha256: Sha256) -> StoreResult<Vec<CacheKey>> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT module, module_version, config_hash FROM results \
                     WHERE sha256 = ?1 AND error IS NULL ORDER BY 1, 2, 3",
                )?;
                let rows = stmt.query_map([sha256.to_hex()], |r| {
                    Ok(CacheKey {
                        module: r.get(0)?,
                        module_version: r.get(1)?,
                        config_hash: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn cached_result(
        &self,
        sha256: Sha256,
        key: &CacheKey,
    ) -> StoreResult<Option<(TaskId, ModuleRecord)>> {
        let key = key.clone();
        self.db
            .call(move |conn| {
                let found = conn
                    .prepare_cached(&format!(
                        "SELECT task_id, {RECORD_COLUMNS} FROM results \
                             WHERE sha256 = ?1 AND module = ?2 AND module_version = ?3 \
                             AND config_hash = ?4 AND error IS NULL \
                             ORDER BY task_id DESC LIMIT 1"
                    ))?
                    .query_row(
                        params![
                            sha256.to_hex(),
                            key.module,
                            key.module_version,
                            key.config_hash
                        ],
                        |r| Ok((TaskId(r.get(0)?), raw_record_at(r, 1)?)),
                    )
                    .optional()?;
                found
                    .map(|(task, raw)| Ok((task, record(raw)?)))
                    .transpose()
            })
            .await
    }

    async fn put_report(&self, task: &Task, report: &Value) -> StoreResult<()> {
        let json = to_json(report)?;
        let (task, report) = (task.clone(), report.clone());
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                tx.prepare_cached(
                    "INSERT INTO reports (task_id, sha256, report, stored_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (task_id) DO UPDATE SET report = excluded.report",
                )?
                .execute(params![
                    task.id.0,
                    task.sha256.to_hex(),
                    json,
                    now_millis()
                ])?;
                search::index_report(&tx, &task, &report)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn get_report(&self, task: TaskId) -> StoreResult<Option<Value>> {
        let json: Option<String> = self
            .db
            .call(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT report FROM reports WHERE task_id = ?1")?
                    .query_row([task.0], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Internal(e.to_string())))
            .transpose()
    }

    async fn delete_task(&self, task: TaskId) -> StoreResult<()> {
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM results WHERE task_id = ?1")?
                    .execute([task.0])?;
                conn.prepare_cached("DELETE FROM reports WHERE task_id = ?1")?
                    .execute([task.0])?;
                search::unindex_report(conn, task)?;
                Ok(())
            })
            .await
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage> {
        let query = query.clone();
        self.db.call(move |conn| search::search(conn, &query)).await
    }

    async fn tags_of(&self, sha256: Sha256) -> StoreResult<Vec<String>> {
        self.db
            .call(move |conn| search::tags_of(conn, sha256))
            .await
    }

    async fn add_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>> {
        let tag = tag.to_owned();
        self.db
            .call(move |conn| {
                search::add_tag(conn, sha256, &tag)?;
                search::tags_of(conn, sha256)
            })
            .await
    }

    async fn remove_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>> {
        let tag = tag.to_owned();
        self.db
            .call(move |conn| {
                search::remove_tag(conn, sha256, &tag)?;
                search::tags_of(conn, sha256)
            })
            .await
    }

    async fn tag_counts(&self) -> StoreResult<Vec<TagCount>> {
        self.db.call(|conn| search::tag_counts(conn)).await
    }

    async fn add_note(&self, sha256: Sha256, text: &str) -> StoreResult<Note> {
        let text = text.to_owned();
        self.db
            .call(move |conn| search::add_note(conn, sha256, &text))
            .await
    }

    async fn edit_note(&self, sha256: Sha256, id: &str, text: &str) -> StoreResult<Note> {
        let (id, text) = (id.to_owned(), text.to_owned());
        self.db
            .call(move |conn| search::edit_note(conn, sha256, &id, &text))
            .await
    }

    async fn delete_note(&self, sha256: Sha256, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.db
            .call(move |conn| search::delete_note(conn, sha256, &id))
            .await
    }

    async fn notes(&self, sha256: Sha256, offset: u32, limit: u32) -> StoreResult<Vec<Note>> {
        self.db
            .call(move |conn| search::notes(conn, sha256, offset, limit))
            .await
    }
}

const RECORD_COLUMNS: &str =
    "node_id, module, module_version, config_hash, result, error, duration_ms";

/// A result row as read, before its JSON is parsed.
type RawRecord = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

fn raw_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    raw_record_at(r, 0)
}

fn raw_record_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RawRecord> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
    ))
}

fn record(raw: RawRecord) -> StoreResult<ModuleRecord> {
    let (node, module, module_version, config_hash, result, error, ms) = raw;
    let outcome = match (result, error) {
        (Some(json), _) => {
            Ok(serde_json::from_str(&json).map_err(|e| StoreError::Internal(e.to_string()))?)
        }
        (None, e) => Err(e.unwrap_or_default()),
    };
    Ok(ModuleRecord {
        node_id: NodeId(node),
        module,
        module_version,
        config_hash,
        outcome,
        duration_ms: ms as u64,
    })
}
