//! Finding the files a run loads: list the source prefix, drop what the ledger says is loaded,
//! oldest first, bounded per run. The listing streams through: what is held is the run's
//! selection (at most `max_files_per_run` files) and one page of ledger look-ups, not the prefix.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use autoloader::ingestions::definition::{SourcePath, SourceType};
use autoloader::ingestions::options::{IngestOptions, Limits};
use autoloader::ingestions::roots::FileRoots;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::fetch::SourceFile;
use super::http::SourceConnector;
use super::local::Root;
use super::warehouse::{split_s3, S3Settings};
use super::IngestError;

/// Listed candidates looked up in the ledger at once.
const LEDGER_PAGE: usize = 1_000;

/// A candidate ordered by age: last modified, then path.
struct ByAge(Candidate);

impl ByAge {
    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.0.last_modified, &self.0.relative)
    }
}

impl PartialEq for ByAge {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for ByAge {}
impl PartialOrd for ByAge {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByAge {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The `keep` oldest new files seen so far; the newest of them on top, to be dropped first.
struct Oldest {
    keep: usize,
    heap: BinaryHeap<ByAge>,
}

impl Oldest {
    /// Whether `c` would be kept if the ledger does not hold it.
    fn would_keep(&self, c: &Candidate) -> bool {
        self.heap.len() < self.keep
            || self
                .heap
                .peek()
                .is_some_and(|newest| (c.last_modified, c.relative.as_str()) < newest.key())
    }

    /// Keeps those of `page` the ledger does not hold (emptying `page`), dropping the newest
    /// beyond `keep`.
    async fn add_new(
        &mut self,
        pool: &PgPool,
        ingestion_id: Uuid,
        page: &mut Vec<Candidate>,
    ) -> Result<(), IngestError> {
        if page.is_empty() {
            return Ok(());
        }
        let paths: Vec<String> = page.iter().map(|c| c.url.clone()).collect();
        let loaded = autoloader::ledger::ledger_loaded_among(pool, ingestion_id, &paths)
            .await
            .map_err(IngestError::Db)?;
        for c in page.drain(..) {
            if !loaded.contains(&c.url) && self.would_keep(&c) {
                self.heap.push(ByAge(c));
                if self.heap.len() > self.keep {
                    self.heap.pop();
                }
            }
        }
        Ok(())
    }
}

/// Where an ingestion's files live: a store and the prefix inside it.
pub struct Source {
    /// Lists the files; reads S3 objects (a local file is read through [`Source::open_file`]'s
    /// descriptor, never through this).
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    local: Option<LocalDir>,
    /// The prefix as a URL without its trailing `/` (`s3a://` written as `s3://`), which a
    /// file's path below the prefix is appended to.
    base_url: String,
}

/// A local source: its listing, and the root its files are opened beneath.
struct LocalDir {
    fs: Arc<LocalFileSystem>,
    root: Root,
}

/// A file found under the prefix that the ingestion has not loaded.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub location: Path,
    /// The path below the prefix, as the glob sees it.
    pub relative: String,
    /// The file's full URL (`s3://bucket/key`, `file:///dir/name`): its name in the ledger.
    pub url: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
}

impl Source {
    /// Refuses a source that lies in the warehouse (`warehouse`: its URL), or holds it: tables'
    /// data and metadata are no source, whatever credentials the source has.
    pub fn check_outside_warehouse(&self, warehouse: &str) -> Result<(), IngestError> {
        let dir = |url: &str| {
            format!(
                "{}/",
                url.trim_end_matches('/').replacen("s3a://", "s3://", 1)
            )
        };
        let (source, warehouse) = (dir(&self.base_url), dir(warehouse));
        if source.starts_with(&warehouse) || warehouse.starts_with(&source) {
            return Err(IngestError::Config(format!(
                "the source {} overlaps the warehouse, where tables are kept; a source may not \
                 read it",
                self.base_url
            )));
        }
        Ok(())
    }

    pub fn open(
        source_type: SourceType,
        path: &SourcePath,
        options: &IngestOptions,
        roots: &FileRoots,
        worker_credentials: bool,
        connector: SourceConnector,
    ) -> Result<Source, IngestError> {
        let source_path = path.as_str();
        match source_type {
            SourceType::Local => {
                let dir = roots.resolve(path).map_err(IngestError::Config)?;
                if !dir.is_dir() {
                    return Err(IngestError::Config(format!(
                        "source directory {} does not exist",
                        dir.display()
                    )));
                }
                let root = roots.root_of(&dir).ok_or_else(|| {
                    IngestError::Config(format!(
                        "source directory {} is under no allowed directory",
                        dir.display()
                    ))
                })?;
                let root = Root::open(root).map_err(|e| {
                    IngestError::Config(format!("cannot open {}: {e}", root.display()))
                })?;
                let fs = Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
                    IngestError::Config(format!("cannot open {}: {e}", dir.display()))
                })?);
                Ok(Source {
                    store: fs.clone(),
                    prefix: Path::default(),
                    base_url: format!("file://{}", dir.display()),
                    local: Some(LocalDir { fs, root }),
                })
            }
            SourceType::S3 => {
                let (bucket, prefix) = split_s3(source_path).unwrap_or((source_path, ""));
                let store = S3Settings::from(&options.s3)
                    .source_builder(bucket, worker_credentials, connector)
                    .build()
                    .map_err(|e| IngestError::Config(format!("cannot open {source_path}: {e}")))?;
                let prefix = Path::from(prefix.trim_end_matches('/'));
                let base_url = if prefix.as_ref().is_empty() {
                    format!("s3://{bucket}")
                } else {
                    format!("s3://{bucket}/{prefix}")
                };
                Ok(Source {
                    store: Arc::new(store),
                    prefix,
                    local: None,
                    base_url,
                })
            }
        }
    }

    /// The files under the prefix that `options` selects and the ledger does not hold, oldest
    /// first, cut to the run's bounds (at least one file, however big).
    ///
    /// The listing is streamed, never held whole: each entry is filtered as it arrives, looked
    /// up in the ledger [`LEDGER_PAGE`] at a time, and only the `max_files_per_run` oldest new
    /// files are kept (a run takes no more), so memory stays bounded by that option however many
    /// objects the prefix holds. Entries no older than the newest of a full selection are not
    /// even looked up.
    pub async fn new_files(
        &self,
        pool: &PgPool,
        ingestion_id: Uuid,
        options: &IngestOptions,
        limits: Limits,
    ) -> Result<Vec<Candidate>, IngestError> {
        let keep = usize::try_from(options.max_files_per_run).unwrap_or(usize::MAX);
        let mut listing = self.store.list(if self.prefix.as_ref().is_empty() {
            None
        } else {
            Some(&self.prefix)
        });
        let mut oldest = Oldest {
            keep,
            heap: BinaryHeap::new(),
        };
        let mut page: Vec<Candidate> = Vec::new();
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| IngestError::store(self.prefix.as_ref(), e))?
        {
            let Some(c) = self.candidate(meta, options) else {
                continue;
            };
            if oldest.would_keep(&c) {
                page.push(c);
            }
            if page.len() >= LEDGER_PAGE {
                oldest.add_new(pool, ingestion_id, &mut page).await?;
            }
        }
        oldest.add_new(pool, ingestion_id, &mut page).await?;
        let found: Vec<Candidate> = oldest
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|ByAge(c)| c)
            .collect();
        // A stored option above the operator's ceiling (lowered since) is cut to it.
        let max_bytes = options.max_bytes_per_run.min(limits.max_bytes_per_run);
        let mut bytes = 0u64;
        let mut out = Vec::new();
        for c in found {
            if out.len() as u64 >= options.max_files_per_run
                || (!out.is_empty() && bytes + c.size > max_bytes)
            {
                break;
            }
            if c.size > limits.max_file_bytes {
                return Err(IngestError::file(
                    &c.url,
                    format!(
                        "{} bytes is more than a run may read of one file ({} bytes, \
                         AUTOLOADER_MAX_FILE_BYTES)",
                        c.size, limits.max_file_bytes
                    ),
                ));
            }
            bytes += c.size;
            out.push(c);
        }
        Ok(out)
    }

    /// A listed object as a candidate, if `options` select it: not hidden (no path segment
    /// starting with `.` or `_`), matching the glob, not empty.
    fn candidate(&self, m: ObjectMeta, options: &IngestOptions) -> Option<Candidate> {
        let relative = m.location.prefix_match(&self.prefix).map(|parts| {
            parts
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })?;
        let hidden = relative
            .split('/')
            .any(|seg| seg.starts_with('.') || seg.starts_with('_'));
        let wanted = options.glob.as_ref().is_none_or(|g| g.matches(&relative));
        // An empty file is most likely still being written; it is taken once it has content.
        (!hidden && wanted && !relative.is_empty() && m.size > 0).then_some(Candidate {
            location: m.location,
            url: format!("{}/{relative}", self.base_url),
            relative,
            size: m.size,
            etag: m.e_tag,
            last_modified: m.last_modified,
        })
    }

    /// The candidate, ready to read. A local file is opened here, beneath its root (see
    /// [`super::local`]): one that a symlink or `..` leads out of the root fails, named.
    /// `limits` bound what a compressed file may decompress to.
    pub fn open_file(&self, c: &Candidate, limits: Limits) -> Result<SourceFile, IngestError> {
        let local = match &self.local {
            None => None,
            Some(l) => {
                let path =
                    l.fs.path_to_filesystem(&c.location)
                        .map_err(|e| IngestError::file(&c.url, format!("cannot resolve: {e}")))?;
                let below = path.strip_prefix(l.root.path()).map_err(|_| {
                    IngestError::file(&c.url, "lies outside the allowed directories".into())
                })?;
                let file = l
                    .root
                    .open_file(below)
                    .map_err(|e| IngestError::file(&c.url, e.describe(l.root.path())))?;
                Some(Arc::new(file))
            }
        };
        Ok(SourceFile {
            location: c.location.clone(),
            size: c.size,
            name: c.url.clone(),
            local,
            max_decompressed: limits.max_file_bytes,
            parquet_footer: Default::default(),
        })
    }
}
