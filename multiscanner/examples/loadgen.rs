//! Load generator for `bench/throughput.sh` and `bench/rest.sh`: submits
//! distinct small files over gRPC (or, with `--rest URL`, as multipart
//! uploads to the REST gateway), keeps a fixed number in flight, and
//! measures each one from the start of its upload to its final status (seen
//! on a gRPC task watch either way, so both paths end the same).
//!
//! Prints one line of JSON: files, seconds, files_per_s, p50_ms, p99_ms,
//! failed.
//!
//! ```text
//! cargo run --release -p multiscanner --example loadgen -- \
//!     --addr http://127.0.0.1:7400 --files 5000 --size 4096 --in-flight 64 \
//!     [--rest http://127.0.0.1:8080]
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use multiscanner_proto::pb::{
    self, submit_request::Part, task_event::Event, tasks_client::TasksClient,
};
use tonic::transport::{Channel, Endpoint};

struct Args {
    addr: String,
    files: usize,
    size: usize,
    in_flight: usize,
    seed: u64,
    rest: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        addr: "http://127.0.0.1:7400".into(),
        files: 1000,
        size: 4096,
        in_flight: 64,
        seed: std::process::id().into(),
        rest: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--files" => args.files = value.parse()?,
            "--size" => args.size = value.parse()?,
            "--in-flight" => args.in_flight = value.parse()?,
            "--seed" => args.seed = value.parse()?,
            "--rest" => args.rest = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A distinct, deterministic payload per file (xorshift; the file number
/// and seed up front so no two files share a SHA-256).
fn payload(seed: u64, n: usize, size: usize) -> Vec<u8> {
    let mut x = seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&seed.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Submits over gRPC; the task id.
async fn submit_grpc(
    tasks: &mut TasksClient<Channel>,
    data: Vec<u8>,
    n: usize,
) -> anyhow::Result<i64> {
    let header = pb::SubmissionHeader {
        filename: format!("load-{n}.bin"),
        duplicate: pb::DuplicatePolicy::Rescan as i32,
        ..Default::default()
    };
    let parts = vec![
        pb::SubmitRequest {
            part: Some(Part::Header(header)),
        },
        pb::SubmitRequest {
            part: Some(Part::Chunk(data.into())),
        },
    ];
    let task = tasks
        .submit(futures::stream::iter(parts))
        .await?
        .into_inner()
        .task
        .context("no task in the answer")?;
    Ok(task.task_id)
}

/// Submits as a multipart upload to the REST gateway; the task id.
async fn submit_rest(
    http: &reqwest::Client,
    url: &str,
    data: Vec<u8>,
    n: usize,
) -> anyhow::Result<i64> {
    let form = reqwest::multipart::Form::new()
        .text("duplicate", "rescan")
        .part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name(format!("load-{n}.bin")),
        );
    let answer = http
        .post(format!("{url}/api/v2/tasks"))
        .multipart(form)
        .send()
        .await?;
    let status = answer.status();
    let body = answer.text().await?;
    if status != reqwest::StatusCode::CREATED {
        bail!("REST submit answered {status}: {body}");
    }
    let ids: Vec<i64> =
        serde_json::from_str(&body).with_context(|| format!("REST answer {body}"))?;
    ids.first()
        .copied()
        .context("no task id in the REST answer")
}

async fn one(
    channel: Channel,
    rest: Option<(reqwest::Client, String)>,
    data: Vec<u8>,
    n: usize,
) -> anyhow::Result<Duration> {
    let mut tasks = TasksClient::new(channel);
    let started = Instant::now();
    let task_id = match &rest {
        Some((http, url)) => submit_rest(http, url, data, n).await?,
        None => submit_grpc(&mut tasks, data, n).await?,
    };
    let mut events = tasks
        .watch_task(pb::WatchTaskRequest { task_id })
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(Event::Status(t)) = event?.event {
            match pb::TaskStatus::try_from(t.status) {
                Ok(pb::TaskStatus::Complete) => return Ok(started.elapsed()),
                Ok(pb::TaskStatus::Failed | pb::TaskStatus::Cancelled) => {
                    bail!("task {} ended {:?}: {}", t.task_id, t.status, t.error)
                }
                _ => {}
            }
        }
    }
    bail!("watch of task {task_id} closed before it ended")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // A few connections, so one HTTP/2 connection's flow control is not
    // what is measured.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Endpoint::from_shared(args.addr.clone())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("cannot reach {}", args.addr))?,
        );
    }
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let payloads: Vec<Vec<u8>> = (0..args.files)
        .map(|n| payload(args.seed, n, args.size))
        .collect();
    let started = Instant::now();
    let outcomes: Vec<anyhow::Result<Duration>> =
        futures::stream::iter(payloads.into_iter().enumerate().map(|(n, data)| {
            let channel = channels[n % channels.len()].clone();
            let rest = args.rest.clone().map(|url| (http.clone(), url));
            one(channel, rest, data, n)
        }))
        .buffer_unordered(args.in_flight)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for o in outcomes {
        match o {
            Ok(d) => latencies.push(d),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("loadgen: {e:#}");
                }
            }
        }
    }
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "files": args.files,
            "seconds": seconds,
            "files_per_s": latencies.len() as f64 / seconds,
            "p50_ms": percentile(&latencies, 0.50),
            "p99_ms": percentile(&latencies, 0.99),
            "failed": failed,
        })
    );
    Ok(())
}
