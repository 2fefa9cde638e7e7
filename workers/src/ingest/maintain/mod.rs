//! Table maintenance: the three operations a maintenance run performs on one Iceberg table.
//!
//! - [`compact`]: rewrites a partition's small data files into files near the target size, as
//!   one `replace` snapshot whose manifests are merged into one per partition spec. Rows are
//!   never lost or duplicated: the replaced files' rows are exactly the new files' rows, and the
//!   commit checks that every replaced file is still live.
//! - [`expire`]: expires old snapshots with iceberg's own action, then deletes the files only
//!   the expired snapshots referenced.
//! - [`orphans`]: deletes files under the table's location that no snapshot references: those
//!   of attempts that can never commit at once, anything else once it is older than a window.
//!
//! Every commit is fenced by the maintenance run's lease, like a load's ([`super::table`]): a
//! worker that lost its lease commits nothing. Deletions happen only after the commit that makes
//! the files unreferenced; a crash between the two leaves orphans that [`orphans`] takes later.

pub mod compact;
pub mod expire;
pub mod orphans;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{ManifestEntryRef, ManifestFile, SnapshotRef};
use iceberg::table::Table;
use iceberg::TableIdent;
use iceberg_catalog_sql::SqlCatalog;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::table::{self, Fence};
use super::warehouse::WarehouseStorageFactory;
use super::IngestError;

/// Manifests (and manifest lists) read at once.
const READS_IN_FLIGHT: usize = 8;

/// Files deleted at once.
const DELETES_IN_FLIGHT: usize = 16;

/// What maintenance keeps and aims for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceSettings {
    /// Snapshots older than this are expired (default 7 days).
    pub snapshot_retention: Duration,
    /// The last N snapshots of `main` are always kept, however old (default 1).
    pub min_snapshots_to_keep: usize,
    /// The size compaction writes files of (default 128 MiB); files under 75% of it are small.
    pub target_file_size: u64,
    /// Unreferenced files younger than this are never removed (default 3 days): a writer may be
    /// about to commit them.
    pub orphan_safety_window: Duration,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        MaintenanceSettings {
            snapshot_retention: Duration::from_secs(7 * 24 * 3600),
            min_snapshots_to_keep: 1,
            target_file_size: 128 << 20,
            orphan_safety_window: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl MaintenanceSettings {
    /// Files smaller than this are small: compaction candidates.
    pub fn small_file_size(&self) -> u64 {
        self.target_file_size / 4 * 3
    }
}

/// Which operation a maintenance run performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceKind {
    Compact,
    ExpireSnapshots,
    RemoveOrphans,
}

/// A test hook run once, right before a compaction's first commit attempt.
pub type BeforeCommit = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// One maintenance run on one table.
pub struct Maintenance<'a> {
    pub catalog: &'a SqlCatalog,
    pub pool: &'a PgPool,
    pub table: TableIdent,
    /// The maintenance run's lease (its `ingestion_id` is the ingestion that owns the settings).
    pub fence: Fence,
    /// The tenant owning the table: whose `table_facts` row each commit writes.
    pub tenant_id: uuid::Uuid,
    pub settings: MaintenanceSettings,
    pub cancel: CancellationToken,
    /// Listing the table's location (deletes go through the table's own file IO).
    pub warehouse: &'a WarehouseStorageFactory,
    /// Test hook: runs once before a compaction's first commit attempt. `None` in production.
    pub before_commit: Option<BeforeCommit>,
}

/// What a maintenance run did, and the table after it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceReport {
    /// The snapshot the run committed, if any.
    pub snapshot_id: Option<i64>,
    /// Compaction input.
    pub files_read: u64,
    pub bytes_read: u64,
    pub rows: u64,
    /// Compaction output.
    pub files_written: u64,
    pub bytes_written: u64,
    pub snapshots_expired: u64,
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    /// The table's current snapshot after the run: its data files, their bytes, and those
    /// smaller than 75% of the target size.
    pub data_files: u64,
    pub total_bytes: u64,
    pub small_files: u64,
    /// Why the run did less than it could (nothing to do, a bound reached).
    pub note: Option<String>,
}

impl Maintenance<'_> {
    /// Performs `kind` on the table and reports what it did and how the table looks after.
    pub async fn run(&self, kind: MaintenanceKind) -> Result<MaintenanceReport, IngestError> {
        let table = self.load().await?;
        let mut report = match kind {
            MaintenanceKind::Compact => compact::compact(self, table).await?,
            MaintenanceKind::ExpireSnapshots => expire::expire(self, table).await?,
            MaintenanceKind::RemoveOrphans => orphans::remove_orphans(self, table).await?,
        };
        let after = self.load().await?;
        let small = self.settings.small_file_size();
        for e in live_entries(&after).await? {
            report.data_files += 1;
            report.total_bytes += e.file_size_in_bytes();
            if e.file_size_in_bytes() < small {
                report.small_files += 1;
            }
        }
        tracing::info!(?kind, ?report, "maintenance done");
        Ok(report)
    }

    /// The table facts a commit of this run records, with how it changes the small files.
    fn facts(&self, small: autoloader::tables::SmallFiles) -> table::FactsFor {
        table::FactsFor {
            tenant_id: self.tenant_id,
            ingestion_id: self.fence.ingestion_id,
            small_file_bytes: self.settings.small_file_size(),
            small,
        }
    }

    async fn load(&self) -> Result<Table, IngestError> {
        table::load(self.catalog, &self.table)
            .await?
            .ok_or_else(|| IngestError::Config(format!("the table {} does not exist", self.table)))
    }

    fn check_cancelled(&self) -> Result<(), IngestError> {
        if self.cancel.is_cancelled() {
            return Err(IngestError::LeaseLost);
        }
        Ok(())
    }
}

/// The manifests of `snapshot`.
async fn manifests_of(
    table: &Table,
    snapshot: &SnapshotRef,
) -> Result<Vec<ManifestFile>, IngestError> {
    let list = table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map_err(|e| IngestError::catalog(&e))?;
    Ok(list.entries().to_vec())
}

/// The entries of `manifest`, with inherited sequence numbers filled in.
async fn entries_of(
    table: &Table,
    manifest: &ManifestFile,
) -> Result<Vec<ManifestEntryRef>, IngestError> {
    let m = manifest
        .load_manifest(table.file_io())
        .await
        .map_err(|e| IngestError::catalog(&e))?;
    Ok(m.entries().to_vec())
}

/// The live data files of the table's current snapshot (none without one).
async fn live_entries(table: &Table) -> Result<Vec<ManifestEntryRef>, IngestError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let manifests = manifests_of(table, snapshot).await?;
    let per_manifest: Vec<Vec<ManifestEntryRef>> = futures::stream::iter(manifests)
        .map(|m| async move { entries_of(table, &m).await })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(per_manifest
        .into_iter()
        .flatten()
        .filter(|e| e.is_alive())
        .collect())
}

/// Files some snapshots reach, with their sizes where known.
#[derive(Debug, Default)]
struct Reach {
    /// Location → size in bytes (0 when unknown: manifest lists).
    files: HashMap<String, u64>,
}

impl Reach {
    /// Everything `snapshots` of `table` reach: their manifest lists, manifests, and the files
    /// those manifests list (every entry when `all_entries`, else the live ones only: a file a
    /// snapshot lists as deleted is not read through it). Each manifest is read once.
    async fn of(
        table: &Table,
        snapshots: &[SnapshotRef],
        all_entries: bool,
    ) -> Result<Reach, IngestError> {
        let mut reach = Reach::default();
        // Owned snapshots (an `Arc` each): a stream of borrowed ones makes a future that is
        // `Send` only for one lifetime, which a worker's task cannot hold.
        let lists: Vec<(String, Vec<ManifestFile>)> =
            futures::stream::iter(snapshots.iter().cloned())
                .map(|s| async move {
                    Ok::<_, IngestError>((
                        s.manifest_list().to_owned(),
                        manifests_of(table, &s).await?,
                    ))
                })
                .buffered(READS_IN_FLIGHT)
                .try_collect()
                .await?;
        let mut manifests: HashMap<String, ManifestFile> = HashMap::new();
        for (list, files) in lists {
            reach.files.insert(list, 0);
            for m in files {
                manifests.entry(m.manifest_path.clone()).or_insert(m);
            }
        }
        let mut entries = futures::stream::iter(manifests.into_values())
            .map(|m| async move {
                let entries = entries_of(table, &m).await?;
                Ok::<_, IngestError>((m, entries))
            })
            .buffer_unordered(READS_IN_FLIGHT);
        while let Some(got) = entries.next().await {
            let (m, entries) = got?;
            reach
                .files
                .insert(m.manifest_path.clone(), m.manifest_length.max(0) as u64);
            for e in entries.iter().filter(|e| all_entries || e.is_alive()) {
                reach
                    .files
                    .insert(e.file_path().to_owned(), e.file_size_in_bytes());
            }
        }
        Ok(reach)
    }

    fn keys(&self) -> HashSet<String> {
        self.files
            .keys()
            .map(|f| super::warehouse::same_file_key(f))
            .collect()
    }
}

/// Deletes `files` (location, size) through the table's file IO, a bounded number at once;
/// returns how many were deleted and their bytes. A file already gone counts as deleted.
async fn delete_files(table: &Table, files: Vec<(String, u64)>) -> Result<(u64, u64), IngestError> {
    let io = table.file_io();
    let done: Vec<u64> = futures::stream::iter(files)
        .map(|(location, size)| async move {
            match io.delete(&location).await {
                Ok(()) => Ok(size),
                Err(e) => {
                    // A local file already removed is not an error (S3 deletes are idempotent).
                    match io.exists(&location).await {
                        Ok(false) => Ok(size),
                        _ => Err(IngestError::catalog(&e)),
                    }
                }
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok((done.len() as u64, done.iter().sum()))
}
