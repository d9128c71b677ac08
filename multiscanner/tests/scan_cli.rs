//! `multiscanner scan` on real files, checked against independent tools
//! (coreutils digests, Debian's `ssdeep`, `tlsh` and `file`, Python).

mod support;

use std::{collections::BTreeMap, fs, io::Write, path::PathBuf};

use serde_json::Value;
use support::cli::{multiscanner, reports, tool, tool_on};

fn scan_json(paths: &[PathBuf]) -> (std::process::Output, BTreeMap<String, Value>) {
    let out = multiscanner()
        .arg("scan")
        .arg("--json")
        .args(paths)
        .output()
        .unwrap();
    let map = reports(&out.stdout).into_iter().collect();
    (out, map)
}

#[test]
fn a_file_holding_123_gets_the_known_values() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("123.txt");
    fs::write(&f, "123\n").unwrap();
    let (out, reports) = scan_json(std::slice::from_ref(&f));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = &reports[f.to_str().unwrap()]["filemeta"];
    assert_eq!(m["entropy"], 2.0);
    assert_eq!(m["md5"], "ba1f2511fc30423bdbb183fe33f3dd0f");
    assert_eq!(m["sha1"], "a8fdc205a9f19cc1c7507a60c4f01b13d11d7fd0");
    assert_eq!(
        m["sha256"],
        "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b"
    );
    assert_eq!(m["filetype"], "ASCII text");
}

/// Files the test makes: text, zeros, pseudo-random data of sizes on both
/// sides of the two-thread threshold, and a repetitive binary.
fn generated(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand_bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    };
    for (name, data) in [
        (
            "text.txt",
            "The quick brown fox jumps over the lazy dog.\n"
                .repeat(400)
                .into_bytes(),
        ),
        ("random-300.bin", rand_bytes(300)),
        ("random-100k.bin", rand_bytes(100_000)),
        ("random-6m.bin", rand_bytes(6 * 1024 * 1024 + 17)),
        (
            "zeros-and-ones.bin",
            [vec![0u8; 70_000], vec![1u8; 70_000]].concat(),
        ),
    ] {
        let p = dir.join(name);
        fs::File::create(&p).unwrap().write_all(&data).unwrap();
        files.push(p);
    }
    files
}

/// Every 25th regular file of /usr/bin, for real executables and scripts.
/// Set-id files are left out: `file` reports their mode bits ("setuid
/// ELF ..."), which belong to the file system, not to the bytes analysed.
fn some_of_usr_bin() -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut all: Vec<PathBuf> = fs::read_dir("/usr/bin")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            fs::metadata(p)
                .is_ok_and(|m| m.is_file() && m.len() > 0 && m.permissions().mode() & 0o7000 == 0)
        })
        .collect();
    all.sort();
    all.into_iter().step_by(25).collect()
}

#[test]
fn digests_fuzzy_hashes_and_types_match_the_reference_tools() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = generated(dir.path());
    files.extend(some_of_usr_bin());
    let (out, reports) = scan_json(&files);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reports.len(), files.len());
    let mut tlsh_checked = 0;
    for f in &files {
        let name = f.to_str().unwrap();
        let m = &reports[name]["filemeta"];
        let first = |s: String| s.split_whitespace().next().unwrap().to_owned();
        assert_eq!(m["md5"], first(tool_on("md5sum", &[], f)), "md5 {name}");
        assert_eq!(m["sha1"], first(tool_on("sha1sum", &[], f)), "sha1 {name}");
        assert_eq!(
            m["sha256"],
            first(tool_on("sha256sum", &[], f)),
            "sha256 {name}"
        );
        assert_eq!(
            m["sha512"],
            first(tool_on("sha512sum", &[], f)),
            "sha512 {name}"
        );
        assert_eq!(m["filesize"], fs::metadata(f).unwrap().len(), "size {name}");
        // ssdeep -b prints a header line, then `hash,"basename"`.
        let ssdeep = tool_on("ssdeep", &["-b"], f);
        let line = ssdeep.lines().nth(1).unwrap();
        let hash = line.rsplit_once(",\"").unwrap().0;
        assert_eq!(m["ssdeep"], hash, "ssdeep {name}");
        // Debian's tlsh (3.4) prints the digest without the T1 prefix and
        // refuses files under 256 bytes.
        let tlsh = tool("tlsh", &["-f", name]);
        let tlsh = String::from_utf8_lossy(&tlsh.stdout);
        if let Some((digest, _)) = tlsh.trim().split_once('\t') {
            assert_eq!(m["tlsh"], format!("T1{digest}"), "tlsh {name}");
            tlsh_checked += 1;
        }
        assert_eq!(
            m["filetype"],
            tool_on("file", &["-b", "-L"], f),
            "file type {name}"
        );
        assert_eq!(
            m["mimetype"],
            tool_on("file", &["-b", "-L", "--mime-type"], f),
            "mime type {name}"
        );
    }
    assert!(
        tlsh_checked >= files.len() / 2,
        "too few TLSH comparisons: {tlsh_checked}"
    );

    // crc32 and entropy, computed independently by Python.
    let script = "import sys, zlib, math, json\n\
        out = {}\n\
        for p in sys.argv[1:]:\n\
        \x20   d = open(p, 'rb').read()\n\
        \x20   counts = [0] * 256\n\
        \x20   for b in d: counts[b] += 1\n\
        \x20   e = -sum(c / len(d) * math.log2(c / len(d)) for c in counts if c)\n\
        \x20   out[p] = ['0x%08x' % zlib.crc32(d), e]\n\
        print(json.dumps(out))";
    let mut args = vec!["-c", script];
    let names: Vec<&str> = files.iter().take(5).map(|f| f.to_str().unwrap()).collect();
    args.extend(&names);
    let py: BTreeMap<String, (String, f64)> =
        serde_json::from_slice(&tool("python3", &args).stdout).unwrap();
    for (name, (crc, entropy)) in py {
        let m = &reports[&name]["filemeta"];
        assert_eq!(m["crc32"], crc, "crc32 {name}");
        let ours = m["entropy"].as_f64().unwrap();
        assert!(
            (ours - entropy).abs() < 1e-9,
            "entropy {name}: {ours} vs {entropy}"
        );
    }
}

#[test]
fn a_scan_of_usr_bin_gives_one_report_per_file() {
    let out = multiscanner()
        .args(["scan", "--json", "/usr/bin"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got: Vec<String> = reports(&out.stdout).into_iter().map(|(n, _)| n).collect();
    let find = tool("find", &["-L", "/usr/bin", "-type", "f"]);
    let mut expected: Vec<String> = String::from_utf8_lossy(&find.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    expected.sort();
    assert!(expected.len() > 100, "a real /usr/bin has many files");
    assert_eq!(got_sorted, expected);
}

#[test]
fn bad_paths_get_a_message_each_and_the_rest_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.txt");
    fs::write(&good, "fine\n").unwrap();
    let empty = d.join("empty");
    fs::write(&empty, "").unwrap();
    let fifo = d.join("fifo");
    assert!(tool("mkfifo", &[fifo.to_str().unwrap()]).status.success());
    let (a, b) = (d.join("loop-a"), d.join("loop-b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(d, sub.join("up")).unwrap();
    let missing = d.join("missing");
    // Readable by name, but every read fails (EIO), even for root.
    let unreadable = PathBuf::from("/proc/self/mem");

    let out = multiscanner()
        .args(["scan", "--json"])
        .args([&good, &empty, &fifo, &a, &missing, &unreadable, &sub])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let scanned: Vec<String> = reports(&out.stdout).into_iter().map(|(n, _)| n).collect();
    // good.txt directly, and again through sub/up -> the temp dir.
    assert!(scanned.contains(&good.display().to_string()), "{scanned:?}");
    for (path, words) in [
        (&empty, "empty"),
        (&fifo, "FIFO"),
        (&a, "symbolic links"),
        (&missing, "No such file"),
        (&unreadable, "cannot read"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("error: {}:", path.display())))
            .unwrap_or_else(|| panic!("no message for {}: {stderr}", path.display()));
        assert!(line.contains(words), "{line}");
    }
    assert!(stderr.contains("symbolic link loop back to"), "{stderr}");
    assert!(stderr.contains("path(s) could not be analysed"), "{stderr}");
}

#[test]
fn output_file_and_the_pretty_default() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.txt");
    fs::write(&f, "hello\n").unwrap();
    let out_file = dir.path().join("out.ndjson");
    let out = multiscanner()
        .args(["scan", "--json", "-o"])
        .arg(&out_file)
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "reports go to the file, not stdout");
    let written = reports(&fs::read(&out_file).unwrap());
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, f.display().to_string());

    let out = multiscanner().arg("scan").arg(&f).output().unwrap();
    assert!(out.status.success());
    let pretty: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pretty[f.to_str().unwrap()]["filemeta"]["filesize"], 6);
}

#[test]
fn config_init_prints_a_file_the_binary_accepts() {
    let out = multiscanner().args(["config", "init"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("multiscanner.toml");
    fs::write(&cfg, &out.stdout).unwrap();
    // Given through MULTISCANNER_CONFIG; an unrelated variable with the same
    // prefix is not mistaken for configuration.
    let modules = multiscanner()
        .env("MULTISCANNER_CONFIG", &cfg)
        .env("MULTISCANNER_SOMETHING_ELSE", "1")
        .arg("modules")
        .output()
        .unwrap();
    assert!(
        modules.status.success(),
        "{}",
        String::from_utf8_lossy(&modules.stderr)
    );
    let listing = String::from_utf8_lossy(&modules.stdout);
    let filemeta = listing.lines().find(|l| l.starts_with("filemeta")).unwrap();
    assert!(
        filemeta.contains("yes") && filemeta.contains("ready"),
        "{filemeta}"
    );

    // An unknown module is refused with the list of known ones.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find("\nenabled = [").expect("an enabled list") + 1;
    let end = start + text[start..].find(']').unwrap() + 1;
    let bad = format!(
        "{}enabled = [\"filemeta\", \"nosuch\"]{}",
        &text[..start],
        &text[end..]
    );
    fs::write(&cfg, bad).unwrap();
    let f = dir.path().join("x");
    fs::write(&f, "x").unwrap();
    let run = multiscanner()
        .arg("--config")
        .arg(&cfg)
        .arg("scan")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("\"nosuch\"")
            && err.contains(
                "known modules: archive, clamav, cuckoo, elf, exiftool, fileextensions, \
                 filemeta, macho, metadefender, nsrl, office, pdf, pe, strings, virustotal, yara"
            ),
        "{err}"
    );

    // Environment overrides the file.
    let env = multiscanner()
        .env("MULTISCANNER_WORKER__MODULES__TIMEOUT_SECS", "not-a-number")
        .arg("modules")
        .output()
        .unwrap();
    assert!(!env.status.success());
    let err = String::from_utf8_lossy(&env.stderr).to_lowercase();
    assert!(
        err.contains("timeout_secs") && err.contains("not-a-number"),
        "{err}"
    );
}

#[test]
fn an_interrupted_scan_exits_130_and_leaves_no_temporary_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let child = multiscanner()
        .env("TMPDIR", tmp.path())
        .args(["scan", "--json", "-o", "/dev/null", "/usr/bin"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run has created its temporary stores.
    let started = std::time::Instant::now();
    while fs::read_dir(tmp.path()).unwrap().next().is_none() {
        assert!(started.elapsed().as_secs() < 60, "the scan never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        tool("kill", &["-INT", &child.id().to_string()])
            .status
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("multiscanner-scan-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
