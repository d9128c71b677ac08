//! The result cache: a module's stored result on a sample stands in for
//! running it again when the module's version and settings are the same.
//! The scheduler tells a worker which results exist ([`Scheduler::cached_for`]);
//! the worker decides which modules it can skip (it knows their versions,
//! settings and dependencies) and says so; the scheduler then copies the
//! stored result, and re-attaches the files the module had extracted
//! ([`Scheduler::reuse_cached`]).

use multiscanner_proto::pb;
use tracing::{debug, warn};

use crate::{
    core::{NewChild, Scheduler},
    error::Result,
    store::{CacheKey, ModuleRecord, NodeWork},
};

impl Scheduler {
    /// The stored results a worker may reuse for `work`'s sample; none when
    /// the submission forces every module, or when the lookup fails (the
    /// modules then simply run).
    pub(crate) async fn cached_for(&self, work: &NodeWork) -> Vec<pb::CachedResult> {
        if work.force {
            return Vec::new();
        }
        match self.stores.reports.cached_keys(work.sha256).await {
            Ok(keys) => keys
                .into_iter()
                .map(|k| pb::CachedResult {
                    module: k.module,
                    module_version: k.module_version,
                    config_hash: k.config_hash,
                })
                .collect(),
            Err(e) => {
                warn!(error = %e, "cannot read the result cache; every module will run");
                Vec::new()
            }
        }
    }

    /// The record standing for a module the worker skipped: the stored
    /// result, with the files it extracted attached again under this node.
    pub(crate) async fn reuse_cached(
        &self,
        work: &NodeWork,
        result: pb::ModuleResult,
    ) -> Result<ModuleRecord> {
        let key = CacheKey {
            module: result.module,
            module_version: result.module_version,
            config_hash: result.config_hash,
        };
        let Some((source, mut record)) =
            self.stores.reports.cached_result(work.sha256, &key).await?
        else {
            // Deleted between the assignment and now.
            return Ok(ModuleRecord {
                node_id: work.node_id,
                module: key.module,
                module_version: key.module_version,
                config_hash: key.config_hash,
                outcome: Err(
                    "its cached result was deleted while the file was analysed; \
                              submit the file again to run it"
                        .into(),
                ),
                duration_ms: 0,
            });
        };
        debug!(task_id = %work.task_id, module = %key.module, from_task = %source, "cached result reused");
        let extracted: Vec<_> = self
            .stores
            .tasks
            .nodes(source)
            .await?
            .into_iter()
            .filter(|n| {
                n.parent == Some(record.node_id) && n.created_by.as_deref() == Some(&key.module)
            })
            .collect();
        if !extracted.is_empty() && self.depth_refusal(work).is_none() {
            for n in extracted {
                let child = NewChild {
                    sha256: n.sha256,
                    size: n.size,
                    filename: n.filename,
                    created_by: key.module.clone(),
                };
                self.attach_child(work, child).await?;
            }
        }
        record.node_id = work.node_id;
        Ok(record)
    }
}
