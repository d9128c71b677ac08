//! Samples in a local directory (or a shared mount), one file per sample
//! named by its SHA-256, written once and never rewritten.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use multiscanner_proto::domain::Sha256;

use super::{BlobReader, BlobStore, StoreError, StoreResult};

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
    async fn put_file(&self, sha256: Sha256, staged: &Path) -> StoreResult<()> {
        let dest = self.path_of(sha256);
        if tokio::fs::try_exists(&dest).await? {
            return Ok(());
        }
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Make the bytes durable, then publish them under their name with a
        // hard link: that never replaces a sample another upload stored.
        tokio::fs::File::open(staged).await?.sync_all().await?;
        match tokio::fs::hard_link(staged, &dest).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                // Across file systems: copy to a temporary name, then link.
                let tmp = dest.with_extension("partial");
                tokio::fs::copy(staged, &tmp).await?;
                tokio::fs::File::open(&tmp).await?.sync_all().await?;
                let linked = tokio::fs::hard_link(&tmp, &dest).await;
                let _ = tokio::fs::remove_file(&tmp).await;
                match linked {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(e.into());
                    }
                    _ => {}
                }
            }
        }
        if let Some(dir) = dest.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
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
