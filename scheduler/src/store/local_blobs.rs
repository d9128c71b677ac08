//! Samples in a local directory (or a shared mount), one file per sample
//! named by its SHA-256, written once (see [`publish`]).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use multiscanner_proto::domain::Sha256;

use super::{BlobReader, BlobStore, Staged, StagedBody, StoreError, StoreResult};

#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalBlobStore {
    pub async fn open(root: &Path) -> StoreResult<Self> {
        let staging = root.join(".staging");
        tokio::fs::create_dir_all(&staging).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", staging.display()))
        })?;
        Ok(Self {
            root: root.to_owned(),
            staging,
        })
    }

    /// `ab/abcdef...`: a two-digit fan-out keeps directories small.
    fn path_of(&self, sha256: Sha256) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, staged: Staged) -> StoreResult<()> {
        let dest = self.path_of(staged.sha256);
        if tokio::fs::try_exists(&dest).await? {
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        tokio::task::spawn_blocking(move || publish(staged.body, &dir, &dest))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    async fn open(&self, sha256: Sha256) -> StoreResult<BlobReader> {
        match tokio::fs::File::open(self.path_of(sha256)).await {
            Ok(f) => Ok(Box::pin(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("sample {sha256}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn exists(&self, sha256: Sha256) -> StoreResult<bool> {
        Ok(tokio::fs::try_exists(self.path_of(sha256)).await?)
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }
}

/// Writes the bytes durably under a temporary name in `dir`, then renames
/// them to `dest`. The rename is atomic, so a reader sees a whole sample or
/// none; two uploads of one sample racing here rename identical bytes, so
/// whichever lands last changes nothing. Nothing is unlinked on the way
/// (unlinking thousands of small files slows every later create on ext4).
fn publish(body: StagedBody, dir: &Path, dest: &Path) -> StoreResult<()> {
    std::fs::create_dir_all(dir)?;
    let staged = match body {
        StagedBody::Memory(bytes) => {
            let mut file = tempfile::Builder::new()
                .prefix(".partial-")
                .tempfile_in(dir)?;
            file.write_all(&bytes)?;
            file
        }
        StagedBody::File(file) => file,
    };
    staged.as_file().sync_all()?;
    match staged.persist(dest) {
        Ok(_) => {}
        Err(e) if e.error.raw_os_error() == Some(EXDEV) => {
            // The staging directory is on another file system: copy.
            let mut copy = tempfile::Builder::new()
                .prefix(".partial-")
                .tempfile_in(dir)?;
            std::io::copy(&mut std::fs::File::open(e.file.path())?, &mut copy)?;
            copy.as_file().sync_all()?;
            copy.persist(dest).map_err(|e| e.error)?;
        }
        Err(e) => return Err(e.error.into()),
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Linux's "cross-device link" error number.
const EXDEV: i32 = 18;
