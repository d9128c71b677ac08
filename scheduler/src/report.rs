//! Merging module results into one report per task.
//!
//! Shape (MultiScanner v2 keys, plus the extraction tree):
//! `{"filename", "tags", <module>: <result>..., "errors": {<module>: why},
//!   "children": [<node report>...], "Scan Metadata": {...}}`.
//! A module that failed or timed out appears under `errors`, so a module's
//! own key always holds its own kind of result.

use std::collections::BTreeMap;

use multiscanner_proto::domain::{NodeId, Task};
use serde_json::{Map, Value, json};

use crate::store::{ModuleRecord, NodeInfo};

/// Builds the report of `task` from its nodes and stored results.
pub fn assemble(task: &Task, nodes: &[NodeInfo], results: &[ModuleRecord]) -> Value {
    let mut by_node: BTreeMap<NodeId, Vec<&ModuleRecord>> = BTreeMap::new();
    for r in results {
        by_node.entry(r.node_id).or_default().push(r);
    }
    let root = nodes.iter().find(|n| n.parent.is_none());
    let mut report = match root {
        Some(root) => node_report(root, nodes, &by_node),
        None => Map::new(),
    };
    report.insert("filename".into(), json!(task.submission.filename));
    report.insert("tags".into(), json!(task.submission.tags));
    let mut meta = Map::new();
    for (k, v) in &task.submission.metadata {
        meta.insert(k.clone(), json!(v));
    }
    meta.insert("Task ID".into(), json!(task.id.0));
    meta.insert("Submitted".into(), json!(iso8601(task.submitted_at)));
    if let Some(done) = task.finished_at {
        meta.insert("Scan Time".into(), json!(iso8601(done)));
    }
    meta.insert("Priority".into(), json!(task.submission.priority.get()));
    report.insert("Scan Metadata".into(), Value::Object(meta));
    Value::Object(report)
}

fn node_report(
    node: &NodeInfo,
    nodes: &[NodeInfo],
    by_node: &BTreeMap<NodeId, Vec<&ModuleRecord>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut errors = Map::new();
    for r in by_node.get(&node.node_id).into_iter().flatten() {
        match &r.outcome {
            // The module had nothing to say about this file (not its type).
            Ok(Value::Null) => {}
            Ok(v) => {
                out.insert(r.module.clone(), v.clone());
            }
            Err(e) => {
                errors.insert(r.module.clone(), json!(e));
            }
        }
    }
    if let Some(e) = &node.error {
        errors.insert("node".into(), json!(e));
    }
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Object(errors));
    }
    let children: Vec<Value> = nodes
        .iter()
        .filter(|c| c.parent == Some(node.node_id))
        .map(|c| {
            let mut child = node_report(c, nodes, by_node);
            child.insert("filename".into(), json!(c.filename));
            child.insert("node_id".into(), json!(c.node_id.0));
            child.insert("parent_node_id".into(), json!(node.node_id.0));
            child.insert("depth".into(), json!(c.depth));
            child.insert("created_by".into(), json!(c.created_by));
            Value::Object(child)
        })
        .collect();
    if !children.is_empty() {
        out.insert("children".into(), Value::Array(children));
    }
    out
}

pub use multiscanner_proto::domain::iso8601;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_548_425_331_123), "2019-01-25T14:08:51.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
    }
}
