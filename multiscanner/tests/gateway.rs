//! The REST gateway over real HTTP, in front of a real scheduler and
//! worker: MultiScanner's /api/v2 round trip, bad input, tokens.

mod support;

use std::{process::Command, time::Duration};

use multiscanner_gateway::{BoundGateway, GatewayConfig};
use multiscanner_proto::auth::{AuthConfig, Role, Token};
use reqwest::{StatusCode, multipart};
use serde_json::Value;
use support::Cluster;

struct Rest {
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Rest {
    async fn start(cluster: &Cluster, config: GatewayConfig, auth: AuthConfig) -> Rest {
        let config = GatewayConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            scheduler: format!("http://{}", cluster.addr),
            ..config
        };
        let bound = BoundGateway::bind(config, auth).await.unwrap();
        let base = format!("http://{}", bound.local_addr());
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        tokio::spawn(bound.serve(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        Rest {
            base,
            http: reqwest::Client::new(),
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        json_of(r).await
    }

    async fn submit(
        &self,
        fields: &[(&str, &str)],
        name: &str,
        data: Vec<u8>,
    ) -> (StatusCode, Value) {
        // Field names as browsers send them (`name="Submitter Name"`).
        let mut form = multipart::Form::new().percent_encode_noop();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        form = form.part(
            "file",
            multipart::Part::bytes(data).file_name(name.to_owned()),
        );
        let r = self
            .http
            .post(self.url("/api/v2/tasks"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    async fn wait_complete(&self, id: i64) -> Value {
        for _ in 0..1200 {
            let (status, task) = self.get(&format!("/api/v2/tasks/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{task}");
            match task["task_status"].as_str().unwrap() {
                "Complete" => return task,
                "Failed" | "Cancelled" => panic!("task {id} ended as {task}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("task {id} did not complete in two minutes");
    }
}

impl Drop for Rest {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, v)
}

/// The SHA-256 as coreutils computes it.
fn sha256sum(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, data).unwrap();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// Opens a zip with Python's zipfile and the given password: member names
/// and contents.
fn unzip_with_python(zip: &[u8], password: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.zip");
    std::fs::write(&path, zip).unwrap();
    let script = r#"
import sys, zipfile, json
z = zipfile.ZipFile(sys.argv[1])
print(json.dumps([[n, z.read(n, pwd=sys.argv[2].encode()).hex()] for n in z.namelist()]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python could not open the zip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    members
        .into_iter()
        .map(|(n, h)| (n, hex::decode(h).unwrap()))
        .collect()
}

/// No task, and no sample file once the scheduler has dropped the spooled
/// parts of refused uploads (it does when their reset reaches it).
async fn assert_nothing_stored(rest: &Rest, cluster: &Cluster) {
    for _ in 0..100 {
        if cluster.samples_stored() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.samples_stored(), 0);
    let (_, tasks) = rest.get("/api/v2/tasks").await;
    assert_eq!(tasks, serde_json::json!([]));
}

fn sample_bytes(tag: &str) -> Vec<u8> {
    format!("#!/bin/sh\n# gateway test sample {tag}\necho http://example.invalid/{tag}\n")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_goes_round_trip_through_the_rest_api() {
    let cluster = Cluster::builder().start().await;
    let rest = Rest::start(&cluster, GatewayConfig::default(), AuthConfig::default()).await;

    let (status, body) = rest.get("/").await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &serde_json::json!({"Message": true}))
    );
    let (status, modules) = rest.get("/api/v2/modules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(modules["filemeta"], true, "{modules}");

    let data = sample_bytes("roundtrip");
    let sha = sha256sum(&data);
    let (status, ids) = rest
        .submit(
            &[
                ("Tags", "triage,first"),
                ("Submitter Name", "Ann Analyst"),
                ("priority", "7"),
            ],
            "quarterly-invoice.sh",
            data.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ids}");
    let id = ids[0].as_i64().unwrap();
    let task = rest.wait_complete(id).await;
    assert_eq!(task["sample_id"], sha.as_str());
    assert!(task["timestamp"].is_string(), "{task}");

    // The report: hashes as coreutils computes them, the metadata kept.
    let (status, report) = rest.get(&format!("/api/v2/tasks/{id}/report")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["filemeta"]["sha256"], sha.as_str(), "{report}");
    assert_eq!(report["filename"], "quarterly-invoice.sh");
    assert_eq!(
        report["Scan Metadata"]["Submitter Name"], "Ann Analyst",
        "{report}"
    );
    let r = rest
        .http
        .get(rest.url(&format!("/api/v2/tasks/{id}/report?d=t")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename={id}.json").as_str()
    );

    // The sample: a zip that Python opens with the password `infected`,
    // and the raw bytes.
    let zip = rest
        .http
        .get(rest.url(&format!("/api/v2/files/{sha}")))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let members = unzip_with_python(&zip.bytes().await.unwrap(), "infected");
    assert_eq!(members, vec![(format!("{sha}.bin"), data.clone())]);
    let raw = rest
        .http
        .get(rest.url(&format!("/api/v2/tasks/{id}/file?raw=t")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.as_ref(), data.as_slice());
    let several = rest
        .http
        .get(rest.url(&format!("/api/v2/tasks/files?task_ids={id},{id}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(unzip_with_python(&several, "infected").len(), 1);

    // Tags on the sample, counted.
    let tag_url = rest.url(&format!("/api/v2/tasks/{id}/tags"));
    let r = rest
        .http
        .post(&tag_url)
        .form(&[("tag", "ransomware")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.1["Message"], "Tag Added");
    let (_, tags) = rest.get("/api/v2/tags/").await;
    let count = |tags: &Value, key: &str| {
        tags.as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| t["doc_count"].as_u64().unwrap())
    };
    assert_eq!(count(&tags, "ransomware"), Some(1), "{tags}");
    assert_eq!(count(&tags, "triage"), Some(1), "{tags}");
    // As `curl -F` sends it (multipart), which MultiScanner takes too.
    let form = multipart::Form::new().text("tag", "dropper");
    let r = rest
        .http
        .post(&tag_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.1["Message"], "Tag Added");
    let (_, tags) = rest.get("/api/v2/tags/").await;
    assert_eq!(count(&tags, "dropper"), Some(1), "{tags}");
    let form = multipart::Form::new().text("tag", "dropper");
    let r = rest
        .http
        .delete(&tag_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.1["Message"], "Tag Removed");
    let r = rest
        .http
        .delete(&tag_url)
        .form(&[("tag", "ransomware")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.1["Message"], "Tag Removed");
    let (_, tags) = rest.get("/api/v2/tags/").await;
    assert_eq!(count(&tags, "ransomware"), None, "{tags}");

    // Notes: add, edit, delete.
    let notes_url = rest.url(&format!("/api/v2/tasks/{id}/notes"));
    let r = rest
        .http
        .post(&notes_url)
        .form(&[("text", "seen in <b>phishing</b> wave")])
        .send()
        .await
        .unwrap();
    let (status, added) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let note_id = added["id"].as_str().unwrap().to_owned();
    let (_, notes) = rest.get(&format!("/api/v2/tasks/{id}/notes")).await;
    assert_eq!(notes[0]["text"], "seen in <b>phishing</b> wave", "{notes}");
    let r = rest
        .http
        .put(format!("{notes_url}/{note_id}"))
        .multipart(multipart::Form::new().text("text", "confirmed phishing"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.0, StatusCode::OK);
    let (_, notes) = rest.get(&format!("/api/v2/tasks/{id}/notes")).await;
    assert_eq!(notes.as_array().unwrap().len(), 1);
    assert_eq!(notes[0]["text"], "confirmed phishing");
    let r = rest
        .http
        .delete(format!("{notes_url}/{note_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.0, StatusCode::OK);
    let (_, notes) = rest.get(&format!("/api/v2/tasks/{id}/notes")).await;
    assert_eq!(notes, serde_json::json!([]));

    // Search by hash and by a fragment of the file name; find by SHA-256.
    for term in [sha.as_str(), "invoice"] {
        for table in ["_datatable", "_datatable/history"] {
            let (status, found) = rest
                .get(&format!(
                    "/api/v2/tasks/{table}?draw=3&start=0&length=10&search%5Bvalue%5D={term}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{found}");
            assert_eq!(found["draw"], 3);
            assert_eq!(found["recordsFiltered"], 1, "{term} in {table}: {found}");
            assert_eq!(found["data"][0][0], id);
            assert_eq!(found["data"][0][1], sha.as_str());
            assert_eq!(found["data"][0][2], "Complete");
        }
    }
    let (_, none) = rest
        .get("/api/v2/tasks/_datatable?search%5Bvalue%5D=no-such-fragment-anywhere")
        .await;
    assert_eq!(none["recordsFiltered"], 0, "{none}");
    let (_, by_hash) = rest.get(&format!("/api/v2/tasks/sha256/{sha}")).await;
    assert_eq!(by_hash["task_id"], id);

    // A duplicate returns the existing task; a rescan makes a new one.
    let (_, again) = rest.submit(&[], "again.sh", data.clone()).await;
    assert_eq!(again[0], id);
    let (_, rescan) = rest
        .submit(&[("duplicate", "rescan")], "again.sh", data)
        .await;
    assert_ne!(rescan[0], id);
    rest.wait_complete(rescan[0].as_i64().unwrap()).await;

    // Delete: gone from the task list.
    let r = rest
        .http
        .delete(rest.url(&format!("/api/v2/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await.1["Message"], true);
    let (status, _) = rest.get(&format!("/api/v2/tasks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_4xx_naming_the_field_and_stores_nothing() {
    let cluster = Cluster::builder().start().await;
    let config = GatewayConfig {
        max_upload_bytes: 1 << 20,
        ..GatewayConfig::default()
    };
    let rest = Rest::start(&cluster, config, AuthConfig::default()).await;
    let data = sample_bytes("bad-input");

    let expect = |(status, body): (StatusCode, Value), want: StatusCode, field: Option<&str>| {
        assert_eq!(status, want, "{body}");
        assert!(
            body["Message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        if let Some(f) = field {
            assert_eq!(body["field"], f, "{body}");
        }
    };

    // No file field.
    let form = multipart::Form::new().text("priority", "5");
    let r = rest
        .http
        .post(rest.url("/api/v2/tasks"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect(json_of(r).await, StatusCode::BAD_REQUEST, Some("file"));
    // Not multipart at all.
    let r = rest
        .http
        .post(rest.url("/api/v2/tasks"))
        .body("x")
        .send()
        .await
        .unwrap();
    expect(json_of(r).await, StatusCode::BAD_REQUEST, None);
    // Priorities outside 1..=10, an unknown module, an unknown policy.
    for p in ["0", "11", "high"] {
        let got = rest.submit(&[("priority", p)], "a.sh", data.clone()).await;
        expect(got, StatusCode::BAD_REQUEST, Some("priority"));
    }
    let got = rest
        .submit(
            &[("modules", "filemeta,no_such_module")],
            "a.sh",
            data.clone(),
        )
        .await;
    expect(got, StatusCode::BAD_REQUEST, Some("modules"));
    let got = rest
        .submit(&[("duplicate", "sometimes")], "a.sh", data.clone())
        .await;
    expect(got, StatusCode::BAD_REQUEST, Some("duplicate"));
    // A field after the file.
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(data.clone()).file_name("a.sh"),
        )
        .text("priority", "4");
    let r = rest
        .http
        .post(rest.url("/api/v2/tasks"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect(json_of(r).await, StatusCode::BAD_REQUEST, Some("priority"));
    // Too large (past the 1 MiB limit, within the body limit the gateway
    // reads to the end, so the client always gets the answer).
    let got = rest
        .submit(&[], "big.bin", vec![b'A'; (1 << 20) + (256 << 10)])
        .await;
    expect(got, StatusCode::PAYLOAD_TOO_LARGE, None);
    // A malformed report import, and a file that is not JSON.
    for body in [&b"{\"filemeta\": {}}"[..], b"\x00\x01not json"] {
        let got = rest
            .submit(&[("upload_type", "import")], "r.json", body.to_vec())
            .await;
        expect(got, StatusCode::BAD_REQUEST, Some("file"));
    }
    // An archive with the wrong password, and a file that is no archive.
    let zip = encrypted_zip(&[("one.txt", b"one")], "right-password");
    let got = rest
        .submit(
            &[("archive-analyze", "true"), ("archive-password", "wrong")],
            "a.zip",
            zip,
        )
        .await;
    expect(got, StatusCode::BAD_REQUEST, Some("archive-password"));
    let got = rest
        .submit(&[("archive-analyze", "true")], "a.zip", data.clone())
        .await;
    expect(got, StatusCode::BAD_REQUEST, Some("file"));

    // Bad hashes and ids in paths and parameters.
    let dotdot = "..%2F..%2F..%2Fetc%2Fpasswd";
    for path in [
        "/api/v2/files/not-hex".to_owned(),
        format!("/api/v2/files/{dotdot}"),
        format!("/api/v2/files/{}", "g".repeat(64)),
        "/api/v2/tasks/sha256/1234".to_owned(),
        "/api/v2/tasks/abc".to_owned(),
        "/api/v2/tasks/0/report".to_owned(),
        "/api/v2/tasks/reports?task_ids=1,x".to_owned(),
        "/api/v2/tasks/files?task_ids=".to_owned(),
        "/api/v2/tasks/_datatable?length=x".to_owned(),
        "/api/v2/tasks/_datatable?search_type=fuzzy".to_owned(),
    ] {
        expect(rest.get(&path).await, StatusCode::BAD_REQUEST, None);
    }
    // A query the store cannot parse names the DataTables search field.
    let got = rest
        .get("/api/v2/tasks/_datatable?search_type=advanced&search%5Bvalue%5D=m1.txt%20OR")
        .await;
    expect(got, StatusCode::BAD_REQUEST, Some("search[value]"));
    // Unknown tasks and samples.
    for path in [
        "/api/v2/tasks/999999".to_owned(),
        "/api/v2/tasks/999999/report".to_owned(),
        "/api/v2/tasks/999999/notes".to_owned(),
        format!("/api/v2/files/{}", "ab".repeat(32)),
        format!("/api/v2/tasks/sha256/{}", "ab".repeat(32)),
    ] {
        expect(rest.get(&path).await, StatusCode::NOT_FOUND, None);
    }
    let r = rest
        .http
        .post(rest.url("/api/v2/tasks/999999/tags"))
        .form(&[("tag", "x")])
        .send()
        .await
        .unwrap();
    expect(json_of(r).await, StatusCode::NOT_FOUND, None);
    let r = rest
        .http
        .post(rest.url("/api/v2/tasks/1/tags"))
        .form(&[("nottag", "x")])
        .send()
        .await
        .unwrap();
    expect(json_of(r).await, StatusCode::BAD_REQUEST, Some("tag"));

    // Nothing was stored by any of it.
    assert_nothing_stored(&rest, &cluster).await;
    cluster.stop().await;
}

fn encrypted_zip(members: &[(&str, &[u8])], password: &str) -> Vec<u8> {
    use std::io::Write;
    use zip::unstable::write::FileOptionsExt;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    let options = if password.is_empty() {
        options
    } else {
        options
            .with_deprecated_encryption(password.as_bytes())
            .unwrap()
    };
    for (name, data) in members {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_analyze_makes_one_task_per_member() {
    let cluster = Cluster::builder().start().await;
    let rest = Rest::start(&cluster, GatewayConfig::default(), AuthConfig::default()).await;
    let zip = encrypted_zip(
        &[
            ("docs/a.txt", b"first member\n"),
            ("b.txt", b"second member\n"),
        ],
        "infected",
    );
    let (status, ids) = rest
        .submit(
            &[
                ("archive-analyze", "true"),
                ("archive-password", "infected"),
            ],
            "bundle.zip",
            zip,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ids}");
    let ids: Vec<i64> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let mut seen = Vec::new();
    for (id, body) in ids.iter().zip([&b"first member\n"[..], b"second member\n"]) {
        rest.wait_complete(*id).await;
        let (_, report) = rest.get(&format!("/api/v2/tasks/{id}/report")).await;
        assert_eq!(report["filemeta"]["sha256"], sha256sum(body).as_str());
        seen.push(report["filename"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["docs/a.txt", "b.txt"]);
    cluster.stop().await;
}

fn tokens() -> AuthConfig {
    AuthConfig {
        tokens: vec![
            Token {
                name: "analyst".into(),
                token: "write-token-0123456789".into(),
                role: Role::Write,
            },
            Token {
                name: "viewer".into(),
                token: "read-token-0123456789".into(),
                role: Role::Read,
            },
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_guard_rest_and_grpc_alike() {
    let cluster = Cluster::builder().auth(tokens()).start().await;
    let rest = Rest::start(&cluster, GatewayConfig::default(), tokens()).await;
    let data = sample_bytes("tokens");
    let post = |token: Option<&'static str>| {
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(data.clone()).file_name("t.sh"),
        );
        let mut r = rest.http.post(rest.url("/api/v2/tasks")).multipart(form);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };

    let r = post(None).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(json_of(r).await.0, StatusCode::UNAUTHORIZED);
    let r = post(Some("not-a-token-at-all-xx")).send().await.unwrap();
    assert_eq!(json_of(r).await.0, StatusCode::UNAUTHORIZED);
    let r = post(Some("read-token-0123456789")).send().await.unwrap();
    assert_eq!(json_of(r).await.0, StatusCode::FORBIDDEN);
    let r = post(Some("write-token-0123456789")).send().await.unwrap();
    let (status, ids) = json_of(r).await;
    assert_eq!(status, StatusCode::CREATED, "{ids}");

    let (status, _) = rest.get("/api/v2/tasks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = rest
        .http
        .get(rest.url("/api/v2/tasks"))
        .bearer_auth("read-token-0123456789")
        .send()
        .await
        .unwrap();
    let (status, tasks) = json_of(r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tasks[0]["task_id"], ids[0]);
    // The API description and the liveness answer need no token.
    assert_eq!(rest.get("/api/openapi.json").await.0, StatusCode::OK);
    assert_eq!(rest.get("/").await.0, StatusCode::OK);

    // The scheduler checks the same tokens on gRPC.
    use multiscanner_proto::pb;
    let mut tasks = cluster.tasks();
    let err = tasks
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(pb::DeleteTaskRequest { task_id: 1 });
    req.metadata_mut().insert(
        "authorization",
        "Bearer read-token-0123456789".parse().unwrap(),
    );
    assert_eq!(
        tasks.delete_task(req).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    let mut req = tonic::Request::new(pb::ListTasksRequest::default());
    req.metadata_mut().insert(
        "authorization",
        "Bearer read-token-0123456789".parse().unwrap(),
    );
    assert_eq!(
        tasks
            .list_tasks(req)
            .await
            .unwrap()
            .into_inner()
            .tasks
            .len(),
        1
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_gateway_beyond_loopback_without_tokens_refuses_to_start() {
    let config = GatewayConfig {
        http_addr: "0.0.0.0:0".parse().unwrap(),
        ..GatewayConfig::default()
    };
    let err = BoundGateway::bind(config, AuthConfig::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("beyond loopback"), "{err}");
}

/// A client that goes away in the middle of its upload leaves nothing
/// behind: no sample, no task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_cut_short_by_the_client_stores_nothing() {
    use tokio::io::AsyncWriteExt;
    let cluster = Cluster::builder().start().await;
    let rest = Rest::start(&cluster, GatewayConfig::default(), AuthConfig::default()).await;
    let boundary = "cutshortboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let promised = head.len() + (4 << 20) + boundary.len() + 8;
    let mut conn = tokio::net::TcpStream::connect(rest.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "POST /api/v2/tasks HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {promised}\r\n\r\n{head}"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // A megabyte of the promised four, then the connection is gone.
    conn.write_all(&vec![b'C'; 1 << 20]).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(conn);
    assert_nothing_stored(&rest, &cluster).await;
    cluster.stop().await;
}
