//! The report-store suites on the embedded store, on a real Elasticsearch
//! node and on a real OpenSearch node; the sample-store suite on a real
//! S3-compatible server. The servers come from `scripts/service.sh`.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use multiscanner_proto::domain::TaskId;
use serde_json::json;

use super::{
    ReportStore, StoreError, Stores,
    conformance_search::{self, finished, report_of},
    elastic::ElasticReportStore,
    search::SearchQuery,
};
use crate::test_services::{Engine, TestS3, TestSearchNode};

/// Embedded task and sample stores beside the report store at `report_url`.
async fn stores(dir: &tempfile::TempDir, report_url: &str) -> Stores {
    let p = dir.path().display();
    super::open(
        &format!("sqlite://{p}/tasks.db"),
        report_url,
        &format!("file://{p}/samples"),
        &Default::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot open {report_url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_search_tags_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(&dir, &format!("sqlite://{}/r.db", dir.path().display())).await;
    conformance_search::search_tags_and_notes(&*s.reports).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_takes_10000_clashing_reports() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(&dir, &format!("sqlite://{}/r.db", dir.path().display())).await;
    conformance_search::clashing_fields_never_reject(&*s.reports, 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch() {
    engine_suites(Engine::Elasticsearch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch() {
    engine_suites(Engine::OpenSearch).await;
}

/// Every report-store suite on one node, each in indices of its own; then
/// the node is killed during ingestion.
async fn engine_suites(engine: Engine) {
    let mut node = tokio::task::spawn_blocking(move || TestSearchNode::start(engine))
        .await
        .unwrap();
    let url = |prefix: &str| format!("{}?index={prefix}&replicas=0", node.url());
    let dir = tempfile::tempdir().unwrap();

    let s = stores(&dir, &url("results")).await;
    super::conformance::results_are_idempotent(&s).await;
    let s = stores(&dir, &url("cache")).await;
    super::conformance::the_result_cache_finds_successes_by_sample_module_version_and_settings(&s)
        .await;
    let s = stores(&dir, &url("search")).await;
    conformance_search::search_tags_and_notes(&*s.reports).await;
    let s = stores(&dir, &url("clash")).await;
    conformance_search::clashing_fields_never_reject(&*s.reports, 10_000).await;

    // The same indices opened again: templates and indices are kept.
    let again = stores(&dir, &url("search")).await;
    assert!(
        again
            .reports
            .get_report(TaskId(11))
            .await
            .unwrap()
            .is_some()
    );

    let bad = ElasticReportStore::open(&format!("{}?index=UPPER", node.url())).await;
    assert!(matches!(bad, Err(StoreError::BadUrl { .. })), "{bad:?}");

    let crash = ElasticReportStore::open(&url("crash")).await.unwrap();
    acknowledged_reports_survive_a_crash(&crash, &mut node).await;
}

/// Writers store reports one by one, retrying what the store could not
/// take, while the node is killed with SIGKILL and started again. Every
/// report the store acknowledged is there afterwards, once.
async fn acknowledged_reports_survive_a_crash(r: &ElasticReportStore, node: &mut TestSearchNode) {
    const N: i64 = 1500;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let unavailable = Arc::new(Mutex::new(0u32));
    let writers = {
        let (acked, unavailable) = (acked.clone(), unavailable.clone());
        async move {
            futures::stream::iter(1..=N)
                .for_each_concurrent(16, |id| {
                    let (acked, unavailable) = (acked.clone(), unavailable.clone());
                    async move {
                        let task = finished(id, (id % 250) as u8, &format!("crash-{id}"), &[]);
                        let report = report_of(&task, "data", json!({}));
                        loop {
                            match r.put_report(&task, &report).await {
                                Ok(()) => break,
                                Err(StoreError::Unavailable(_)) => {
                                    *unavailable.lock().unwrap() += 1;
                                    tokio::time::sleep(Duration::from_millis(250)).await;
                                }
                                Err(e) => panic!("report {id}: {e}"),
                            }
                        }
                        acked.lock().unwrap().insert(id);
                    }
                })
                .await;
        }
    };
    let chaos = async {
        while acked.lock().unwrap().len() < 300 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = acked.lock().unwrap().clone();
        tokio::task::block_in_place(|| node.kill9());
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| node.start_again());
        before
    };
    let ((), before) = tokio::join!(writers, chaos);
    assert!(
        *unavailable.lock().unwrap() > 0,
        "the crash should have been felt by some writer"
    );
    assert!(before.len() >= 300 && before.len() < N as usize);
    r.refresh().await.unwrap();
    let everything = SearchQuery {
        text: "crash-".into(),
        limit: 2000,
        ..Default::default()
    };
    let page = r.search(&everything).await.unwrap();
    let ids: Vec<i64> = page.hits.iter().map(|h| h.task_id.0).collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "a report came back twice");
    assert_eq!(page.total, N as u64);
    assert_eq!(distinct, *acked.lock().unwrap());
    assert!(before.is_subset(&distinct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_round_trip() {
    let s3 = tokio::task::spawn_blocking(|| TestS3::start("samples"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    let open = |url: String| {
        let settings = s3.settings.clone();
        let (tasks, reports) = (format!("sqlite://{p}/t.db"), format!("sqlite://{p}/r.db"));
        async move { super::open(&tasks, &reports, &url, &settings).await }
    };
    let s = open(format!("s3://{}/under/a/prefix", s3.bucket))
        .await
        .unwrap();
    super::conformance::blobs_round_trip(&s).await;
    super::conformance::big_blobs_stream_both_ways(&s, 13 << 20).await;

    // A bucket that does not exist is a clear error when the store opens.
    let err = open("s3://no-such-bucket".into()).await.unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
    let mut wrong = s3.settings.clone();
    wrong.secret_access_key = "wrong".into();
    let err = super::open(
        &format!("sqlite://{p}/t.db"),
        &format!("sqlite://{p}/r.db"),
        &format!("s3://{}", s3.bucket),
        &wrong,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

/// The report store refuses writes cleanly while its engine is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_is_not_there_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = ElasticReportStore::open(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}
