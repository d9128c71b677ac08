//! Schedulers and workers as separate processes on a real PostgreSQL task
//! queue, under load and under failure: two schedulers with three workers,
//! a scheduler killed with SIGKILL mid-run, PostgreSQL restarted mid-run.
//! Each test checks the end state in the databases themselves.

mod support;

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use multiscanner_proto::pb;
use multiscanner_scheduler::testing::TestPostgres;
use support::procs::{FAST_LEASES, Proc, client, try_submit};

/// A distinct small file per test and number.
fn sample(test: &str, i: usize) -> Vec<u8> {
    format!("{test} sample {i}\n").repeat(40).into_bytes()
}

fn scheduler(dir: &Path, db: &str, addr: &str, env: &[(&str, &str)]) -> Proc {
    let reports = format!("sqlite://{}/reports.db", dir.display());
    let samples = format!("file://{}/samples", dir.display());
    Proc::spawn_env(
        &[
            "scheduler",
            "--grpc-addr",
            addr,
            "--task-store",
            db,
            "--report-store",
            &reports,
            "--blob-store",
            &samples,
        ],
        env,
    )
}

fn worker(schedulers: &[&str]) -> Proc {
    let mut args = vec!["worker", "--concurrency", "2"];
    for s in schedulers {
        args.extend(["--scheduler", s]);
    }
    let mut w = Proc::spawn(&args);
    w.wait_for("connected");
    w
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits (five minutes at most) until no task is Pending or Running; if
/// some never finish, fails showing them and their nodes.
async fn until_all_final(db: &tokio_postgres::Client) {
    const OPEN: &str = "SELECT count(*) FROM tasks WHERE status IN ('Pending', 'Running')";
    let wait = async {
        while count(db, OPEN).await > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .is_err()
    {
        let stuck: Vec<String> = db
            .query(
                "SELECT t.id, t.status, n.id, n.state, n.attempts, n.lease_until, n.assignment_id \
                 FROM tasks t JOIN nodes n ON n.task_id = t.id \
                 WHERE t.status IN ('Pending', 'Running') ORDER BY t.id LIMIT 20",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "task {} {} node {} {} attempts {} lease {:?} assignment {:?}",
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i32>(4),
                    r.get::<_, Option<i64>>(5),
                    r.get::<_, Option<String>>(6),
                )
            })
            .collect();
        panic!("tasks left unfinished after five minutes: {stuck:#?}");
    }
}

/// Submits `n` distinct files, `in_flight` at a time, spread over `addrs`;
/// a submission that fails is retried (as a client would) until it is
/// acknowledged. Returns the acknowledged task ids; counts acknowledgements
/// in `acked` as they come.
async fn submit_all(
    test: &'static str,
    addrs: Vec<String>,
    n: usize,
    in_flight: usize,
    acked: Arc<AtomicUsize>,
) -> Vec<i64> {
    futures::stream::iter(0..n)
        .map(|i| {
            let addr = addrs[i % addrs.len()].clone();
            let acked = Arc::clone(&acked);
            async move {
                loop {
                    // A fresh connection per try: the server may have restarted.
                    let attempt = async {
                        let mut tasks =
                            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                                .unwrap()
                                .connect()
                                .await
                                .map(pb::tasks_client::TasksClient::new)
                                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                        // `latest`: a retry whose first try was stored but
                        // not acknowledged gets that task back.
                        try_submit(&mut tasks, sample(test, i), pb::DuplicatePolicy::Latest).await
                    };
                    match attempt.await {
                        Ok(task) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            return task.task_id;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await
}

/// Checks the end state: the stored tasks are exactly `acknowledged`, all
/// Complete; each has one node, one result per module and one report, and
/// the report describes the file that was submitted.
async fn assert_each_completed_once(
    db: &tokio_postgres::Client,
    reports_db: &Path,
    acknowledged: &[i64],
) {
    let ids: BTreeSet<i64> = acknowledged.iter().copied().collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "a task id was handed out twice"
    );
    let stored: BTreeSet<i64> = db
        .query("SELECT id FROM tasks", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stored, ids,
        "tasks lost or created beyond the acknowledged ones"
    );
    let not_complete = count(db, "SELECT count(*) FROM tasks WHERE status <> 'Complete'").await;
    assert_eq!(not_complete, 0);
    let nodes = count(db, "SELECT count(*) FROM nodes WHERE state = 'done'").await;
    assert_eq!(nodes as usize, ids.len());

    let reports = rusqlite::Connection::open(reports_db).unwrap();
    let one = |sql: &str| -> i64 { reports.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(one("SELECT count(*) FROM reports") as usize, ids.len());
    assert_eq!(
        one("SELECT count(*) FROM results WHERE module = 'filemeta' AND error IS NULL") as usize,
        ids.len(),
        "each task has its filemeta result once"
    );
    assert_eq!(
        one("SELECT count(*) FROM reports \
             WHERE json_extract(report, '$.filemeta.sha256') = sha256") as usize,
        ids.len(),
        "each report describes its own sample"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_and_three_workers_complete_1000_tasks_once_each() {
    let pg = TestPostgres::start().await;
    let url = pg.fresh_database("two_schedulers").await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = scheduler(dir.path(), &url, "127.0.0.1:0", &[]);
    let mut b = scheduler(dir.path(), &url, "127.0.0.1:0", &[]);
    let (addr_a, addr_b) = (a.bound_addr(), b.bound_addr());
    let (url_a, url_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    // Spread over both, each able to fail over to the other.
    let workers = [
        worker(&[&url_a, &url_b]),
        worker(&[&url_b, &url_a]),
        worker(&[&url_a, &url_b]),
    ];

    let acked = Arc::new(AtomicUsize::new(0));
    let ids = submit_all("two", vec![addr_a.clone(), addr_b.clone()], 1000, 16, acked).await;
    let db = pg_client(&url).await;
    until_all_final(&db).await;
    assert_each_completed_once(&db, &dir.path().join("reports.db"), &ids).await;
    // Each node was handed out once: no worker analysed a file another had.
    assert_eq!(
        count(&db, "SELECT count(*) FROM nodes WHERE attempts <> 1").await,
        0
    );
    // Both schedulers took submissions and their watchers see the end.
    let mut tasks = client(&addr_b).await;
    let first = ids[0];
    let seen = tasks
        .get_task(pb::GetTaskRequest { task_id: first })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.status, pb::TaskStatus::Complete as i32);
    for w in workers {
        assert_eq!(w.terminate(), Some(0));
    }
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_during_a_1000_file_run_loses_nothing() {
    let pg = TestPostgres::start().await;
    let url = pg.fresh_database("killed_scheduler").await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = scheduler(dir.path(), &url, "127.0.0.1:0", FAST_LEASES);
    let addr = first.bound_addr();
    let sched_url = format!("http://{addr}");
    let _workers = [worker(&[&sched_url]), worker(&[&sched_url])];

    let acked = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn(submit_all(
        "killed",
        vec![addr.clone()],
        1000,
        8,
        Arc::clone(&acked),
    ));
    while acked.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill9();
    let db = pg_client(&url).await;
    let open = count(
        &db,
        "SELECT count(*) FROM tasks WHERE status IN ('Pending', 'Running')",
    )
    .await;
    assert!(
        open > 0,
        "everything had finished before the kill; the test proves nothing"
    );

    // Back on the same address: the workers and the submitter reconnect.
    let mut second = scheduler(dir.path(), &url, &addr, FAST_LEASES);
    second.wait_for("scheduler listening");
    let ids = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("submissions never got through after the restart")
        .unwrap();
    assert_eq!(ids.len(), 1000);
    until_all_final(&db).await;
    assert_each_completed_once(&db, &dir.path().join("reports.db"), &ids).await;
    assert_eq!(second.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_during_a_run_loses_nothing() {
    let mut pg = TestPostgres::start().await;
    let url = pg.fresh_database("restarted").await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = scheduler(dir.path(), &url, "127.0.0.1:0", &[]);
    let mut b = scheduler(dir.path(), &url, "127.0.0.1:0", &[]);
    let (addr_a, addr_b) = (a.bound_addr(), b.bound_addr());
    let _workers = [
        worker(&[&format!("http://{addr_a}")]),
        worker(&[&format!("http://{addr_b}")]),
    ];
    let addrs = vec![addr_a.clone(), addr_b.clone()];
    let acked = Arc::new(AtomicUsize::new(0));
    let mut ids = submit_all("before", addrs.clone(), 300, 8, Arc::clone(&acked)).await;

    pg.stop_server();
    // During the outage a submission is refused, saying why.
    let mut tasks = client(&addr_a).await;
    let refused = try_submit(&mut tasks, sample("outage", 0), pb::DuplicatePolicy::Rescan)
        .await
        .expect_err("a submission was acknowledged while the task store was down");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("PostgreSQL"), "{refused:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start_server().await;

    // Both schedulers work again without a restart of their own.
    ids.extend(submit_all("after", addrs, 300, 8, acked).await);
    let db = pg_client(&url).await;
    until_all_final(&db).await;
    assert_each_completed_once(&db, &dir.path().join("reports.db"), &ids).await;
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
}
