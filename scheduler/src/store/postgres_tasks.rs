//! The task store on PostgreSQL, for several schedulers sharing one queue.
//! Nodes are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//! never take the same node. Migrations are embedded and applied on start
//! under an advisory lock.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use multiscanner_proto::domain::{
    NodeId, Sha256, Submission, Task, TaskId, TaskStatus, UnixMillis, now_millis,
};
use tokio_postgres::{NoTls, Row, types::ToSql};

use super::{
    Expired, NodeInfo, NodeOutcome, NodeWork, StoreError, StoreResult, TaskQuery, TaskStore,
    give_up_reason,
};

/// Schema versions, applied in order; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE tasks (
    id           BIGSERIAL PRIMARY KEY,
    sha256       TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    submission   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    submitted_at BIGINT  NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    error        TEXT
);
CREATE INDEX tasks_by_sample ON tasks (sha256, id);
CREATE TABLE nodes (
    id            BIGSERIAL PRIMARY KEY,
    task_id       BIGINT  NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    parent_id     BIGINT,
    depth         INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    filename      TEXT    NOT NULL,
    created_by    TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'assigned', 'done')),
    rank          BIGINT  NOT NULL,
    assignment_id TEXT UNIQUE,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   BIGINT,
    error         TEXT,
    UNIQUE (task_id, sha256)
);
CREATE INDEX nodes_queue ON nodes (rank, id) WHERE state = 'queued';
CREATE INDEX nodes_by_task ON nodes (task_id);
CREATE INDEX nodes_leases ON nodes (lease_until) WHERE state = 'assigned';
",
    // Unfinished tasks, swept periodically for those whose nodes are all done.
    "CREATE INDEX tasks_open ON tasks (id) WHERE status IN ('Pending', 'Running')",
];

/// Arbitrary key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6d75_6c74_6973_636e;

const TASK_COLUMNS: &str = "id, sha256, size, submission, status, submitted_at, started_at, \
     finished_at, error, (SELECT count(*) FROM nodes WHERE nodes.task_id = tasks.id)";

#[derive(Clone)]
pub struct PostgresTaskStore {
    pool: Pool,
}

/// Errors that go away by themselves (the server is down, restarting, out
/// of connections, or a transaction lost a race) are `Unavailable`: callers
/// retry those. The rest are bugs or corruption.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    let transient = match e.as_db_error() {
        None => true,
        // SQLSTATE classes: 08 connection exception, 40 transaction
        // rollback (serialization failure, deadlock), 53 insufficient
        // resources, 57 operator intervention (shutdown, restart).
        Some(db) => ["08", "40", "53", "57"]
            .iter()
            .any(|class| db.code().code().starts_with(class)),
    };
    if transient || e.is_closed() {
        StoreError::Unavailable(format!("PostgreSQL: {e}"))
    } else {
        StoreError::Internal(format!("PostgreSQL: {e}"))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: {e}"))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in the task store: {e}"))
}

fn task_from_row(row: &Row) -> StoreResult<Task> {
    let sha: String = row.get(1);
    let submission: String = row.get(3);
    let status: String = row.get(4);
    Ok(Task {
        id: TaskId(row.get(0)),
        sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
        size: row.get::<_, i64>(2) as u64,
        submission: serde_json::from_str(&submission).map_err(|e| corrupt("submission", e))?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        submitted_at: row.get(5),
        started_at: row.get(6),
        finished_at: row.get(7),
        error: row.get(8),
        node_count: row.get::<_, i64>(9) as u32,
    })
}

impl PostgresTaskStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`) and
    /// applies the migrations this version knows.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::BadUrl {
            url: redact(url),
            reason: format!("{e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: with the server unreachable, a call fails within
        // seconds with `Unavailable` instead of hanging.
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        )
        .await
        .map_err(db_error)?;
        let applied: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            tx.batch_execute(sql).await.map_err(db_error)?;
            let version = i as i32 + 1;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// A URL fit for messages: the password replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Nodes of a task not yet done.
async fn open_nodes(c: &impl deadpool_postgres::GenericClient, task: i64) -> StoreResult<i64> {
    Ok(c.query_one(
        "SELECT count(*) FROM nodes WHERE task_id = $1 AND state <> 'done'",
        &[&task],
    )
    .await
    .map_err(db_error)?
    .get(0))
}

async fn load_task(c: &impl deadpool_postgres::GenericClient, id: TaskId) -> StoreResult<Task> {
    let row = c
        .query_opt(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"),
            &[&id.0],
        )
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
    task_from_row(&row)
}

#[async_trait]
impl TaskStore for PostgresTaskStore {
    async fn create_task(
        &self,
        sha256: Sha256,
        size: u64,
        submission: &Submission,
        rank: i64,
    ) -> StoreResult<Task> {
        let json =
            serde_json::to_string(submission).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let hex = sha256.to_hex();
        let id: i64 = tx
            .query_one(
                "INSERT INTO tasks (sha256, size, submission, status, submitted_at) \
                 VALUES ($1, $2, $3, 'Pending', $4) RETURNING id",
                &[&hex, &(size as i64), &json, &now_millis()],
            )
            .await
            .map_err(db_error)?
            .get(0);
        tx.execute(
            "INSERT INTO nodes (task_id, depth, sha256, size, filename, state, rank) \
             VALUES ($1, 0, $2, $3, $4, 'queued', $5)",
            &[&id, &hex, &(size as i64), &submission.filename, &rank],
        )
        .await
        .map_err(db_error)?;
        let task = load_task(&tx, TaskId(id)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(task)
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
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let hex = sha256.to_hex();
        let id: i64 = tx
            .query_one(
                "INSERT INTO tasks (sha256, size, submission, status, submitted_at, started_at, \
                 finished_at) VALUES ($1, $2, $3, 'Complete', $4, $5, $5) RETURNING id",
                &[&hex, &(size as i64), &json, &now_millis(), &finished_at],
            )
            .await
            .map_err(db_error)?
            .get(0);
        tx.execute(
            "INSERT INTO nodes (task_id, depth, sha256, size, filename, state, rank) \
             VALUES ($1, 0, $2, $3, $4, 'done', 0)",
            &[&id, &hex, &(size as i64), &submission.filename],
        )
        .await
        .map_err(db_error)?;
        let task = load_task(&tx, TaskId(id)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(task)
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Task> {
        load_task(&self.client().await?, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<Vec<Task>> {
        let statuses: Vec<String> = query
            .statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let sha = query.sha256.map(|s| s.to_hex());
        let before = query.before.map(|t| t.0);
        let limit = i64::from(query.limit);
        let params: [&(dyn ToSql + Sync); 4] = [&statuses, &sha, &before, &limit];
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks \
                     WHERE (cardinality($1::text[]) = 0 OR status = ANY($1)) \
                     AND ($2::text IS NULL OR sha256 = $2) \
                     AND ($3::bigint IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4"
                ),
                &params,
            )
            .await
            .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn latest_task_of(&self, sha256: Sha256) -> StoreResult<Option<Task>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE sha256 = $1 \
                     AND status NOT IN ('Failed', 'Cancelled') ORDER BY id DESC LIMIT 1"
                ),
                &[&sha256.to_hex()],
            )
            .await
            .map_err(db_error)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn claim_next(
        &self,
        assignment_id: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<Option<NodeWork>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // SKIP LOCKED: a node another scheduler is claiming is passed over,
        // never waited for or taken twice.
        let row = tx
            .query_opt(
                "UPDATE nodes SET state = 'assigned', assignment_id = $1, attempts = attempts + 1, \
                 lease_until = $2 \
                 WHERE id = (SELECT id FROM nodes WHERE state = 'queued' \
                             ORDER BY rank, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, task_id, parent_id, depth, sha256, size, filename, attempts",
                &[&assignment_id, &lease_until],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let task_id: i64 = row.get(1);
        let now = now_millis();
        let task = tx
            .query_one(
                "UPDATE tasks SET status = CASE WHEN status = 'Pending' THEN 'Running' ELSE status END, \
                 started_at = coalesce(started_at, $2) WHERE id = $1 \
                 RETURNING submission, started_at",
                &[&task_id, &now],
            )
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let submission: Submission = serde_json::from_str(&task.get::<_, String>(0))
            .map_err(|e| corrupt("submission", e))?;
        let sha: String = row.get(4);
        Ok(Some(NodeWork {
            assignment_id: assignment_id.to_owned(),
            task_id: TaskId(task_id),
            node_id: NodeId(row.get(0)),
            parent: row.get::<_, Option<i64>>(2).map(NodeId),
            depth: row.get::<_, i32>(3) as u32,
            sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
            size: row.get::<_, i64>(5) as u64,
            filename: row.get(6),
            modules: submission.modules.iter().map(|m| m.to_string()).collect(),
            archive_password: submission.archive_password,
            force: submission.force,
            attempts: row.get::<_, i32>(7) as u32,
            task_started_at: task.get(1),
        }))
    }

    async fn requeue(&self, assignment_id: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE nodes SET state = 'queued', assignment_id = NULL, \
                 attempts = greatest(attempts - 1, 0), lease_until = NULL \
                 WHERE assignment_id = $1 AND state = 'assigned'",
                &[&assignment_id],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn extend_leases(&self, ids: &[String], until: UnixMillis) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE nodes SET lease_until = greatest(lease_until, $2) \
                 WHERE assignment_id = ANY($1) AND state = 'assigned'",
                &[&ids, &until],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn drop_lease(&self, assignment_id: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE nodes SET lease_until = 0 WHERE assignment_id = $1 AND state = 'assigned'",
                &[&assignment_id],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn expire_leases(&self, now: UnixMillis, max_attempts: u32) -> StoreResult<Vec<Expired>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // SKIP LOCKED: another scheduler reaping at the same time takes the
        // other expired nodes; none is reaped twice.
        let rows = tx
            .query(
                "SELECT id, task_id, parent_id, attempts, assignment_id FROM nodes \
                 WHERE state = 'assigned' AND lease_until < $1 FOR UPDATE SKIP LOCKED",
                &[&now],
            )
            .await
            .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (node, task, parent, attempts, assignment_id): (
                i64,
                i64,
                Option<i64>,
                i32,
                String,
            ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let gave_up = i64::from(attempts) >= i64::from(max_attempts);
            let mut task_done = false;
            if gave_up {
                tx.execute(
                    "UPDATE nodes SET state = 'done', error = $2 WHERE id = $1",
                    &[&node, &give_up_reason(i64::from(attempts))],
                )
                .await
                .map_err(db_error)?;
                let open: i64 = open_nodes(&tx, task).await?;
                task_done = open == 0;
            } else {
                tx.execute(
                    "UPDATE nodes SET state = 'queued', assignment_id = NULL, lease_until = NULL \
                     WHERE id = $1",
                    &[&node],
                )
                .await
                .map_err(db_error)?;
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
        tx.commit().await.map_err(db_error)?;
        Ok(out)
    }

    async fn finish_node(
        &self,
        assignment_id: &str,
        error: Option<&str>,
    ) -> StoreResult<NodeOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let row = tx
            .query_opt(
                "UPDATE nodes SET state = 'done', error = $2 \
                 WHERE assignment_id = $1 AND state = 'assigned' RETURNING task_id",
                &[&assignment_id, &error],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(NodeOutcome::Stale);
        };
        let task: i64 = row.get(0);
        let open: i64 = open_nodes(&tx, task).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(if open == 0 {
            NodeOutcome::TaskDone
        } else {
            NodeOutcome::TaskStillRunning
        })
    }

    async fn add_child(
        &self,
        assignment_id: &str,
        sha256: Sha256,
        size: u64,
        filename: &str,
        created_by: &str,
    ) -> StoreResult<Option<NodeId>> {
        let client = self.client().await?;
        let parent = client
            .query_opt(
                "SELECT id, task_id, depth, rank FROM nodes \
                 WHERE assignment_id = $1 AND state = 'assigned'",
                &[&assignment_id],
            )
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::NotFound(format!("assignment {assignment_id}")))?;
        let (parent_id, task, depth, rank): (i64, i64, i32, i64) =
            (parent.get(0), parent.get(1), parent.get(2), parent.get(3));
        let row = client
            .query_opt(
                "INSERT INTO nodes (task_id, parent_id, depth, sha256, size, filename, \
                 created_by, state, rank) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8) \
                 ON CONFLICT (task_id, sha256) DO NOTHING RETURNING id",
                &[
                    &task,
                    &parent_id,
                    &(depth + 1),
                    &sha256.to_hex(),
                    &(size as i64),
                    &filename,
                    &created_by,
                    &rank,
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| NodeId(r.get(0))))
    }

    async fn nodes(&self, task: TaskId) -> StoreResult<Vec<NodeInfo>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, parent_id, depth, sha256, size, filename, created_by, error \
                 FROM nodes WHERE task_id = $1 ORDER BY id",
                &[&task.0],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let sha: String = r.get(3);
                Ok(NodeInfo {
                    node_id: NodeId(r.get(0)),
                    parent: r.get::<_, Option<i64>>(1).map(NodeId),
                    depth: r.get::<_, i32>(2) as u32,
                    sha256: sha.parse().map_err(|e| corrupt("sha256", e))?,
                    size: r.get::<_, i64>(4) as u64,
                    filename: r.get(5),
                    created_by: r.get(6),
                    error: r.get(7),
                })
            })
            .collect()
    }

    async fn finish_task(
        &self,
        id: TaskId,
        status: TaskStatus,
        error: Option<&str>,
        at: UnixMillis,
    ) -> StoreResult<Task> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let changed = tx
            .execute(
                "UPDATE tasks SET status = $2, error = $3, finished_at = $4 \
                 WHERE id = $1 AND status IN ('Pending', 'Running')",
                &[&id.0, &status.as_str(), &error, &at],
            )
            .await
            .map_err(db_error)?;
        if changed == 1 {
            tx.execute(
                "UPDATE nodes SET state = 'done' WHERE task_id = $1 AND state = 'queued'",
                &[&id.0],
            )
            .await
            .map_err(db_error)?;
        }
        let task = load_task(&tx, id).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(task)
    }

    async fn assignments_of(&self, id: TaskId) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT assignment_id FROM nodes WHERE task_id = $1 AND state = 'assigned'",
                &[&id.0],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn delete_task(&self, id: TaskId) -> StoreResult<()> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM tasks WHERE id = $1", &[&id.0])
            .await
            .map_err(db_error)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn tasks_to_complete(&self) -> StoreResult<Vec<TaskId>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id FROM tasks WHERE status IN ('Pending', 'Running') \
                 AND NOT EXISTS (SELECT 1 FROM nodes \
                 WHERE nodes.task_id = tasks.id AND state <> 'done') ORDER BY id",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| TaskId(r.get(0))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://ms:secret@db:5432/tasks"),
            "postgres://ms:***@db:5432/tasks"
        );
        assert_eq!(redact("postgres://db/tasks"), "postgres://db/tasks");
    }
}
