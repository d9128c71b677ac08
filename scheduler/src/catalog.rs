//! The transport-agnostic half of the `Reports` service beyond reading one
//! report: search, tags and notes (found through a task, kept on its
//! sample), and importing reports made elsewhere.

use multiscanner_proto::domain::{Sha256, Submission, Task, TaskId, UnixMillis};
use serde_json::{Value, json};

use crate::{
    core::Scheduler,
    error::{Result, SchedulerError},
    store::search::{Note, SearchPage, SearchQuery, TagCount, valid_note, valid_tag},
};

/// Reports one import may hold.
pub const MAX_IMPORT: usize = 1000;

fn invalid(field: &str, why: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::InvalidArgument(format!("invalid field `{field}`: {why}"))
}

impl Scheduler {
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        Ok(self.stores.reports.search(query).await?)
    }

    /// The sample of a task, or NotFound.
    async fn sample_of(&self, task: TaskId) -> Result<Sha256> {
        Ok(self.stores.tasks.get_task(task).await?.sha256)
    }

    /// The tags of a task's sample.
    pub async fn tags_of(&self, sha256: Sha256) -> Result<Vec<String>> {
        Ok(self.stores.reports.tags_of(sha256).await?)
    }

    pub async fn add_tag(&self, task: TaskId, tag: &str) -> Result<Vec<String>> {
        let tag = valid_tag(tag).map_err(|e| invalid("tag", e))?;
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.add_tag(sha, &tag).await?)
    }

    pub async fn remove_tag(&self, task: TaskId, tag: &str) -> Result<Vec<String>> {
        let tag = valid_tag(tag).map_err(|e| invalid("tag", e))?;
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.remove_tag(sha, &tag).await?)
    }

    pub async fn tag_counts(&self) -> Result<Vec<TagCount>> {
        Ok(self.stores.reports.tag_counts().await?)
    }

    pub async fn notes(&self, task: TaskId, offset: u32, limit: u32) -> Result<Vec<Note>> {
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.notes(sha, offset, limit).await?)
    }

    pub async fn add_note(&self, task: TaskId, text: &str) -> Result<Note> {
        valid_note(text).map_err(|e| invalid("text", e))?;
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.add_note(sha, text).await?)
    }

    pub async fn edit_note(&self, task: TaskId, id: &str, text: &str) -> Result<Note> {
        valid_note(text).map_err(|e| invalid("text", e))?;
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.edit_note(sha, id, text).await?)
    }

    pub async fn delete_note(&self, task: TaskId, id: &str) -> Result<()> {
        let sha = self.sample_of(task).await?;
        Ok(self.stores.reports.delete_note(sha, id).await?)
    }

    /// Stores each report (a JSON object, or an array of them) as a new,
    /// complete task. Every report is checked before anything is stored.
    pub async fn import(&self, json: &str) -> Result<Vec<Task>> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| invalid("report_json", format!("not JSON: {e}")))?;
        let reports = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        if reports.is_empty() || reports.len() > MAX_IMPORT {
            return Err(invalid(
                "report_json",
                format!("give 1 to {MAX_IMPORT} reports, not {}", reports.len()),
            ));
        }
        let checked = reports
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Imported::check(r).map_err(|e| invalid("report_json", format!("report {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tasks = Vec::with_capacity(checked.len());
        for r in checked {
            let mut task = self
                .stores
                .tasks
                .import_task(r.sha256, r.size, &r.submission, r.scan_time)
                .await?;
            let mut report = r.report;
            report["Scan Metadata"]["Task ID"] = json!(task.id.0);
            self.stores.reports.put_report(&task, &report).await?;
            task.status = multiscanner_proto::domain::TaskStatus::Complete;
            tasks.push(task);
        }
        Ok(tasks)
    }
}

/// A report to import, checked.
struct Imported {
    sha256: Sha256,
    size: u64,
    scan_time: UnixMillis,
    submission: Submission,
    report: Value,
}

impl Imported {
    fn check(report: Value) -> std::result::Result<Self, String> {
        if !report.is_object() {
            return Err("a report is a JSON object".into());
        }
        let sha = [
            &report["filemeta"]["sha256"],
            &report["SHA256"],
            &report["sha256"],
        ]
        .into_iter()
        .find_map(|v| v.as_str())
        .ok_or("missing the sample's SHA-256 (`filemeta.sha256` or `SHA256`)")?;
        let sha256: Sha256 = sha.parse().map_err(|e| format!("SHA-256 {sha:?}: {e}"))?;
        let scan_time = report["Scan Metadata"]["Scan Time"]
            .as_str()
            .ok_or("missing 'Scan Time' in 'Scan Metadata'")?;
        let scan_time = parse_time(scan_time)
            .ok_or_else(|| format!("'Scan Time' {scan_time:?} is not a date and time"))?;
        let filename = report["filename"].as_str().unwrap_or_default();
        if filename.len() > multiscanner_proto::domain::MAX_FILENAME_LEN {
            return Err("the file name is too long".into());
        }
        let tags = report["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .filter_map(|t| valid_tag(t).ok())
            .collect();
        let size = report["filemeta"]["filesize"].as_u64().unwrap_or(0);
        Ok(Self {
            sha256,
            size,
            scan_time,
            submission: Submission {
                filename: filename.to_owned(),
                tags,
                ..Default::default()
            },
            report,
        })
    }
}

/// `YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z]` (this system's and
/// MultiScanner's forms), as milliseconds since the epoch (UTC).
pub fn parse_time(s: &str) -> Option<UnixMillis> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60 + sec) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::iso8601;

    #[test]
    fn times_parse_in_both_forms_and_round_trip() {
        for ms in [0, 951_782_400_000, 1_548_425_331_123, 4_102_444_799_999] {
            assert_eq!(parse_time(&iso8601(ms)), Some(ms));
        }
        assert_eq!(
            parse_time("2019-01-25 14:08:51.123456"),
            Some(1_548_425_331_123)
        );
        assert_eq!(parse_time("2019-01-25T14:08:51"), Some(1_548_425_331_000));
        for bad in [
            "",
            "yesterday",
            "2019-13-01T00:00:00",
            "2019-01-01T00:00:00.x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
