//! End-to-end tests of the mesh: a real scheduler and real workers talking
//! gRPC on loopback, embedded stores on disk.

mod support;

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use multiscanner_proto::pb;
use multiscanner_worker::module::{ExtractedFile, Module, ModuleError, ModuleOutput, ScanInput};
use serde_json::json;
use support::{Cluster, header};
use tokio::sync::Notify;

/// A module that finishes only when the test opens its gate.
struct Gate {
    open: Arc<Notify>,
    finished: Arc<AtomicBool>,
}

impl Module for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn version(&self) -> &'static str {
        "1"
    }
    fn module_type(&self) -> &'static str {
        "Test"
    }
    fn scan(&self, _: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let (open, finished) = (Arc::clone(&self.open), Arc::clone(&self.finished));
        Box::pin(async move {
            open.notified().await;
            finished.store(true, Ordering::SeqCst);
            Ok(ModuleOutput::result(json!({"opened": true})))
        })
    }
}

/// A module that never returns.
struct Hang;

impl Module for Hang {
    fn name(&self) -> &'static str {
        "hang"
    }
    fn version(&self) -> &'static str {
        "1"
    }
    fn module_type(&self) -> &'static str {
        "Test"
    }
    fn scan(&self, _: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        Box::pin(std::future::pending())
    }
}

/// A module that "extracts" one file from every top-level file.
struct Extract;

impl Module for Extract {
    fn name(&self) -> &'static str {
        "extract"
    }
    fn version(&self) -> &'static str {
        "1"
    }
    fn module_type(&self) -> &'static str {
        "Test"
    }
    fn requires(&self) -> &'static [&'static str] {
        &["filemeta"]
    }
    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        Box::pin(async move {
            // Reads its requirement's result: proves dependencies are passed.
            let parent_md5 = input.upstream["filemeta"]["md5"].clone();
            let mut out = ModuleOutput::result(json!({ "parent_md5": parent_md5 }));
            if input.depth == 0 {
                let mut file = tempfile::NamedTempFile::new()?;
                file.write_all(b"child bytes\n")?;
                out.children.push(ExtractedFile {
                    filename: "inner.txt".into(),
                    file,
                });
            }
            Ok(out)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_result_arrives_while_a_slow_module_still_runs() {
    let open = Arc::new(Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let cluster = Cluster::builder()
        .module(Arc::new(Gate {
            open: Arc::clone(&open),
            finished: Arc::clone(&finished),
        }))
        .start()
        .await;
    let task = cluster
        .submit(header("streamed.txt"), b"module by module\n")
        .await
        .unwrap()
        .task
        .unwrap();
    let mut events = cluster
        .tasks()
        .watch_task(pb::WatchTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap()
        .into_inner();
    let mut order = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.message().await.unwrap() {
            match e.event {
                Some(pb::task_event::Event::ModuleResult(r)) => {
                    if r.module == "filemeta" {
                        // The gate is still closed: this result was sent on
                        // its own, not with the others at the end.
                        assert!(!finished.load(Ordering::SeqCst));
                        open.notify_one();
                    }
                    order.push(r.module);
                }
                Some(pb::task_event::Event::Status(t))
                    if t.status == pb::TaskStatus::Complete as i32 =>
                {
                    return t;
                }
                _ => {}
            }
        }
        panic!("watch ended before completion");
    })
    .await
    .expect("the slow module was never released: results are not streamed one by one");
    order.retain(|m| m == "filemeta" || m == "gate");
    assert_eq!(order, ["filemeta", "gate"]);
    let report = cluster.report(outcome.task_id).await;
    assert_eq!(report["gate"], json!({"opened": true}));
    assert_eq!(report["filemeta"]["filesize"], 17);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_module_is_cut_at_its_timeout_and_the_rest_is_kept() {
    let cluster = Cluster::builder()
        .module(Arc::new(Hang))
        .timeout("hang", 1)
        .start()
        .await;
    let task = cluster
        .submit(header("h.bin"), b"hang on")
        .await
        .unwrap()
        .task
        .unwrap();
    let done = cluster.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32);
    let report = cluster.report(task.task_id).await;
    let err = report["errors"]["hang"].as_str().unwrap();
    assert!(err.contains("timed out after 1"), "{err}");
    assert_eq!(report["filemeta"]["filesize"], 7);
    assert!(report.get("hang").is_none());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_deadline_cuts_modules_shorter_than_their_own_timeout() {
    let cluster = Cluster::builder()
        .module(Arc::new(Hang))
        .task_deadline(1)
        .start()
        .await;
    let task = cluster
        .submit(header("d"), b"deadline")
        .await
        .unwrap()
        .task
        .unwrap();
    // Without the deadline the module would run for its 300 s timeout and
    // this wait (60 s at most) would fail.
    let done = cluster.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32);
    let report = cluster.report(task.task_id).await;
    assert_eq!(
        report["errors"]["hang"],
        "stopped: the task's deadline passed"
    );
    assert_eq!(report["filemeta"]["filesize"], 8);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extracted_files_become_child_nodes_analysed_by_the_same_modules() {
    let cluster = Cluster::builder().module(Arc::new(Extract)).start().await;
    let data = b"outer file\n";
    let task = cluster
        .submit(header("outer"), data)
        .await
        .unwrap()
        .task
        .unwrap();
    let done = cluster.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32);
    assert_eq!(done.node_count, 2);
    let report = cluster.report(task.task_id).await;
    assert_eq!(report["extract"]["parent_md5"], report["filemeta"]["md5"]);
    let child = &report["children"][0];
    assert_eq!(child["filename"], "inner.txt");
    assert_eq!(child["depth"], 1);
    assert_eq!(child["created_by"], "extract");
    assert_eq!(child["filemeta"]["sha256"], sha256_hex(b"child bytes\n"));
    assert!(child["parent_node_id"].as_i64().unwrap() < child["node_id"].as_i64().unwrap());
    // The child gets the same modules, with its own results.
    assert_eq!(child["extract"]["parent_md5"], child["filemeta"]["md5"]);
    cluster.stop().await;
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_policy_latest_reuses_and_rescan_analyses_again() {
    let cluster = Cluster::builder().start().await;
    let first = cluster.submit(header("a"), b"same bytes").await.unwrap();
    assert!(!first.existing);
    let t1 = first.task.unwrap().task_id;
    cluster.wait_final(t1).await;
    let again = cluster.submit(header("b"), b"same bytes").await.unwrap();
    assert!(again.existing);
    assert_eq!(again.task.unwrap().task_id, t1);
    let rescan = cluster
        .submit(
            pb::SubmissionHeader {
                duplicate: pb::DuplicatePolicy::Rescan as i32,
                ..header("c")
            },
            b"same bytes",
        )
        .await
        .unwrap();
    assert!(!rescan.existing);
    assert_ne!(rescan.task.unwrap().task_id, t1);
    // One sample stored for the three submissions.
    assert_eq!(cluster.samples_stored(), 1);

    let by_sha = cluster
        .reports()
        .get_report_by_sha256(pb::GetReportBySha256Request {
            sha256: sha256_hex(b"same bytes"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_sha.task.unwrap().sha256, sha256_hex(b"same bytes"));
    cluster.stop().await;
}

/// A module that counts its runs, extracts one file from top-level files,
/// and names a setting as its configuration.
struct Tally {
    runs: Arc<AtomicUsize>,
}

impl Module for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }
    fn version(&self) -> &'static str {
        "3"
    }
    fn module_type(&self) -> &'static str {
        "Test"
    }
    fn config(&self) -> serde_json::Value {
        json!({"setting": 1})
    }
    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            let mut out = ModuleOutput::result(json!({ "run": run }));
            if input.depth == 0 {
                let mut file = tempfile::NamedTempFile::new()?;
                file.write_all(b"found inside\n")?;
                out.children.push(ExtractedFile {
                    filename: "found.txt".into(),
                    file,
                });
            }
            Ok(out)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_reuses_cached_results_unless_forced() {
    let runs = Arc::new(AtomicUsize::new(0));
    let cluster = Cluster::builder()
        .module(Arc::new(Tally {
            runs: Arc::clone(&runs),
        }))
        .start()
        .await;
    let data = b"cached sample\n";
    let submit = async |force: bool| {
        let header = pb::SubmissionHeader {
            duplicate: pb::DuplicatePolicy::Rescan as i32,
            force,
            ..header("cached.bin")
        };
        let task = cluster.submit(header, data).await.unwrap().task.unwrap();
        let done = cluster.wait_final(task.task_id).await;
        assert_eq!(done.status, pb::TaskStatus::Complete as i32);
        assert_eq!(done.node_count, 2, "the extracted file is in every tree");
        cluster.report(task.task_id).await
    };
    let first = submit(false).await;
    // The sample and the file extracted from it: one run each.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(first["tally"]["run"], 1);

    // A rescan runs nothing: both nodes' results come from the cache, and
    // the extracted file is attached again.
    let second = submit(false).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    for key in ["tally", "filemeta"] {
        assert_eq!(second[key], first[key], "{key}");
        assert_eq!(second["children"][0][key], first["children"][0][key]);
    }
    assert_eq!(second["children"][0]["filename"], "found.txt");
    assert_eq!(second["children"][0]["created_by"], "tally");

    // Forcing runs every module again, on both nodes.
    let forced = submit(true).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(
        forced["tally"]["run"].as_u64().unwrap()
            + forced["children"][0]["tally"]["run"].as_u64().unwrap(),
        3 + 4
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_are_refused_with_the_field_and_store_nothing() {
    let cluster = Cluster::builder().start().await;
    for (header, data, field) in [
        (
            pb::SubmissionHeader {
                priority: 11,
                ..header("p")
            },
            &b"x"[..],
            "priority",
        ),
        (
            pb::SubmissionHeader {
                modules: vec!["Bad Name".into()],
                ..header("m")
            },
            &b"x"[..],
            "modules",
        ),
        (header("empty"), &b""[..], "empty"),
    ] {
        let err = cluster.submit(header, data).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }
    // No header at all.
    let err = cluster
        .tasks()
        .submit(futures::stream::iter(vec![pb::SubmitRequest {
            part: Some(pb::submit_request::Part::Chunk(bytes::Bytes::from_static(
                b"x",
            ))),
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("header"));

    let listed = cluster
        .tasks()
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.tasks.is_empty());
    assert_eq!(cluster.samples_stored(), 0);
    for bad in [0, -5] {
        let err = cluster
            .tasks()
            .get_task(pb::GetTaskRequest { task_id: bad })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
    let err = cluster
        .tasks()
        .get_task(pb::GetTaskRequest { task_id: 999 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = cluster
        .reports()
        .get_report_by_sha256(pb::GetReportBySha256Request {
            sha256: "../../etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_task_and_delete_removes_it() {
    let open = Arc::new(Notify::new());
    let cluster = Cluster::builder()
        .module(Arc::new(Gate {
            open: Arc::clone(&open),
            finished: Arc::new(AtomicBool::new(false)),
        }))
        .start()
        .await;
    let task = cluster
        .submit(header("c"), b"cancel me")
        .await
        .unwrap()
        .task
        .unwrap();
    let mut tasks = cluster.tasks();
    support::wait_for_status(&mut tasks, task.task_id, pb::TaskStatus::Running).await;
    let cancelled = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, pb::TaskStatus::Cancelled as i32);
    let done = cluster.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Cancelled as i32);

    tasks
        .delete_task(pb::DeleteTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap();
    let err = tasks
        .get_task(pb::GetTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    // The worker slot was given back: a new task still completes (its gate
    // is opened below until it does).
    let next = cluster
        .submit(header("n"), b"after")
        .await
        .unwrap()
        .task
        .unwrap();
    let next_done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            open.notify_one();
            let t = tasks
                .get_task(pb::GetTaskRequest {
                    task_id: next.task_id,
                })
                .await
                .unwrap()
                .into_inner();
            if t.status == pb::TaskStatus::Complete as i32 {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(next_done.node_count, 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_newest_first() {
    let cluster = Cluster::builder().start().await;
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let r = cluster
            .submit(header(&format!("f{i}")), &[i + 1; 10])
            .await
            .unwrap();
        ids.push(r.task.unwrap().task_id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = cluster
            .tasks()
            .list_tasks(pb::ListTasksRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.tasks.iter().map(|t| t.task_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let cluster = Cluster::builder().start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(cluster.channel.clone());
    for service in [
        "multiscanner.v1.Tasks",
        "multiscanner.v1.Reports",
        "multiscanner.v1.WorkerHub",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(cluster.channel.clone());
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "multiscanner.v1.Tasks",
        "multiscanner.v1.WorkerHub",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    // Defined in the contracts but not served by the scheduler.
    assert!(
        !names.iter().any(|n| n == "multiscanner.v1.AnalysisModule"),
        "{names:?}"
    );
    cluster.stop().await;
}
