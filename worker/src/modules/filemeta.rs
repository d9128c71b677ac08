//! `filemeta`: hashes, size, entropy, fuzzy hashes and file type, computed
//! in one read of the file.
//!
//! Report keys follow MultiScanner's v2 report (`md5`, `sha1`, `sha256`,
//! `sha512`, `crc32` as `0x…`, `filesize`, `entropy`, `filetype`, `mimetype`,
//! `ssdeep`) plus `tlsh` (T1 form). Files too short or too uniform for TLSH
//! get `null` there, as the reference tool gives no digest for them.
//!
//! Large files are read once and each chunk is handed to two hashing threads,
//! so the digests are computed side by side rather than one after another.
//! libmagic is given the file itself rather than a buffer: only then does it
//! parse ELF program and section headers the way `file` does (it reads the
//! head and those headers, not the whole file).

use std::{
    cell::RefCell,
    fs::File,
    io::{self, Read},
    path::Path,
    sync::{Arc, mpsc},
    thread,
};

use md5::Digest;
use serde_json::{Value, json};

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

const CHUNK: usize = 1 << 20;
/// Files at least this large are hashed on two threads.
const PARALLEL_FROM: u64 = 4 * CHUNK as u64;

#[derive(Debug, Default)]
pub struct FileMeta;

impl Module for FileMeta {
    fn name(&self) -> &'static str {
        "filemeta"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn check(&self) -> Result<(), String> {
        with_magic(|m| m.map(|_| ())).map_err(|e| format!("libmagic: {e}"))
    }

    fn scan(
        &self,
        input: ScanInput,
    ) -> futures::future::BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || Ok(ModuleOutput::result(analyse(&input.path)?)))
    }
}

/// Computes the whole `filemeta` result for the file at `path`.
pub fn analyse(path: &Path) -> Result<Value, ModuleError> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let (a, b) = if size >= PARALLEL_FROM {
        hash_parallel(&mut file, size)?
    } else {
        let (mut a, mut b) = (GroupA::default(), GroupB::new(size));
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            a.update(&buf[..n]);
            b.update(&buf[..n]);
        }
        (a, b)
    };
    let (filetype, mimetype) = with_magic(|m| {
        let m = m.map_err(ModuleError::Failed)?;
        let describe = |cookie: &magic::Cookie<magic::cookie::Load>| {
            cookie
                .file(path)
                .map_err(|e| ModuleError::Failed(format!("libmagic: {e}")))
        };
        Ok::<_, ModuleError>((describe(&m.text)?, describe(&m.mime)?))
    })?;
    let total = a.total;
    Ok(json!({
        "md5": hex::encode(a.md5.finalize()),
        "sha1": hex::encode(a.sha1.finalize()),
        "sha256": hex::encode(b.sha256.finalize()),
        "sha512": hex::encode(b.sha512.finalize()),
        "crc32": format!("0x{:08x}", a.crc32.finalize()),
        "filesize": total,
        "entropy": entropy(&a.histogram, total),
        "ssdeep": b
            .ssdeep
            .finalize()
            .map(|h| h.to_string())
            .map_err(|e| ModuleError::Failed(format!("ssdeep: {e} (did the file change?)")))?,
        "tlsh": a.tlsh.build().map(|t| String::from_utf8_lossy(&t.hash()).into_owned()),
        "filetype": filetype,
        "mimetype": mimetype,
    }))
}

/// md5, sha1, crc32, the byte histogram and TLSH.
struct GroupA {
    md5: md5::Md5,
    sha1: sha1::Sha1,
    crc32: crc32fast::Hasher,
    histogram: [u64; 256],
    tlsh: tlsh2::TlshDefaultBuilder,
    total: u64,
}

impl Default for GroupA {
    fn default() -> Self {
        Self {
            md5: md5::Md5::new(),
            sha1: sha1::Sha1::new(),
            crc32: crc32fast::Hasher::new(),
            histogram: [0; 256],
            tlsh: tlsh2::TlshDefaultBuilder::new(),
            total: 0,
        }
    }
}

impl GroupA {
    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha1.update(data);
        self.crc32.update(data);
        count_bytes(&mut self.histogram, data);
        self.tlsh.update(data);
        self.total += data.len() as u64;
    }
}

/// sha256, sha512 and ssdeep.
struct GroupB {
    sha256: sha2::Sha256,
    sha512: sha2::Sha512,
    ssdeep: ssdeep::Generator,
}

impl GroupB {
    /// Knowing the size up front lets ssdeep skip block sizes it will not
    /// use, which nearly doubles its speed. A file whose size changes while
    /// it is read then fails to hash instead of giving a wrong digest.
    fn new(size: u64) -> Self {
        let mut ssdeep = ssdeep::Generator::new();
        // Only sizes beyond ssdeep's maximum are refused; they then hash
        // without the shortcut (and fail at the end, as ssdeep would).
        let _ = ssdeep.set_fixed_input_size(size);
        Self {
            sha256: sha2::Sha256::new(),
            sha512: sha2::Sha512::new(),
            ssdeep,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.sha512.update(data);
        self.ssdeep.update(data);
    }
}

/// Reads the file once on this thread; group B runs on a second thread fed
/// through a small bounded channel, group A here.
fn hash_parallel(file: &mut File, size: u64) -> Result<(GroupA, GroupB), ModuleError> {
    let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
    let other = thread::Builder::new()
        .name("filemeta-b".into())
        .spawn(move || {
            let mut b = GroupB::new(size);
            for chunk in rx {
                b.update(&chunk);
            }
            b
        })?;
    let mut a = GroupA::default();
    let result = (|| -> io::Result<()> {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = read_full(file, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            let chunk = Arc::new(buf);
            // The receiver only goes away if its thread panicked; the join
            // below reports that.
            let _ = tx.send(Arc::clone(&chunk));
            a.update(&chunk);
        }
    })();
    drop(tx);
    let b = other
        .join()
        .map_err(|_| ModuleError::Failed("hashing thread panicked".into()))?;
    result?;
    Ok((a, b))
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Counts bytes into a histogram, four interleaved tables to break the
/// store-to-load dependency on runs of the same byte.
fn count_bytes(histogram: &mut [u64; 256], data: &[u8]) {
    let mut t = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        t[0][c[0] as usize] += 1;
        t[1][c[1] as usize] += 1;
        t[2][c[2] as usize] += 1;
        t[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        t[0][b as usize] += 1;
    }
    for (i, h) in histogram.iter_mut().enumerate() {
        *h += u64::from(t[0][i]) + u64::from(t[1][i]) + u64::from(t[2][i]) + u64::from(t[3][i]);
    }
}

/// Shannon entropy in bits per byte (0 to 8).
fn entropy(histogram: &[u64; 256], total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    histogram
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum::<f64>()
        .abs()
}

/// libmagic handles, loaded once per thread (loading the database is slow
/// and a handle may not be shared between threads).
struct Magic {
    text: magic::Cookie<magic::cookie::Load>,
    mime: magic::Cookie<magic::cookie::Load>,
}

thread_local! {
    static MAGIC: RefCell<Option<Result<Magic, String>>> = const { RefCell::new(None) };
}

fn with_magic<T>(f: impl FnOnce(Result<&Magic, String>) -> T) -> T {
    MAGIC.with(|cell| {
        let mut slot = cell.borrow_mut();
        let magic = slot.get_or_insert_with(load_magic);
        f(magic.as_ref().map_err(Clone::clone))
    })
}

/// A libmagic handle with the system's database loaded.
pub(crate) fn open_magic(
    flags: magic::cookie::Flags,
) -> Result<magic::Cookie<magic::cookie::Load>, String> {
    magic::Cookie::open(flags)
        .map_err(|e| e.to_string())?
        .load(&magic::cookie::DatabasePaths::default())
        .map_err(|e| e.to_string())
}

fn load_magic() -> Result<Magic, String> {
    use magic::cookie::Flags;
    Ok(Magic {
        text: open_magic(Flags::ERROR)?,
        mime: open_magic(Flags::ERROR | Flags::MIME_TYPE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn meta_of(bytes: &[u8]) -> Value {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        analyse(f.path()).unwrap()
    }

    #[test]
    fn known_values_for_123_newline() {
        let m = meta_of(b"123\n");
        assert_eq!(m["entropy"], json!(2.0));
        assert_eq!(m["md5"], "ba1f2511fc30423bdbb183fe33f3dd0f");
        assert_eq!(m["sha1"], "a8fdc205a9f19cc1c7507a60c4f01b13d11d7fd0");
        assert_eq!(
            m["sha256"],
            "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b"
        );
        assert_eq!(m["filetype"], "ASCII text");
        assert_eq!(m["mimetype"], "text/plain");
        assert_eq!(m["filesize"], 4);
        assert_eq!(m["tlsh"], Value::Null, "4 bytes are too few for TLSH");
    }

    #[test]
    fn entropy_bounds() {
        let mut h = [0u64; 256];
        assert_eq!(entropy(&h, 0), 0.0);
        h[7] = 100;
        assert_eq!(entropy(&h, 100), 0.0);
        let h = [1u64; 256];
        assert!((entropy(&h, 256) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        // A file above the threshold, hashed both ways, gives the same digests.
        let data: Vec<u8> = (0..(PARALLEL_FROM as usize + 12345))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let parallel = analyse(f.path()).unwrap();
        let mut a = GroupA::default();
        let mut b = GroupB::new(data.len() as u64);
        for chunk in data.chunks(777) {
            a.update(chunk);
            b.update(chunk);
        }
        assert_eq!(parallel["md5"], hex::encode(a.md5.finalize()));
        assert_eq!(parallel["sha512"], hex::encode(b.sha512.finalize()));
        assert_eq!(parallel["ssdeep"], b.ssdeep.finalize().unwrap().to_string());
    }
}
