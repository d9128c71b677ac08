//! Running a node's modules: dependencies first, independent modules side by
//! side, each under its timeout, each result reported the moment it is ready.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};

use crate::{
    module::{ExtractedFile, ScanInput},
    registry::{Registry, Selected},
};

/// One module's run on one file.
#[derive(Debug)]
pub struct ModuleRun {
    pub module: String,
    pub version: String,
    pub outcome: Result<Option<Value>, String>,
    pub children: Vec<ExtractedFile>,
    pub duration: Duration,
}

/// Runs the modules `wanted` (all when empty) on `input`, calling
/// sending each result to `results` as soon as it is ready. `deadline`
/// cuts every module short.
pub async fn run_modules(
    registry: &Registry,
    input: ScanInput,
    wanted: &[String],
    deadline: Option<Instant>,
    results: mpsc::Sender<ModuleRun>,
) {
    // The receiver only hangs up when the node was abandoned; then there is
    // nobody to tell, and the remaining modules still run to their end.
    let on_result = async |run: ModuleRun| {
        let _ = results.send(run).await;
    };
    let (plan, missing) = registry.plan(wanted);
    for name in missing {
        on_result(ModuleRun {
            module: name,
            version: String::new(),
            outcome: Err("module not available on this worker".into()),
            children: Vec::new(),
            duration: Duration::ZERO,
        })
        .await;
    }
    let mut waiting: Vec<&Selected> = plan;
    // Finished modules: their result, or None when they failed.
    let mut finished: BTreeMap<&'static str, Option<Value>> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        // Start every module whose requirements are all finished.
        let mut i = 0;
        while i < waiting.len() {
            let selected = waiting[i];
            let module = &selected.module;
            let requires = module.requires();
            if !requires
                .iter()
                .all(|r| finished.contains_key(r) || registry.get(r).is_none())
            {
                i += 1;
                continue;
            }
            waiting.remove(i);
            if let Some(failed) = requires
                .iter()
                .find(|r| matches!(finished.get(*r), Some(None)))
            {
                finished.insert(module.name(), None);
                on_result(ModuleRun {
                    module: module.name().to_owned(),
                    version: module.version().to_owned(),
                    outcome: Err(format!("skipped: required module {failed} failed")),
                    children: Vec::new(),
                    duration: Duration::ZERO,
                })
                .await;
                i = 0;
                continue;
            }
            let upstream: BTreeMap<String, Value> = requires
                .iter()
                .filter_map(|r| {
                    finished
                        .get(r)
                        .and_then(|v| v.clone())
                        .map(|v| ((*r).to_owned(), v))
                })
                .collect();
            let input = ScanInput {
                upstream: Arc::new(upstream),
                ..input.clone()
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let (limit, cut_by_deadline) = match left {
                Some(left) if left < selected.timeout => (left, true),
                _ => (selected.timeout, false),
            };
            let module = Arc::clone(module);
            let span = info_span!("module", module = module.name());
            running.push(
                async move {
                    let start = Instant::now();
                    let outcome = tokio::time::timeout(limit, module.scan(input)).await;
                    (module, outcome, start.elapsed(), limit, cut_by_deadline)
                }
                .instrument(span),
            );
        }
        let Some((module, outcome, duration, limit, cut_by_deadline)) = running.next().await else {
            break;
        };
        let (outcome, children) = match outcome {
            Ok(Ok(out)) => (Ok(out.result), out.children),
            Ok(Err(e)) => (Err(e.to_string()), Vec::new()),
            Err(_) if cut_by_deadline => (
                Err("stopped: the task's deadline passed".into()),
                Vec::new(),
            ),
            Err(_) => (
                Err(format!("timed out after {} s", limit.as_secs_f64())),
                Vec::new(),
            ),
        };
        debug!(
            module = module.name(),
            ?duration,
            ok = outcome.is_ok(),
            "module finished"
        );
        finished.insert(
            module.name(),
            match &outcome {
                Ok(v) => Some(v.clone().unwrap_or(Value::Null)),
                Err(_) => None,
            },
        );
        on_result(ModuleRun {
            module: module.name().to_owned(),
            version: module.version().to_owned(),
            outcome,
            children,
            duration,
        })
        .await;
    }
}
