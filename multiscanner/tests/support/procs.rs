//! Roles run as separate processes of the built binary, and the gRPC calls
//! tests make to them.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    time::Duration,
};

use multiscanner_proto::pb;

use super::cli::multiscanner;

/// A running role whose log lines are collected on a thread.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Proc {
    /// A test that fails half-way must not leave its servers running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_env(args, &[])
    }

    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = multiscanner()
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 60 s) for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; saw: {:#?}", self.seen),
            }
        }
    }

    /// The address a server logged as bound.
    pub fn bound_addr(&mut self) -> String {
        let line = self.wait_for("scheduler listening");
        line.split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no addr in {line:?}"))
            .to_owned()
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("process did not stop within 30 s of SIGTERM");
    }
}

/// Short leases and heartbeats, so that lost work comes back in seconds.
pub const FAST_LEASES: &[(&str, &str)] = &[
    ("MULTISCANNER_SCHEDULER__LEASE_SECS", "2"),
    ("MULTISCANNER_SCHEDULER__HEARTBEAT_INTERVAL_MS", "200"),
];

pub async fn client(addr: &str) -> pb::tasks_client::TasksClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::tasks_client::TasksClient::new(channel)
}

pub async fn submit(
    tasks: &mut pb::tasks_client::TasksClient<tonic::transport::Channel>,
    data: Vec<u8>,
) -> pb::Task {
    try_submit(tasks, data, pb::DuplicatePolicy::Rescan)
        .await
        .unwrap()
}

/// Submits `data` under the duplicate `policy`; the call's error as is.
pub async fn try_submit(
    tasks: &mut pb::tasks_client::TasksClient<tonic::transport::Channel>,
    data: Vec<u8>,
    policy: pb::DuplicatePolicy,
) -> Result<pb::Task, tonic::Status> {
    let mut msgs = vec![pb::SubmitRequest {
        part: Some(pb::submit_request::Part::Header(pb::SubmissionHeader {
            filename: "sample.bin".into(),
            duplicate: policy as i32,
            ..Default::default()
        })),
    }];
    let data = bytes::Bytes::from(data);
    for start in (0..data.len()).step_by(256 * 1024) {
        let end = (start + 256 * 1024).min(data.len());
        msgs.push(pb::SubmitRequest {
            part: Some(pb::submit_request::Part::Chunk(data.slice(start..end))),
        });
    }
    let answer = tasks.submit(futures::stream::iter(msgs)).await?;
    answer
        .into_inner()
        .task
        .ok_or_else(|| tonic::Status::internal("no task in the answer"))
}

/// The stored report of a task, parsed.
pub async fn report(addr: &str, task_id: i64) -> serde_json::Value {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let report = pb::reports_client::ReportsClient::new(channel)
        .get_report(pb::GetReportRequest { task_id })
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&report.report_json).unwrap()
}
