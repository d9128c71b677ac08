//! The server roles as separate processes: `scheduler` + `worker`, and
//! `all-in-one`, driven over gRPC like a client would.

mod support;

use std::time::Duration;

use multiscanner_proto::pb;
use support::{
    cli::multiscanner,
    procs::{FAST_LEASES, Proc, client, submit},
    wait_for_status, watch_until_final,
};

async fn submit_and_wait(addr: &str, data: &'static [u8]) -> pb::Task {
    let mut tasks = client(addr).await;
    let task = submit(&mut tasks, data.to_vec()).await;
    watch_until_final(&mut tasks, task.task_id).await
}

#[tokio::test]
async fn scheduler_and_worker_run_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut scheduler = Proc::spawn(&[
        "scheduler",
        "--grpc-addr",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ]);
    let addr = scheduler.bound_addr();
    let url = format!("http://{addr}");
    let mut worker = Proc::spawn(&["worker", "--scheduler", &url, "--concurrency", "2"]);
    worker.wait_for("connected");
    let task = submit_and_wait(&addr, b"separate processes\n").await;
    assert_eq!(task.status, pb::TaskStatus::Complete as i32, "{task:?}");
    assert_eq!(worker.terminate(), Some(0));
    assert_eq!(scheduler.terminate(), Some(0));
    // The embedded stores live under the data directory.
    assert!(dir.path().join("tasks.db").is_file());
    assert!(dir.path().join("samples").is_dir());
}

#[tokio::test]
async fn all_in_one_logs_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut mesh = Proc::spawn(&[
        "all-in-one",
        "--data-dir",
        data,
        "--grpc-addr",
        "127.0.0.1:0",
        "--workers",
        "2",
    ]);
    let addr = mesh.bound_addr();
    let task = submit_and_wait(&addr, b"all in one\n").await;
    assert_eq!(task.status, pb::TaskStatus::Complete as i32, "{task:?}");
    assert_eq!(mesh.terminate(), Some(0));
}

#[test]
fn a_taken_port_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = multiscanner()
        .args(["all-in-one", "--grpc-addr", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[tokio::test]
async fn acknowledged_tasks_survive_a_kill_9_of_all_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = [
        "all-in-one",
        "--data-dir",
        data,
        "--grpc-addr",
        "127.0.0.1:0",
    ];
    let mut mesh = Proc::spawn(&args);
    let addr = mesh.bound_addr();
    let mut tasks = client(&addr).await;
    let mut acknowledged = Vec::new();
    for i in 0..300u32 {
        let body = format!("sample {i}\n").repeat(64).into_bytes();
        acknowledged.push(submit(&mut tasks, body).await.task_id);
    }
    let before = tasks
        .list_tasks(pb::ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let open = before
        .tasks
        .iter()
        .filter(|t| t.status != pb::TaskStatus::Complete as i32)
        .count();
    // Crash while work is queued or running (else this would prove nothing).
    mesh.kill9();
    assert!(open > 0, "all tasks finished before the kill; submit more");

    // Work that was assigned when the process died comes back when its
    // lease (2 s here) runs out.
    let mut mesh = Proc::spawn_env(&args, FAST_LEASES);
    let addr = mesh.bound_addr();
    let mut tasks = client(&addr).await;
    let all_done = async {
        loop {
            let mut open = 0;
            for &task_id in &acknowledged {
                let t = tasks
                    .get_task(pb::GetTaskRequest { task_id })
                    .await
                    .unwrap()
                    .into_inner();
                assert_ne!(t.status, pb::TaskStatus::Failed as i32, "{t:?}");
                if t.status != pb::TaskStatus::Complete as i32 {
                    open += 1;
                }
            }
            if open == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_done)
        .await
        .expect("acknowledged tasks were lost or left unfinished after the restart");
    // No task was lost or created twice by the restart.
    let listed = tasks
        .list_tasks(pb::ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), acknowledged.len());
    assert_eq!(mesh.terminate(), Some(0));
}

#[tokio::test]
async fn a_worker_killed_mid_task_leaves_the_task_to_another_worker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut scheduler = Proc::spawn_env(
        &[
            "scheduler",
            "--grpc-addr",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ],
        FAST_LEASES,
    );
    let addr = scheduler.bound_addr();
    let url = format!("http://{addr}");
    let mut first = Proc::spawn(&["worker", "--scheduler", &url, "--concurrency", "1"]);
    first.wait_for("connected");

    let (body, expected) = big_body();
    let mut tasks = client(&addr).await;
    let task = submit(&mut tasks, body).await;
    wait_for_status(&mut tasks, task.task_id, pb::TaskStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = tasks
        .get_task(pb::GetTaskRequest {
            task_id: task.task_id,
        })
        .await
        .unwrap()
        .into_inner();
    first.kill9();
    assert_eq!(
        before.status,
        pb::TaskStatus::Running as i32,
        "the task finished before the kill; the test proves nothing"
    );

    let mut second = Proc::spawn(&["worker", "--scheduler", &url, "--concurrency", "1"]);
    second.wait_for("connected");
    let done = watch_until_final(&mut tasks, task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32, "{done:?}");
    let report = support::procs::report(&addr, task.task_id).await;
    assert_eq!(report["filemeta"]["sha256"], expected);
    assert!(report.get("errors").is_none(), "{}", report["errors"]);
    assert_eq!(second.terminate(), Some(0));
    assert_eq!(scheduler.terminate(), Some(0));
}

/// A file big enough that analysing it takes seconds, and its SHA-256.
fn big_body() -> (Vec<u8>, String) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let body: Vec<u8> = (0..(192usize << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    (body, sha256)
}

#[tokio::test]
async fn a_worker_stopped_with_sigterm_hands_back_what_it_cannot_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut scheduler = Proc::spawn(&[
        "scheduler",
        "--grpc-addr",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ]);
    let addr = scheduler.bound_addr();
    let url = format!("http://{addr}");
    // No grace: whatever runs at SIGTERM is handed back at once.
    let impatient = [("MULTISCANNER_WORKER__SHUTDOWN_GRACE_SECS", "0")];
    let args = ["worker", "--scheduler", &url, "--concurrency", "1"];
    let mut first = Proc::spawn_env(&args, &impatient);
    first.wait_for("connected");
    let (body, expected) = big_body();
    let mut tasks = client(&addr).await;
    let task = submit(&mut tasks, body).await;
    wait_for_status(&mut tasks, task.task_id, pb::TaskStatus::Running).await;
    assert_eq!(first.terminate(), Some(0));
    scheduler.wait_for("work handed back; re-queued");

    let mut second = Proc::spawn(&args);
    second.wait_for("connected");
    let done = watch_until_final(&mut tasks, task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32, "{done:?}");
    let report = support::procs::report(&addr, task.task_id).await;
    assert_eq!(report["filemeta"]["sha256"], expected);
    assert!(report.get("errors").is_none(), "{}", report["errors"]);
    assert_eq!(second.terminate(), Some(0));
    assert_eq!(scheduler.terminate(), Some(0));
}

/// `multiscanner gateway` as its own process in front of a scheduler
/// process: a file submitted over REST is analysed, and SIGTERM stops it
/// cleanly.
#[tokio::test]
async fn the_gateway_runs_alone_in_front_of_a_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut scheduler = Proc::spawn(&[
        "scheduler",
        "--grpc-addr",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ]);
    let url = format!("http://{}", scheduler.bound_addr());
    let mut worker = Proc::spawn(&["worker", "--scheduler", &url]);
    worker.wait_for("connected");
    let mut gateway = Proc::spawn(&["gateway", "--http-addr", "127.0.0.1:0", "--scheduler", &url]);
    let line = gateway.wait_for("gateway listening");
    let base = format!(
        "http://{}",
        line.split("addr=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );

    let http = reqwest::Client::new();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(&b"through the gateway process\n"[..]).file_name("g.txt"),
    );
    let r = http
        .post(format!("{base}/api/v2/tasks"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let ids: Vec<i64> = r.json().await.unwrap();
    let mut status = String::new();
    for _ in 0..600 {
        let task: serde_json::Value = http
            .get(format!("{base}/api/v2/tasks/{}", ids[0]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = task["task_status"].as_str().unwrap().to_owned();
        if status != "Pending" && status != "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "Complete");
    assert_eq!(gateway.terminate(), Some(0));
    assert_eq!(worker.terminate(), Some(0));
    assert_eq!(scheduler.terminate(), Some(0));
}

#[test]
fn a_gateway_beyond_loopback_without_tokens_is_a_clear_startup_error() {
    let out = multiscanner()
        .args(["gateway", "--http-addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("beyond loopback"), "{err}");
}
