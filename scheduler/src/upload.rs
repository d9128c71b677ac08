//! An upload on its way into the blob store: hashed as it arrives, kept in
//! memory while small and spilled to a file in the staging directory once it
//! grows, so that small files cost no temporary file and large ones are
//! never held whole in memory.

use std::path::PathBuf;

use bytes::BytesMut;
use multiscanner_proto::domain::Sha256;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::{
    error::{Result, SchedulerError},
    store::{Staged, StagedBody},
};

/// Uploads up to this size stay in memory.
pub const SPILL_BYTES: usize = 1024 * 1024;

pub struct Upload {
    staging_dir: PathBuf,
    limit: u64,
    hasher: sha2::Sha256,
    size: u64,
    memory: BytesMut,
    file: Option<(tempfile::NamedTempFile, tokio::fs::File)>,
}

impl Upload {
    /// An empty upload that refuses to grow beyond `limit` bytes and spills
    /// into `staging_dir`.
    pub fn new(staging_dir: PathBuf, limit: u64) -> Self {
        Self {
            staging_dir,
            limit,
            hasher: sha2::Sha256::new(),
            size: 0,
            memory: BytesMut::new(),
            file: None,
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(SchedulerError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        if self.file.is_none() && self.memory.len() + chunk.len() <= SPILL_BYTES {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        if self.file.is_none() {
            let staged = tempfile::NamedTempFile::new_in(&self.staging_dir).map_err(stage_error)?;
            let mut file = tokio::fs::File::from_std(staged.reopen().map_err(stage_error)?);
            file.write_all(&self.memory).await.map_err(stage_error)?;
            self.memory = BytesMut::new();
            self.file = Some((staged, file));
        }
        if let Some((_, file)) = &mut self.file {
            file.write_all(chunk).await.map_err(stage_error)?;
        }
        Ok(())
    }

    /// The bytes received, with their SHA-256; an empty upload is refused.
    pub async fn finish(self) -> Result<Staged> {
        if self.size == 0 {
            return Err(SchedulerError::InvalidArgument(
                "the file is empty: there is nothing to analyse".into(),
            ));
        }
        let body = match self.file {
            Some((staged, mut file)) => {
                file.flush().await.map_err(stage_error)?;
                StagedBody::File(staged)
            }
            None => StagedBody::Memory(self.memory.freeze()),
        };
        Ok(Staged {
            sha256: Sha256(self.hasher.finalize().into()),
            size: self.size,
            body,
        })
    }
}

fn stage_error(e: std::io::Error) -> SchedulerError {
    SchedulerError::Unavailable(format!("cannot stage the upload: {e}"))
}
