//! Finding the files a run loads: list the source prefix, drop what the ledger says is loaded,
//! oldest first, bounded per run. The listing streams through: what is held is the run's
//! selection (at most `max_files_per_run` files) and one page of ledger look-ups, not the prefix.
//!
//! Under `discovery = incremental` ([`Source::plan`]) a run lists only the keys after the
//! greatest one the ledger holds under the prefix (S3 `start-after`; a local tree through
//! [`super::walk`]), and the whole prefix when `full_listing_interval` has passed since the last
//! full listing a run committed; it takes new files in key order, so that what a bound leaves
//! for later sorts after what it took, where the next run's listing starts. The ledger still
//! decides what is new in both modes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use autoloader::ingestions::definition::{SourcePath, SourceType};
use autoloader::ingestions::options::{Discovery, IngestOptions, Limits};
use autoloader::ingestions::roots::FileRoots;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
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

/// A candidate in the order a run takes files: oldest first (last modified, then path), or by
/// key (`age` is `None`: the path alone decides).
struct Ranked {
    age: Option<DateTime<Utc>>,
    c: Candidate,
}

impl Ranked {
    fn key(&self) -> (Option<DateTime<Utc>>, &str) {
        (self.age, &self.c.relative)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The `keep` first new files seen so far (oldest, or first by key); the last of them on top,
/// to be dropped first.
struct Oldest {
    keep: usize,
    by_key: bool,
    heap: BinaryHeap<Ranked>,
    /// A file that may be new was left out (the selection was full): the listing found more
    /// than the run takes.
    passed_over: bool,
}

impl Oldest {
    fn rank(&self, c: Candidate) -> Ranked {
        Ranked {
            age: (!self.by_key).then_some(c.last_modified),
            c,
        }
    }

    /// Whether `c` would be kept if the ledger does not hold it.
    fn would_keep(&self, c: &Candidate) -> bool {
        let age = (!self.by_key).then_some(c.last_modified);
        self.heap.len() < self.keep
            || self
                .heap
                .peek()
                .is_some_and(|last| (age, c.relative.as_str()) < last.key())
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
            if loaded.contains(&c.url) {
                continue;
            }
            if !self.would_keep(&c) {
                self.passed_over = true;
                continue;
            }
            let ranked = self.rank(c);
            self.heap.push(ranked);
            if self.heap.len() > self.keep {
                self.heap.pop();
                self.passed_over = true;
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
    /// The source directory, resolved.
    dir: std::path::PathBuf,
}

/// What a run lists, and how it takes what it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingPlan {
    /// List only the keys (paths below the prefix) after this one; `None`: the whole prefix.
    pub start_after: Option<String>,
    /// Take new files in key order (incremental discovery) rather than oldest first.
    pub by_key: bool,
    /// Incremental discovery listing the whole prefix: when it started (the database's clock),
    /// recorded with the run's commit when the run takes everything new the listing found.
    pub full_listing_at: Option<DateTime<Utc>>,
}

impl ListingPlan {
    /// `full` or `incremental`, as the run's log says.
    pub fn kind(&self) -> &'static str {
        if self.start_after.is_some() {
            "incremental"
        } else {
            "full"
        }
    }
}

/// What a listing found.
#[derive(Debug)]
pub struct Discovered {
    /// The new files the run takes, in the order it takes them.
    pub files: Vec<Candidate>,
    /// Keys the listing returned (before the hidden-name, glob and empty-file filters).
    pub keys_listed: u64,
    /// Whether the run takes every new file the listing found (no bound left one for later).
    pub complete: bool,
    /// The first new files a bound left for a later run, in the order runs take them (at most
    /// the `leftover` asked for: a dry run asks, a run does not).
    pub left: Vec<Candidate>,
    /// More new files wait beyond those of `left`.
    pub more_left: bool,
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
                    local: Some(LocalDir { fs, root, dir }),
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

    /// What this run lists, as the ingestion's `discovery` says: the whole prefix (`full`); or
    /// (`incremental`) the keys after the greatest one the ledger holds under the prefix, unless
    /// the full listing is due (`full_listing_interval` since the last one recorded) or the
    /// ledger holds none there.
    pub async fn plan(
        &self,
        pool: &PgPool,
        ingestion_id: Uuid,
        options: &IngestOptions,
    ) -> Result<ListingPlan, IngestError> {
        if options.discovery == Discovery::Full {
            return Ok(ListingPlan {
                start_after: None,
                by_key: false,
                full_listing_at: None,
            });
        }
        let due = autoloader::discovery::discovery_full_listing_due(
            pool,
            ingestion_id,
            options.full_listing_interval,
        )
        .await
        .map_err(IngestError::Db)?;
        let greatest = if due.due {
            None
        } else {
            autoloader::ledger::ledger_greatest_under(pool, ingestion_id, &self.base_url)
                .await
                .map_err(IngestError::Db)?
        };
        let start_after = greatest.and_then(|url| {
            url.strip_prefix(&self.base_url)
                .and_then(|rest| rest.strip_prefix('/'))
                .map(str::to_owned)
        });
        Ok(ListingPlan {
            full_listing_at: start_after.is_none().then_some(due.now),
            start_after,
            by_key: true,
        })
    }

    /// The listing `plan` asks for: the whole prefix, or its keys after `start_after` (S3:
    /// `start-after`; a local tree: [`super::walk`], which skips what sorts before).
    fn list(&self, plan: &ListingPlan) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        match (&plan.start_after, &self.local) {
            (None, _) => self.store.list(prefix),
            (Some(after), Some(local)) => super::walk::list_after(local.dir.clone(), after.clone()),
            (Some(after), None) => {
                let offset = match prefix {
                    Some(p) => format!("{p}/{after}"),
                    None => after.clone(),
                };
                match Path::parse(&offset) {
                    Ok(offset) => self.store.list_with_offset(prefix, &offset),
                    Err(e) => futures::stream::once(async move { Err(e.into()) }).boxed(),
                }
            }
        }
    }

    /// The files under the prefix that `options` selects and the ledger does not hold, oldest
    /// first (by key, when `plan.by_key`), cut to the run's bounds (at least one file, however
    /// big), listed as `plan` says.
    ///
    /// The listing is streamed, never held whole: each entry is filtered as it arrives, looked
    /// up in the ledger [`LEDGER_PAGE`] at a time, and only the `max_files_per_run` first new
    /// files are kept (a run takes no more), so memory stays bounded by that option however many
    /// objects the prefix holds. Entries after the last of a full selection are not even looked
    /// up.
    ///
    /// `leftover` more new files are kept beyond the run's selection and returned as those left
    /// for later (a dry run shows them); the run's own selection is the same whatever `leftover`
    /// is, since it is the head of one order.
    pub async fn new_files(
        &self,
        pool: &PgPool,
        ingestion_id: Uuid,
        options: &IngestOptions,
        limits: Limits,
        plan: &ListingPlan,
        leftover: usize,
    ) -> Result<Discovered, IngestError> {
        let keep = usize::try_from(options.max_files_per_run)
            .unwrap_or(usize::MAX)
            .saturating_add(leftover);
        let mut listing = self.list(plan);
        let mut oldest = Oldest {
            keep,
            by_key: plan.by_key,
            heap: BinaryHeap::new(),
            passed_over: false,
        };
        let mut page: Vec<Candidate> = Vec::new();
        let mut keys_listed = 0u64;
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| IngestError::store(self.prefix.as_ref(), e))?
        {
            keys_listed += 1;
            let Some(c) = self.candidate(meta, options) else {
                continue;
            };
            if oldest.would_keep(&c) {
                page.push(c);
            } else {
                oldest.passed_over = true;
            }
            if page.len() >= LEDGER_PAGE {
                oldest.add_new(pool, ingestion_id, &mut page).await?;
            }
        }
        oldest.add_new(pool, ingestion_id, &mut page).await?;
        let passed_over = oldest.passed_over;
        let found: Vec<Candidate> = oldest
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.c)
            .collect();
        let selected = found.len();
        // A stored option above the operator's ceiling (lowered since) is cut to it.
        let max_bytes = options.max_bytes_per_run.min(limits.max_bytes_per_run);
        let mut bytes = 0u64;
        let mut out = Vec::new();
        let mut found = found.into_iter();
        for c in found.by_ref() {
            if out.len() as u64 >= options.max_files_per_run
                || (!out.is_empty() && bytes + c.size > max_bytes)
            {
                let mut left = vec![c];
                left.extend(found.by_ref().take(leftover.saturating_sub(1)));
                let more_left = passed_over || found.next().is_some();
                return Ok(Discovered {
                    complete: false,
                    files: out,
                    keys_listed,
                    left: if leftover == 0 { Vec::new() } else { left },
                    more_left,
                });
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
        Ok(Discovered {
            complete: !passed_over && out.len() == selected,
            files: out,
            keys_listed,
            left: Vec::new(),
            more_left: passed_over,
        })
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
