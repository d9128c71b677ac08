//! `fileextensions`: the extensions a file of this type usually carries,
//! from libmagic's own extension list (what `file --extension` prints) and
//! from the MIME type `filemeta` found, set against the extension of the
//! name it was submitted under — `invoice.pdf` that is a Windows
//! executable is worth a look.

use std::cell::RefCell;

use futures::future::BoxFuture;
use serde_json::json;

use super::filemeta::open_magic;
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Usual extensions by MIME type (as libmagic names the types).
const BY_MIME: &[(&str, &[&str])] = &[
    ("application/pdf", &["pdf"]),
    (
        "application/vnd.microsoft.portable-executable",
        &["exe", "dll", "sys", "scr", "ocx", "cpl", "drv", "efi"],
    ),
    (
        "application/x-dosexec",
        &["exe", "dll", "sys", "scr", "ocx", "cpl", "com"],
    ),
    ("application/x-msdownload", &["exe", "dll"]),
    ("application/x-sharedlib", &["so"]),
    ("application/x-object", &["o", "ko"]),
    ("application/x-executable", &[]),
    ("application/x-pie-executable", &[]),
    ("application/x-mach-binary", &["dylib", "bundle"]),
    ("application/zip", &["zip"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/x-tar", &["tar"]),
    ("application/gzip", &["gz", "tgz"]),
    ("application/x-gzip", &["gz", "tgz"]),
    ("application/x-bzip2", &["bz2", "tbz2"]),
    ("application/x-xz", &["xz", "txz"]),
    ("application/x-rar", &["rar"]),
    ("application/vnd.rar", &["rar"]),
    ("application/vnd.ms-cab-compressed", &["cab"]),
    ("application/x-arj", &["arj"]),
    ("application/x-cpio", &["cpio"]),
    ("application/x-lzh-compressed", &["lzh", "lha"]),
    ("application/x-iso9660-image", &["iso"]),
    ("application/x-rpm", &["rpm"]),
    ("application/vnd.debian.binary-package", &["deb"]),
    ("application/java-archive", &["jar"]),
    ("application/x-java-applet", &["class"]),
    ("application/vnd.android.package-archive", &["apk"]),
    ("application/epub+zip", &["epub"]),
    ("application/msword", &["doc", "dot"]),
    ("application/vnd.ms-excel", &["xls", "xlt"]),
    ("application/vnd.ms-powerpoint", &["ppt", "pps", "pot"]),
    ("application/vnd.ms-outlook", &["msg"]),
    ("application/x-msi", &["msi"]),
    (
        "application/x-ole-storage",
        &["doc", "xls", "ppt", "msi", "msg"],
    ),
    ("application/CDFV2", &["doc", "xls", "ppt", "msi", "msg"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx", "docm"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx", "xlsm"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx", "pptm"],
    ),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/vnd.oasis.opendocument.presentation", &["odp"]),
    ("application/rtf", &["rtf"]),
    ("text/rtf", &["rtf"]),
    ("application/vnd.ms-htmlhelp", &["chm"]),
    ("application/x-shockwave-flash", &["swf"]),
    ("application/vnd.sqlite3", &["sqlite", "db"]),
    ("application/x-sqlite3", &["sqlite", "db"]),
    ("application/json", &["json"]),
    ("application/javascript", &["js"]),
    ("text/javascript", &["js"]),
    ("application/xml", &["xml"]),
    ("text/xml", &["xml"]),
    ("text/html", &["html", "htm"]),
    ("text/plain", &["txt"]),
    ("text/csv", &["csv"]),
    ("text/x-shellscript", &["sh"]),
    ("text/x-script.python", &["py"]),
    ("text/x-python", &["py"]),
    ("text/x-perl", &["pl"]),
    ("text/x-php", &["php"]),
    ("text/x-c", &["c", "h"]),
    ("text/x-msdos-batch", &["bat", "cmd"]),
    ("message/rfc822", &["eml"]),
    ("image/jpeg", &["jpg", "jpeg"]),
    ("image/png", &["png"]),
    ("image/gif", &["gif"]),
    ("image/bmp", &["bmp"]),
    ("image/x-ms-bmp", &["bmp"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/webp", &["webp"]),
    ("image/svg+xml", &["svg"]),
    ("image/vnd.microsoft.icon", &["ico"]),
    ("image/x-icon", &["ico"]),
    ("audio/mpeg", &["mp3"]),
    ("video/mp4", &["mp4"]),
];

thread_local! {
    static EXTENSION: RefCell<Option<Result<magic::Cookie<magic::cookie::Load>, String>>> =
        const { RefCell::new(None) };
}

/// libmagic's extensions for the file (`file --extension`), without its
/// "unknown" marks.
fn libmagic_extensions(path: &std::path::Path) -> Result<Vec<String>, ModuleError> {
    let text = EXTENSION.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cookie = slot.get_or_insert_with(|| open_magic(magic::cookie::Flags::EXTENSION));
        match cookie {
            Ok(c) => c
                .file(path)
                .map_err(|e| ModuleError::Failed(format!("libmagic: {e}"))),
            Err(e) => Err(ModuleError::Failed(format!("libmagic: {e}"))),
        }
    })?;
    Ok(split_extensions(&text))
}

/// `doc/dot/` → `[doc, dot]`; `???` and odd marks dropped.
pub fn split_extensions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split('/') {
        let part = part.trim().to_ascii_lowercase();
        if !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && part.chars().any(|c| c.is_ascii_alphanumeric())
            && !out.contains(&part)
        {
            out.push(part);
        }
    }
    out
}

/// The submitted name's extension, lower-cased (`a.PDF` → `pdf`).
fn name_extension(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    (!stem.is_empty()
        && !ext.is_empty()
        && ext.len() <= 16
        && ext.chars().all(|c| c.is_ascii_alphanumeric()))
    .then(|| ext.to_ascii_lowercase())
}

fn by_mime(mime: &str) -> Vec<String> {
    // `application/pdf; charset=binary` → `application/pdf`
    let essence = mime.split(';').next().unwrap_or("").trim();
    BY_MIME
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(essence))
        .map(|(_, exts)| exts.iter().map(|e| (*e).to_owned()).collect())
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct FileExtensions;

impl Module for FileExtensions {
    fn name(&self) -> &'static str {
        "fileextensions"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn requires(&self) -> &'static [&'static str] {
        &["filemeta"]
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            let libmagic = libmagic_extensions(&input.path)?;
            let mime = input
                .upstream
                .get("filemeta")
                .and_then(|m| m["mimetype"].as_str())
                .unwrap_or("");
            let mimetype = by_mime(mime);
            let submitted = name_extension(&input.filename);
            let expected: Vec<&String> = libmagic.iter().chain(&mimetype).collect();
            // Only a judgement when there is something to judge by.
            let matches = match (&submitted, expected.is_empty()) {
                (Some(ext), false) => Some(expected.contains(&ext)),
                _ => None,
            };
            Ok(ModuleOutput::result(json!({
                "libmagic": libmagic,
                "mimetype": mimetype,
                "submitted": submitted,
                "submitted_matches": matches,
            })))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libmagic_lists_are_cleaned() {
        assert_eq!(split_extensions("doc/dot/"), ["doc", "dot"]);
        assert!(split_extensions("???").is_empty());
        assert_eq!(split_extensions("_/?_/??_"), Vec::<String>::new());
        assert_eq!(split_extensions("exe/scr"), ["exe", "scr"]);
    }

    #[test]
    fn names_and_mime_types() {
        assert_eq!(name_extension("Invoice.PDF").as_deref(), Some("pdf"));
        assert_eq!(name_extension("a.tar.gz").as_deref(), Some("gz"));
        assert_eq!(name_extension(".bashrc"), None);
        assert_eq!(name_extension("dir.d/noext"), None);
        assert_eq!(name_extension("x.<script>"), None);
        assert_eq!(by_mime("application/pdf; charset=binary"), ["pdf"]);
        assert!(by_mime("application/octet-stream").is_empty());
    }
}
