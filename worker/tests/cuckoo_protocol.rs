//! The `cuckoo` module against a local server that answers as Cuckoo 2's
//! REST API and CAPE's apiv2 document: a multipart submission giving a task
//! id, task status going pending → running → reported, the JSON report;
//! their error answers; a task that fails; one that never finishes.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use common::http::{Answer, Request, serve};
use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::cuckoo::{Cuckoo, CuckooConfig, Flavour};
use serde_json::{Value, json};

const KEY: &str = "sandbox-key";
const SAMPLE: &[u8] = b"MZ\x90\x00 a sample for the sandbox";

/// How the fake sandbox's tasks end.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    Reported,
    Failed,
    Never,
}

fn report() -> Value {
    json!({
        "info": {"id": 1, "score": 7.5, "duration": 121, "machine": {"name": "win10-1"}},
        "malscore": null,
        "signatures": [
            {"name": "creates_exe", "description": "Creates an executable", "severity": 2},
            {"name": "network_http", "description": "Talks HTTP", "severity": 1},
        ],
        "network": {
            "hosts": [{"ip": "198.51.100.7", "country_name": "X"}, "203.0.113.9"],
            "domains": [{"domain": "evil.example", "ip": "198.51.100.7"}],
        },
        "dropped": [{"name": "a.exe"}, {"name": "b.dll"}],
        "behavior": {"processes": [{"pid": 1}, {"pid": 2}, {"pid": 3}]},
    })
}

fn sandbox(flavour: Flavour, ending: Ending) -> impl Fn(&Request) -> Answer + Send + Sync {
    let polls: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let (scheme, prefix, slash) = match flavour {
        Flavour::Cuckoo => ("Bearer", "/tasks/", ""),
        Flavour::Cape => ("Token", "/apiv2/tasks/", "/"),
    };
    move |req: &Request| {
        if req.headers.get("authorization") != Some(&format!("{scheme} {KEY}")) {
            return Answer::json(401, json!({"message": "Authentication required"}));
        }
        let Some(rest) = req.path.strip_prefix(prefix) else {
            return Answer::json(404, json!({"message": "no such route"}));
        };
        let rest = rest.strip_suffix(slash).unwrap_or(rest);
        let id_of = |s: &str| s.parse::<u64>().ok();
        match (req.method.as_str(), rest.rsplit_once('/')) {
            ("POST", Some(("create", "file"))) => {
                let body = String::from_utf8_lossy(&req.body);
                if !body.contains("name=\"file\"")
                    || !req.body.windows(SAMPLE.len()).any(|w| w == SAMPLE)
                {
                    return Answer::json(400, json!({"message": "no file"}));
                }
                match flavour {
                    Flavour::Cuckoo => Answer::json(200, json!({"task_id": 42})),
                    Flavour::Cape => {
                        Answer::json(200, json!({"error": false, "data": {"task_ids": [42]}}))
                    }
                }
            }
            ("GET", Some(("view", id))) if id_of(id) == Some(42) => {
                let mut polls = polls.lock().unwrap();
                let n = polls.entry(42).or_default();
                *n += 1;
                let status = match (ending, *n) {
                    (_, 0 | 1) => "pending",
                    (Ending::Reported, 2..) => "reported",
                    (Ending::Failed, 2..) => "failed_analysis",
                    (Ending::Never, _) => "running",
                };
                match flavour {
                    Flavour::Cuckoo => {
                        Answer::json(200, json!({"task": {"id": 42, "status": status}}))
                    }
                    Flavour::Cape => Answer::json(
                        200,
                        json!({"error": false, "data": {"id": 42, "status": status}}),
                    ),
                }
            }
            ("GET", Some(("report" | "get/report", id))) if id_of(id) == Some(42) => {
                let mut r = report();
                if flavour == Flavour::Cape {
                    r["malscore"] = json!(9.1);
                }
                Answer::json(200, r)
            }
            ("GET", Some((_, _))) if flavour == Flavour::Cape => Answer::json(
                200,
                json!({"error": true, "error_value": "Task ID does not exist in the database"}),
            ),
            _ => Answer::json(404, json!({"message": "Task not found"})),
        }
    }
}

fn module(url: &str, flavour: Flavour, key: &str, timeout: u64) -> Cuckoo {
    Cuckoo::new(CuckooConfig {
        url: url.into(),
        flavour,
        api_key: key.into(),
        poll_interval_secs: 1,
        analysis_timeout_secs: timeout,
        detonation_secs: 60,
        request_timeout_secs: 5,
    })
}

fn input(dir: &std::path::Path) -> ScanInput {
    common::sample(dir, SAMPLE, "../invoice.pdf.exe", Sha256([0; 32]))
}

#[tokio::test]
async fn both_sandboxes_detonate_and_report() {
    let dir = tempfile::tempdir().unwrap();
    for flavour in [Flavour::Cuckoo, Flavour::Cape] {
        let (url, seen) = serve(sandbox(flavour, Ending::Reported)).await;
        let m = module(&url, flavour, KEY, 60);
        m.check().unwrap();
        let r = m.scan(input(dir.path())).await.unwrap().result.unwrap();
        assert_eq!(r["task_id"], 42);
        let score = if flavour == Flavour::Cape { 9.1 } else { 7.5 };
        assert_eq!(r["score"], score);
        assert_eq!(r["signatures"][0]["name"], "creates_exe");
        assert_eq!(r["hosts"], json!(["198.51.100.7", "203.0.113.9"]));
        assert_eq!(r["domains"], json!(["evil.example"]));
        assert_eq!(r["dropped_files"], 2);
        assert_eq!(r["processes"], 3);
        let seen = seen.lock().unwrap();
        let upload = String::from_utf8_lossy(&seen[0].body).into_owned();
        // Only the extension of the hostile name reaches the sandbox.
        assert!(upload.contains("filename=\"sample.exe\""), "{upload}");
        assert!(!upload.contains("invoice"), "{upload}");
        assert!(upload.contains("name=\"timeout\""), "{upload}");
        // Submit, two polls, the report.
        assert_eq!(seen.len(), 4, "{seen:?}");
    }
}

#[tokio::test]
async fn failures_are_errors_that_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(sandbox(Flavour::Cuckoo, Ending::Failed)).await;
    let err = module(&url, Flavour::Cuckoo, KEY, 60)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed_analysis"), "{err}");

    let (url, _) = serve(sandbox(Flavour::Cape, Ending::Never)).await;
    let err = module(&url, Flavour::Cape, KEY, 2)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not report within 2s"), "{err}");

    let (url, _) = serve(sandbox(Flavour::Cuckoo, Ending::Reported)).await;
    let err = module(&url, Flavour::Cuckoo, "wrong", 60)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("submission") && err.contains("401"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = module(&format!("http://127.0.0.1:{port}"), Flavour::Cape, KEY, 60)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not reachable"), "{err}");
    assert!(module("not a url", Flavour::Cape, KEY, 60).check().is_err());
}
