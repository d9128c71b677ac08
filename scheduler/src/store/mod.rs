//! Storage behind traits: tasks ([`TaskStore`]), reports ([`ReportStore`])
//! and samples ([`BlobStore`]). Each backend lives in its own file; a
//! storage URL picks one ([`open`]).

pub mod elastic;
pub mod local_blobs;
pub mod postgres_tasks;
pub mod s3_blobs;
pub mod search;
pub mod sqlite;
pub mod sqlite_reports;
mod sqlite_search;
pub mod sqlite_tasks;

use std::{path::Path, pin::Pin, sync::Arc};

use async_trait::async_trait;
use multiscanner_proto::domain::{
    NodeId, Sha256, Submission, Task, TaskId, TaskStatus, UnixMillis,
};
use search::{Note, SearchPage, SearchQuery, TagCount};
use serde_json::Value;
use tokio::io::AsyncRead;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("invalid storage URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The search engine refused a query (its own words).
    #[error("the search was refused: {0}")]
    BadQuery(String),
    #[error("storage error: {0}")]
    Internal(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A file node waiting to be analysed or being analysed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeWork {
    pub assignment_id: String,
    pub task_id: TaskId,
    pub node_id: NodeId,
    pub parent: Option<NodeId>,
    pub depth: u32,
    pub sha256: Sha256,
    pub size: u64,
    pub filename: String,
    pub modules: Vec<String>,
    pub archive_password: Option<String>,
    /// Run every module: cached results do not stand in.
    pub force: bool,
    pub attempts: u32,
    /// When the task's first node was assigned (its deadline counts from
    /// there).
    pub task_started_at: UnixMillis,
}

/// A node of a task's tree, for report assembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: NodeId,
    pub parent: Option<NodeId>,
    pub depth: u32,
    pub sha256: Sha256,
    pub size: u64,
    pub filename: String,
    pub created_by: Option<String>,
    pub error: Option<String>,
}

/// Filter and page of a task listing.
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    pub statuses: Vec<TaskStatus>,
    pub sha256: Option<Sha256>,
    /// Only tasks with an id below this one (paging newest first).
    pub before: Option<TaskId>,
    pub limit: u32,
}

/// A node whose lease ran out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub assignment_id: String,
    pub task_id: TaskId,
    pub node_id: NodeId,
    pub is_root: bool,
    /// It had used all its attempts and was finished with an error.
    pub gave_up: bool,
    /// Giving up on it left the task with no open node.
    pub task_done: bool,
}

/// Where a node enters the queue: its enqueue time minus `aging_ms` per
/// priority level. Taking the lowest rank first is the same as taking the
/// highest of `priority + waited / aging_ms`: priority first, first come
/// first served within a priority, and a waiting node gains one level per
/// `aging_ms`, so low priorities still progress under a constant stream of
/// high ones. Unlike that score, the rank never changes, so it is indexed.
pub fn queue_rank(priority: u8, enqueued_at: UnixMillis, aging_ms: i64) -> i64 {
    enqueued_at - i64::from(priority) * aging_ms
}

/// The error recorded on a node abandoned after its last attempt.
pub fn give_up_reason(attempts: i64) -> String {
    format!(
        "gave up after {attempts} attempts: each time the worker analysing it stopped \
         answering before it finished (crashed, cut off, or too slow)"
    )
}

/// What happened when a node finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Other nodes of the task are still queued or running.
    TaskStillRunning,
    /// It was the task's last node.
    TaskDone,
    /// The node was not held by this assignment (stale or already finished).
    Stale,
}

/// Durable task lifecycle and the queue of file nodes.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Records a task and its root node, queued at `rank` (see
    /// [`queue_rank`]). Durable on return.
    async fn create_task(
        &self,
        sha256: Sha256,
        size: u64,
        submission: &Submission,
        rank: i64,
    ) -> StoreResult<Task>;
    /// Records a task that is complete already (an imported report): its
    /// root node is done and nothing is queued. Durable on return.
    async fn import_task(
        &self,
        sha256: Sha256,
        size: u64,
        submission: &Submission,
        finished_at: UnixMillis,
    ) -> StoreResult<Task>;
    async fn get_task(&self, id: TaskId) -> StoreResult<Task>;
    /// Newest first.
    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<Vec<Task>>;
    /// The newest task of a sample that is not failed or cancelled.
    async fn latest_task_of(&self, sha256: Sha256) -> StoreResult<Option<Task>>;
    /// Takes the next queued node (lowest rank, then oldest) and marks
    /// it assigned under `assignment_id`, leased until `lease_until`; the
    /// task becomes Running. Counts an attempt.
    async fn claim_next(
        &self,
        assignment_id: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<Option<NodeWork>>;
    /// Puts a node that was never handed to a worker back in the queue,
    /// taking back the attempt its claim counted.
    async fn requeue(&self, assignment_id: &str) -> StoreResult<()>;
    /// Extends the leases of assignments whose worker is alive.
    async fn extend_leases(&self, assignment_ids: &[String], until: UnixMillis) -> StoreResult<()>;
    /// Ends a lease now (its worker is gone); the next
    /// [`TaskStore::expire_leases`] takes the node back.
    async fn drop_lease(&self, assignment_id: &str) -> StoreResult<()>;
    /// Takes back every node whose lease ended before `now`: re-queued, or,
    /// once it had `max_attempts`, finished with an error.
    async fn expire_leases(&self, now: UnixMillis, max_attempts: u32) -> StoreResult<Vec<Expired>>;
    /// Marks a node done; tells whether that ended the task.
    async fn finish_node(
        &self,
        assignment_id: &str,
        error: Option<&str>,
    ) -> StoreResult<NodeOutcome>;
    /// Adds an extracted file under `parent` (at the parent's rank: its task
    /// is under way), unless its SHA-256 is already in the tree. Returns the
    /// new node id.
    async fn add_child(
        &self,
        assignment_id: &str,
        sha256: Sha256,
        size: u64,
        filename: &str,
        created_by: &str,
    ) -> StoreResult<Option<NodeId>>;
    async fn nodes(&self, task: TaskId) -> StoreResult<Vec<NodeInfo>>;
    /// Sets a final status (Complete, Failed, Cancelled) unless the task
    /// already has one; returns the task as it is afterwards.
    async fn finish_task(
        &self,
        id: TaskId,
        status: TaskStatus,
        error: Option<&str>,
        at: UnixMillis,
    ) -> StoreResult<Task>;
    /// Assignment ids of a task's nodes that are being analysed.
    async fn assignments_of(&self, id: TaskId) -> StoreResult<Vec<String>>;
    async fn delete_task(&self, id: TaskId) -> StoreResult<()>;
    /// The unfinished tasks that have no open node left (a scheduler stopped
    /// or failed between their last result and their completion), for the
    /// caller to complete.
    async fn tasks_to_complete(&self) -> StoreResult<Vec<TaskId>>;
}

/// One module's outcome on one node.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleRecord {
    pub node_id: NodeId,
    pub module: String,
    pub module_version: String,
    /// Digest of the module's settings when it ran.
    pub config_hash: String,
    pub outcome: Result<Value, String>,
    pub duration_ms: u64,
}

/// What identifies a reusable result of a module on a sample.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CacheKey {
    pub module: String,
    pub module_version: String,
    pub config_hash: String,
}

/// Module results and the merged reports built from them.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Stores one result of the node holding sample `sha256`; storing the
    /// same (task, node, module) again changes nothing.
    async fn put_result(
        &self,
        task: TaskId,
        sha256: Sha256,
        record: &ModuleRecord,
    ) -> StoreResult<()>;
    async fn results(&self, task: TaskId) -> StoreResult<Vec<ModuleRecord>>;
    /// The keys of the successful results stored for a sample: the result
    /// cache.
    async fn cached_keys(&self, sha256: Sha256) -> StoreResult<Vec<CacheKey>>;
    /// The newest successful result of a sample under `key`, with the task
    /// it was stored for.
    async fn cached_result(
        &self,
        sha256: Sha256,
        key: &CacheKey,
    ) -> StoreResult<Option<(TaskId, ModuleRecord)>>;
    /// Stores the merged report of a finished task (`task` holds the status
    /// it ends with) and adds the submission's tags to its sample.
    async fn put_report(&self, task: &Task, report: &Value) -> StoreResult<()>;
    async fn get_report(&self, task: TaskId) -> StoreResult<Option<Value>>;
    /// Removes a task's results and report (its sample's tags and notes
    /// stay, as they belong to the sample).
    async fn delete_task(&self, task: TaskId) -> StoreResult<()>;
    /// Reports matching a query, paged and sorted; the text may match a
    /// report's curated fields or its sample's tags or notes. A query the
    /// engine cannot parse is [`StoreError::BadQuery`].
    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage>;
    async fn tags_of(&self, sha256: Sha256) -> StoreResult<Vec<String>>;
    /// Adds a tag to a sample (nothing changes if it has it); returns its
    /// tags.
    async fn add_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>>;
    async fn remove_tag(&self, sha256: Sha256, tag: &str) -> StoreResult<Vec<String>>;
    /// Every tag with the number of samples carrying it, most used first.
    async fn tag_counts(&self) -> StoreResult<Vec<TagCount>>;
    async fn add_note(&self, sha256: Sha256, text: &str) -> StoreResult<Note>;
    /// Changes a note of the sample; NotFound if it has no such note.
    async fn edit_note(&self, sha256: Sha256, id: &str, text: &str) -> StoreResult<Note>;
    async fn delete_note(&self, sha256: Sha256, id: &str) -> StoreResult<()>;
    /// A sample's notes, oldest first.
    async fn notes(&self, sha256: Sha256, offset: u32, limit: u32) -> StoreResult<Vec<Note>>;
    /// Makes every acknowledged write visible to searches now (search
    /// engines show writes after a refresh interval; others at once).
    async fn refresh(&self) -> StoreResult<()> {
        Ok(())
    }
}

pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// A received sample, hashed, ready for [`BlobStore::put`].
#[derive(Debug)]
pub struct Staged {
    pub sha256: Sha256,
    pub size: u64,
    pub body: StagedBody,
}

/// Where a staged sample's bytes are.
#[derive(Debug)]
pub enum StagedBody {
    /// A small sample, whole.
    Memory(bytes::Bytes),
    /// A temporary file in [`BlobStore::staging_dir`].
    File(tempfile::NamedTempFile),
}

/// Samples by SHA-256, written once, streamed both ways.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores a staged sample under its SHA-256, unless that sample is
    /// already stored. Durable on return.
    async fn put(&self, staged: Staged) -> StoreResult<()>;
    async fn open(&self, sha256: Sha256) -> StoreResult<BlobReader>;
    async fn exists(&self, sha256: Sha256) -> StoreResult<bool>;
    /// Where large uploads are staged before [`BlobStore::put`].
    fn staging_dir(&self) -> &Path;
}

/// The three stores a scheduler works with.
#[derive(Clone)]
pub struct Stores {
    pub tasks: Arc<dyn TaskStore>,
    pub reports: Arc<dyn ReportStore>,
    pub blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}

/// Opens the stores named by URLs: `sqlite://PATH` or `postgres://...` for
/// tasks, `sqlite://PATH` or `http(s)://` (Elasticsearch, OpenSearch) for
/// reports, `file://DIR` or `s3://BUCKET[/PREFIX]` for samples (with the
/// credentials in `s3`).
pub async fn open(
    task_url: &str,
    report_url: &str,
    blob_url: &str,
    s3: &s3_blobs::S3Settings,
) -> StoreResult<Stores> {
    let tasks: Arc<dyn TaskStore> = match scheme(task_url)? {
        ("sqlite", path) => Arc::new(sqlite_tasks::SqliteTaskStore::open(Path::new(path)).await?),
        ("postgres" | "postgresql", _) => {
            Arc::new(postgres_tasks::PostgresTaskStore::open(task_url).await?)
        }
        (other, _) => return Err(unsupported(task_url, other, "sqlite://, postgres://")),
    };
    let reports: Arc<dyn ReportStore> = match scheme(report_url)? {
        ("sqlite", path) => {
            Arc::new(sqlite_reports::SqliteReportStore::open(Path::new(path)).await?)
        }
        ("http" | "https", _) => Arc::new(elastic::ElasticReportStore::open(report_url).await?),
        (other, _) => return Err(unsupported(report_url, other, "sqlite://, http(s)://")),
    };
    let blobs: Arc<dyn BlobStore> = match scheme(blob_url)? {
        ("file", path) => Arc::new(local_blobs::LocalBlobStore::open(Path::new(path)).await?),
        ("s3", _) => Arc::new(s3_blobs::S3BlobStore::open(blob_url, s3).await?),
        (other, _) => return Err(unsupported(blob_url, other, "file://, s3://")),
    };
    Ok(Stores {
        tasks,
        reports,
        blobs,
    })
}

fn scheme(url: &str) -> StoreResult<(&str, &str)> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| StoreError::BadUrl {
        url: url.to_owned(),
        reason: "expected SCHEME://LOCATION".into(),
    })?;
    if rest.is_empty() {
        return Err(StoreError::BadUrl {
            url: url.to_owned(),
            reason: "the location is empty".into(),
        });
    }
    Ok((scheme, rest))
}

fn unsupported(url: &str, scheme: &str, supported: &str) -> StoreError {
    StoreError::BadUrl {
        url: url.to_owned(),
        reason: format!(
            "scheme {scheme:?} is not supported here yet; this store accepts {supported}"
        ),
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod conformance_search;
#[cfg(test)]
mod engines_test;
