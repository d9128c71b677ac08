//! In-process publication of task events (status changes, module results,
//! new nodes) for `WatchTask` subscribers.

use multiscanner_proto::pb;
use tokio::sync::broadcast;

/// Events kept for slow subscribers before they lag and resynchronise.
const CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<pb::TaskEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: pb::TaskEvent) {
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<pb::TaskEvent> {
        self.tx.subscribe()
    }
}
