//! The scheduler's transport-agnostic core: submissions, the task
//! lifecycle, results coming back from workers, and reports. The gRPC
//! handlers in [`crate::grpc`] only decode, call this, and encode.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use multiscanner_proto::{
    domain::{DuplicatePolicy, NodeId, Sha256, Submission, Task, TaskId, TaskStatus, UnixMillis},
    pb,
};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    clock::Clock,
    config::SchedulerConfig,
    dispatch::WorkerPool,
    error::{Result, SchedulerError},
    events::EventBus,
    report,
    store::{ModuleRecord, NodeOutcome, NodeWork, Staged, Stores, TaskQuery, queue_rank},
    upload::Upload,
};

#[derive(Debug)]
pub struct Scheduler {
    pub(crate) clock: Clock,
    pub(crate) stores: Stores,
    pub(crate) events: EventBus,
    pub(crate) workers: WorkerPool,
    pub(crate) config: SchedulerConfig,
}

/// Samples up to this size travel inside their assignment, which spares the
/// worker a fetch.
const INLINE_SAMPLE_BYTES: u64 = 64 * 1024;

/// A file found inside a node, its bytes already in the blob store.
#[derive(Debug)]
pub(crate) struct NewChild {
    pub sha256: Sha256,
    pub size: u64,
    pub filename: String,
    pub created_by: String,
}

/// The outcome of a submission.
#[derive(Debug)]
pub struct Submitted {
    pub task: Task,
    /// True when the duplicate policy returned an existing task.
    pub existing: bool,
}

impl Scheduler {
    pub fn new(stores: Stores, config: SchedulerConfig) -> Arc<Self> {
        Self::with_clock(stores, config, Clock::System)
    }

    /// A scheduler reading the time from `clock` (tests pass
    /// [`Clock::tokio`]).
    pub fn with_clock(stores: Stores, config: SchedulerConfig, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            clock,
            stores,
            events: EventBus::default(),
            workers: WorkerPool::default(),
            config,
        })
    }

    /// Completes the unfinished tasks that have no open node left: after a
    /// restart (the scheduler stopped between a task's last result and its
    /// completion), and periodically, in case completing failed because the
    /// store was down at that moment. Nodes that were assigned come back
    /// through their leases (the reaper), which is safe with other
    /// schedulers running.
    pub async fn complete_settled(&self) -> Result<()> {
        for id in self.stores.tasks.tasks_to_complete().await? {
            info!(task_id = %id, "completing a task whose nodes are all done");
            self.complete(id).await?;
        }
        Ok(())
    }

    /// Stores the uploaded bytes and records the task; returns only once
    /// both are durable. Nothing is stored if the upload is refused.
    pub async fn submit<S, E>(&self, submission: Submission, mut chunks: S) -> Result<Submitted>
    where
        S: Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut upload = Upload::new(
            self.stores.blobs.staging_dir().to_owned(),
            self.config.max_upload_bytes,
        );
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .map_err(|e| SchedulerError::InvalidArgument(format!("upload interrupted: {e}")))?;
            upload.write(&chunk).await?;
        }
        let staged = upload.finish().await?;
        let (sha256, size) = (staged.sha256, staged.size);
        if submission.duplicate == DuplicatePolicy::Latest
            && let Some(task) = self.stores.tasks.latest_task_of(sha256).await?
        {
            return Ok(Submitted {
                task,
                existing: true,
            });
        }
        self.stores.blobs.put(staged).await?;
        let rank = queue_rank(
            submission.priority.get(),
            self.clock.now(),
            self.config.aging().as_millis() as i64,
        );
        let task = self
            .stores
            .tasks
            .create_task(sha256, size, &submission, rank)
            .await?;
        info!(task_id = %task.id, sha256 = %sha256, size, "task submitted");
        self.publish_status(&task);
        self.workers.wake.notify_one();
        Ok(Submitted {
            task,
            existing: false,
        })
    }

    pub async fn get_task(&self, id: TaskId) -> Result<Task> {
        Ok(self.stores.tasks.get_task(id).await?)
    }

    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        Ok(self.stores.tasks.list_tasks(query).await?)
    }

    /// Stops a task: queued nodes are dropped, running ones cancelled on
    /// their workers. A finished task is left as it is.
    pub async fn cancel(&self, id: TaskId) -> Result<Task> {
        let assignments = self.stores.tasks.assignments_of(id).await?;
        let task = self
            .stores
            .tasks
            .finish_task(
                id,
                TaskStatus::Cancelled,
                Some("cancelled on request"),
                self.clock.now(),
            )
            .await?;
        for a in assignments {
            self.workers.cancel(&a, "task cancelled");
        }
        self.publish_status(&task);
        Ok(task)
    }

    /// Cancels the task if it runs, then removes it and its results.
    pub async fn delete(&self, id: TaskId) -> Result<()> {
        self.cancel(id).await?;
        self.stores.reports.delete_task(id).await?;
        self.stores.tasks.delete_task(id).await?;
        Ok(())
    }

    /// The stored report of a finished task, or one assembled from the
    /// results so far while it runs.
    /// Its `tags` are the sample's tags as they are now.
    pub async fn report(&self, id: TaskId) -> Result<(Task, Value)> {
        let task = self.stores.tasks.get_task(id).await?;
        let mut report = match self.stores.reports.get_report(id).await? {
            Some(r) if task.status == TaskStatus::Complete => r,
            _ => {
                let nodes = self.stores.tasks.nodes(id).await?;
                let results = self.stores.reports.results(id).await?;
                report::assemble(&task, &nodes, &results)
            }
        };
        // The submission's tags join the sample's when the report is stored.
        let mut tags = self.stores.reports.tags_of(task.sha256).await?;
        if !task.status.is_final() {
            for t in &task.submission.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        report["tags"] = serde_json::json!(tags);
        Ok((task, report))
    }

    /// The report of the newest completed task of a sample.
    pub async fn report_by_sha256(&self, sha256: Sha256) -> Result<(Task, Value)> {
        let query = TaskQuery {
            statuses: vec![TaskStatus::Complete],
            sha256: Some(sha256),
            before: None,
            limit: 1,
        };
        let task = self
            .stores
            .tasks
            .list_tasks(&query)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                SchedulerError::NotFound(format!("no completed task for sample {sha256}"))
            })?;
        self.report(task.id).await
    }

    /// Results stored so far for a task (for watchers that join late).
    pub async fn results(&self, id: TaskId) -> Result<Vec<ModuleRecord>> {
        Ok(self.stores.reports.results(id).await?)
    }

    /// Hands queued nodes to workers with free slots until either runs out.
    pub async fn dispatch_ready(&self) -> Result<usize> {
        let mut sent = 0;
        while let Some(worker) = self.workers.pick() {
            let assignment_id = uuid::Uuid::new_v4().to_string();
            let lease_until = self.clock.now() + self.config.lease().as_millis() as i64;
            let Some(work) = self
                .stores
                .tasks
                .claim_next(&assignment_id, lease_until)
                .await?
            else {
                break;
            };
            let span = info_span!("assign", task_id = %work.task_id, node_id = %work.node_id);
            let message = self.assignment_message(&work).instrument(span).await;
            let (task_id, is_root) = (work.task_id, work.parent.is_none());
            if !self.workers.assign(&worker, work, message) {
                self.stores.tasks.requeue(&assignment_id).await?;
                continue;
            }
            sent += 1;
            if is_root {
                // The root node starting is the task going Running.
                if let Ok(task) = self.stores.tasks.get_task(task_id).await {
                    self.publish_status(&task);
                }
            }
        }
        Ok(sent)
    }

    /// The dispatcher: wakes on submissions and freed slots, and every
    /// second in case a wake-up was missed.
    pub async fn run_dispatcher(self: Arc<Self>) {
        loop {
            match self.dispatch_ready().await {
                Ok(n) if n > 0 => debug!(assigned = n, "dispatched"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "dispatch failed; retrying"),
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.workers.wake.notified()).await;
        }
    }

    /// Takes back the work of workers that stopped answering, every quarter
    /// of a lease.
    pub async fn run_reaper(self: Arc<Self>) {
        let every =
            (self.config.lease() / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = self.reap(self.clock.now()).await {
                warn!(error = %e, "could not take back expired assignments; retrying");
            }
            if let Err(e) = self.complete_settled().await {
                warn!(error = %e, "could not complete finished tasks; retrying");
            }
        }
    }

    /// Takes back every assignment whose lease ended before `now`. Work
    /// held by workers connected here that sent a heartbeat lately (within
    /// three heartbeat intervals) keeps its lease first: were the store
    /// down for a while, their heartbeats could not extend it, yet they are
    /// alive.
    pub async fn reap(&self, now: UnixMillis) -> Result<()> {
        let recent = (self.config.heartbeat_interval() * 3).min(self.config.lease());
        let alive = self.workers.held_by_live(recent);
        if !alive.is_empty() {
            let until = now + self.config.lease().as_millis() as i64;
            self.stores.tasks.extend_leases(&alive, until).await?;
        }
        let expired = self
            .stores
            .tasks
            .expire_leases(now, self.config.max_attempts)
            .await?;
        for e in expired {
            self.workers.forget(&e.assignment_id, "lease expired");
            if e.gave_up {
                warn!(task_id = %e.task_id, node_id = %e.node_id, "lease expired on the last attempt; node given up");
                if e.task_done {
                    self.complete(e.task_id).await?;
                }
            } else {
                info!(task_id = %e.task_id, node_id = %e.node_id, "lease expired; node re-queued");
                self.workers.wake.notify_one();
            }
        }
        Ok(())
    }

    /// A worker's heartbeat: extends the leases of what it still holds.
    pub async fn on_heartbeat(&self, worker: &str, beat: pb::Heartbeat) -> Result<()> {
        self.workers.heard_from(worker);
        let held: Vec<String> = beat
            .assignment_ids
            .into_iter()
            .filter(|id| self.workers.held(worker, id).is_some())
            .collect();
        if !held.is_empty() {
            let until = self.clock.now() + self.config.lease().as_millis() as i64;
            self.stores.tasks.extend_leases(&held, until).await?;
        }
        Ok(())
    }

    /// A module result arrived from `worker`.
    pub async fn on_module_result(&self, worker: &str, result: pb::ModuleResult) -> Result<()> {
        let Some(work) = self.workers.held(worker, &result.assignment_id) else {
            debug!(assignment = %result.assignment_id, "result for an assignment not held; ignored");
            return Ok(());
        };
        let record = if result.cached {
            self.reuse_cached(&work, result).await?
        } else {
            received_record(&work, result)
        };
        self.stores
            .reports
            .put_result(work.task_id, work.sha256, &record)
            .await?;
        self.events.publish(pb::TaskEvent {
            task_id: work.task_id.0,
            event: Some(pb::task_event::Event::ModuleResult(module_event(&record))),
        });
        Ok(())
    }

    /// `worker` finished a node; the task completes when it was the last.
    pub async fn on_node_finished(&self, worker: &str, done: pb::NodeFinished) -> Result<()> {
        let Some(work) = self.workers.held(worker, &done.assignment_id) else {
            return Ok(());
        };
        if done.handed_back {
            info!(task_id = %work.task_id, node_id = %work.node_id, worker, "work handed back; re-queued");
            self.stores.tasks.requeue(&done.assignment_id).await?;
            self.workers.release(worker, &done.assignment_id);
            return Ok(());
        }
        let error = Some(done.error.as_str()).filter(|e| !e.is_empty());
        // Recorded before the slot is freed: if the store fails, the worker
        // still holds the node and the call can be retried.
        let outcome = self
            .stores
            .tasks
            .finish_node(&done.assignment_id, error)
            .await?;
        self.workers.release(worker, &done.assignment_id);
        if outcome == NodeOutcome::TaskDone {
            self.complete(work.task_id)
                .instrument(info_span!("complete", task_id = %work.task_id))
                .await?;
        }
        Ok(())
    }

    /// Takes back the work of a worker that went away: its leases end now,
    /// and the nodes are re-queued (or given up on after their last attempt).
    pub async fn on_worker_gone(&self, worker: &str) {
        let held = self.workers.remove(worker);
        for work in &held {
            warn!(task_id = %work.task_id, node_id = %work.node_id, worker, "worker gone; taking its work back");
            if let Err(e) = self.stores.tasks.drop_lease(&work.assignment_id).await {
                warn!(error = %e, "could not end the lease; it will expire on its own");
            }
        }
        if !held.is_empty()
            && let Err(e) = self.reap(self.clock.now()).await
        {
            warn!(error = %e, "could not take back the work now; the reaper will");
        }
        self.workers.wake.notify_one();
    }

    /// Stores the merged report of a task whose nodes are all done, then
    /// marks it Complete, or Failed when its submitted file (the root node)
    /// could not be analysed. Completing a task twice changes nothing.
    async fn complete(&self, id: TaskId) -> Result<()> {
        let now = self.clock.now();
        let mut task = self.stores.tasks.get_task(id).await?;
        if task.status.is_final() {
            return Ok(());
        }
        task.finished_at = Some(now);
        let nodes = self.stores.tasks.nodes(id).await?;
        let failure = nodes
            .iter()
            .find(|n| n.parent.is_none())
            .and_then(|root| root.error.as_deref())
            .map(|e| format!("the submitted file could not be analysed: {e}"));
        let results = self.stores.reports.results(id).await?;
        let status = if failure.is_some() {
            TaskStatus::Failed
        } else {
            TaskStatus::Complete
        };
        task.status = status;
        let merged = report::assemble(&task, &nodes, &results);
        self.stores.reports.put_report(&task, &merged).await?;
        let task = self
            .stores
            .tasks
            .finish_task(id, status, failure.as_deref(), now)
            .await?;
        info!(task_id = %id, status = %task.status, "task finished");
        self.publish_status(&task);
        Ok(())
    }

    /// Stores a file a module extracted as a child node of the task.
    pub async fn add_child(
        &self,
        header: pb::ChildHeader,
        staged: Staged,
    ) -> Result<pb::ChildUploadResponse> {
        let sha256 = staged.sha256;
        let work = self.workers.find(&header.assignment_id).ok_or_else(|| {
            SchedulerError::NotFound(format!("assignment {}", header.assignment_id))
        })?;
        let refused = |reason: String| pb::ChildUploadResponse {
            node_id: 0,
            sha256: sha256.to_hex(),
            added: false,
            reason,
        };
        if let Some(why) = self.depth_refusal(&work) {
            return Ok(refused(why));
        }
        let child = NewChild {
            sha256,
            size: staged.size,
            filename: header.filename,
            created_by: header.created_by,
        };
        self.stores.blobs.put(staged).await?;
        Ok(match self.attach_child(&work, child).await? {
            Some(node_id) => pb::ChildUploadResponse {
                node_id: node_id.0,
                sha256: sha256.to_hex(),
                added: true,
                reason: String::new(),
            },
            None => refused("already in the task's tree".into()),
        })
    }

    /// Why a child of `work` may not be added, if it may not.
    pub(crate) fn depth_refusal(&self, work: &NodeWork) -> Option<String> {
        (work.depth + 1 > self.config.max_depth)
            .then(|| format!("depth limit {} reached", self.config.max_depth))
    }

    /// Adds a stored sample as a child of `work`'s node and queues it;
    /// `None` when that sample is already in the task's tree.
    pub(crate) async fn attach_child(
        &self,
        work: &NodeWork,
        child: NewChild,
    ) -> Result<Option<NodeId>> {
        let node = self
            .stores
            .tasks
            .add_child(
                &work.assignment_id,
                child.sha256,
                child.size,
                &child.filename,
                &child.created_by,
            )
            .await?;
        if let Some(node_id) = node {
            self.events.publish(pb::TaskEvent {
                task_id: work.task_id.0,
                event: Some(pb::task_event::Event::Node(pb::NodeEvent {
                    node_id: node_id.0,
                    parent_node_id: work.node_id.0,
                    depth: work.depth + 1,
                    sha256: child.sha256.to_hex(),
                    filename: child.filename,
                })),
            });
            self.workers.wake.notify_one();
        }
        Ok(node)
    }

    /// What a worker is told about a node: with the results it need not
    /// compute again, and the sample itself when it is small.
    async fn assignment_message(&self, work: &NodeWork) -> pb::Assignment {
        let deadline = work.task_started_at + self.config.task_deadline().as_millis() as i64;
        pb::Assignment {
            assignment_id: work.assignment_id.clone(),
            task_id: work.task_id.0,
            node_id: work.node_id.0,
            sha256: work.sha256.to_hex(),
            filename: work.filename.clone(),
            size: work.size,
            depth: work.depth,
            modules: work.modules.clone(),
            deadline: Some(multiscanner_proto::convert::timestamp(deadline)),
            archive_password: work.archive_password.clone().unwrap_or_default(),
            trace_context: multiscanner_proto::trace::current_context_map(),
            cached: self.cached_for(work).await,
            content: self.inline_content(work).await,
        }
    }

    /// A sample small enough to travel inside its assignment, read whole;
    /// empty (the worker fetches it) otherwise or when reading fails.
    async fn inline_content(&self, work: &NodeWork) -> bytes::Bytes {
        if work.size > INLINE_SAMPLE_BYTES {
            return bytes::Bytes::new();
        }
        let read = async {
            let mut reader = self.stores.blobs.open(work.sha256).await?;
            let mut buf = Vec::with_capacity(work.size as usize);
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf).await?;
            Ok::<_, crate::store::StoreError>(buf)
        };
        match read.await {
            Ok(buf) if buf.len() as u64 == work.size => buf.into(),
            Ok(buf) => {
                warn!(sha256 = %work.sha256, stored = buf.len(), expected = work.size, "stored sample has the wrong size");
                bytes::Bytes::new()
            }
            Err(e) => {
                warn!(sha256 = %work.sha256, error = %e, "cannot read the sample to send it along; the worker will fetch it");
                bytes::Bytes::new()
            }
        }
    }

    pub fn publish_status(&self, task: &Task) {
        self.events.publish(pb::TaskEvent {
            task_id: task.id.0,
            event: Some(pb::task_event::Event::Status(pb::Task::from(task))),
        });
    }
}

/// The record of a result a worker computed.
fn received_record(work: &NodeWork, result: pb::ModuleResult) -> ModuleRecord {
    let outcome = if result.error.is_empty() {
        serde_json::from_str::<Value>(&result.result_json)
            .map_err(|e| format!("module returned invalid JSON: {e}"))
    } else {
        Err(result.error)
    };
    ModuleRecord {
        node_id: work.node_id,
        module: result.module,
        module_version: result.module_version,
        config_hash: result.config_hash,
        outcome,
        duration_ms: result.duration_ms,
    }
}

pub(crate) fn module_event(r: &ModuleRecord) -> pb::ModuleResultEvent {
    let (result_json, error) = match &r.outcome {
        Ok(v) => (v.to_string(), String::new()),
        Err(e) => (String::new(), e.clone()),
    };
    pb::ModuleResultEvent {
        node_id: r.node_id.0,
        module: r.module.clone(),
        module_version: r.module_version.clone(),
        result_json,
        error,
        duration_ms: r.duration_ms,
    }
}
