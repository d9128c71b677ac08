//! The suites every report store passes for searching, tagging and
//! annotating, and for reports whose module fields clash in type. Each
//! backend's test opens its report store and calls these functions.

use std::collections::BTreeSet;

use futures::StreamExt;
use multiscanner_proto::domain::{Sha256, Submission, Task, TaskId, TaskStatus};
use serde_json::{Value, json};

use super::{
    ReportStore, StoreError,
    search::{SearchKind, SearchQuery, SortField},
};

fn sha(n: u8) -> Sha256 {
    Sha256([n; 32])
}

fn md5_of(id: i64) -> String {
    format!("{id:032x}")
}

/// A finished task of sample `n` (size 100 + id, so sizes sort like ids).
pub fn finished(id: i64, n: u8, filename: &str, tags: &[&str]) -> Task {
    Task {
        id: TaskId(id),
        sha256: sha(n),
        size: 100 + id as u64,
        submission: Submission {
            filename: filename.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        },
        status: TaskStatus::Complete,
        submitted_at: 1_700_000_000_000 + id * 1000,
        started_at: Some(1_700_000_000_500 + id * 1000),
        finished_at: Some(1_700_000_000_900 + id * 1000),
        error: None,
        node_count: 1,
    }
}

/// A report shaped like the scheduler's, with `modules` merged in.
pub fn report_of(task: &Task, filetype: &str, modules: Value) -> Value {
    let mut r = json!({
        "filename": task.submission.filename,
        "filemeta": {
            "sha256": task.sha256.to_hex(), "md5": md5_of(task.id.0),
            "filesize": task.size, "filetype": filetype, "mimetype": "application/octet-stream",
        },
        "Scan Metadata": {"Task ID": task.id.0},
    });
    if let (Some(r), Value::Object(m)) = (r.as_object_mut(), modules) {
        r.extend(m);
    }
    r
}

/// The task ids a search finds, in the order given.
async fn ids(r: &dyn ReportStore, q: SearchQuery) -> Vec<i64> {
    let page = r.search(&q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
    page.hits.iter().map(|h| h.task_id.0).collect()
}

fn query(text: &str, kind: SearchKind) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        kind,
        limit: 100,
        ..Default::default()
    }
}

/// The task ids found for `text`, as a set.
async fn found(r: &dyn ReportStore, text: &str, kind: SearchKind) -> BTreeSet<i64> {
    ids(r, query(text, kind)).await.into_iter().collect()
}

fn set(ids: &[i64]) -> BTreeSet<i64> {
    ids.iter().copied().collect()
}

pub async fn search_tags_and_notes(r: &dyn ReportStore) {
    use SearchKind::{Advanced, Default as Substring, Exact};
    let pdf = finished(11, 1, "invoice_2024.pdf", &["phish"]);
    let exe = finished(12, 2, "setup.exe", &[]);
    let rescan = finished(13, 1, "invoice_2024.pdf", &[]);
    let odd = finished(14, 3, "a+b (1)*.txt", &[]);
    let failed = Task {
        status: TaskStatus::Failed,
        ..finished(15, 4, "notes.txt", &[])
    };
    let yara =
        json!({"yara": {"matches": [{"rule": "Suspicious_PDF_JS", "namespace": "default"}]}});
    let reports = [
        (
            &pdf,
            report_of(&pdf, "PDF document, version 1.7", yara.clone()),
        ),
        (
            &exe,
            report_of(
                &exe,
                "PE32 executable (GUI) Intel 80386, for MS Windows",
                json!({"clamav": {"detection": "Win.Trojan.Agent-1"}}),
            ),
        ),
        (
            &rescan,
            report_of(&rescan, "PDF document, version 1.7", yara),
        ),
        (
            &odd,
            report_of(
                &odd,
                "ASCII text",
                json!({"strings": {"urls": ["http://evil.example/x"]}}),
            ),
        ),
        (&failed, report_of(&failed, "ASCII text", json!({}))),
    ];
    for (task, report) in &reports {
        r.put_report(task, report).await.unwrap();
    }
    r.refresh().await.unwrap();

    // Listing: every task, newest first; one per sample, its newest task.
    let all = SearchQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(ids(r, all.clone()).await, vec![15, 14, 13, 12, 11]);
    let page = r
        .search(&SearchQuery {
            latest_per_sample: true,
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    let latest: Vec<i64> = page.hits.iter().map(|h| h.task_id.0).collect();
    assert_eq!(latest, vec![15, 14, 13, 12]);
    let hit = &page.hits[2];
    assert_eq!(
        (hit.sha256, hit.filename.as_str(), hit.filesize, hit.status),
        (sha(1), "invoice_2024.pdf", 113, TaskStatus::Complete)
    );
    assert_eq!(hit.filetype, "PDF document, version 1.7");
    assert_eq!(hit.scan_time, rescan.finished_at);
    assert_eq!(page.hits[0].status, TaskStatus::Failed);

    // Paging and sorting.
    let page = r
        .search(&SearchQuery {
            offset: 1,
            limit: 2,
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        page.hits.iter().map(|h| h.task_id.0).collect::<Vec<_>>(),
        vec![14, 13]
    );
    let by_name = SearchQuery {
        sort: SortField::Filename,
        ascending: true,
        ..all.clone()
    };
    assert_eq!(ids(r, by_name).await, vec![14, 13, 11, 15, 12]);
    let by_size = SearchQuery {
        sort: SortField::Filesize,
        ascending: true,
        ..all.clone()
    };
    assert_eq!(ids(r, by_size).await, vec![11, 12, 13, 14, 15]);
    let one_sample = SearchQuery {
        sha256: Some(sha(1)),
        ..all.clone()
    };
    assert_eq!(ids(r, one_sample).await, vec![13, 11]);

    // The default type: a case-insensitive substring, every character literal.
    assert_eq!(found(r, "VOICE_20", Substring).await, set(&[11, 13]));
    let latest_only = SearchQuery {
        latest_per_sample: true,
        ..query("voice_20", Substring)
    };
    assert_eq!(ids(r, latest_only).await, vec![13]);
    assert_eq!(found(r, &md5_of(12), Substring).await, set(&[12]));
    assert_eq!(found(r, &sha(2).to_hex(), Substring).await, set(&[12]));
    assert_eq!(
        found(r, &sha(2).to_hex()[..12], Substring).await,
        set(&[12])
    );
    assert_eq!(found(r, "Suspicious_PDF", Substring).await, set(&[11, 13]));
    assert_eq!(found(r, "trojan.agent", Substring).await, set(&[12]));
    assert_eq!(found(r, "a+b (1)*", Substring).await, set(&[14]));
    assert_eq!(
        found(r, "b (1)?", Substring).await,
        set(&[]),
        "? is literal"
    );
    assert_eq!(found(r, "1%", Substring).await, set(&[]), "% is literal");
    assert_eq!(found(r, "evil.example", Substring).await, set(&[14]));
    assert_eq!(found(r, "80386", Substring).await, set(&[12]));
    assert_eq!(found(r, "no such thing", Substring).await, set(&[]));

    // The exact type: a field's whole value.
    assert_eq!(found(r, &md5_of(12), Exact).await, set(&[12]));
    assert_eq!(found(r, "setup.exe", Exact).await, set(&[12]));
    assert_eq!(found(r, "SUSPICIOUS_PDF_JS", Exact).await, set(&[11, 13]));
    assert_eq!(found(r, "Win.Trojan.Agent-1", Exact).await, set(&[12]));
    assert_eq!(found(r, &md5_of(12)[..20], Exact).await, set(&[]));

    // The advanced type: the engine's own syntax (the part Lucene and FTS5
    // share: phrases, column filters, OR).
    assert_eq!(found(r, "\"invoice_2024\"", Advanced).await, set(&[11, 13]));
    assert_eq!(
        found(r, "\"invoice_2024\" OR filename:\"setup.exe\"", Advanced).await,
        set(&[11, 12, 13])
    );
    match r.search(&query("((invoice", Advanced)).await {
        Err(StoreError::BadQuery(reason)) => assert!(!reason.is_empty()),
        other => panic!("a broken advanced query gave {other:?}"),
    }
    let past_the_window = SearchQuery {
        offset: 9_999,
        limit: 2,
        ..all.clone()
    };
    assert!(matches!(
        r.search(&past_the_window).await,
        Err(StoreError::BadQuery(_))
    ));

    // Tags belong to the sample; a submission's tags join them.
    assert_eq!(r.tags_of(sha(1)).await.unwrap(), vec!["phish"]);
    assert_eq!(r.add_tag(sha(2), "malware").await.unwrap(), vec!["malware"]);
    assert_eq!(r.add_tag(sha(2), "malware").await.unwrap(), vec!["malware"]);
    assert_eq!(
        r.add_tag(sha(2), "phish").await.unwrap(),
        vec!["malware", "phish"]
    );
    let counts: Vec<(String, u64)> = r
        .tag_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.tag, c.count))
        .collect();
    assert_eq!(counts, vec![("phish".into(), 2), ("malware".into(), 1)]);
    assert_eq!(found(r, "MALWA", Substring).await, set(&[12]));
    assert_eq!(found(r, "malware", Exact).await, set(&[12]));
    assert_eq!(found(r, "malwa", Exact).await, set(&[]));
    assert_eq!(found(r, "phish", Exact).await, set(&[11, 12, 13]));
    assert_eq!(
        r.remove_tag(sha(2), "malware").await.unwrap(),
        vec!["phish"]
    );
    assert_eq!(r.remove_tag(sha(2), "never").await.unwrap(), vec!["phish"]);
    assert_eq!(found(r, "malware", Substring).await, set(&[]));
    let counts = r.tag_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].tag.as_str(), counts[0].count), ("phish", 2));

    // Notes: on the sample, oldest first, paged, searchable.
    let mut notes = Vec::new();
    for text in ["Seen in the Contoso campaign", "second", "third"] {
        notes.push(r.add_note(sha(3), text).await.unwrap());
        // Distinct creation times keep the order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(r.notes(sha(3), 0, 10).await.unwrap(), notes);
    assert_eq!(r.notes(sha(3), 0, 2).await.unwrap(), notes[..2]);
    assert_eq!(r.notes(sha(3), 2, 2).await.unwrap(), notes[2..]);
    assert!(r.notes(sha(2), 0, 10).await.unwrap().is_empty());
    assert_eq!(found(r, "contoso camp", Substring).await, set(&[14]));
    assert_eq!(found(r, "Contoso campaign", Exact).await, set(&[14]));
    let edited = r
        .edit_note(sha(3), &notes[0].id, "Contoso and Fabrikam")
        .await
        .unwrap();
    assert_eq!(edited.text, "Contoso and Fabrikam");
    assert_eq!(edited.created_at, notes[0].created_at);
    assert!(edited.updated_at >= notes[0].updated_at);
    assert_eq!(r.notes(sha(3), 0, 1).await.unwrap(), vec![edited.clone()]);
    assert_eq!(found(r, "fabrikam", Substring).await, set(&[14]));
    for wrong in [
        r.edit_note(sha(1), &notes[0].id, "x").await.err(),
        r.edit_note(sha(3), "no-such-note", "x").await.err(),
        r.delete_note(sha(3), "no-such-note").await.err(),
    ] {
        assert!(matches!(wrong, Some(StoreError::NotFound(_))), "{wrong:?}");
    }
    r.delete_note(sha(3), &notes[0].id).await.unwrap();
    assert_eq!(r.notes(sha(3), 0, 10).await.unwrap(), notes[1..]);
    assert_eq!(found(r, "fabrikam", Substring).await, set(&[]));

    // Deleting a task takes its report out of searches; tags stay.
    r.delete_task(TaskId(15)).await.unwrap();
    r.refresh().await.unwrap();
    assert_eq!(ids(r, all).await, vec![14, 13, 12, 11]);
    assert_eq!(r.get_report(TaskId(15)).await.unwrap(), None);
    assert_eq!(r.tags_of(sha(2)).await.unwrap(), vec!["phish"]);
}

/// What a module called `weird` reports for report `i`: the same keys
/// holding a number, an object, a string, a list, a boolean or null in
/// turn, and keys that dotted-path mappings trip on.
fn clashing(i: usize) -> Value {
    let entropy = match i % 6 {
        0 => json!(7.25),
        1 => json!({"value": 7, "unit": "bits"}),
        2 => json!("high"),
        3 => json!([1, "two", {"three": null}]),
        4 => json!(true),
        _ => Value::Null,
    };
    let size = if i.is_multiple_of(2) {
        json!(i)
    } else {
        json!({"bytes": i.to_string()})
    };
    json!({
        "weird": {"entropy": entropy, "size": size, "a.b": i, "a": {"b": "x"}, "": "empty key"},
        "sections": if i.is_multiple_of(3) { json!([{"entropy": 1}]) } else { json!({"entropy": "n/a"}) },
    })
}

/// `n` reports whose module fields clash in type are all stored (none
/// rejected), and the curated fields stay searchable.
pub async fn clashing_fields_never_reject(r: &dyn ReportStore, n: usize) {
    let stored = futures::stream::iter(0..n)
        .map(|i| async move {
            let id = 100_000 + i as i64;
            let sample = (i % 200) as u8;
            let mut task = finished(id, sample, &format!("clash-{i}.bin"), &[]);
            task.sha256.0[31] = (i / 200) as u8;
            let mut modules = clashing(i);
            if i % 100 == 7 {
                modules["yara"] = json!({"matches": [{"rule": "Clash_Rule_7"}]});
            }
            let report = report_of(&task, "data", modules);
            r.put_report(&task, &report)
                .await
                .map_err(|e| format!("report {i}: {e}"))
        })
        .buffer_unordered(32)
        .filter_map(|res| async move { res.err() })
        .collect::<Vec<String>>()
        .await;
    assert!(
        stored.is_empty(),
        "{} of {n} reports rejected, e.g. {:?}",
        stored.len(),
        stored.first()
    );
    r.refresh().await.unwrap();
    let clash_prefix = SearchQuery {
        limit: 1,
        ..query("clash-", SearchKind::Default)
    };
    assert_eq!(r.search(&clash_prefix).await.unwrap().total, n as u64);
    let one = 100_000 + (n as i64) / 2;
    assert_eq!(found(r, &md5_of(one), SearchKind::Exact).await, set(&[one]));
    let name = format!("clash-{}.bin", n / 2);
    assert_eq!(found(r, &name, SearchKind::Exact).await, set(&[one]));
    let rule = SearchQuery {
        limit: 1000,
        ..query("Clash_Rule_7", SearchKind::Exact)
    };
    let page = r.search(&rule).await.unwrap();
    assert_eq!(page.total as usize, (n + 92) / 100);
    assert!(page.hits.iter().all(|h| (h.task_id.0 - 100_000) % 100 == 7));
    // The whole report comes back as it went in.
    let i = n / 2 + 1;
    let back = r
        .get_report(TaskId(100_000 + i as i64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back["weird"], clashing(i)["weird"]);
}
