//! The `macho` module against LLVM's own Mach-O tools (Debian's llvm-14
//! and lld-14; the README's test command installs them). The test builds
//! real Mach-O files with them — an x86_64 executable linked against two
//! dylibs, the dylibs, an arm64 executable, a universal file of both, an
//! object file — and compares with `llvm-objdump --macho`, `llvm-nm` and
//! `llvm-lipo`.

mod common;

use common::input;
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use multiscanner_worker::module::{Module, ModuleError};
use multiscanner_worker::modules::macho::MachOModule;
use serde_json::Value;

fn tool(name: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(name)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{name} (Debian llvm-14 / lld-14): {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const LIB: &str = "    .section __TEXT,__text,regular,pure_instructions
    .globl _helper
_helper:
    movl $42, %eax
    retq
    .section __TEXT,__cstring,cstring_literals
    .asciz \"http://evil.example/payload\"
";
const MAIN: &str = "    .section __TEXT,__text,regular,pure_instructions
    .globl _main
_main:
    pushq %rbp
    callq _helper
    callq _puts
    popq %rbp
    retq
";
/// A stand-in for libSystem with what the linker needs of it.
const SYSTEM: &str = "    .section __TEXT,__text,regular,pure_instructions
    .globl _puts
_puts:
    retq
    .globl dyld_stub_binder
dyld_stub_binder:
    retq
";
const ARM: &str = "    .globl _main
_main:
    ret
";

/// Builds the samples in `dir`; returns them by name.
fn build(dir: &Path) -> Vec<PathBuf> {
    for (name, text, triple) in [
        ("lib", LIB, "x86_64-apple-macos11"),
        ("main", MAIN, "x86_64-apple-macos11"),
        ("sys", SYSTEM, "x86_64-apple-macos11"),
        ("arm", ARM, "arm64-apple-macos11"),
    ] {
        std::fs::write(dir.join(format!("{name}.s")), text).unwrap();
        tool(
            "llvm-mc-14",
            &[
                &format!("-triple={triple}"),
                "-filetype=obj",
                &format!("{name}.s"),
                "-o",
                &format!("{name}.o"),
            ],
            dir,
        );
    }
    let ld = |arch: &str, rest: &[&str]| {
        let mut args = vec!["-arch", arch, "-platform_version", "macos", "11.0", "11.0"];
        args.extend_from_slice(rest);
        tool("ld64.lld-14", &args, dir);
    };
    ld(
        "x86_64",
        &[
            "-dylib",
            "-install_name",
            "@rpath/libhelper.dylib",
            "lib.o",
            "-o",
            "libhelper.dylib",
        ],
    );
    ld(
        "x86_64",
        &[
            "-dylib",
            "-install_name",
            "/usr/lib/libSystem.B.dylib",
            "sys.o",
            "-o",
            "libSystem.B.dylib",
        ],
    );
    ld(
        "x86_64",
        &[
            "-execute",
            "main.o",
            "libhelper.dylib",
            "libSystem.B.dylib",
            "-rpath",
            "@executable_path/../lib",
            "-o",
            "prog",
        ],
    );
    ld("arm64", &["-execute", "arm.o", "-o", "prog-arm"]);
    tool(
        "llvm-lipo-14",
        &["-create", "prog", "prog-arm", "-output", "prog-fat"],
        dir,
    );
    [
        "prog",
        "libhelper.dylib",
        "libSystem.B.dylib",
        "prog-arm",
        "main.o",
    ]
    .iter()
    .map(|n| dir.join(n))
    .collect()
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let x = if key.is_empty() { x } else { &x[key] };
            x.as_str().unwrap().to_owned()
        })
        .collect()
}

fn lines_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .collect()
}

#[tokio::test]
async fn mach_o_fields_match_llvm_tools() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for path in build(dir) {
        let at = path.display().to_string();
        let file = path.file_name().unwrap().to_str().unwrap();
        let got = MachOModule
            .scan(input(&path))
            .await
            .unwrap()
            .result
            .unwrap();
        assert_eq!(got["universal"], false, "{at}");
        let b = &got["binaries"][0];
        let headers = tool(
            "llvm-objdump-14",
            &["--macho", "--private-headers", file],
            dir,
        );
        let commands: Vec<&str> = headers
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("cmd "))
            .collect();
        assert_eq!(names(&b["load_commands"], ""), commands, "{at}");
        // Segment commands print `  segname` (two spaces), sections three.
        let segments: Vec<&str> = headers
            .lines()
            .filter(|l| l.starts_with("  segname"))
            .map(|l| l["  segname".len()..].trim())
            .collect();
        assert_eq!(names(&b["segments"], "name"), segments, "{at}");
        let uuid = lines_after(&headers, "    uuid ");
        assert_eq!(b["uuid"].as_str(), uuid.first().copied(), "{at}");
        if b["type"] == "OBJECT" {
            continue;
        }
        // Libraries: what dyld loads (a dylib lists its own name first).
        let used = tool("llvm-objdump-14", &["--macho", "--dylibs-used", file], dir);
        let mut libs: Vec<&str> = used
            .lines()
            .skip(1)
            .map(|l| l.trim().split(" (compatibility").next().unwrap())
            .collect();
        if b["type"] == "DYLIB" {
            assert_eq!(b["install_name"].as_str(), Some(libs.remove(0)), "{at}");
        }
        assert_eq!(names(&b["libraries"], ""), libs, "{at}");
        let exported: BTreeSet<String> = tool(
            "llvm-nm-14",
            &["-g", "--defined-only", "--just-symbol-name", file],
            dir,
        )
        .lines()
        .map(str::to_owned)
        .collect();
        let got_exports: BTreeSet<String> = names(&b["exports"], "").into_iter().collect();
        assert_eq!(got_exports, exported, "{at}: exports");
        let undefined: BTreeSet<String> =
            tool("llvm-nm-14", &["-u", "--just-symbol-name", file], dir)
                .lines()
                .map(str::to_owned)
                .collect();
        let got_imports: BTreeSet<String> = names(&b["imports"], "name").into_iter().collect();
        assert_eq!(got_imports, undefined, "{at}: imports");
    }

    let fat = dir.join("prog-fat");
    let got = MachOModule.scan(input(&fat)).await.unwrap().result.unwrap();
    assert_eq!(got["universal"], true);
    let archs = tool("llvm-lipo-14", &["-archs", "prog-fat"], dir);
    let want: Vec<&str> = archs.split_whitespace().collect();
    let cpus: Vec<String> = got["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cpu"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cpus, want);
    assert_eq!(got["binaries"][0]["rpaths"][0], "@executable_path/../lib");
}

#[tokio::test]
async fn damaged_mach_o_files_are_errors_not_crashes() {
    let work = tempfile::tempdir().unwrap();
    let built = build(work.path());
    let bytes = std::fs::read(&built[0]).unwrap();
    for cut in [4, 40, 200, 1000, bytes.len() / 2] {
        let p = work.path().join(format!("cut{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        match MachOModule.scan(input(&p)).await {
            Ok(out) => assert!(out.result.is_some(), "cut at {cut}"),
            Err(ModuleError::Failed(why)) => assert!(!why.is_empty()),
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
    // Not Mach-O: nothing to say.
    let out = MachOModule
        .scan(input(Path::new("/usr/bin/ls")))
        .await
        .unwrap();
    assert!(out.result.is_none());
}
