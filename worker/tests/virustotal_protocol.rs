//! The `virustotal` module against a local HTTP server that answers as
//! VirusTotal's v3 API documents: `GET /api/v3/files/{id}` with the key in
//! `x-apikey`; a file object (`data.attributes` with
//! `last_analysis_stats` and `last_analysis_results`) with 200;
//! `NotFoundError` with 404; `WrongCredentialsError` with 401;
//! `QuotaExceededError` with 429.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::virustotal::{VirusTotal, VirusTotalConfig};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

const KEY: &str = "test-key-0123";

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    api_key: Option<String>,
}

/// A status, extra headers and a JSON body.
type Answer = (u16, Vec<(String, String)>, Value);

/// Answers in order; when they run out, 404 `NotFoundError`.
#[derive(Clone, Default)]
struct Server {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn push(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.answers
            .lock()
            .unwrap()
            .push_back((status, headers, body));
    }

    async fn start(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let this = self.clone();
                tokio::spawn(async move {
                    let (rx, mut tx) = stream.into_split();
                    let mut lines = BufReader::new(rx).lines();
                    let Ok(Some(request)) = lines.next_line().await else {
                        return;
                    };
                    let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut api_key = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("x-apikey")
                        {
                            api_key = Some(v.trim().to_owned());
                        }
                    }
                    this.seen.lock().unwrap().push(Seen {
                        path,
                        api_key: api_key.clone(),
                    });
                    let (status, headers, body) = if api_key.as_deref() != Some(KEY) {
                        (
                            401,
                            vec![],
                            json!({"error": {"code": "WrongCredentialsError",
                            "message": "Wrong API key"}}),
                        )
                    } else {
                        this.answers.lock().unwrap().pop_front().unwrap_or((
                            404,
                            vec![],
                            json!({"error": {"code": "NotFoundError",
                                "message": "File not found"}}),
                        ))
                    };
                    let body = body.to_string();
                    let mut head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = tx.write_all(head.as_bytes()).await;
                    let _ = tx.write_all(body.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/api/v3")
    }
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
    let server = Server::default();
    let url = server.clone().start().await;
    let vt = module(&url, KEY);
    vt.check().unwrap();
    let sha = Sha256([0xab; 32]);

    server.push(200, &[], file_object());
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
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen[0].path, format!("/api/v3/files/{sha}"));
        assert_eq!(seen[0].api_key.as_deref(), Some(KEY));
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
    server.push(
        429,
        &[("retry-after", "0")],
        json!({"error": {"code": "QuotaExceededError",
        "message": "Quota exceeded"}}),
    );
    server.push(200, &[], file_object());
    let before = server.seen.lock().unwrap().len();
    let r = vt.scan(input(sha)).await.unwrap().result.unwrap();
    assert_eq!(r["found"], true);
    assert_eq!(server.seen.lock().unwrap().len(), before + 2);

    // Quota refused every time: an error once the retries are spent.
    for _ in 0..3 {
        server.push(
            429,
            &[("retry-after", "0")],
            json!({"error": {"code": "QuotaExceededError",
            "message": "Quota exceeded"}}),
        );
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
