//! Lease logic on paused tokio time: heartbeats keep an assignment, silence
//! loses it, the node comes back with one more attempt, and the last attempt
//! fails the task with the reason in its report. No real sleeping: the test
//! moves the clock.

use std::{convert::Infallible, sync::Arc, time::Duration};

use multiscanner_proto::{
    domain::{Submission, TaskId, TaskStatus},
    pb::{self, scheduler_message::Msg},
};
use tokio::sync::mpsc;

use crate::{SchedulerConfig, clock::Clock, core::Scheduler, store};

async fn scheduler(dir: &std::path::Path) -> Arc<Scheduler> {
    let p = dir.display();
    let stores = store::open(
        &format!("sqlite://{p}/tasks.db"),
        &format!("sqlite://{p}/reports.db"),
        &format!("file://{p}/samples"),
        &Default::default(),
    )
    .await
    .unwrap();
    let config = SchedulerConfig {
        lease_secs: 30,
        max_attempts: 2,
        ..Default::default()
    };
    Scheduler::with_clock(stores, config, Clock::tokio())
}

async fn next_message(rx: &mut mpsc::Receiver<Result<pb::SchedulerMessage, tonic::Status>>) -> Msg {
    rx.recv().await.unwrap().unwrap().msg.unwrap()
}

async fn assigned(s: &Scheduler, task: TaskId) -> Vec<String> {
    s.stores.tasks.assignments_of(task).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_lease_and_silence_loses_it_until_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(dir.path()).await;
    tokio::spawn(Arc::clone(&s).run_reaper());
    let chunks = futures::stream::iter([Ok::<_, Infallible>(bytes::Bytes::from_static(
        b"leased bytes",
    ))]);
    let task = s
        .submit(Submission::default(), chunks)
        .await
        .unwrap()
        .task
        .id;
    let (tx, mut rx) = mpsc::channel(16);
    let hello = pb::Hello {
        worker_id: "silent".into(),
        concurrency: 1,
        ..Default::default()
    };
    s.workers.add("silent", &hello, tx);
    assert_eq!(s.dispatch_ready().await.unwrap(), 1);
    let Msg::Assignment(first) = next_message(&mut rx).await else {
        panic!("expected an assignment");
    };

    // Two minutes of heartbeats every 10 s (the lease is 30 s): kept.
    for _ in 0..12 {
        tokio::time::advance(Duration::from_secs(10)).await;
        let beat = pb::Heartbeat {
            free_slots: 0,
            assignment_ids: vec![first.assignment_id.clone()],
        };
        s.on_heartbeat("silent", beat).await.unwrap();
    }
    assert_eq!(assigned(&s, task).await, vec![first.assignment_id.clone()]);

    // Silence: once the lease has run out the reaper takes the node back
    // and tells the worker to drop it.
    tokio::time::advance(Duration::from_secs(29)).await;
    tokio::task::yield_now().await;
    assert_eq!(assigned(&s, task).await, vec![first.assignment_id.clone()]);
    let Msg::Cancel(cancel) = next_message(&mut rx).await else {
        panic!("expected the assignment to be cancelled");
    };
    assert_eq!(cancel.assignment_id, first.assignment_id);
    assert!(assigned(&s, task).await.is_empty());
    assert_eq!(
        s.get_task(task).await.unwrap().status,
        TaskStatus::Running,
        "re-queued, not failed: one attempt is left"
    );

    // Second and last attempt, silent too: the task fails, saying why.
    assert_eq!(s.dispatch_ready().await.unwrap(), 1);
    let Msg::Assignment(second) = next_message(&mut rx).await else {
        panic!("expected a second assignment");
    };
    assert_ne!(second.assignment_id, first.assignment_id);
    let Msg::Cancel(_) = next_message(&mut rx).await else {
        panic!("expected the second assignment to be cancelled");
    };
    // The reaper completes the task right after cancelling the assignment.
    let failed = loop {
        let t = s.get_task(task).await.unwrap();
        if t.status.is_final() {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 2 attempts")
    );
    let (_, report) = s.report(task).await.unwrap();
    assert!(
        report["errors"]
            .to_string()
            .contains("gave up after 2 attempts"),
        "{report}"
    );
}
