//! `make fuzz`: each parser module on damaged copies of real files, for
//! `FUZZ_SECS` seconds each (default 60), from a random seed. An input that
//! makes a module panic or run past `FUZZ_LIMIT_SECS` (default 10) is saved
//! under `fuzz-crashers/MODULE/` for a look; copied into
//! `worker/tests/fuzz-regressions/MODULE/` it becomes a regression test.

use std::time::{Duration, Instant, SystemTime};

use multiscanner_worker::fuzz::{Outcome, Rng, mutate, run_once, targets};

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let budget = env_secs("FUZZ_SECS", 60);
    let limit = env_secs("FUZZ_LIMIT_SECS", 10);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_nanos() as u64;
    let out = std::path::Path::new("fuzz-crashers");
    let work = tempfile::tempdir()?;
    println!("seed {seed}, {}s per module", budget.as_secs());
    println!("| module | inputs | inputs/s | panics | time-outs |\n|---|---:|---:|---:|---:|");
    let mut rng = Rng::new(seed);
    let mut broken = 0;
    for (module, seeds) in targets() {
        let seeds: Vec<Vec<u8>> = seeds.iter().map(std::fs::read).collect::<Result<_, _>>()?;
        let (mut inputs, mut panics, mut timeouts) = (0u64, 0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < budget {
            let data = mutate(&seeds[rng.below(seeds.len())], &mut rng);
            let path = work.path().join("input");
            std::fs::write(&path, &data)?;
            let outcome = run_once(&module, &path, limit).await;
            inputs += 1;
            if outcome == Outcome::Handled {
                continue;
            }
            match outcome {
                Outcome::Panicked(_) => panics += 1,
                _ => timeouts += 1,
            }
            let dir = out.join(module.name());
            std::fs::create_dir_all(&dir)?;
            let name = format!("{:016x}", rng.next_u64());
            std::fs::write(dir.join(&name), &data)?;
            eprintln!(
                "{}: {outcome:?} -> {}",
                module.name(),
                dir.join(name).display()
            );
            broken += 1;
        }
        let rate = inputs as f64 / started.elapsed().as_secs_f64();
        println!(
            "| {} | {inputs} | {rate:.0} | {panics} | {timeouts} |",
            module.name()
        );
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} inputs broke a module (saved under fuzz-crashers/)"
    );
    Ok(())
}
