//! The `pdf` module against pdfid (PyPI `pdfid`, in the venv the README's
//! test command makes) on real PDFs of this machine, Debian's clam.pdf,
//! PDFs the test writes with the risky features and obfuscated names, and
//! truncated copies of all of them.

mod common;

use common::{input, python};
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use md5::Digest;
use multiscanner_worker::module::Module;
use multiscanner_worker::modules::pdf::{KEYWORDS, Pdf};
use serde_json::Value;

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// A PDF with what droppers use: JavaScript (one name hidden with `#XX`),
/// actions, a launch, a URI, XFA, a colour count past 2^24, an object
/// stream and a compressed embedded file.
fn risky_pdf(payload: &[u8]) -> Vec<u8> {
    let packed = deflate(payload);
    let mut pdf = b"%PDF-1.6\n%\xe2\xe3\xcf\xd3\n\
        1 0 obj <</Type /Catalog /Pages 2 0 R /OpenAction 4 0 R /AcroForm <</XFA 9 0 R>> \
        /Names <</EmbeddedFiles <</Names [(a.exe) 6 0 R]>>>>>>\nendobj\n\
        2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>>\nendobj\n\
        3 0 obj <</Type /Page /Parent 2 0 R /AA <</O 4 0 R>> /Annots [8 0 R]>>\nendobj\n\
        4 0 obj <</S /J#61vaScript /#4AS (app.alert\\(1\\))>>\nendobj\n\
        5 0 obj <</S /Launch /F (cmd.exe)>>\nendobj\n\
        6 0 obj <</Type /Filespec /F (a.exe) /EF <</F 7 0 R>>>>\nendobj\n"
        .to_vec();
    pdf.extend_from_slice(
        format!(
            "7 0 obj <</Type /EmbeddedFile /Filter /FlateDecode /Length {}>>stream\n",
            packed.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&packed);
    pdf.extend_from_slice(
        b"\nendstream\nendobj\n\
        8 0 obj <</Type /Annot /Subtype /Link /A <</S /URI /URI (http://example.invalid/x)>>>>\nendobj\n\
        9 0 obj <</Type /ObjStm /N 1 /First 4 /Length 18>>stream\n10 0 <</Colors 16777217>>\nendstream\nendobj\n\
        11 0 obj <</Title (Quarterly \\(draft\\)) /Author <FEFF004A00F6>>>\nendobj\n\
        trailer\n<</Root 1 0 R /Info 11 0 R /Size 12>>\nstartxref\n0\n%%EOF\n",
    );
    pdf
}

fn samples(work: &Path) -> (Vec<PathBuf>, PathBuf) {
    let mut out = vec![PathBuf::from("/usr/share/clamav-testfiles/clam.pdf")];
    for entry in walkdir::WalkDir::new("/usr/share/doc")
        .into_iter()
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "pdf") && entry.metadata().unwrap().len() < 8 << 20 {
            out.push(p.to_owned());
        }
        if out.len() >= 12 {
            break;
        }
    }
    let risky = work.join("risky.pdf");
    std::fs::write(&risky, risky_pdf(b"MZ\x90\x00 not really a program")).unwrap();
    out.push(risky.clone());
    // Truncated copies: half of each file.
    let mut cut = Vec::new();
    for (i, p) in out.iter().enumerate() {
        let bytes = std::fs::read(p).unwrap();
        let half = work.join(format!("cut{i}.pdf"));
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        cut.push(half);
    }
    out.extend(cut);
    (out, risky)
}

#[tokio::test]
async fn keyword_counts_match_pdfid() {
    let work = tempfile::tempdir().unwrap();
    let (paths, _) = samples(work.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/pdfid_view.py");
    let out = Command::new(python())
        .arg(script)
        .args(&paths)
        .output()
        .expect("python with pdfid");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The module's list holds pdfid's risky names, or this compares nothing.
    for k in [
        "/JS",
        "/JavaScript",
        "/OpenAction",
        "/Launch",
        "/EmbeddedFile",
        "/URI",
    ] {
        assert!(KEYWORDS.contains(&k), "{k}");
    }
    for path in &paths {
        let at = path.display();
        let want = &reference[path.to_str().unwrap()];
        let got = Pdf.scan(input(path)).await.unwrap().result;
        let got = got.unwrap_or_else(|| panic!("{at}: no result"));
        assert_eq!(got["header"], want["header"], "{at}");
        for k in KEYWORDS {
            let (count, hex) = match want["keywords"].get(*k) {
                Some(v) => (v[0].as_u64().unwrap(), v[1].as_u64().unwrap()),
                None => (0, 0),
            };
            assert_eq!(got["keywords"][*k], count, "{at}: {k}");
            let got_hex = got["hex_escaped_keywords"]
                .get(*k)
                .map_or(0, |v| v.as_u64().unwrap());
            assert_eq!(got_hex, hex, "{at}: {k} written with #XX");
        }
        assert_eq!(
            got["colors_over_2_24"], want["keywords"]["/Colors > 2^24"][0],
            "{at}"
        );
    }
}

#[tokio::test]
async fn embedded_files_become_children() {
    // clam.pdf carries clam.exe.
    let clam = Path::new("/usr/share/clamav-testfiles/clam.pdf");
    let out = Pdf.scan(input(clam)).await.unwrap();
    let exe = std::fs::read("/usr/share/clamav-testfiles/clam.exe").unwrap();
    assert_eq!(out.children.len(), 1, "{:?}", out.result);
    let child = std::fs::read(out.children[0].file.path()).unwrap();
    assert_eq!(
        hex::encode(md5::Md5::digest(&child)),
        hex::encode(md5::Md5::digest(&exe))
    );

    let work = tempfile::tempdir().unwrap();
    let (_, risky) = samples(work.path());
    let out = Pdf.scan(input(&risky)).await.unwrap();
    let r = out.result.unwrap();
    assert_eq!(out.children[0].filename, "a.exe");
    assert_eq!(
        std::fs::read(out.children[0].file.path()).unwrap(),
        b"MZ\x90\x00 not really a program"
    );
    assert_eq!(r["info"]["Title"], "Quarterly (draft)");
    assert_eq!(r["info"]["Author"], "J\u{f6}");
    assert_eq!(r["object_types"]["ObjStm"], 1);
    assert_eq!(r["encrypted"], false);
}

#[tokio::test]
async fn not_a_pdf_has_nothing_to_say() {
    let out = Pdf
        .scan(input(Path::new("/usr/share/clamav-testfiles/clam.exe")))
        .await
        .unwrap();
    assert!(out.result.is_none());
}
