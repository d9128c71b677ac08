//! A test harness that starts a real scheduler and real workers on
//! `127.0.0.1:0`, with embedded stores in a temporary directory.

#![allow(dead_code)]

pub mod cli;
pub mod procs;

use std::{sync::Arc, time::Duration};

use multiscanner_proto::pb::{
    self, reports_client::ReportsClient, submit_request::Part, tasks_client::TasksClient,
};
use multiscanner_scheduler::{BoundScheduler, SchedulerConfig, config::S3Settings};
use multiscanner_worker::{
    ModulesConfig, Registry, WorkerConfig, client, module::Module, registry,
};
use tokio::sync::watch;
use tonic::transport::Channel;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
}

pub struct ClusterBuilder {
    report_store: Option<String>,
    blob_store: Option<(String, S3Settings)>,
    deadline_secs: u64,
    extra: Vec<Arc<dyn Module>>,
    modules: ModulesConfig,
    workers: u32,
    auth: multiscanner_proto::auth::AuthConfig,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            report_store: None,
            blob_store: None,
            deadline_secs: SchedulerConfig::default().task_deadline_secs,
            extra: Vec::new(),
            modules: ModulesConfig::default(),
            workers: 1,
            auth: Default::default(),
        }
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub fn reports(&self) -> ReportsClient<Channel> {
        ReportsClient::new(self.channel.clone())
    }

    /// Submits `data` under `filename`; returns the call's result.
    pub async fn submit(
        &self,
        header: pb::SubmissionHeader,
        data: &[u8],
    ) -> Result<pb::SubmitResponse, tonic::Status> {
        let mut msgs = vec![pb::SubmitRequest {
            part: Some(Part::Header(header)),
        }];
        for c in data.chunks(64 * 1024) {
            msgs.push(pb::SubmitRequest {
                part: Some(Part::Chunk(bytes::Bytes::copy_from_slice(c))),
            });
        }
        self.tasks()
            .submit(futures::stream::iter(msgs))
            .await
            .map(|r| r.into_inner())
    }

    /// Waits (at most two minutes) until the task reaches a final status.
    pub async fn wait_final(&self, task_id: i64) -> pb::Task {
        watch_until_final(&mut self.tasks(), task_id).await
    }

    pub async fn report(&self, task_id: i64) -> serde_json::Value {
        let r = self
            .reports()
            .get_report(pb::GetReportRequest { task_id })
            .await
            .unwrap()
            .into_inner();
        serde_json::from_str(&r.report_json).unwrap()
    }

    pub fn samples_stored(&self) -> usize {
        walk_files(&self.dir.path().join("samples"))
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == ".staging") {
                    0
                } else {
                    walk_files(&p)
                }
            } else {
                1
            }
        })
        .sum()
}

/// Watches a task until it ends (two minutes at most).
pub async fn watch_until_final(tasks: &mut TasksClient<Channel>, task_id: i64) -> pb::Task {
    let mut events = tasks
        .watch_task(pb::WatchTaskRequest { task_id })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    let wait = async {
        while let Some(e) = events.message().await.unwrap() {
            if let Some(pb::task_event::Event::Status(t)) = e.event {
                last = Some(t);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .expect("the task did not finish within two minutes");
    last.expect("the watch ended without a status")
}

/// Polls (at most a minute) until the task has `status`.
pub async fn wait_for_status(
    tasks: &mut TasksClient<Channel>,
    task_id: i64,
    status: pb::TaskStatus,
) -> pb::Task {
    let poll = async {
        loop {
            let t = tasks
                .get_task(pb::GetTaskRequest { task_id })
                .await
                .unwrap()
                .into_inner();
            if t.status == status as i32 {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .unwrap_or_else(|_| panic!("task {task_id} never reached {status:?}"))
}

pub fn header(name: &str) -> pb::SubmissionHeader {
    pb::SubmissionHeader {
        filename: name.into(),
        ..Default::default()
    }
}

impl ClusterBuilder {
    /// Adds a module of the test's own to every worker and enables it.
    pub fn module(mut self, m: Arc<dyn Module>) -> Self {
        self.modules.enabled.push(m.name().to_owned());
        self.extra.push(m);
        self
    }

    pub fn timeout(mut self, module: &str, secs: u64) -> Self {
        self.modules.timeouts.insert(module.into(), secs);
        self
    }

    pub fn task_deadline(mut self, secs: u64) -> Self {
        self.deadline_secs = secs;
        self
    }

    /// Reports in this store instead of an embedded one.
    pub fn report_store(mut self, url: String) -> Self {
        self.report_store = Some(url);
        self
    }

    /// Samples in this store instead of a local directory.
    pub fn blob_store(mut self, url: String, s3: S3Settings) -> Self {
        self.blob_store = Some((url, s3));
        self
    }

    /// API tokens the scheduler's public services require.
    pub fn auth(mut self, auth: multiscanner_proto::auth::AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    pub async fn start(self) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display();
        let config = SchedulerConfig {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            task_store: format!("sqlite://{p}/tasks.db"),
            report_store: self
                .report_store
                .unwrap_or_else(|| format!("sqlite://{p}/reports.db")),
            blob_store: self
                .blob_store
                .as_ref()
                .map_or_else(|| format!("file://{p}/samples"), |(url, _)| url.clone()),
            s3: self.blob_store.map(|(_, s3)| s3).unwrap_or_default(),
            heartbeat_interval_ms: 200,
            task_deadline_secs: self.deadline_secs,
            auth: self.auth,
            ..Default::default()
        };
        let bound = BoundScheduler::bind(config).await.unwrap();
        let addr = bound.local_addr();
        let (stop, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(bound.serve(stopped(rx.clone())));
        let mut available = registry::builtin();
        available.extend(self.extra);
        let registry = Arc::new(Registry::with_modules(available, &self.modules).unwrap());
        for i in 0..self.workers {
            let config = WorkerConfig {
                schedulers: vec![format!("http://{addr}")],
                concurrency: 2,
                worker_id: format!("test-worker-{i}"),
                work_dir: dir.path().join("work"),
                shutdown_grace_secs: 30,
                modules: self.modules.clone(),
            };
            tokio::spawn(client::run_with(
                Arc::clone(&registry),
                config,
                stopped(rx.clone()),
            ));
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Cluster {
            dir,
            channel,
            addr,
            stop,
        }
    }
}
