//! Mutation fuzzing of the parser modules on the stable toolchain (cargo
//! fuzz needs a nightly compiler, which this project does not use): real
//! files are damaged at random — bits flipped, bytes set to edge values,
//! cut short, spans repeated or dropped — and each module is run on the
//! result. A module may fail on such input, with an error; it must not
//! panic and must not run past its time.
//!
//! Used by the `fuzz_regressions` test (a fixed seed, a few hundred inputs
//! per module) and by `make fuzz` (the `fuzz` example: random seeds, for a
//! time), which saves every input that breaks a module.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use multiscanner_proto::domain::Sha256;

use crate::{
    module::{Module, ModuleError, ScanInput},
    modules,
    registry::ModulesConfig,
};

/// Debian's clamav-testfiles: real executables, documents and archives.
const TESTFILES: &str = "/usr/share/clamav-testfiles";

/// The parser modules with the real files their inputs are made from.
pub fn targets() -> Vec<(Arc<dyn Module>, Vec<PathBuf>)> {
    let t = |names: &[&str]| -> Vec<PathBuf> {
        names.iter().map(|n| Path::new(TESTFILES).join(n)).collect()
    };
    let config = ModulesConfig::default();
    vec![
        (
            Arc::new(modules::pe::Pe) as Arc<dyn Module>,
            t(&[
                "clam.exe",
                "clam-upx.exe",
                "clam-petite.exe",
                "clam.ea06.exe",
            ]),
        ),
        (
            Arc::new(modules::elf::ElfModule),
            vec![
                PathBuf::from("/usr/bin/true"),
                PathBuf::from("/usr/bin/sleep"),
            ],
        ),
        (Arc::new(modules::pdf::Pdf), t(&["clam.pdf"])),
        (
            Arc::new(modules::office::Office),
            t(&["clam.ole.doc", "clam.ppt"]),
        ),
        (
            Arc::new(modules::archive::Archive {
                config: config.archive.clone(),
            }),
            t(&[
                "clam.zip",
                "clam.7z",
                "clam.tar.gz",
                "clam.exe.bz2",
                "clam.bz2.zip",
            ]),
        ),
        (
            Arc::new(modules::strings::Strings {
                config: config.strings.clone(),
            }),
            t(&["clam.exe", "clam.exe.rtf"]),
        ),
    ]
}

/// A small, fast, seedable generator (xorshift64*); quality enough to pick
/// mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const EDGE_BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'/', b'<', b'(', b'\n'];
const EDGE_WORDS: &[u32] = &[
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0xffff,
    0x1_0000,
];

/// `seed` damaged in one to four ways.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = EDGE_BYTES[rng.below(EDGE_BYTES.len())];
            }
            2 if len >= 4 => {
                let at = rng.below(len - 3);
                let w = EDGE_WORDS[rng.below(EDGE_WORDS.len())].to_le_bytes();
                data[at..at + 4].copy_from_slice(&w);
            }
            3 => data.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                // Repeat a span (lengths and counts that no longer add up).
                let at = rng.below(len);
                let span = rng.below((len - at).min(4096)) + 1;
                let copy = data[at..at + span].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let span = rng.below((len - at).min(4096)) + 1;
                data.drain(at..at + span);
            }
            _ => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..rng.below(64) + 1)
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                data.splice(at..at, junk);
            }
        }
    }
    data
}

/// How a module took one input.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A result, nothing to say, or an error: all fine.
    Handled,
    Panicked(String),
    TimedOut,
}

/// Runs `module` on the file at `path` as a worker would, bounded by
/// `limit`.
pub async fn run_once(module: &Arc<dyn Module>, path: &Path, limit: Duration) -> Outcome {
    let input = ScanInput {
        path: Arc::new(path.to_owned()),
        filename: "fuzzed".into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).map_or(0, |m| m.len()),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    };
    match tokio::time::timeout(limit, module.scan(input)).await {
        Err(_) => Outcome::TimedOut,
        Ok(Err(ModuleError::Failed(why))) if why.starts_with("module panicked") => {
            Outcome::Panicked(why)
        }
        Ok(_) => Outcome::Handled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_change_the_input() {
        let seed: Vec<u8> = (0..=255).collect();
        let a: Vec<Vec<u8>> = {
            let mut r = Rng::new(7);
            (0..50).map(|_| mutate(&seed, &mut r)).collect()
        };
        let b: Vec<Vec<u8>> = {
            let mut r = Rng::new(7);
            (0..50).map(|_| mutate(&seed, &mut r)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().filter(|m| **m != seed).count() >= 45);
        assert!(mutate(&[], &mut Rng::new(1)).len() <= 65);
    }
}
