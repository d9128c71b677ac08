//! The `yara` module (yara-x) against Debian's `yara` (libyara 4) on the
//! same rules and files: the same rules match, at the same offsets.

#![cfg(feature = "yara")]

mod common;

use common::input;
use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use multiscanner_worker::module::{Module, ModuleError};
use multiscanner_worker::modules::yara::{Yara, YaraConfig};
use serde_json::Value;

const RULES: &str = r#"
rule Hello : greet test {
    meta:
        author = "tests"
        score = 5
    strings:
        $a = "hello"
        $h = { 77 6f 72 6c 64 }
    condition:
        any of them
}

rule Mz_Header {
    strings:
        $mz = { 4D 5A }
        $re = /This program cannot be run in DOS mode|\[CLAMAV\]/
    condition:
        $mz at 0 and $re
}
"#;

const SIZES: &str = r#"
rule Small_File { condition: filesize < 100 }
rule Eicar_Like { strings: $e = "EICAR" nocase condition: $e }
"#;

/// (rule, identifier, offset) for every match `yara -s` prints.
fn reference(rule_files: &[&Path], target: &Path) -> BTreeSet<(String, String, usize)> {
    let out = Command::new("yara")
        .arg("-s")
        .args(rule_files)
        .arg(target)
        .output()
        .expect("yara (Debian package yara; the README's test command installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut set = BTreeSet::new();
    let mut rule = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.strip_prefix("0x") {
            let (offset, rest) = rest.split_once(':').unwrap();
            let ident = rest.split(':').next().unwrap();
            set.insert((
                rule.clone(),
                ident.to_owned(),
                usize::from_str_radix(offset, 16).unwrap(),
            ));
        } else {
            rule = line.split_whitespace().next().unwrap().to_owned();
            set.insert((rule.clone(), String::new(), usize::MAX));
        }
    }
    set
}

fn ours(result: &Value) -> BTreeSet<(String, String, usize)> {
    let mut set = BTreeSet::new();
    for m in result["matches"].as_array().unwrap() {
        let rule = m["rule"].as_str().unwrap().to_owned();
        set.insert((rule.clone(), String::new(), usize::MAX));
        for s in m["strings"].as_array().unwrap() {
            set.insert((
                rule.clone(),
                s["identifier"].as_str().unwrap().to_owned(),
                s["offset"].as_u64().unwrap() as usize,
            ));
        }
    }
    set
}

#[tokio::test]
async fn matches_agree_with_libyara_and_a_broken_file_spares_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("more")).unwrap();
    let (main, sizes) = (rules.join("main.yar"), rules.join("more/sizes.yara"));
    std::fs::write(&main, RULES).unwrap();
    std::fs::write(&sizes, SIZES).unwrap();
    std::fs::write(
        rules.join("broken.yar"),
        "rule Broken { condition: nonsense( }",
    )
    .unwrap();
    let yara = Yara::new(YaraConfig {
        rules: vec![rules.clone()],
        max_strings_per_rule: 1000,
        ..Default::default()
    });
    let text = dir.path().join("text");
    std::fs::write(&text, "xx hello world hello, eicar!\n").unwrap();
    let targets = [
        text.clone(),
        "/usr/share/clamav-testfiles/clam.exe".into(),
        "/usr/share/clamav-testfiles/clam-upx.exe".into(),
        "/usr/bin/ls".into(),
    ];
    for target in &targets {
        let out = yara.scan(input(target)).await.unwrap().result.unwrap();
        assert_eq!(
            ours(&out),
            reference(&[&main, &sizes], target),
            "{}",
            target.display()
        );
        let errors = out["rule_errors"].as_object().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(errors.keys().next().unwrap().ends_with("broken.yar"));
    }
    let out = yara.scan(input(&text)).await.unwrap().result.unwrap();
    let hello = out["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["rule"] == "Hello")
        .unwrap();
    assert_eq!(hello["namespace"], "main");
    assert_eq!(hello["tags"], serde_json::json!(["greet", "test"]));
    assert_eq!(
        hello["meta"],
        serde_json::json!({"author": "tests", "score": 5})
    );
    assert_eq!(hello["strings"][0]["data"], "hello");

    // A new rule file is picked up without a restart.
    std::fs::write(
        rules.join("new.yar"),
        "rule Newcomer { strings: $w = \"world\" condition: $w }",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let out = yara.scan(input(&text)).await.unwrap().result.unwrap();
    assert!(
        out["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["rule"] == "Newcomer"),
        "{out}"
    );
}

#[tokio::test]
async fn a_slow_rule_is_cut_at_the_timeout_and_missing_rules_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.yar");
    std::fs::write(
        &slow,
        "rule Slow { condition: for all i in (0..filesize) : (for all j in (0..filesize) : (uint8(i) != 0x100 + j)) }",
    )
    .unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 1 << 20]).unwrap();
    let yara = Yara::new(YaraConfig {
        rules: vec![slow],
        timeout_secs: 1,
        ..Default::default()
    });
    match yara.scan(input(&big)).await {
        Err(ModuleError::Failed(why)) => assert!(why.contains("longer than 1 s"), "{why}"),
        other => panic!("{other:?}"),
    }
    let none = Yara::new(YaraConfig::default());
    let why = none.check().unwrap_err();
    assert!(why.contains("no rules configured"), "{why}");
    let missing = Yara::new(YaraConfig {
        rules: vec![dir.path().join("nowhere")],
        ..Default::default()
    });
    assert!(missing.check().unwrap_err().contains("does not exist"));
}
