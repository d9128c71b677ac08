//! Archives through a running mesh: every member becomes a child node with
//! its parent, analysed by the same modules, down to the depth limit.

mod support;

use std::{path::Path, process::Command};

use multiscanner_proto::pb;
use serde_json::Value;
use sha2::Digest;
use support::{Cluster, header};

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} unavailable ({e}); the README's test command installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn analyse(cluster: &Cluster, path: &Path) -> Value {
    let data = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    let task = cluster
        .submit(header(&name), &data)
        .await
        .unwrap()
        .task
        .unwrap();
    let done = cluster.wait_final(task.task_id).await;
    assert_eq!(done.status, pb::TaskStatus::Complete as i32);
    cluster.report(task.task_id).await
}

/// The only child of `node`, checked to hang under it.
fn only_child(node: &Value, parent_id: i64) -> &Value {
    let children = node["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "{node:#}");
    let child = &children[0];
    assert_eq!(child["parent_node_id"], parent_id);
    assert_eq!(child["created_by"], "archive");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_inside_a_7z_inside_a_tar_gz_gives_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = b"the innermost file\n".repeat(20);
    std::fs::write(d.join("inner.txt"), &secret).unwrap();
    run(d, "zip", &["-q", "inner.zip", "inner.txt"]);
    run(d, "7z", &["a", "-bd", "mid.7z", "inner.zip"]);
    run(d, "tar", &["-czf", "outer.tar.gz", "mid.7z"]);
    let cluster = Cluster::builder().start().await;
    let report = analyse(&cluster, &d.join("outer.tar.gz")).await;
    assert_eq!(report["archive"]["format"], "gzip");
    let tar = only_child(&report, 1);
    assert_eq!(
        (tar["filename"].as_str(), tar["depth"].as_i64()),
        (Some("outer.tar"), Some(1))
    );
    assert_eq!(tar["archive"]["format"], "tar");
    let seven = only_child(tar, tar["node_id"].as_i64().unwrap());
    assert_eq!(
        (seven["filename"].as_str(), seven["depth"].as_i64()),
        (Some("mid.7z"), Some(2))
    );
    assert_eq!(seven["archive"]["format"], "7z");
    let zip = only_child(seven, seven["node_id"].as_i64().unwrap());
    assert_eq!(
        (zip["filename"].as_str(), zip["depth"].as_i64()),
        (Some("inner.zip"), Some(3))
    );
    assert_eq!(
        zip["filemeta"]["sha256"],
        hex::encode(sha2::Sha256::digest(
            std::fs::read(d.join("inner.zip")).unwrap()
        ))
    );
    let inner = only_child(zip, zip["node_id"].as_i64().unwrap());
    assert_eq!(
        (inner["filename"].as_str(), inner["depth"].as_i64()),
        (Some("inner.txt"), Some(4))
    );
    assert_eq!(
        inner["filemeta"]["sha256"],
        hex::encode(sha2::Sha256::digest(&secret))
    );
    assert!(
        inner["strings"]["ascii"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "the innermost file")
    );
    assert!(
        inner.get("archive").is_none(),
        "a text file is not an archive"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_deep_nest_stops_at_the_depth_limit_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("level0.txt"), "bottom\n").unwrap();
    let mut inner = "level0.txt".to_owned();
    for level in 1..=20 {
        let name = format!("level{level}.zip");
        run(d, "zip", &["-q", &name, &inner]);
        inner = name;
    }
    let cluster = Cluster::builder().start().await;
    let report = analyse(&cluster, &d.join("level20.zip")).await;
    let mut node = &report;
    let mut id = 1;
    for depth in 1..=8 {
        node = only_child(node, id);
        assert_eq!(node["depth"], depth);
        assert_eq!(node["filename"], format!("level{}.zip", 20 - depth));
        id = node["node_id"].as_i64().unwrap();
    }
    // Level 12 sits at depth 8: its member would be deeper than allowed.
    assert!(
        node.get("children")
            .is_none_or(|c| c.as_array().is_none_or(Vec::is_empty)),
        "{node:#}"
    );
    let limit = node["archive"]["limit"].as_str().unwrap();
    assert!(limit.starts_with("max_depth"), "{limit}");
    cluster.stop().await;
}
