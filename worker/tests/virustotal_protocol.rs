//! The `virustotal` module against a local HTTP server that answers as
//! VirusTotal's v3 API documents: `GET /api/v3/files/{id}` with the key in
//! `x-apikey`; a file object (`data.attributes` with
//! `last_analysis_stats` and `last_analysis_results`) with 200;
//! `NotFoundError` with 404; `WrongCredentialsError` with 401;
//! `QuotaExceededError` with 429.

mod common;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use common::http::{Answer, serve};
use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::virustotal::{VirusTotal, VirusTotalConfig};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123";

/// Answers given in order to requests with the right key; when they run
/// out, 404 `NotFoundError`. A wrong key gets 401 `WrongCredentialsError`.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<Answer>>>);

impl Queue {
    fn push(&self, answer: Answer) {
        self.0.lock().unwrap().push_back(answer);
    }

    async fn start(&self) -> (String, common::http::Seen) {
        let queue = self.clone();
        let (base, seen) = serve(move |req| {
            if req.headers.get("x-apikey").map(String::as_str) != Some(KEY) {
                return Answer::json(
                    401,
                    json!({"error": {"code": "WrongCredentialsError", "message": "Wrong API key"}}),
                );
            }
            queue.0.lock().unwrap().pop_front().unwrap_or_else(|| {
                Answer::json(
                    404,
                    json!({"error": {"code": "NotFoundError", "message": "File not found"}}),
                )
            })
        })
        .await;
        (format!("{base}/api/v3"), seen)
    }
}

fn quota_exceeded() -> Answer {
    Answer::json(
        429,
        json!({"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}),
    )
    .with_header("retry-after", "0")
}

fn module(url: &str, key: &str) -> VirusTotal {
    VirusTotal::new(VirusTotalConfig {
        api_key: key.into(),
        url: url.into(),
        timeout_secs: 5,
        requests_per_minute: 6000,
        max_retries: 2,
    })
}

fn input(sha256: Sha256) -> ScanInput {
    let dir = std::env::temp_dir();
    ScanInput {
        path: Arc::new(dir.join("never-read")),
        filename: "sample".into(),
        sha256,
        size: 0,
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    }
}

fn file_object() -> Value {
    json!({"data": {"type": "file", "id": "x", "attributes": {
        "meaningful_name": "invoice.exe",
        "names": ["invoice.exe", "a.bin"],
        "type_description": "Win32 EXE",
        "reputation": -12,
        "times_submitted": 7,
        "tags": ["peexe"],
        "first_submission_date": 1_600_000_000,
        "last_analysis_date": 1_700_000_000,
        "last_analysis_stats": {"malicious": 2, "suspicious": 1, "undetected": 60,
            "harmless": 0, "timeout": 0, "type-unsupported": 3, "failure": 0},
        "last_analysis_results": {
            "EngineB": {"category": "malicious", "engine_name": "EngineB",
                "result": "Trojan.Generic", "method": "blacklist"},
            "EngineA": {"category": "suspicious", "engine_name": "EngineA",
                "result": "Heur.Suspicious", "method": "blacklist"},
            "EngineC": {"category": "malicious", "engine_name": "EngineC",
                "result": "Win32.Agent", "method": "blacklist"},
            "EngineD": {"category": "undetected", "engine_name": "EngineD",
                "result": null, "method": "blacklist"},
        },
    }}})
}

#[tokio::test]
async fn known_unknown_quota_and_bad_key() {
    let server = Queue::default();
    let (url, seen) = server.start().await;
    let vt = module(&url, KEY);
    vt.check().unwrap();
    let sha = Sha256([0xab; 32]);

    server.push(Answer::json(200, file_object()));
    let r = vt.scan(input(sha)).await.unwrap().result.unwrap();
    assert_eq!(r["found"], true);
    assert_eq!(r["malicious"], 2);
    assert_eq!(r["engines"], 4);
    assert_eq!(r["meaningful_name"], "invoice.exe");
    let detections: Vec<(&str, &str)> = r["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["engine"].as_str().unwrap(), d["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        detections,
        [
            ("EngineA", "Heur.Suspicious"),
            ("EngineB", "Trojan.Generic"),
            ("EngineC", "Win32.Agent")
        ]
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, format!("/api/v3/files/{sha}"));
    }

    // Not known to VirusTotal: a result that says so.
    let r = vt
        .scan(input(Sha256([1; 32])))
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(r, json!({"found": false}));

    // Quota: retried after the wait asked for, then answered.
    server.push(quota_exceeded());
    server.push(Answer::json(200, file_object()));
    let before = seen.lock().unwrap().len();
    let r = vt.scan(input(sha)).await.unwrap().result.unwrap();
    assert_eq!(r["found"], true);
    assert_eq!(seen.lock().unwrap().len(), before + 2);

    // Quota refused every time: an error once the retries are spent.
    for _ in 0..3 {
        server.push(quota_exceeded());
    }
    let err = vt.scan(input(sha)).await.unwrap_err().to_string();
    assert!(err.contains("QuotaExceededError"), "{err}");

    // A wrong key: VirusTotal's reason, not a bare status.
    let wrong = module(&url, "wrong");
    let err = wrong.scan(input(sha)).await.unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("WrongCredentialsError"),
        "{err}"
    );
}

#[tokio::test]
async fn no_key_and_no_service_are_named() {
    let none = module("http://127.0.0.1:9/api/v3", "");
    assert!(none.check().unwrap_err().contains("no API key"));
    let err = none.scan(input(Sha256([2; 32]))).await.unwrap_err();
    assert!(err.to_string().contains("no API key"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = module(&format!("http://127.0.0.1:{port}/api/v3"), KEY);
    let err = down
        .scan(input(Sha256([2; 32])))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not reachable"), "{err}");
}
