//! Two schedulers on one PostgreSQL task store, sharing the report store
//! and sample directory (a shared mount): a task submitted to one and
//! analysed by a worker of the other completes, and the first one's watchers
//! see it end.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use multiscanner_proto::pb::{
    self, reports_client::ReportsClient, submit_request::Part, tasks_client::TasksClient,
};
use multiscanner_worker::{ModulesConfig, Registry, WorkerConfig, client};
use tokio::sync::watch;

use crate::{BoundScheduler, SchedulerConfig, testing::TestPostgres};

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_submitted_to_one_replica_completes_through_another() {
    let pg = TestPostgres::start().await;
    let url = pg.fresh_database("replicas").await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    let config = SchedulerConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        task_store: url,
        report_store: format!("sqlite://{p}/reports.db"),
        blob_store: format!("file://{p}/samples"),
        heartbeat_interval_ms: 200,
        ..Default::default()
    };
    let (stop, rx) = watch::channel(false);
    let a = BoundScheduler::bind(config.clone()).await.unwrap();
    let b = BoundScheduler::bind(config).await.unwrap();
    let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
    tokio::spawn(a.serve(stopped(rx.clone())));
    tokio::spawn(b.serve(stopped(rx.clone())));

    // The only worker dials B.
    let modules = ModulesConfig::default();
    let registry = Arc::new(Registry::from_config(&modules).unwrap());
    let worker = WorkerConfig {
        schedulers: vec![format!("http://{addr_b}")],
        concurrency: 2,
        worker_id: "replica-test".into(),
        work_dir: dir.path().join("work"),
        shutdown_grace_secs: 30,
        modules,
    };
    tokio::spawn(client::run_with(registry, worker, stopped(rx.clone())));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr_a}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tasks = TasksClient::new(channel.clone());
    let msgs = vec![
        pb::SubmitRequest {
            part: Some(Part::Header(pb::SubmissionHeader {
                filename: "replicated.txt".into(),
                ..Default::default()
            })),
        },
        pb::SubmitRequest {
            part: Some(Part::Chunk(bytes::Bytes::from_static(
                b"one task, two schedulers\n",
            ))),
        },
    ];
    let task = tasks
        .submit(futures::stream::iter(msgs))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let events = tasks
        .watch_task(pb::WatchTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<i32> = tokio::time::timeout(
        Duration::from_secs(60),
        events
            .filter_map(|e| async move {
                match e.unwrap().event {
                    Some(pb::task_event::Event::Status(t)) => Some(t.status),
                    _ => None,
                }
            })
            .collect(),
    )
    .await
    .expect("the watch on scheduler A never saw the task end");
    assert_eq!(statuses.last(), Some(&(pb::TaskStatus::Complete as i32)));

    let report = ReportsClient::new(channel)
        .get_report(pb::GetReportRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap()
        .into_inner();
    let report: serde_json::Value = serde_json::from_str(&report.report_json).unwrap();
    assert_eq!(report["filemeta"]["filesize"], 25);
    let _ = stop.send(true);
}
