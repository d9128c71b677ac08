//! Writes gathered into `_bulk` requests, with backpressure.
//!
//! Callers hand one operation each to a bounded queue and wait for its own
//! answer; one task takes whatever is queued (up to [`MAX_BATCH`]), sends it
//! as one request, and answers each caller from its item of the response.
//! A full queue makes callers wait: that is the backpressure. Items the
//! engine refused for load (429) go into the next request; a request that
//! could not be delivered fails its callers as unavailable, and they retry.

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::engine::{Body, Engine, reason};
use crate::store::{StoreError, StoreResult};
use elasticsearch::http::Method;

const MAX_BATCH: usize = 500;
const QUEUE: usize = 2048;
/// Times an item refused for load is sent again before failing.
const LOAD_RETRIES: u32 = 5;

/// What to do with a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store unless a document with that id exists (then nothing changes).
    Create,
    /// Store, replacing any document with that id.
    Index,
    Delete,
}

struct Op {
    action: Action,
    index: String,
    id: String,
    doc: Option<Value>,
    tries: u32,
    reply: oneshot::Sender<StoreResult<()>>,
}

#[derive(Clone, Debug)]
pub struct Bulk {
    tx: mpsc::Sender<Op>,
}

impl Bulk {
    pub fn start(engine: Engine) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(engine, rx));
        Self { tx }
    }

    /// Queues one write and waits until the engine has it (durably: every
    /// index writes its translog before answering).
    pub async fn write(
        &self,
        action: Action,
        index: &str,
        id: &str,
        doc: Option<Value>,
    ) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            action,
            index: index.to_owned(),
            id: id.to_owned(),
            doc,
            tries: 0,
            reply,
        };
        self.tx
            .send(op)
            .await
            .map_err(|_| StoreError::Unavailable("the bulk writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the bulk writer has stopped".into()))?
    }
}

async fn run(engine: Engine, mut rx: mpsc::Receiver<Op>) {
    let mut carried: Vec<Op> = Vec::new();
    loop {
        if carried.is_empty() {
            match rx.recv().await {
                Some(op) => carried.push(op),
                None => return,
            }
        }
        while carried.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => carried.push(op),
                Err(_) => break,
            }
        }
        let batch = std::mem::take(&mut carried);
        carried = send(&engine, batch).await;
        if !carried.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// Sends one batch; returns the operations to send again.
async fn send(engine: &Engine, batch: Vec<Op>) -> Vec<Op> {
    let mut lines = Vec::with_capacity(batch.len() * 2);
    for op in &batch {
        let name = match op.action {
            Action::Create => "create",
            Action::Index => "index",
            Action::Delete => "delete",
        };
        lines.push(json!({name: {"_index": op.index, "_id": op.id}}));
        if let Some(doc) = &op.doc {
            lines.push(doc.clone());
        }
    }
    let answer = engine.ok(Method::Post, "/_bulk", Body::Lines(lines)).await;
    let items = match answer {
        Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            let msg = e.to_string();
            for op in batch {
                let _ = op.reply.send(Err(StoreError::Unavailable(msg.clone())));
            }
            return Vec::new();
        }
    };
    let mut again = Vec::new();
    for (i, mut op) in batch.into_iter().enumerate() {
        let item = items
            .get(i)
            .and_then(|v| v.as_object())
            .and_then(|o| o.values().next());
        let status = item.and_then(|v| v["status"].as_u64()).unwrap_or(0);
        let outcome = match status {
            200..=299 => Ok(()),
            // Created before: the first write of an id wins.
            409 if op.action == Action::Create => Ok(()),
            404 if op.action == Action::Delete => Ok(()),
            429 | 503 if op.tries < LOAD_RETRIES => {
                op.tries += 1;
                again.push(op);
                continue;
            }
            // Still refused for load (or shards not yet back after a
            // restart): the caller may try again later.
            429 | 503 => Err(StoreError::Unavailable(format!(
                "the search engine is too busy to take document {} in {}: {}",
                op.id,
                op.index,
                item.map(reason).unwrap_or_default()
            ))),
            0 => Err(StoreError::Internal("the bulk answer lacks an item".into())),
            _ => Err(StoreError::Internal(format!(
                "the search engine refused document {} in {}: {}",
                op.id,
                op.index,
                item.map(reason).unwrap_or_default()
            ))),
        };
        let _ = op.reply.send(outcome);
    }
    again
}
