//! The parser modules on damaged copies of real files (a fixed seed, so a
//! failure here reproduces), and on every input `make fuzz` ever caught
//! breaking one (kept under `tests/fuzz-regressions/MODULE/`): each input
//! gives a result or an error, never a panic and never a hang.

use std::{path::Path, time::Duration};

use multiscanner_worker::fuzz::{Outcome, Rng, mutate, run_once, targets};

/// Damaged inputs tried per module.
const INPUTS: usize = 400;
/// Far longer than any of these small inputs takes.
const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_give_errors_not_panics_or_hangs() {
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (module, seeds) in targets() {
        let seeds: Vec<Vec<u8>> = seeds
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect();
        let mut rng = Rng::new(0x5eed ^ module.name().len() as u64);
        for i in 0..INPUTS {
            let data = mutate(&seeds[i % seeds.len()], &mut rng);
            let path = work.path().join(format!("{}-{i}", module.name()));
            std::fs::write(&path, &data).unwrap();
            let outcome = run_once(&module, &path, LIMIT).await;
            if outcome != Outcome::Handled {
                failures.push(format!("{} input {i}: {outcome:?}", module.name()));
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_once_broke_a_module_stay_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut checked = 0;
    for (module, _) in targets() {
        let Ok(entries) = std::fs::read_dir(dir.join(module.name())) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let outcome = run_once(&module, &path, LIMIT).await;
            assert_eq!(outcome, Outcome::Handled, "{}", path.display());
            checked += 1;
        }
    }
    println!("{checked} saved inputs replayed");
}
