//! Running a node's modules: dependencies first, independent modules side by
//! side, each under its timeout, each result reported the moment it is ready.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};
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
    pub config_hash: String,
    /// Not run: a stored result for the same version and settings stands.
    pub cached: bool,
    pub outcome: Result<Option<Value>, String>,
    pub children: Vec<ExtractedFile>,
    pub duration: Duration,
}

/// A stored result's key: module name, version, settings digest.
pub type CacheKey = (String, String, String);

/// Runs the modules `wanted` (all when empty) on `input`, sending each
/// result to `results` as soon as it is ready. A module whose result is in
/// `cached` is reported as such instead of run, unless a module that runs
/// requires it. `deadline` cuts every module short.
pub async fn run_modules(
    registry: &Registry,
    input: ScanInput,
    wanted: &[String],
    cached: &HashSet<CacheKey>,
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
            config_hash: String::new(),
            cached: false,
            outcome: Err("module not available on this worker".into()),
            children: Vec::new(),
            duration: Duration::ZERO,
        })
        .await;
    }
    let (mut waiting, reused) = split_cached(plan, cached);
    for selected in reused {
        on_result(ModuleRun {
            module: selected.module.name().to_owned(),
            version: selected.module.version().to_owned(),
            config_hash: selected.config_hash.clone(),
            cached: true,
            outcome: Ok(None),
            children: Vec::new(),
            duration: Duration::ZERO,
        })
        .await;
    }
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
                    config_hash: selected.config_hash.clone(),
                    cached: false,
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
            let config_hash = selected.config_hash.clone();
            let span = info_span!("module", module = module.name());
            running.push(
                async move {
                    let start = Instant::now();
                    let outcome = tokio::time::timeout(limit, module.scan(input)).await;
                    let took = start.elapsed();
                    (module, config_hash, outcome, took, limit, cut_by_deadline)
                }
                .instrument(span),
            );
        }
        let Some((module, config_hash, outcome, duration, limit, cut_by_deadline)) =
            running.next().await
        else {
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
            config_hash,
            cached: false,
            outcome,
            children,
            duration,
        })
        .await;
    }
}

/// Splits `plan` into the modules to run and those whose cached result
/// stands: a module is reused when its key is in `cached` and no module
/// that runs reads its output.
fn split_cached<'a>(
    plan: Vec<&'a Selected>,
    cached: &HashSet<CacheKey>,
) -> (Vec<&'a Selected>, Vec<&'a Selected>) {
    let key = |s: &Selected| {
        (
            s.module.name().to_owned(),
            s.module.version().to_owned(),
            s.config_hash.clone(),
        )
    };
    let mut run: HashSet<&str> = plan
        .iter()
        .filter(|s| !cached.contains(&key(s)))
        .map(|s| s.module.name())
        .collect();
    // Requirements of modules that run must run too (their output is
    // handed over in memory), transitively.
    loop {
        let needed: Vec<&str> = plan
            .iter()
            .filter(|s| run.contains(s.module.name()))
            .flat_map(|s| s.module.requires().iter().copied())
            .filter(|r| !run.contains(r))
            .collect();
        if needed.is_empty() {
            break;
        }
        run.extend(needed);
    }
    plan.into_iter()
        .partition(|s| run.contains(s.module.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        module::{Module, ModuleError, ModuleOutput},
        registry::config_hash,
        testing::Fake,
    };
    use futures::future::BoxFuture;

    fn selected(name: &'static str, requires: &'static [&'static str]) -> Selected {
        Selected {
            module: Arc::new(Fake(name, requires)),
            timeout: Duration::from_secs(1),
            config_hash: config_hash(&Value::Null),
        }
    }

    fn key(name: &str, version: &str, hash: &str) -> CacheKey {
        (name.into(), version.into(), hash.into())
    }

    fn names(s: &[&Selected]) -> Vec<&'static str> {
        s.iter().map(|s| s.module.name()).collect()
    }

    #[test]
    fn cached_modules_are_skipped_unless_a_running_module_needs_them() {
        // base <- mid <- top; side alone.
        let all = [
            selected("base", &[]),
            selected("mid", &["base"]),
            selected("top", &["mid"]),
            selected("side", &[]),
        ];
        let plan: Vec<&Selected> = all.iter().collect();
        let null = config_hash(&Value::Null);
        let cached = |names: &[&str]| -> HashSet<CacheKey> {
            names.iter().map(|n| key(n, "1", &null)).collect()
        };

        let (run, reused) = split_cached(plan.clone(), &cached(&["base", "mid", "top", "side"]));
        assert_eq!(
            (names(&run), names(&reused)),
            (vec![], vec!["base", "mid", "top", "side"])
        );

        // `top` must run, so `mid` and through it `base` run too.
        let (run, reused) = split_cached(plan.clone(), &cached(&["base", "mid", "side"]));
        assert_eq!(names(&run), vec!["base", "mid", "top"]);
        assert_eq!(names(&reused), vec!["side"]);

        // Another version or other settings are not the same result.
        let stale: HashSet<CacheKey> = [
            key("side", "0", &null),
            key(
                "base",
                "1",
                &config_hash(&serde_json::json!({"rules": "other"})),
            ),
        ]
        .into();
        let (run, reused) = split_cached(plan, &stale);
        assert_eq!(names(&run), vec!["base", "mid", "top", "side"]);
        assert!(reused.is_empty());
    }

    /// A module that never returns.
    struct Hang;
    impl Module for Hang {
        fn name(&self) -> &'static str {
            "hang"
        }
        fn version(&self) -> &'static str {
            "1"
        }
        fn module_type(&self) -> &'static str {
            "Test"
        }
        fn scan(&self, _: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
            Box::pin(std::future::pending())
        }
    }

    async fn run_hang(timeout_secs: u64, deadline: Option<Duration>) -> (ModuleRun, Duration) {
        let config = crate::registry::ModulesConfig {
            enabled: vec!["hang".into()],
            timeout_secs,
            ..Default::default()
        };
        let registry = Registry::with_modules(vec![Arc::new(Hang)], &config).unwrap();
        let input = ScanInput {
            path: Arc::new("/nonexistent".into()),
            filename: "x".into(),
            sha256: multiscanner_proto::domain::Sha256([0; 32]),
            size: 0,
            depth: 0,
            upstream: Arc::default(),
            archive_password: None,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let start = Instant::now();
        let deadline = deadline.map(|d| start + d);
        run_modules(&registry, input, &[], &HashSet::new(), deadline, tx).await;
        (rx.recv().await.unwrap(), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_module_is_cut_at_its_timeout() {
        let (run, took) = run_hang(300, None).await;
        assert_eq!(run.outcome, Err("timed out after 300 s".into()));
        assert_eq!(took, Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_deadline_cuts_before_the_module_timeout() {
        let (run, took) = run_hang(300, Some(Duration::from_secs(42))).await;
        assert_eq!(
            run.outcome,
            Err("stopped: the task's deadline passed".into())
        );
        assert_eq!(took, Duration::from_secs(42));
    }
}
