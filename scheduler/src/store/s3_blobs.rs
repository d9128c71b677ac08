//! Samples on S3-compatible object storage, one object per sample named by
//! its SHA-256 (`PREFIX/ab/abcdef...`), written once, streamed both ways.
//!
//! URL: `s3://BUCKET[/PREFIX]`; the endpoint, region and credentials come
//! from [`S3Settings`] (the `[scheduler.s3]` section). The bucket must exist.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use futures::TryStreamExt;
use multiscanner_proto::domain::Sha256;
use object_store::{
    ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart, aws::AmazonS3Builder,
    path::Path as ObjectPath,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{BlobReader, BlobStore, Staged, StagedBody, StoreError, StoreResult};

/// Parts of a large sample uploaded at once.
const PARALLEL_PARTS: usize = 4;
const READ_CHUNK: usize = 1 << 20;

/// Where the S3-compatible service is and how to sign in to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://HOST:PORT` of an S3-compatible service; empty: AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Where large uploads are staged before they are sent; empty: the
    /// system's temporary directory.
    pub staging_dir: PathBuf,
}

#[derive(Debug)]
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    staging: PathBuf,
}

impl S3BlobStore {
    pub async fn open(url: &str, settings: &S3Settings) -> StoreResult<Self> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET[/PREFIX]".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty".into()));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(if settings.region.is_empty() {
                "us-east-1"
            } else {
                &settings.region
            })
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key);
        if !settings.endpoint.is_empty() {
            builder = builder
                .with_endpoint(&settings.endpoint)
                .with_allow_http(settings.endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        let staging = if settings.staging_dir.as_os_str().is_empty() {
            std::env::temp_dir()
        } else {
            settings.staging_dir.clone()
        };
        tokio::fs::create_dir_all(&staging).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", staging.display()))
        })?;
        let prefix = prefix.trim_matches('/');
        let this = Self {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            staging,
        };
        // Fail at start, with the reason, rather than at the first upload.
        match this.store.list_with_delimiter(None).await {
            Ok(_) => Ok(this),
            Err(e) => Err(StoreError::Unavailable(format!(
                "cannot list bucket {bucket:?}: {e}"
            ))),
        }
    }

    fn path_of(&self, sha256: Sha256) -> ObjectPath {
        let hex = sha256.to_hex();
        ObjectPath::from(format!("{}{}/{hex}", self.prefix, &hex[..2]))
    }
}

fn store_error(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { path, .. } => {
            StoreError::NotFound(format!("sample {path}"))
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, staged: Staged) -> StoreResult<()> {
        let path = self.path_of(staged.sha256);
        if self.exists(staged.sha256).await? {
            return Ok(());
        }
        match staged.body {
            StagedBody::Memory(bytes) => {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match self
                    .store
                    .put_opts(&path, PutPayload::from(bytes), opts)
                    .await
                {
                    // Same name, same bytes: another upload got there first.
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                    Err(e) => Err(store_error(e)),
                }
            }
            StagedBody::File(file) => {
                // A multipart upload becomes visible only when completed, so
                // readers see the whole sample or none.
                let upload = self.store.put_multipart(&path).await.map_err(store_error)?;
                let mut writer = WriteMultipart::new(upload);
                let mut reader = tokio::fs::File::from_std(file.reopen()?);
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    writer
                        .wait_for_capacity(PARALLEL_PARTS)
                        .await
                        .map_err(store_error)?;
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    writer.write(&buf[..n]);
                }
                writer.finish().await.map_err(store_error)?;
                Ok(())
            }
        }
    }

    async fn open(&self, sha256: Sha256) -> StoreResult<BlobReader> {
        let got = self
            .store
            .get(&self.path_of(sha256))
            .await
            .map_err(store_error)?;
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    async fn exists(&self, sha256: Sha256) -> StoreResult<bool> {
        match self.store.head(&self.path_of(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }
}
