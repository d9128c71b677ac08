//! The embedded task store: tasks and their file nodes in one SQLite file.

use std::path::Path;

use async_trait::async_trait;
use multiscanner_proto::domain::{
    NodeId, Sha256, Submission, Task, TaskId, TaskStatus, UnixMillis, now_millis,
};
use rusqlite::{OptionalExtension, Row, params, params_from_iter, types::Value as Sql};

use super::{
    Expired, NodeInfo, NodeOutcome, NodeWork, StoreError, StoreResult, TaskQuery, TaskStore,
    give_up_reason, sqlite::Db,
};

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256       TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    submission   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    submitted_at INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    error        TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_sample ON tasks (sha256, id);
CREATE TABLE IF NOT EXISTS nodes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    parent_id     INTEGER,
    depth         INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    filename      TEXT    NOT NULL,
    created_by    TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'assigned', 'done')),
    rank          INTEGER NOT NULL,
    assignment_id TEXT UNIQUE,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER,
    error         TEXT,
    UNIQUE (task_id, sha256)
);
CREATE INDEX IF NOT EXISTS nodes_queue ON nodes (state, rank, id);
CREATE INDEX IF NOT EXISTS nodes_by_task ON nodes (task_id);
",
    // Unfinished tasks, swept periodically for those whose nodes are all done.
    "CREATE INDEX tasks_open ON tasks (id) WHERE status IN ('Pending', 'Running');",
];

const TASK_COLUMNS: &str = "id, sha256, size, submission, status, submitted_at, started_at, \
     finished_at, error, (SELECT count(*) FROM nodes WHERE nodes.task_id = tasks.id)";

#[derive(Clone)]
pub struct SqliteTaskStore {
    db: Db,
}

impl SqliteTaskStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self {
            db: Db::open(path, MIGRATIONS).await?,
        })
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{what}: {e}"), rusqlite::types::Type::Text)
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    let sha: String = row.get(1)?;
    let submission: String = row.get(3)?;
    let status: String = row.get(4)?;
    Ok(Task {
        id: TaskId(row.get(0)?),
        sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
        size: row.get::<_, i64>(2)? as u64,
        submission: serde_json::from_str::<Submission>(&submission)
            .map_err(|e| corrupt("submission", e))?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        submitted_at: row.get(5)?,
        started_at: row.get(6)?,
        finished_at: row.get(7)?,
        error: row.get(8)?,
        node_count: row.get::<_, i64>(9)? as u32,
    })
}

/// Nodes of a task not yet done.
fn open_nodes(conn: &rusqlite::Connection, task: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM nodes WHERE task_id = ?1 AND state <> 'done'")?
        .query_row([task], |r| r.get(0))
}

fn load_task(conn: &rusqlite::Connection, id: TaskId) -> StoreResult<Task> {
    conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id.0], task_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

#[async_trait]
impl TaskStore for SqliteTaskStore {
    async fn create_task(
        &self,
        sha256: Sha256,
        size: u64,
        submission: &Submission,
        rank: i64,
    ) -> StoreResult<Task> {
        let json =
            serde_json::to_string(submission).map_err(|e| StoreError::Internal(e.to_string()))?;
        let submission = submission.clone();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let now = now_millis();
                tx.prepare_cached(
                    "INSERT INTO tasks (sha256, size, submission, status, submitted_at) \
                     VALUES (?1, ?2, ?3, 'Pending', ?4)",
                )?
                .execute(params![sha256.to_hex(), size as i64, json, now])?;
                let id = tx.last_insert_rowid();
                tx.prepare_cached(
                    "INSERT INTO nodes (task_id, depth, sha256, size, filename, state, rank) \
                     VALUES (?1, 0, ?2, ?3, ?4, 'queued', ?5)",
                )?
                .execute(params![
                    id,
                    sha256.to_hex(),
                    size as i64,
                    submission.filename,
                    rank
                ])?;
                let task = load_task(&tx, TaskId(id))?;
                tx.commit()?;
                Ok(task)
            })
            .await
    }

    async fn import_task(
        &self,
        sha256: Sha256,
        size: u64,
        submission: &Submission,
        finished_at: UnixMillis,
    ) -> StoreResult<Task> {
        let json =
            serde_json::to_string(submission).map_err(|e| StoreError::Internal(e.to_string()))?;
        let filename = submission.filename.clone();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                tx.prepare_cached(
                    "INSERT INTO tasks (sha256, size, submission, status, submitted_at, \
                     started_at, finished_at) VALUES (?1, ?2, ?3, 'Complete', ?4, ?5, ?5)",
                )?
                .execute(params![
                    sha256.to_hex(),
                    size as i64,
                    json,
                    now_millis(),
                    finished_at
                ])?;
                let id = tx.last_insert_rowid();
                tx.prepare_cached(
                    "INSERT INTO nodes (task_id, depth, sha256, size, filename, state, rank) \
                     VALUES (?1, 0, ?2, ?3, ?4, 'done', 0)",
                )?
                .execute(params![id, sha256.to_hex(), size as i64, filename])?;
                let task = load_task(&tx, TaskId(id))?;
                tx.commit()?;
                Ok(task)
            })
            .await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Task> {
        self.db.call(move |conn| load_task(conn, id)).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<Vec<Task>> {
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1");
        let mut args: Vec<Sql> = Vec::new();
        if !query.statuses.is_empty() {
            let marks = vec!["?"; query.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
            args.extend(query.statuses.iter().map(|s| Sql::Text(s.as_str().into())));
        }
        if let Some(sha) = query.sha256 {
            sql.push_str(" AND sha256 = ?");
            args.push(Sql::Text(sha.to_hex()));
        }
        if let Some(before) = query.before {
            sql.push_str(" AND id < ?");
            args.push(Sql::Integer(before.0));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push(Sql::Integer(i64::from(query.limit)));
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params_from_iter(args), task_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn latest_task_of(&self, sha256: Sha256) -> StoreResult<Option<Task>> {
        self.db
            .call(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {TASK_COLUMNS} FROM tasks WHERE sha256 = ?1 \
                             AND status NOT IN ('Failed', 'Cancelled') ORDER BY id DESC LIMIT 1"
                    ))?
                    .query_row([sha256.to_hex()], task_from_row)
                    .optional()?)
            })
            .await
    }

    async fn claim_next(
        &self,
        assignment_id: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<Option<NodeWork>> {
        let assignment_id = assignment_id.to_owned();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let node = tx
                    .prepare_cached(
                        "SELECT n.id, n.task_id, n.parent_id, n.depth, n.sha256, n.size, \
                         n.filename, n.attempts, t.submission, t.started_at \
                         FROM nodes n JOIN tasks t ON t.id = n.task_id \
                         WHERE n.state = 'queued' ORDER BY n.rank, n.id LIMIT 1",
                    )?
                    .query_row([], |r| {
                        let sha: String = r.get(4)?;
                        let sub: String = r.get(8)?;
                        let submission: Submission =
                            serde_json::from_str(&sub).map_err(|e| corrupt("submission", e))?;
                        Ok(NodeWork {
                            assignment_id: String::new(),
                            node_id: NodeId(r.get(0)?),
                            task_id: TaskId(r.get(1)?),
                            parent: r.get::<_, Option<i64>>(2)?.map(NodeId),
                            depth: r.get::<_, i64>(3)? as u32,
                            sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
                            size: r.get::<_, i64>(5)? as u64,
                            filename: r.get(6)?,
                            attempts: r.get::<_, i64>(7)? as u32 + 1,
                            modules: submission.modules.iter().map(|m| m.to_string()).collect(),
                            archive_password: submission.archive_password,
                            force: submission.force,
                            task_started_at: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
                        })
                    })
                    .optional()?;
                let Some(mut node) = node else {
                    return Ok(None);
                };
                node.assignment_id.clone_from(&assignment_id);
                tx.prepare_cached(
                    "UPDATE nodes SET state = 'assigned', assignment_id = ?1, \
                     attempts = attempts + 1, lease_until = ?3 WHERE id = ?2",
                )?
                .execute(params![assignment_id, node.node_id.0, lease_until])?;
                let now = now_millis();
                tx.prepare_cached(
                    "UPDATE tasks SET status = 'Running', started_at = ?1 \
                     WHERE id = ?2 AND status = 'Pending'",
                )?
                .execute(params![now, node.task_id.0])?;
                if node.task_started_at == 0 {
                    node.task_started_at = now;
                }
                tx.commit()?;
                Ok(Some(node))
            })
            .await
    }

    async fn requeue(&self, assignment_id: &str) -> StoreResult<()> {
        let assignment_id = assignment_id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "UPDATE nodes SET state = 'queued', assignment_id = NULL, \
                     attempts = max(attempts - 1, 0), lease_until = NULL \
                     WHERE assignment_id = ?1 AND state = 'assigned'",
                )?
                .execute([assignment_id])?;
                Ok(())
            })
            .await
    }

    async fn extend_leases(&self, ids: &[String], until: UnixMillis) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                for id in &ids {
                    tx.prepare_cached(
                        "UPDATE nodes SET lease_until = max(lease_until, ?2) \
                         WHERE assignment_id = ?1 AND state = 'assigned'",
                    )?
                    .execute(params![id, until])?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn drop_lease(&self, assignment_id: &str) -> StoreResult<()> {
        let id = assignment_id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached("UPDATE nodes SET lease_until = 0 WHERE assignment_id = ?1 AND state = 'assigned'")?
.execute([id],
                )?;
                Ok(())
            })
            .await
    }

    async fn expire_leases(&self, now: UnixMillis, max_attempts: u32) -> StoreResult<Vec<Expired>> {
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let expired: Vec<(i64, i64, Option<i64>, i64, String)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, task_id, parent_id, attempts, assignment_id FROM nodes \
                         WHERE state = 'assigned' AND lease_until < ?1",
                    )?;
                    let rows = stmt.query_map([now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut out = Vec::with_capacity(expired.len());
                for (node, task, parent, attempts, assignment_id) in expired {
                    let gave_up = attempts >= i64::from(max_attempts);
                    let mut task_done = false;
                    if gave_up {
                        tx.prepare_cached(
                            "UPDATE nodes SET state = 'done', error = ?2 WHERE id = ?1",
                        )?
                        .execute(params![node, give_up_reason(attempts)])?;
                        let open: i64 = open_nodes(&tx, task)?;
                        task_done = open == 0;
                    } else {
                        tx.prepare_cached(
                            "UPDATE nodes SET state = 'queued', assignment_id = NULL, \
                             lease_until = NULL WHERE id = ?1",
                        )?
                        .execute([node])?;
                    }
                    out.push(Expired {
                        assignment_id,
                        task_id: TaskId(task),
                        node_id: NodeId(node),
                        is_root: parent.is_none(),
                        gave_up,
                        task_done,
                    });
                }
                tx.commit()?;
                Ok(out)
            })
            .await
    }

    async fn finish_node(
        &self,
        assignment_id: &str,
        error: Option<&str>,
    ) -> StoreResult<NodeOutcome> {
        let assignment_id = assignment_id.to_owned();
        let error = error.map(str::to_owned);
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let task: Option<i64> = tx
                    .prepare_cached(
                        "UPDATE nodes SET state = 'done', error = ?2 \
                         WHERE assignment_id = ?1 AND state = 'assigned' RETURNING task_id",
                    )?
                    .query_row(params![assignment_id, error], |r| r.get(0))
                    .optional()?;
                let Some(task) = task else {
                    return Ok(NodeOutcome::Stale);
                };
                let open: i64 = open_nodes(&tx, task)?;
                tx.commit()?;
                Ok(if open == 0 {
                    NodeOutcome::TaskDone
                } else {
                    NodeOutcome::TaskStillRunning
                })
            })
            .await
    }

    async fn add_child(
        &self,
        assignment_id: &str,
        sha256: Sha256,
        size: u64,
        filename: &str,
        created_by: &str,
    ) -> StoreResult<Option<NodeId>> {
        let (assignment_id, filename, created_by) = (
            assignment_id.to_owned(),
            filename.to_owned(),
            created_by.to_owned(),
        );
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let parent: Option<(i64, i64, i64, i64)> = tx
                    .prepare_cached(
                        "SELECT id, task_id, depth, rank FROM nodes \
                         WHERE assignment_id = ?1 AND state = 'assigned'",
                    )?
                    .query_row([&assignment_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                let Some((parent, task, depth, rank)) = parent else {
                    return Err(StoreError::NotFound(format!("assignment {assignment_id}")));
                };
                let inserted = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO nodes (task_id, parent_id, depth, sha256, size, \
                     filename, created_by, state, rank) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8)",
                    )?
                    .execute(params![
                        task,
                        parent,
                        depth + 1,
                        sha256.to_hex(),
                        size as i64,
                        filename,
                        created_by,
                        rank
                    ])?;
                let id = (inserted == 1).then(|| NodeId(tx.last_insert_rowid()));
                tx.commit()?;
                Ok(id)
            })
            .await
    }

    async fn nodes(&self, task: TaskId) -> StoreResult<Vec<NodeInfo>> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, parent_id, depth, sha256, size, filename, created_by, error \
                     FROM nodes WHERE task_id = ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map([task.0], |r| {
                    let sha: String = r.get(3)?;
                    Ok(NodeInfo {
                        node_id: NodeId(r.get(0)?),
                        parent: r.get::<_, Option<i64>>(1)?.map(NodeId),
                        depth: r.get::<_, i64>(2)? as u32,
                        sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
                        size: r.get::<_, i64>(4)? as u64,
                        filename: r.get(5)?,
                        created_by: r.get(6)?,
                        error: r.get(7)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn finish_task(
        &self,
        id: TaskId,
        status: TaskStatus,
        error: Option<&str>,
        at: UnixMillis,
    ) -> StoreResult<Task> {
        let error = error.map(str::to_owned);
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let changed = tx
                    .prepare_cached(
                        "UPDATE tasks SET status = ?2, error = ?3, finished_at = ?4 \
                     WHERE id = ?1 AND status IN ('Pending', 'Running')",
                    )?
                    .execute(params![id.0, status.as_str(), error, at])?;
                if changed == 1 {
                    // Whatever was still queued will not run any more.
                    tx.prepare_cached(
                        "UPDATE nodes SET state = 'done' WHERE task_id = ?1 AND state = 'queued'",
                    )?
                    .execute([id.0])?;
                }
                let task = load_task(&tx, id)?;
                tx.commit()?;
                Ok(task)
            })
            .await
    }

    async fn assignments_of(&self, id: TaskId) -> StoreResult<Vec<String>> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT assignment_id FROM nodes WHERE task_id = ?1 AND state = 'assigned'",
                )?;
                let rows = stmt.query_map([id.0], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }

    async fn delete_task(&self, id: TaskId) -> StoreResult<()> {
        self.db
            .call(move |conn| {
                match conn
                    .prepare_cached("DELETE FROM tasks WHERE id = ?1")?
                    .execute([id.0])?
                {
                    0 => Err(StoreError::NotFound(format!("task {id}"))),
                    _ => Ok(()),
                }
            })
            .await
    }

    async fn tasks_to_complete(&self) -> StoreResult<Vec<TaskId>> {
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let ids = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id FROM tasks WHERE status IN ('Pending', 'Running') \
                         AND NOT EXISTS (SELECT 1 FROM nodes \
                         WHERE nodes.task_id = tasks.id AND state <> 'done')",
                    )?;
                    let rows = stmt.query_map([], |r| r.get(0).map(TaskId))?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                };
                tx.commit()?;
                Ok(ids)
            })
            .await
    }
}
