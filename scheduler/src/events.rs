//! In-process publication of task events (status changes, module results,
//! new nodes) for `WatchTask` subscribers. Each task has its own channel,
//! created by its first subscriber and dropped with its last, so an event
//! wakes only the watchers of its task.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use multiscanner_proto::pb;
use tokio::sync::broadcast;

/// Events of one task kept for a slow subscriber before it lags and
/// resynchronises.
const CAPACITY: usize = 256;

type Topics = Arc<Mutex<HashMap<i64, broadcast::Sender<pb::TaskEvent>>>>;

#[derive(Clone, Debug, Default)]
pub struct EventBus {
    topics: Topics,
}

impl EventBus {
    pub fn publish(&self, event: pb::TaskEvent) {
        let topics = lock(&self.topics);
        if let Some(tx) = topics.get(&event.task_id) {
            // No subscriber left is not an error.
            let _ = tx.send(event);
        }
    }

    /// Events of `task_id` from now on.
    pub fn subscribe(&self, task_id: i64) -> Subscription {
        let rx = lock(&self.topics)
            .entry(task_id)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe();
        Subscription {
            rx: Some(rx),
            task_id,
            topics: Arc::clone(&self.topics),
        }
    }
}

/// A subscription to one task's events; the last one dropped removes the
/// task's channel.
#[derive(Debug)]
pub struct Subscription {
    rx: Option<broadcast::Receiver<pb::TaskEvent>>,
    task_id: i64,
    topics: Topics,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<pb::TaskEvent, broadcast::error::RecvError> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = lock(&self.topics);
        drop(self.rx.take());
        if topics
            .get(&self.task_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            topics.remove(&self.task_id);
        }
    }
}

fn lock(
    topics: &Mutex<HashMap<i64, broadcast::Sender<pb::TaskEvent>>>,
) -> std::sync::MutexGuard<'_, HashMap<i64, broadcast::Sender<pb::TaskEvent>>> {
    // Plain data: a panic elsewhere leaves it usable.
    topics.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(task_id: i64) -> pb::TaskEvent {
        pb::TaskEvent {
            task_id,
            event: None,
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_task_only_and_the_last_one_cleans_up() {
        let bus = EventBus::default();
        let mut one = bus.subscribe(1);
        let mut also_one = bus.subscribe(1);
        let mut two = bus.subscribe(2);
        bus.publish(status(2));
        bus.publish(status(1));
        bus.publish(status(3)); // nobody listens: dropped
        assert_eq!(one.recv().await.unwrap().task_id, 1);
        assert_eq!(also_one.recv().await.unwrap().task_id, 1);
        assert_eq!(two.recv().await.unwrap().task_id, 2);
        drop(one);
        assert_eq!(lock(&bus.topics).len(), 2);
        drop(also_one);
        drop(two);
        assert!(lock(&bus.topics).is_empty());
    }
}
