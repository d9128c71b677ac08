//! One suite every storage backend must pass. Each backend's test opens its
//! stores and calls these functions.

use std::io::Write;

use multiscanner_proto::domain::{
    DuplicatePolicy, NodeId, Priority, Sha256, Submission, Task, TaskId, TaskStatus, now_millis,
};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::{CacheKey, ModuleRecord, NodeOutcome, Staged, StagedBody, Stores, TaskQuery};

/// A lease that does not run out during a test.
fn far() -> i64 {
    now_millis() + 3_600_000
}

fn sha(n: u8) -> Sha256 {
    Sha256([n; 32])
}

const AGING_MS: i64 = 60_000;

/// Creates a task as the scheduler does, enqueued at `at`.
async fn create(s: &Stores, n: u8, name: &str, priority: u32, at: i64) -> Task {
    let sub = submission(name, priority);
    let rank = super::queue_rank(sub.priority.get(), at, AGING_MS);
    s.tasks.create_task(sha(n), 1, &sub, rank).await.unwrap()
}

fn submission(name: &str, priority: u32) -> Submission {
    Submission {
        filename: name.into(),
        tags: vec!["t".into()],
        priority: Priority::try_from(priority).unwrap(),
        duplicate: DuplicatePolicy::Rescan,
        ..Default::default()
    }
}

pub async fn task_lifecycle(s: &Stores) {
    let t = create(s, 1, "a", 5, now_millis()).await;
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.node_count, 1);
    assert_eq!(s.tasks.get_task(t.id).await.unwrap(), t);
    assert!(s.tasks.get_task(TaskId(t.id.0 + 1000)).await.is_err());

    let work = s
        .tasks
        .claim_next("as-1", far())
        .await
        .unwrap()
        .expect("queued root");
    assert_eq!((work.task_id, work.depth, work.attempts), (t.id, 0, 1));
    assert_eq!(work.assignment_id, "as-1");
    assert!(work.task_started_at > 0, "claiming starts the task's clock");
    assert!(
        s.tasks.claim_next("as-2", far()).await.unwrap().is_none(),
        "nothing else queued"
    );
    assert_eq!(
        s.tasks.get_task(t.id).await.unwrap().status,
        TaskStatus::Running
    );

    // Worker lost: its lease ends, the node goes back and is claimed
    // again, attempt 2.
    s.tasks.drop_lease("as-1").await.unwrap();
    let expired = s.tasks.expire_leases(now_millis(), 5).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert!(expired[0].is_root && !expired[0].gave_up);
    let again = s.tasks.claim_next("as-3", far()).await.unwrap().unwrap();
    assert_eq!((again.node_id, again.attempts), (work.node_id, 2));
    assert_eq!(
        again.task_started_at, work.task_started_at,
        "the clock is not reset"
    );
    // The stale assignment can no longer finish the node.
    assert_eq!(
        s.tasks.finish_node("as-1", None).await.unwrap(),
        NodeOutcome::Stale
    );

    // A child, deduplicated by SHA-256 within the tree.
    let child = s
        .tasks
        .add_child("as-3", sha(2), 3, "inner", "archive")
        .await
        .unwrap();
    assert!(child.is_some());
    assert_eq!(
        s.tasks
            .add_child("as-3", sha(2), 3, "dup", "archive")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.tasks.finish_node("as-3", None).await.unwrap(),
        NodeOutcome::TaskStillRunning
    );
    let c = s.tasks.claim_next("as-4", far()).await.unwrap().unwrap();
    assert_eq!((c.depth, c.parent), (1, Some(work.node_id)));
    assert_eq!(
        s.tasks.finish_node("as-4", None).await.unwrap(),
        NodeOutcome::TaskDone
    );
    let nodes = s.tasks.nodes(t.id).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].created_by.as_deref(), Some("archive"));

    let done = s
        .tasks
        .finish_task(t.id, TaskStatus::Complete, None, now_millis())
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Complete);
    // A final status is never overwritten.
    let still = s
        .tasks
        .finish_task(t.id, TaskStatus::Cancelled, Some("late"), now_millis())
        .await
        .unwrap();
    assert_eq!(still.status, TaskStatus::Complete);

    s.tasks.delete_task(t.id).await.unwrap();
    assert!(s.tasks.get_task(t.id).await.is_err());
    assert!(s.tasks.delete_task(t.id).await.is_err());
}

pub async fn priorities_and_listing(s: &Stores) {
    let t0 = now_millis();
    let low = create(s, 3, "low", 1, t0).await;
    let high = create(s, 4, "high", 9, t0 + 1).await;
    let mid1 = create(s, 5, "mid1", 5, t0 + 2).await;
    let mid2 = create(s, 6, "mid2", 5, t0 + 3).await;
    let order: Vec<TaskId> = [
        s.tasks
            .claim_next("p1", far())
            .await
            .unwrap()
            .unwrap()
            .task_id,
        s.tasks
            .claim_next("p2", far())
            .await
            .unwrap()
            .unwrap()
            .task_id,
        s.tasks
            .claim_next("p3", far())
            .await
            .unwrap()
            .unwrap()
            .task_id,
        s.tasks
            .claim_next("p4", far())
            .await
            .unwrap()
            .unwrap()
            .task_id,
    ]
    .into();
    assert_eq!(
        order,
        [high.id, mid1.id, mid2.id, low.id],
        "priority, then FIFO"
    );

    let page = s
        .tasks
        .list_tasks(&TaskQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|t| t.id).collect::<Vec<_>>(),
        [mid2.id, mid1.id]
    );
    let next = s
        .tasks
        .list_tasks(&TaskQuery {
            limit: 2,
            before: Some(mid1.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|t| t.id).collect::<Vec<_>>(),
        [high.id, low.id]
    );
    let by_sha = s
        .tasks
        .list_tasks(&TaskQuery {
            sha256: Some(sha(4)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_sha.len(), 1);
    assert_eq!(
        s.tasks.latest_task_of(sha(4)).await.unwrap().unwrap().id,
        high.id
    );

    // Cancelling drops queued nodes and hides the task from dedupe.
    let c = create(s, 7, "c", 5, now_millis()).await;
    s.tasks
        .finish_task(c.id, TaskStatus::Cancelled, Some("asked"), now_millis())
        .await
        .unwrap();
    assert!(s.tasks.claim_next("p5", far()).await.unwrap().is_none());
    assert!(s.tasks.latest_task_of(sha(7)).await.unwrap().is_none());

    // Aging: a priority-1 task that waited nine minutes goes before a
    // priority-9 task that just arrived (one level per minute waited).
    let new_high = create(s, 8, "newhigh", 9, t0).await;
    let old_low = create(s, 9, "oldlow", 1, t0 - 9 * AGING_MS).await;
    let first = s.tasks.claim_next("p6", far()).await.unwrap().unwrap();
    let second = s.tasks.claim_next("p7", far()).await.unwrap().unwrap();
    assert_eq!((first.task_id, second.task_id), (old_low.id, new_high.id));
}

/// What a restarted scheduler finds: assigned nodes back in the queue, and
/// tasks whose last node finished before they were completed.
pub async fn recovery_after_a_restart(s: &Stores) {
    let a = create(s, 11, "a", 5, now_millis()).await;
    let b = create(s, 12, "b", 5, now_millis()).await;
    let wa = s.tasks.claim_next("r1", far()).await.unwrap().unwrap();
    let wb = s.tasks.claim_next("r2", far()).await.unwrap().unwrap();
    assert_eq!((wa.task_id, wb.task_id), (a.id, b.id));
    // b's only node finished, but its task was never marked Complete.
    assert_eq!(
        s.tasks.finish_node("r2", None).await.unwrap(),
        NodeOutcome::TaskDone
    );

    let unfinished = s.tasks.tasks_to_complete().await.unwrap();
    assert_eq!(unfinished, vec![b.id]);
    // a's node stays with its (perhaps live) worker until its lease ends.
    assert!(s.tasks.claim_next("r3", far()).await.unwrap().is_none());
    let expired = s.tasks.expire_leases(far() + 1, 5).await.unwrap();
    assert_eq!(expired.len(), 1);
    let again = s.tasks.claim_next("r3", far()).await.unwrap().unwrap();
    assert_eq!((again.node_id, again.attempts), (wa.node_id, 2));
    assert_eq!(
        s.tasks.finish_node("r1", None).await.unwrap(),
        NodeOutcome::Stale
    );
}

/// Leases end unless extended; an expired node is re-queued until its last
/// attempt, then given up on. All on an explicit clock: no sleeping.
pub async fn leases_expire_and_give_up(s: &Stores) {
    let t = create(s, 21, "l", 5, now_millis()).await;
    let w = s.tasks.claim_next("l1", 1_000).await.unwrap().unwrap();
    assert!(s.tasks.expire_leases(500, 2).await.unwrap().is_empty());
    s.tasks.extend_leases(&["l1".into()], 5_000).await.unwrap();
    assert!(
        s.tasks.expire_leases(2_000, 2).await.unwrap().is_empty(),
        "extended"
    );
    let e = s.tasks.expire_leases(6_000, 2).await.unwrap();
    assert_eq!(e.len(), 1);
    assert!(!e[0].gave_up && e[0].node_id == w.node_id);
    let w2 = s.tasks.claim_next("l2", 7_000).await.unwrap().unwrap();
    assert_eq!(w2.attempts, 2);
    // A late heartbeat for the old assignment extends nothing.
    s.tasks
        .extend_leases(&["l1".into()], 100_000)
        .await
        .unwrap();
    let e = s.tasks.expire_leases(8_000, 2).await.unwrap();
    assert_eq!(e.len(), 1);
    assert!(e[0].gave_up && e[0].task_done && e[0].is_root, "{e:?}");
    assert!(s.tasks.claim_next("l3", far()).await.unwrap().is_none());
    let nodes = s.tasks.nodes(t.id).await.unwrap();
    assert!(
        nodes[0]
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 2 attempts")
    );
    assert_eq!(
        s.tasks.finish_node("l2", None).await.unwrap(),
        NodeOutcome::Stale
    );

    // A node never handed out goes back without using up an attempt.
    create(s, 22, "r", 5, now_millis()).await;
    let first = s.tasks.claim_next("l4", far()).await.unwrap().unwrap();
    s.tasks.requeue("l4").await.unwrap();
    let second = s.tasks.claim_next("l5", far()).await.unwrap().unwrap();
    assert_eq!((first.attempts, second.attempts), (1, 1));
}

pub async fn results_are_idempotent(s: &Stores) {
    let task = TaskId(42);
    let first = ModuleRecord {
        node_id: NodeId(1),
        module: "filemeta".into(),
        module_version: "1".into(),
        config_hash: "c1".into(),
        outcome: Ok(json!({"a": 1})),
        duration_ms: 5,
    };
    s.reports.put_result(task, sha(1), &first).await.unwrap();
    let repeat = ModuleRecord {
        outcome: Ok(json!({"a": 2})),
        ..first.clone()
    };
    s.reports.put_result(task, sha(1), &repeat).await.unwrap();
    let failed = ModuleRecord {
        module: "slow".into(),
        outcome: Err("timed out".into()),
        ..first.clone()
    };
    s.reports.put_result(task, sha(1), &failed).await.unwrap();
    let stored = s.reports.results(task).await.unwrap();
    assert_eq!(stored, vec![first, failed]);

    assert_eq!(s.reports.get_report(task).await.unwrap(), None);
    let finished = Task {
        id: task,
        sha256: sha(1),
        ..crate::testing::task_for_tests()
    };
    s.reports
        .put_report(&finished, &json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(
        s.reports.get_report(task).await.unwrap(),
        Some(json!({"x": 1}))
    );
    s.reports.delete_task(task).await.unwrap();
    assert!(s.reports.results(task).await.unwrap().is_empty());
    assert_eq!(s.reports.get_report(task).await.unwrap(), None);
}

pub async fn the_result_cache_finds_successes_by_sample_module_version_and_settings(s: &Stores) {
    let record = |node: i64, module: &str, version: &str, hash: &str, ok: bool| ModuleRecord {
        node_id: NodeId(node),
        module: module.into(),
        module_version: version.into(),
        config_hash: hash.into(),
        outcome: if ok {
            Ok(json!({"from": node}))
        } else {
            Err("failed".into())
        },
        duration_ms: 1,
    };
    let key = |module: &str, version: &str, hash: &str| CacheKey {
        module: module.into(),
        module_version: version.into(),
        config_hash: hash.into(),
    };
    let (sample, other) = (sha(30), sha(31));
    let put = async |task: i64, sha256, r: ModuleRecord| {
        s.reports
            .put_result(TaskId(task), sha256, &r)
            .await
            .unwrap();
    };
    put(50, sample, record(1, "a", "1", "h", true)).await;
    put(51, sample, record(7, "a", "1", "h", true)).await; // newer
    put(51, sample, record(7, "b", "2", "h", false)).await; // failed: not cached
    put(51, sample, record(7, "c", "1", "x", true)).await;
    put(52, other, record(2, "d", "1", "h", true)).await;
    assert_eq!(
        s.reports.cached_keys(sample).await.unwrap(),
        vec![key("a", "1", "h"), key("c", "1", "x")]
    );
    let (task, found) = s
        .reports
        .cached_result(sample, &key("a", "1", "h"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((task, found), (TaskId(51), record(7, "a", "1", "h", true)));
    for miss in [
        key("a", "2", "h"),
        key("a", "1", "other"),
        key("b", "2", "h"),
    ] {
        assert_eq!(s.reports.cached_result(sample, &miss).await.unwrap(), None);
    }
    // Deleting a task's results takes them out of the cache.
    s.reports.delete_task(TaskId(51)).await.unwrap();
    let (task, _) = s
        .reports
        .cached_result(sample, &key("a", "1", "h"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task, TaskId(50));
    assert_eq!(
        s.reports.cached_keys(sample).await.unwrap(),
        vec![key("a", "1", "h")]
    );
}

pub async fn blobs_round_trip(s: &Stores) {
    // Large samples arrive as staged files, small ones in memory.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut file = tempfile::NamedTempFile::new_in(s.blobs.staging_dir()).unwrap();
    file.write_all(&data).unwrap();
    let (big, small) = (sha(9), sha(10));
    assert!(!s.blobs.exists(big).await.unwrap());
    s.blobs
        .put(staged(big, StagedBody::File(file), data.len()))
        .await
        .unwrap();
    s.blobs
        .put(staged(small, StagedBody::Memory("small".into()), 5))
        .await
        .unwrap();
    assert!(s.blobs.exists(big).await.unwrap());
    // Written once: a second put under a stored SHA-256 changes nothing.
    s.blobs
        .put(staged(big, StagedBody::Memory("other".into()), 5))
        .await
        .unwrap();
    assert_eq!(read_blob(s, big).await, data);
    assert_eq!(read_blob(s, small).await, b"small");
    assert!(s.blobs.open(sha(11)).await.is_err());
    // Nothing is left behind in the staging directory.
    assert_eq!(std::fs::read_dir(s.blobs.staging_dir()).unwrap().count(), 0);
}

/// A sample of `size` bytes (several upload parts on object stores) goes in
/// from a staged file and comes back byte for byte.
pub async fn big_blobs_stream_both_ways(s: &Stores, size: usize) {
    use sha2::Digest;
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha256 = Sha256(sha2::Sha256::digest(&data).into());
    let mut file = tempfile::NamedTempFile::new_in(s.blobs.staging_dir()).unwrap();
    file.write_all(&data).unwrap();
    s.blobs
        .put(staged(sha256, StagedBody::File(file), size))
        .await
        .unwrap();
    let back = read_blob(s, sha256).await;
    assert_eq!(back.len(), size);
    assert_eq!(Sha256(sha2::Sha256::digest(&back).into()), sha256);
}

fn staged(sha256: Sha256, body: StagedBody, size: usize) -> Staged {
    Staged {
        sha256,
        size: size as u64,
        body,
    }
}

async fn read_blob(s: &Stores, sha256: Sha256) -> Vec<u8> {
    let mut back = Vec::new();
    s.blobs
        .open(sha256)
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    back
}

mod sqlite {
    use super::*;
    use crate::store::ReportStore;

    async fn open() -> (tempfile::TempDir, Stores) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display();
        let stores = crate::store::open(
            &format!("sqlite://{p}/tasks.db"),
            &format!("sqlite://{p}/reports.db"),
            &format!("file://{p}/samples"),
            &Default::default(),
        )
        .await
        .unwrap();
        (dir, stores)
    }

    #[tokio::test]
    async fn task_lifecycle() {
        let (_d, s) = open().await;
        super::task_lifecycle(&s).await;
    }

    #[tokio::test]
    async fn priorities_and_listing() {
        let (_d, s) = open().await;
        super::priorities_and_listing(&s).await;
    }

    #[tokio::test]
    async fn recovery_after_a_restart() {
        let (_d, s) = open().await;
        super::recovery_after_a_restart(&s).await;
    }

    #[tokio::test]
    async fn leases_expire_and_give_up() {
        let (_d, s) = open().await;
        super::leases_expire_and_give_up(&s).await;
    }

    #[tokio::test]
    async fn results_are_idempotent() {
        let (_d, s) = open().await;
        super::results_are_idempotent(&s).await;
    }

    #[tokio::test]
    async fn the_result_cache() {
        let (_d, s) = open().await;
        super::the_result_cache_finds_successes_by_sample_module_version_and_settings(&s).await;
    }

    #[tokio::test]
    async fn blobs_round_trip() {
        let (_d, s) = open().await;
        super::blobs_round_trip(&s).await;
    }

    /// A report store written before the result cache existed (no schema
    /// version, no cache columns) opens, keeps its results and gains the
    /// cache.
    #[tokio::test]
    async fn an_older_report_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports.db");
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE results (task_id INTEGER NOT NULL, node_id INTEGER NOT NULL, \
             module TEXT NOT NULL, module_version TEXT NOT NULL, result TEXT, error TEXT, \
             duration_ms INTEGER NOT NULL, PRIMARY KEY (task_id, node_id, module)); \
             INSERT INTO results VALUES (3, 1, 'filemeta', '1', '{\"a\":1}', NULL, 2);",
        )
        .unwrap();
        drop(old);
        let store = crate::store::sqlite_reports::SqliteReportStore::open(&path)
            .await
            .unwrap();
        let kept = store.results(TaskId(3)).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].outcome, Ok(json!({"a": 1})));
        assert_eq!(kept[0].config_hash, "");
        let record = ModuleRecord {
            config_hash: "h".into(),
            ..kept[0].clone()
        };
        store.put_result(TaskId(4), sha(5), &record).await.unwrap();
        assert_eq!(store.cached_keys(sha(5)).await.unwrap().len(), 1);
        // Opening again applies nothing twice.
        drop(store);
        crate::store::sqlite_reports::SqliteReportStore::open(&path)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unsupported_urls_name_the_problem() {
        let err = crate::store::open(
            "mysql://x/y",
            "sqlite:///tmp/r",
            "file:///tmp/b",
            &Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mysql") && err.contains("postgres://"),
            "{err}"
        );
        let err = crate::store::open(
            "tasks.db",
            "sqlite:///tmp/r",
            "file:///tmp/b",
            &Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("SCHEME://"), "{err}");
    }
}

mod postgres {
    use super::*;
    use crate::{store::StoreError, testing::TestPostgres};

    /// Every task-store suite on a real PostgreSQL (one server, a fresh
    /// database per suite), with the embedded report and sample stores.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_store_suites() {
        let pg = TestPostgres::start().await;
        type Suite = for<'a> fn(&'a Stores) -> futures::future::BoxFuture<'a, ()>;
        let suites: [(&str, Suite); 4] = [
            ("lifecycle", |s| Box::pin(super::task_lifecycle(s))),
            ("leases", |s| Box::pin(super::leases_expire_and_give_up(s))),
            ("priorities", |s| Box::pin(super::priorities_and_listing(s))),
            ("recovery", |s| Box::pin(super::recovery_after_a_restart(s))),
        ];
        for (name, suite) in suites {
            let url = pg.fresh_database(name).await;
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().display();
            let stores = crate::store::open(
                &url,
                &format!("sqlite://{p}/reports.db"),
                &format!("file://{p}/samples"),
                &Default::default(),
            )
            .await
            .unwrap();
            suite(&stores).await;
            // Opening again finds the schema in place (migrations are
            // idempotent) and the data intact.
            let again = crate::store::postgres_tasks::PostgresTaskStore::open(&url)
                .await
                .unwrap();
            let _ = crate::store::TaskStore::list_tasks(
                &again,
                &TaskQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        // A server that is not there is "unavailable", with the reason.
        let err = crate::store::postgres_tasks::PostgresTaskStore::open(
            "postgres://multiscanner@127.0.0.1:1/none",
        )
        .await
        .err()
        .expect("nothing listens on port 1");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
}
