//! The `metadefender` module against a local server that answers as
//! MetaDefender Core's v4 REST API documents: `POST /file` → `data_id`;
//! `GET /file/{data_id}` with `scan_results` whose `progress_percentage`
//! climbs to 100; `{"err": ...}` bodies with 401 and 503.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use common::http::{Answer, Request, serve};
use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::metadefender::{MetaDefender, MetaDefenderConfig};
use serde_json::json;

const KEY: &str = "md-key";
const SAMPLE: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$ not quite EICAR";

fn server(finishes: bool) -> impl Fn(&Request) -> Answer + Send + Sync {
    let polls = Arc::new(AtomicU32::new(0));
    move |req: &Request| {
        if req.headers.get("apikey").map(String::as_str) != Some(KEY) {
            return Answer::json(401, json!({"err": "Invalid API key"}));
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/file") if req.body == SAMPLE => Answer::json(
                200,
                json!({"data_id": "d41d8cd98f00b204", "status": "inqueue"}),
            ),
            ("POST", "/file") => Answer::json(400, json!({"err": "Body is empty"})),
            ("GET", "/file/d41d8cd98f00b204") => {
                let n = polls.fetch_add(1, Ordering::SeqCst);
                let progress = if finishes && n >= 1 { 100 } else { 40 };
                Answer::json(
                    200,
                    json!({
                        "data_id": "d41d8cd98f00b204",
                        "scan_results": {
                            "progress_percentage": progress,
                            "scan_all_result_i": 1,
                            "scan_all_result_a": "Infected",
                            "total_avs": 3,
                            "total_detected_avs": 2,
                            "scan_details": {
                                "EngineZ": {"scan_result_i": 1, "threat_found": "EICAR-Test-File",
                                    "def_time": "2026-12-01T00:00:00.000Z", "scan_time": 3},
                                "EngineA": {"scan_result_i": 2, "threat_found": "Heur.Suspicious",
                                    "def_time": "2026-12-01T00:00:00.000Z", "scan_time": 5},
                                "EngineM": {"scan_result_i": 0, "threat_found": "",
                                    "def_time": "2026-12-01T00:00:00.000Z", "scan_time": 1},
                            },
                        },
                        "process_info": {"progress_percentage": progress, "result": "Blocked"},
                    }),
                )
            }
            _ => Answer::json(404, json!({"err": "Not found"})),
        }
    }
}

fn module(url: &str, key: &str, timeout: u64) -> MetaDefender {
    MetaDefender::new(MetaDefenderConfig {
        url: url.into(),
        api_key: key.into(),
        poll_interval_secs: 1,
        analysis_timeout_secs: timeout,
        request_timeout_secs: 5,
    })
}

fn input(dir: &std::path::Path) -> ScanInput {
    common::sample(dir, SAMPLE, "<script>.exe", Sha256([7; 32]))
}

#[tokio::test]
async fn upload_poll_and_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = serve(server(true)).await;
    let m = module(&url, KEY, 60);
    let r = m.scan(input(dir.path())).await.unwrap().result.unwrap();
    assert_eq!(r["overall"], "Infected");
    assert_eq!(r["detected"], 2);
    assert_eq!(r["engines"], 3);
    let found: Vec<(&str, &str, &str)> = r["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["engine"].as_str().unwrap(),
                d["threat"].as_str().unwrap(),
                d["scan_result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("EngineA", "Heur.Suspicious", "Suspicious"),
            ("EngineZ", "EICAR-Test-File", "Infected/Known")
        ]
    );
    let seen = seen.lock().unwrap();
    // The upload carries the digest as its name, not the hostile one.
    assert_eq!(seen[0].headers["filename"], Sha256([7; 32]).to_string());
    // Upload, a poll at 40 %, a poll at 100 %.
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn refusals_and_time_outs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(server(false)).await;
    let err = module(&url, KEY, 2)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not finish"), "{err}");
    let err = module(&url, "bad", 60)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401") && err.contains("Invalid API key"),
        "{err}"
    );
    let (busy, _) = serve(|_: &Request| {
        Answer::json(503, json!({"err": "Server is too busy. Try again later."}))
    })
    .await;
    let err = module(&busy, KEY, 60)
        .scan(input(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("too busy"), "{err}");
}
