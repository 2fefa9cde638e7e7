//! Where the Iceberg tables' files live: iceberg's storage traits over `object_store`, so the
//! warehouse can be a local directory (`file:///abs/dir`) or an S3 prefix
//! (`s3://bucket/prefix`, also `s3a://`).
//!
//! S3 is configured the way the rest of the worker is: `AWS_*` variables
//! (`AmazonS3Builder::from_env`), with region `us-east-1` when neither `AWS_REGION` nor
//! `AWS_DEFAULT_REGION` is set, and path-style requests when an endpoint is set
//! (`AWS_ENDPOINT` / `AWS_ENDPOINT_URL`) unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` says
//! otherwise. [`S3Settings`] given to the factory override the environment. One client per
//! bucket, created on first use.
//!
//! Data files are written with multipart uploads once they pass [`PART_SIZE`], so a large
//! Parquet file never sits whole in memory; smaller files are written with one `PUT`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};

pub use super::s3::{split_s3, S3Settings, DEFAULT_REGION};

/// Size of one part of a multipart upload (S3 wants at least 5 MiB for all parts but the last).
/// A writer holds at most [`PART_SIZE`] × ([`PARTS_IN_FLIGHT`] + 1) bytes.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one file uploaded concurrently.
pub const PARTS_IN_FLIGHT: usize = 4;

/// Deletes sent concurrently by `delete_stream`.
const DELETES_IN_FLIGHT: usize = 16;

/// The storage factory of the warehouse: `file://` (and bare absolute paths) on the local
/// filesystem, `s3://` / `s3a://` through `object_store`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WarehouseStorageFactory {
    #[serde(default)]
    s3: S3Settings,
}

impl WarehouseStorageFactory {
    /// S3 configured by the environment (`AWS_*`) alone.
    pub fn from_env() -> WarehouseStorageFactory {
        WarehouseStorageFactory::default()
    }

    /// S3 configured by `settings`, over the environment.
    pub fn with_s3(settings: S3Settings) -> WarehouseStorageFactory {
        WarehouseStorageFactory { s3: settings }
    }
}

/// One file of the warehouse, as a listing found it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its location, in the form the table's metadata uses (`file:///…` or `s3://bucket/key`).
    pub location: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

impl WarehouseStorageFactory {
    /// Every file under the directory `prefix` (`file:///abs/dir` or `s3://bucket/key`),
    /// streamed as the store pages through them (S3 returns 1,000 keys a request; a local
    /// directory is walked), never collected whole.
    pub fn list(&self, prefix: &str) -> Result<BoxStream<'static, Result<Listed>>> {
        let prefix = prefix.trim_end_matches('/');
        let (store, key, scheme): (Arc<dyn ObjectStore>, ObjectPath, String) =
            if let Some(path) = local_path(prefix) {
                let key = ObjectPath::from_absolute_path(path).map_err(|e| {
                    Error::new(
                        ErrorKind::DataInvalid,
                        format!("invalid location {prefix}: {e}"),
                    )
                })?;
                let store = Arc::new(object_store::local::LocalFileSystem::new());
                (store, key, "file:///".to_owned())
            } else if let Some((bucket, key)) = split_s3(prefix) {
                let key = ObjectPath::parse(key).map_err(|e| {
                    Error::new(
                        ErrorKind::DataInvalid,
                        format!("invalid location {prefix}: {e}"),
                    )
                })?;
                let storage = WarehouseStorage {
                    s3: self.s3.clone(),
                    buckets: Arc::default(),
                };
                let store = storage.bucket(bucket, prefix)?;
                (store, key, format!("s3://{bucket}/"))
            } else {
                return Err(Error::new(
                    ErrorKind::FeatureUnsupported,
                    format!("cannot list {prefix}: not a local directory or an S3 prefix"),
                ));
            };
        let shown = prefix.to_owned();
        Ok(store
            .list(Some(&key))
            .filter_map(move |item| {
                futures::future::ready(match item {
                    Ok(meta) => Some(Ok(Listed {
                        location: format!("{scheme}{}", meta.location),
                        size: meta.size,
                        last_modified: meta.last_modified,
                    })),
                    // A directory that does not exist (yet) holds no files.
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => Some(Err(store_error("list", &shown, e))),
                })
            })
            .boxed())
    }
}

/// The absolute path of a local location (`file:///abs`, `file:/abs` or `/abs`).
fn local_path(location: &str) -> Option<&str> {
    if let Some(rest) = location.strip_prefix("file://") {
        return Some(rest);
    }
    if let Some(rest) = location.strip_prefix("file:") {
        return Some(rest);
    }
    location.starts_with('/').then_some(location)
}

/// `location` in one form per file, for comparing a listing with the table's metadata:
/// `file:///abs`, `file:/abs` and `/abs` are one file, as are `s3a://` and `s3://`.
pub fn same_file_key(location: &str) -> String {
    if let Some(path) = local_path(location) {
        return path.to_owned();
    }
    match location.strip_prefix("s3a://") {
        Some(rest) => format!("s3://{rest}"),
        None => location.to_owned(),
    }
}

#[typetag::serde]
impl StorageFactory for WarehouseStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(WarehouseStorage {
            s3: self.s3.clone(),
            buckets: Arc::default(),
        }))
    }
}

/// See [`WarehouseStorageFactory`].
#[derive(Clone, Serialize, Deserialize)]
pub struct WarehouseStorage {
    s3: S3Settings,
    /// One client per bucket, shared by the clones (input and output files hold one).
    #[serde(skip)]
    buckets: Arc<Mutex<HashMap<String, Arc<AmazonS3>>>>,
}

impl fmt::Debug for WarehouseStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarehouseStorage")
            .field("s3", &self.s3)
            .finish_non_exhaustive()
    }
}

/// Where one location lives.
enum Target {
    Local,
    S3 {
        store: Arc<AmazonS3>,
        key: ObjectPath,
    },
}

impl WarehouseStorage {
    fn target(&self, location: &str) -> Result<Target> {
        if location.starts_with("file:") || location.starts_with('/') {
            return Ok(Target::Local);
        }
        let Some((bucket, key)) = split_s3(location) else {
            return Err(Error::new(
                ErrorKind::FeatureUnsupported,
                format!(
                    "unsupported location {location}: the warehouse is a local directory \
                     (file://) or an S3 prefix (s3://)"
                ),
            ));
        };
        if bucket.is_empty() {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("invalid location {location}: no bucket"),
            ));
        }
        let key = ObjectPath::parse(key).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("invalid location {location}: {e}"),
            )
        })?;
        Ok(Target::S3 {
            store: self.bucket(bucket, location)?,
            key,
        })
    }

    fn bucket(&self, bucket: &str, location: &str) -> Result<Arc<AmazonS3>> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "S3 client cache poisoned"))?;
        if let Some(store) = buckets.get(bucket) {
            return Ok(store.clone());
        }
        let store = self.s3.builder(bucket).build().map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("cannot configure S3 for {location}: {e}"),
            )
            .with_source(e)
        })?;
        let store = Arc::new(store);
        buckets.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }
}

/// An `object_store` failure as an iceberg error naming the operation and the location.
/// Failures that a later attempt may not meet (network, throttling, server errors) are
/// retryable.
fn store_error(op: &str, location: &str, e: object_store::Error) -> Error {
    let (kind, retryable) = match &e {
        object_store::Error::NotFound { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => (ErrorKind::DataInvalid, false),
        object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => {
            (ErrorKind::FeatureUnsupported, false)
        }
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            (ErrorKind::PreconditionFailed, false)
        }
        _ => (ErrorKind::Unexpected, true),
    };
    Error::new(kind, format!("S3 {op} {location}: {e}"))
        .with_retryable(retryable)
        .with_source(e)
}

#[async_trait]
#[typetag::serde]
impl Storage for WarehouseStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().exists(path).await,
            Target::S3 { store, key } => match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(store_error("head", path, e)),
            },
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().metadata(path).await,
            Target::S3 { store, key } => {
                let meta = store
                    .head(&key)
                    .await
                    .map_err(|e| store_error("head", path, e))?;
                Ok(FileMetadata { size: meta.size })
            }
        }
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().read(path).await,
            Target::S3 { store, key } => {
                let got = store
                    .get(&key)
                    .await
                    .map_err(|e| store_error("get", path, e))?;
                got.bytes().await.map_err(|e| store_error("get", path, e))
            }
        }
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().reader(path).await,
            Target::S3 { store, key } => Ok(Box::new(S3FileRead {
                store,
                key,
                location: path.to_owned(),
            })),
        }
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().write(path, bs).await,
            Target::S3 { store, key } => {
                store
                    .put(&key, PutPayload::from(bs))
                    .await
                    .map_err(|e| store_error("put", path, e))?;
                Ok(())
            }
        }
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().writer(path).await,
            Target::S3 { store, key } => Ok(Box::new(S3FileWrite {
                store,
                key,
                location: path.to_owned(),
                state: WriteState::Buffering(Vec::new(), 0),
            })),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().delete(path).await,
            Target::S3 { store, key } => match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_error("delete", path, e)),
            },
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().delete_prefix(path).await,
            Target::S3 { store, key } => {
                // Segment-wise, like a directory: `a/b` covers `a/b/c`, not `a/bc`.
                let locations = store.list(Some(&key)).map_ok(|meta| meta.location).boxed();
                store
                    .delete_stream(locations)
                    .try_for_each(|_| futures::future::ready(Ok(())))
                    .await
                    .map_err(|e| store_error("delete under", path, e))
            }
        }
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> Result<()> {
        paths
            .map(Ok)
            .try_for_each_concurrent(
                DELETES_IN_FLIGHT,
                |path| async move { self.delete(&path).await },
            )
            .await
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        self.target(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        self.target(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

/// Ranged reads of one S3 object.
struct S3FileRead {
    store: Arc<AmazonS3>,
    key: ObjectPath,
    location: String,
}

#[async_trait]
impl FileRead for S3FileRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        self.store
            .get_range(&self.key, range.clone())
            .await
            .map_err(|e| {
                store_error(
                    &format!("get bytes {}..{} of", range.start, range.end),
                    &self.location,
                    e,
                )
            })
    }
}

enum WriteState {
    /// Nothing sent yet: the chunks written so far and their total size. A file that stays
    /// under [`PART_SIZE`] is sent with one `PUT` on close.
    Buffering(Vec<Bytes>, usize),
    /// A multipart upload in progress.
    Uploading(WriteMultipart),
    Closed,
}

/// Writes one S3 object: buffered until [`PART_SIZE`], then as a multipart upload with at most
/// [`PARTS_IN_FLIGHT`] parts in flight. An upload dropped before `close` (a failed run) is
/// aborted, so no parts are left behind.
struct S3FileWrite {
    store: Arc<AmazonS3>,
    key: ObjectPath,
    location: String,
    state: WriteState,
}

impl S3FileWrite {
    async fn start_upload(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        let upload = self
            .store
            .put_multipart(&self.key)
            .await
            .map_err(|e| store_error("start upload of", &self.location, e))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for chunk in chunks {
            upload.put(chunk);
        }
        self.state = WriteState::Uploading(upload);
        Ok(())
    }

    /// Aborts the upload in progress, if any, after a failure.
    async fn abort(&mut self) {
        if let WriteState::Uploading(upload) =
            std::mem::replace(&mut self.state, WriteState::Closed)
        {
            if let Err(e) = upload.abort().await {
                tracing::warn!(location = %self.location, error = %e, "cannot abort the S3 upload");
            }
        }
    }
}

#[async_trait]
impl FileWrite for S3FileWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        match &mut self.state {
            WriteState::Closed => Err(Error::new(
                ErrorKind::Unexpected,
                format!("cannot write to {}: already closed", self.location),
            )),
            WriteState::Buffering(chunks, size) => {
                *size += bs.len();
                chunks.push(bs);
                if *size >= PART_SIZE {
                    let chunks = std::mem::take(chunks);
                    self.start_upload(chunks).await?;
                }
                Ok(())
            }
            WriteState::Uploading(upload) => {
                if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let err = store_error("upload part of", &self.location, e);
                    self.abort().await;
                    return Err(err);
                }
                upload.put(bs);
                Ok(())
            }
        }
    }

    async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.state, WriteState::Closed) {
            WriteState::Closed => Err(Error::new(
                ErrorKind::Unexpected,
                format!("cannot close {}: already closed", self.location),
            )),
            WriteState::Buffering(chunks, _) => {
                self.store
                    .put(&self.key, PutPayload::from_iter(chunks))
                    .await
                    .map_err(|e| store_error("put", &self.location, e))?;
                Ok(())
            }
            WriteState::Uploading(upload) => {
                upload
                    .finish()
                    .await
                    .map_err(|e| store_error("complete upload of", &self.location, e))?;
                Ok(())
            }
        }
    }
}

impl Drop for S3FileWrite {
    fn drop(&mut self) {
        if let WriteState::Uploading(upload) =
            std::mem::replace(&mut self.state, WriteState::Closed)
        {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let location = std::mem::take(&mut self.location);
                rt.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(%location, error = %e, "cannot abort the S3 upload");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_route_by_scheme() {
        let storage = WarehouseStorage {
            s3: S3Settings {
                endpoint: Some("http://127.0.0.1:1".into()),
                allow_http: Some(true),
                ..S3Settings::default()
            },
            buckets: Arc::default(),
        };
        assert!(matches!(storage.target("file:///tmp/x"), Ok(Target::Local)));
        assert!(matches!(storage.target("/tmp/x"), Ok(Target::Local)));
        match storage.target("s3://b/wh/x.json") {
            Ok(Target::S3 { key, .. }) => assert_eq!(key.as_ref(), "wh/x.json"),
            _ => panic!("s3 location"),
        }
        let e = storage.target("gs://b/x").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("gs://b/x")));
        let e = storage.target("s3://b/wh//x").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("s3://b/wh//x")));
        // One client per bucket.
        storage.target("s3://b/y").ok();
        storage.target("s3://c/y").ok();
        assert_eq!(storage.buckets.lock().map(|b| b.len()).unwrap_or(0), 2);
    }

    #[test]
    fn the_factory_serialises_its_settings_and_hides_the_secret() {
        let factory = WarehouseStorageFactory::with_s3(S3Settings {
            secret_access_key: Some("hunter2".into()),
            ..S3Settings::default()
        });
        let dynamic: Arc<dyn StorageFactory> = Arc::new(factory);
        let json = serde_json::to_string(&dynamic).unwrap_or_default();
        assert!(json.contains("WarehouseStorageFactory"), "{json}");
        let back: std::result::Result<Box<dyn StorageFactory>, _> = serde_json::from_str(&json);
        assert!(back.is_ok(), "{json}");
        assert!(!format!("{dynamic:?}").contains("hunter2"));
    }
}
