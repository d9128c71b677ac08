//! Connected workers and the assignment of queued nodes to them.
//!
//! A worker advertises how many nodes it analyses at once; the dispatcher
//! never sends it more assignments than it has free slots, so the stream
//! to each worker stays short.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use multiscanner_proto::pb;
use tokio::sync::{Notify, mpsc};
use tonic::Status;

use crate::store::NodeWork;

pub type WorkerTx = mpsc::Sender<Result<pb::SchedulerMessage, Status>>;

/// What the scheduler knows of one connected worker.
#[derive(Debug)]
struct Worker {
    tx: WorkerTx,
    concurrency: u32,
    held: HashMap<String, NodeWork>,
    /// The modules it announced in its hello.
    modules: Vec<pb::ModuleInfo>,
    draining: bool,
    /// When its last heartbeat (or hello) arrived.
    heard: tokio::time::Instant,
}

impl Worker {
    fn free(&self) -> u32 {
        if self.draining {
            0
        } else {
            self.concurrency.saturating_sub(self.held.len() as u32)
        }
    }
}

#[derive(Debug, Default)]
pub struct WorkerPool {
    workers: Mutex<HashMap<String, Worker>>,
    /// Woken when there may be work to hand out: a submission, a free slot,
    /// a new worker.
    pub wake: Notify,
}

impl WorkerPool {
    pub fn add(&self, id: &str, hello: &pb::Hello, tx: WorkerTx) {
        let worker = Worker {
            tx,
            concurrency: hello.concurrency.max(1),
            held: HashMap::new(),
            modules: hello.modules.clone(),
            draining: false,
            heard: tokio::time::Instant::now(),
        };
        self.lock().insert(id.to_owned(), worker);
        self.wake.notify_one();
    }

    /// Forgets a worker; returns the assignments it still held.
    pub fn remove(&self, id: &str) -> Vec<NodeWork> {
        self.lock()
            .remove(id)
            .map(|w| w.held.into_values().collect())
            .unwrap_or_default()
    }

    /// Notes that `worker` is alive.
    pub fn heard_from(&self, worker: &str) {
        if let Some(w) = self.lock().get_mut(worker) {
            w.heard = tokio::time::Instant::now();
        }
    }

    /// Assignments held by workers heard from within `within`.
    pub fn held_by_live(&self, within: Duration) -> Vec<String> {
        self.lock()
            .values()
            .filter(|w| w.heard.elapsed() <= within)
            .flat_map(|w| w.held.keys().cloned())
            .collect()
    }

    /// The worker with the most free slots, if any has one.
    pub fn pick(&self) -> Option<String> {
        self.lock()
            .iter()
            .filter(|(_, w)| w.free() > 0)
            .max_by_key(|(_, w)| w.free())
            .map(|(id, _)| id.clone())
    }

    /// Records `work` as held by `worker` and sends it the assignment.
    /// False if the worker is gone, has no free slot or its stream is full:
    /// the caller then puts the work back in the queue.
    pub fn assign(&self, worker: &str, work: NodeWork, message: pb::Assignment) -> bool {
        let mut workers = self.lock();
        let Some(w) = workers.get_mut(worker) else {
            return false;
        };
        let msg = pb::SchedulerMessage {
            msg: Some(pb::scheduler_message::Msg::Assignment(message)),
        };
        if w.free() == 0 || w.tx.try_send(Ok(msg)).is_err() {
            return false;
        }
        w.held.insert(work.assignment_id.clone(), work);
        true
    }

    /// The work behind an assignment, if `worker` holds it.
    pub fn held(&self, worker: &str, assignment_id: &str) -> Option<NodeWork> {
        self.lock()
            .get(worker)
            .and_then(|w| w.held.get(assignment_id).cloned())
    }

    /// The work behind an assignment, whichever worker holds it.
    pub fn find(&self, assignment_id: &str) -> Option<NodeWork> {
        self.lock()
            .values()
            .find_map(|w| w.held.get(assignment_id).cloned())
    }

    /// Releases an assignment a worker finished; frees its slot.
    pub fn release(&self, worker: &str, assignment_id: &str) -> Option<NodeWork> {
        let work = self
            .lock()
            .get_mut(worker)
            .and_then(|w| w.held.remove(assignment_id));
        self.wake.notify_one();
        work
    }

    /// Drops an assignment whose lease expired and tells its worker, if it is
    /// still connected, to stop it: the node is someone else's now.
    pub fn forget(&self, assignment_id: &str, reason: &str) {
        self.cancel(assignment_id, reason);
        for w in self.lock().values_mut() {
            w.held.remove(assignment_id);
        }
        self.wake.notify_one();
    }

    /// Asks whichever worker holds `assignment_id` to stop it.
    pub fn cancel(&self, assignment_id: &str, reason: &str) {
        for w in self.lock().values() {
            if w.held.contains_key(assignment_id) {
                let _ = w.tx.try_send(Ok(pb::SchedulerMessage {
                    msg: Some(pb::scheduler_message::Msg::Cancel(pb::CancelAssignment {
                        assignment_id: assignment_id.to_owned(),
                        reason: reason.to_owned(),
                    })),
                }));
            }
        }
    }

    /// Tells every worker to finish what it holds and take nothing more.
    pub fn drain_all(&self) {
        for w in self.lock().values_mut() {
            w.draining = true;
            let _ = w.tx.try_send(Ok(pb::SchedulerMessage {
                msg: Some(pb::scheduler_message::Msg::Drain(pb::Drain {})),
            }));
        }
    }

    /// The modules connected workers offer, by name, and how many workers
    /// there are.
    pub fn modules(&self) -> (Vec<pb::ModuleAvailability>, u32) {
        let workers = self.lock();
        let mut by_name: std::collections::BTreeMap<&str, pb::ModuleAvailability> =
            std::collections::BTreeMap::new();
        for m in workers.values().flat_map(|w| &w.modules) {
            let a = by_name
                .entry(&m.name)
                .or_insert_with(|| pb::ModuleAvailability {
                    name: m.name.clone(),
                    ..Default::default()
                });
            a.workers += 1;
            if m.unusable_reason.is_empty() {
                a.usable_workers += 1;
            } else if a.unusable_reason.is_empty() {
                a.unusable_reason = m.unusable_reason.clone();
            }
            if !a.versions.contains(&m.version) {
                a.versions.push(m.version.clone());
                a.versions.sort();
            }
        }
        let count = workers.len() as u32;
        (by_name.into_values().collect(), count)
    }

    pub fn held_count(&self) -> usize {
        self.lock().values().map(|w| w.held.len()).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        // A panic while holding this lock leaves plain data behind; carry on.
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}
