//! The embedded report store: module results and merged reports in SQLite.

use std::path::Path;

use async_trait::async_trait;
use multiscanner_proto::domain::{NodeId, Sha256, TaskId, now_millis};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{ModuleRecord, ReportStore, StoreError, StoreResult, sqlite::Db};

const SCHEMA: &str = "
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
";

#[derive(Clone)]
pub struct SqliteReportStore {
    db: Db,
}

impl SqliteReportStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self {
            db: Db::open(path, SCHEMA).await?,
        })
    }
}

fn to_json(v: &Value) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

#[async_trait]
impl ReportStore for SqliteReportStore {
    async fn put_result(&self, task: TaskId, record: &ModuleRecord) -> StoreResult<()> {
        let (result, error) = match &record.outcome {
            Ok(v) => (Some(to_json(v)?), None),
            Err(e) => (None, Some(e.clone())),
        };
        let r = record.clone();
        self.db
            .call(move |conn| {
                // The first stored result of (task, node, module) wins; a
                // repeat (a retried assignment) changes nothing.
                conn.execute(
                    "INSERT OR IGNORE INTO results (task_id, node_id, module, module_version, \
                     result, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        task.0,
                        r.node_id.0,
                        r.module,
                        r.module_version,
                        result,
                        error,
                        r.duration_ms as i64
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn results(&self, task: TaskId) -> StoreResult<Vec<ModuleRecord>> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT node_id, module, module_version, result, error, duration_ms \
                     FROM results WHERE task_id = ?1 ORDER BY node_id, module",
                )?;
                let rows = stmt.query_map([task.0], |r| {
                    let result: Option<String> = r.get(3)?;
                    let error: Option<String> = r.get(4)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        result,
                        error,
                        r.get::<_, i64>(5)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (node, module, version, result, error, ms) = row?;
                    let outcome = match (result, error) {
                        (Some(json), _) => Ok(serde_json::from_str(&json)
                            .map_err(|e| StoreError::Internal(e.to_string()))?),
                        (None, e) => Err(e.unwrap_or_default()),
                    };
                    out.push(ModuleRecord {
                        node_id: NodeId(node),
                        module,
                        module_version: version,
                        outcome,
                        duration_ms: ms as u64,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn put_report(&self, task: TaskId, sha256: Sha256, report: &Value) -> StoreResult<()> {
        let json = to_json(report)?;
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO reports (task_id, sha256, report, stored_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (task_id) DO UPDATE SET report = excluded.report",
                    params![task.0, sha256.to_hex(), json, now_millis()],
                )?;
                Ok(())
            })
            .await
    }

    async fn get_report(&self, task: TaskId) -> StoreResult<Option<Value>> {
        let json: Option<String> = self
            .db
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT report FROM reports WHERE task_id = ?1",
                        [task.0],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Internal(e.to_string())))
            .transpose()
    }

    async fn delete_task(&self, task: TaskId) -> StoreResult<()> {
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM results WHERE task_id = ?1", [task.0])?;
                conn.execute("DELETE FROM reports WHERE task_id = ?1", [task.0])?;
                Ok(())
            })
            .await
    }
}
