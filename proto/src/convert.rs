//! Conversions between wire messages and domain types. Incoming messages
//! are checked here, once, and a bad one is refused with its field named.

use std::collections::BTreeMap;

use crate::{
    domain::{
        DuplicatePolicy, MAX_FILENAME_LEN, MAX_METADATA_ENTRIES, MAX_TAG_LEN, MAX_TAGS, ModuleName,
        Priority, Submission, Task, TaskStatus, UnixMillis,
    },
    error::FieldError,
    pb,
};

impl TryFrom<pb::SubmissionHeader> for Submission {
    type Error = FieldError;

    fn try_from(h: pb::SubmissionHeader) -> Result<Self, FieldError> {
        if h.filename.len() > MAX_FILENAME_LEN {
            return Err(FieldError::new(
                "filename",
                format!("longer than {MAX_FILENAME_LEN} bytes"),
            ));
        }
        if h.filename.contains('\0') {
            return Err(FieldError::new("filename", "contains a NUL character"));
        }
        if h.tags.len() > MAX_TAGS {
            return Err(FieldError::new(
                "tags",
                format!("more than {MAX_TAGS} tags"),
            ));
        }
        let mut tags = Vec::with_capacity(h.tags.len());
        for tag in h.tags {
            let tag = tag.trim().to_owned();
            if tag.is_empty() || tag.len() > MAX_TAG_LEN {
                return Err(FieldError::new(
                    "tags",
                    format!("a tag must be 1 to {MAX_TAG_LEN} bytes"),
                ));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if h.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(FieldError::new(
                "metadata",
                format!("more than {MAX_METADATA_ENTRIES} entries"),
            ));
        }
        let priority = match h.priority {
            0 => Priority::default(),
            p => Priority::try_from(p).map_err(|e| FieldError::new("priority", e))?,
        };
        let modules = h
            .modules
            .into_iter()
            .map(|m| ModuleName::try_from(m).map_err(|e| FieldError::new("modules", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let duplicate = match pb::DuplicatePolicy::try_from(h.duplicate) {
            Ok(pb::DuplicatePolicy::Unspecified | pb::DuplicatePolicy::Latest) => {
                DuplicatePolicy::Latest
            }
            Ok(pb::DuplicatePolicy::Rescan) => DuplicatePolicy::Rescan,
            Err(_) => {
                return Err(FieldError::new(
                    "duplicate",
                    format!("unknown policy {}", h.duplicate),
                ));
            }
        };
        Ok(Submission {
            filename: h.filename,
            tags,
            metadata: h.metadata.into_iter().collect::<BTreeMap<_, _>>(),
            priority,
            modules,
            duplicate,
            archive_password: Some(h.archive_password).filter(|p| !p.is_empty()),
            force: h.force,
        })
    }
}

impl From<&Submission> for pb::SubmissionHeader {
    fn from(s: &Submission) -> Self {
        Self {
            filename: s.filename.clone(),
            tags: s.tags.clone(),
            metadata: s.metadata.clone().into_iter().collect(),
            priority: s.priority.into(),
            modules: s.modules.iter().map(|m| m.to_string()).collect(),
            duplicate: match s.duplicate {
                DuplicatePolicy::Latest => pb::DuplicatePolicy::Latest,
                DuplicatePolicy::Rescan => pb::DuplicatePolicy::Rescan,
            } as i32,
            archive_password: s.archive_password.clone().unwrap_or_default(),
            force: s.force,
        }
    }
}

impl From<TaskStatus> for pb::TaskStatus {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Pending => Self::Pending,
            TaskStatus::Running => Self::Running,
            TaskStatus::Complete => Self::Complete,
            TaskStatus::Failed => Self::Failed,
            TaskStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl TryFrom<pb::TaskStatus> for TaskStatus {
    type Error = FieldError;
    fn try_from(s: pb::TaskStatus) -> Result<Self, FieldError> {
        Ok(match s {
            pb::TaskStatus::Pending => Self::Pending,
            pb::TaskStatus::Running => Self::Running,
            pb::TaskStatus::Complete => Self::Complete,
            pb::TaskStatus::Failed => Self::Failed,
            pb::TaskStatus::Cancelled => Self::Cancelled,
            pb::TaskStatus::Unspecified => {
                return Err(FieldError::new("status", "unspecified"));
            }
        })
    }
}

/// Converts a millisecond timestamp to protobuf's.
pub fn timestamp(ms: UnixMillis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Converts protobuf's timestamp to milliseconds.
pub fn millis(ts: &prost_types::Timestamp) -> UnixMillis {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

impl From<&Task> for pb::Task {
    fn from(t: &Task) -> Self {
        Self {
            task_id: t.id.0,
            sha256: t.sha256.to_hex(),
            filename: t.submission.filename.clone(),
            status: pb::TaskStatus::from(t.status) as i32,
            priority: t.submission.priority.into(),
            tags: t.submission.tags.clone(),
            modules: t.submission.modules.iter().map(|m| m.to_string()).collect(),
            size: t.size,
            submitted_at: Some(timestamp(t.submitted_at)),
            started_at: t.started_at.map(timestamp),
            finished_at: t.finished_at.map(timestamp),
            error: t.error.clone().unwrap_or_default(),
            node_count: t.node_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> pb::SubmissionHeader {
        pb::SubmissionHeader {
            filename: "a.exe".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply_when_fields_are_unset() {
        let s = Submission::try_from(header()).unwrap();
        assert_eq!(s.priority.get(), 5);
        assert_eq!(s.duplicate, DuplicatePolicy::Latest);
        assert_eq!(s.archive_password, None);
    }

    #[test]
    fn out_of_range_priority_names_the_field() {
        for p in [11, 100] {
            let err = Submission::try_from(pb::SubmissionHeader {
                priority: p,
                ..header()
            })
            .unwrap_err();
            assert_eq!(err.field, "priority");
        }
        let ok = Submission::try_from(pb::SubmissionHeader {
            priority: 10,
            ..header()
        })
        .unwrap();
        assert_eq!(ok.priority.get(), 10);
    }

    #[test]
    fn bad_module_names_and_policies_are_refused() {
        let err = Submission::try_from(pb::SubmissionHeader {
            modules: vec!["../etc".into()],
            ..header()
        })
        .unwrap_err();
        assert_eq!(err.field, "modules");
        let err = Submission::try_from(pb::SubmissionHeader {
            duplicate: 42,
            ..header()
        })
        .unwrap_err();
        assert_eq!(err.field, "duplicate");
    }

    #[test]
    fn sha256_parsing_refuses_paths_and_short_strings() {
        use crate::domain::Sha256;
        assert!("../../etc/passwd".parse::<Sha256>().is_err());
        assert!("abc".parse::<Sha256>().is_err());
        let h = "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b";
        assert_eq!(h.parse::<Sha256>().unwrap().to_hex(), h);
        assert_eq!(
            h.to_uppercase().parse::<Sha256>().unwrap().to_hex(),
            h,
            "upper-case input is normalised"
        );
    }

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
    }
}
