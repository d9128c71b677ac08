//! Search, tags, notes and report import through the public `Reports`
//! service, on a running mesh: with the embedded stores, and with reports on
//! a real Elasticsearch node and samples on a real S3-compatible server.

mod support;

use std::time::Duration;

use multiscanner_proto::pb::{self, SearchType};
use multiscanner_scheduler::test_services::{Engine, TestS3, TestSearchNode};
use sha2::Digest;
use support::{Cluster, header};
use tonic::Code;

/// Searches until the hits satisfy `done` (searches see writes after the
/// engine's refresh); ten seconds at most.
async fn search_until(
    c: &Cluster,
    req: pb::SearchRequest,
    done: impl Fn(&pb::SearchResponse) -> bool,
) -> pb::SearchResponse {
    let mut last = None;
    for _ in 0..100 {
        let r = c.reports().search(req.clone()).await.unwrap().into_inner();
        if done(&r) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("search {req:?} never gave what was expected; last: {last:?}")
}

fn search(text: &str, kind: SearchType) -> pb::SearchRequest {
    pb::SearchRequest {
        query: text.into(),
        r#type: kind as i32,
        ..Default::default()
    }
}

fn ids(r: &pb::SearchResponse) -> Vec<i64> {
    r.hits.iter().map(|h| h.task_id).collect()
}

async fn catalog_flow(c: &Cluster) {
    let body = format!("catalog test {:?}\n", std::time::SystemTime::now()).repeat(40);
    let sha = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let mut h = header("quarterly-report_2026.txt");
    h.tags = vec!["from-test".into()];
    let task = c.submit(h, body.as_bytes()).await.unwrap().task.unwrap();
    let done = c.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32);
    let found = |id: i64| move |r: &pb::SearchResponse| ids(r) == vec![id];

    // By hash, by a fragment of the file name, latest per sample.
    let r = search_until(c, search(&sha, SearchType::Default), found(task.task_id)).await;
    assert_eq!(r.total, 1);
    let hit = &r.hits[0];
    assert_eq!(
        (hit.sha256.as_str(), hit.filename.as_str(), hit.filesize),
        (sha.as_str(), "quarterly-report_2026.txt", body.len() as u64)
    );
    assert_eq!(hit.status, pb::TaskStatus::Complete as i32);
    let mut fragment = search("RLY-REPORT_20", SearchType::Default);
    fragment.latest_per_sample = true;
    search_until(c, fragment, found(task.task_id)).await;

    // Tags: the submission's, then one added and removed.
    let reports = || c.reports();
    let tags = reports()
        .add_tag(pb::TagRequest {
            task_id: task.task_id,
            tag: "campaign-x".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, vec!["from-test", "campaign-x"]);
    let listed = reports()
        .list_tags(pb::ListTagsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert!(
        listed
            .iter()
            .any(|t| t.tag == "campaign-x" && t.samples == 1)
    );
    search_until(
        c,
        search("campaign-x", SearchType::Exact),
        found(task.task_id),
    )
    .await;
    assert_eq!(
        c.report(task.task_id).await["tags"],
        serde_json::json!(["from-test", "campaign-x"])
    );
    let tags = reports()
        .remove_tag(pb::TagRequest {
            task_id: task.task_id,
            tag: "campaign-x".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, vec!["from-test"]);
    search_until(c, search("campaign-x", SearchType::Exact), |r| {
        r.hits.is_empty()
    })
    .await;

    // Notes: add two, page through them, edit, search, delete.
    let add = async |text: &str| {
        reports()
            .add_note(pb::AddNoteRequest {
                task_id: task.task_id,
                text: text.into(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    let first = add("analyst: seen in the spearphish wave").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = add("second look: benign").await;
    let page = reports()
        .list_notes(pb::ListNotesRequest {
            task_id: task.task_id,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.notes, vec![first.clone()]);
    let page = reports()
        .list_notes(pb::ListNotesRequest {
            task_id: task.task_id,
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (page.notes, page.next_page_token),
        (vec![second.clone()], String::new())
    );
    search_until(
        c,
        search("SPEARPHISH", SearchType::Default),
        found(task.task_id),
    )
    .await;
    let edited = reports()
        .edit_note(pb::EditNoteRequest {
            task_id: task.task_id,
            note_id: first.note_id.clone(),
            text: "analyst: whaling, not spearphish".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(edited.text, "analyst: whaling, not spearphish");
    search_until(
        c,
        search("whaling", SearchType::Default),
        found(task.task_id),
    )
    .await;
    reports()
        .delete_note(pb::DeleteNoteRequest {
            task_id: task.task_id,
            note_id: first.note_id.clone(),
        })
        .await
        .unwrap();
    search_until(c, search("whaling", SearchType::Default), |r| {
        r.hits.is_empty()
    })
    .await;

    // Bad input: a clear code and the field; nothing changes.
    let code_of = |r: Result<tonic::Response<_>, tonic::Status>| match r {
        Ok(tonic::Response { .. }) => panic!("accepted"),
        Err(s) => (s.code(), s.message().to_owned()),
    };
    let broken = code_of(
        reports()
            .search(search("((quarterly", SearchType::Advanced))
            .await
            .map(|r| r.map(|_| ())),
    );
    assert_eq!(broken.0, Code::InvalidArgument, "{}", broken.1);
    assert!(broken.1.contains("query"), "{}", broken.1);
    let unknown = 987_654;
    let r = reports()
        .add_tag(pb::TagRequest {
            task_id: unknown,
            tag: "x".into(),
        })
        .await;
    assert_eq!(code_of(r.map(|r| r.map(|_| ()))).0, Code::NotFound);
    let r = reports()
        .add_note(pb::AddNoteRequest {
            task_id: unknown,
            text: "x".into(),
        })
        .await;
    assert_eq!(code_of(r.map(|r| r.map(|_| ()))).0, Code::NotFound);
    let r = reports()
        .edit_note(pb::EditNoteRequest {
            task_id: task.task_id,
            note_id: "no-such-note".into(),
            text: "x".into(),
        })
        .await;
    assert_eq!(code_of(r.map(|r| r.map(|_| ()))).0, Code::NotFound);
    let r = reports()
        .add_tag(pb::TagRequest {
            task_id: task.task_id,
            tag: "  ".into(),
        })
        .await;
    let (code, msg) = code_of(r.map(|r| r.map(|_| ())));
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("`tag`"), "{msg}");
    let window = pb::SearchRequest {
        offset: 9_990,
        page_size: 100,
        ..Default::default()
    };
    let r = reports().search(window).await;
    assert_eq!(code_of(r.map(|r| r.map(|_| ()))).0, Code::InvalidArgument);

    // Import: the report exported, then imported twice as a list; a
    // malformed one is refused and stores nothing.
    let exported = c.report(task.task_id).await;
    let list = serde_json::json!([exported, exported]).to_string();
    let imported = reports()
        .import_report(pb::ImportReportRequest { report_json: list })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(imported.len(), 2);
    for t in &imported {
        assert_eq!(t.status, pb::TaskStatus::Complete as i32);
        let back = c.report(t.task_id).await;
        assert_eq!(back["filemeta"], exported["filemeta"]);
        assert_eq!(back["Scan Metadata"]["Task ID"], t.task_id);
    }
    let mut history = search(&sha, SearchType::Exact);
    history.page_size = 10;
    search_until(c, history, |r| r.total == 3).await;
    for bad in ["{not json", "[]", r#"{"filename": "x"}"#] {
        let r = reports()
            .import_report(pb::ImportReportRequest {
                report_json: bad.into(),
            })
            .await;
        let (code, msg) = code_of(r.map(|r| r.map(|_| ())));
        assert_eq!(code, Code::InvalidArgument, "{bad}: {msg}");
        assert!(msg.contains("report_json"), "{msg}");
    }
    let everything = pb::SearchRequest {
        page_size: 100,
        ..Default::default()
    };
    let all = c.reports().search(everything).await.unwrap().into_inner();
    assert_eq!(all.total, 3, "nothing else was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_on_the_embedded_stores() {
    let c = Cluster::builder().start().await;
    catalog_flow(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_on_elasticsearch_with_samples_on_s3() {
    let (node, s3) = tokio::task::spawn_blocking(|| {
        (
            TestSearchNode::start(Engine::Elasticsearch),
            TestS3::start("samples"),
        )
    })
    .await
    .unwrap();
    let c = Cluster::builder()
        .report_store(format!("{}?replicas=0", node.url()))
        .blob_store(format!("s3://{}/mesh", s3.bucket), s3.settings.clone())
        .start()
        .await;
    catalog_flow(&c).await;
    c.stop().await;
}
