//! Snapshot expiry: iceberg's own `expire_snapshots` action (snapshots older than the retention,
//! the last N of `main` always kept), committed through the fenced catalog, then the deletion of
//! the files only the expired snapshots referenced.
//!
//! What to delete is computed from the metadata before and after the commit: the manifest lists,
//! manifests and data files the expired snapshots reach, less everything any snapshot of the
//! committed metadata reaches (a load that committed meanwhile is in it). Data files a
//! compaction replaced are deleted here, once no retained snapshot lists them.
//!
//! A crash between the commit and the deletions leaves those files unreferenced: orphan
//! removal ([`super::orphans`]) deletes them once they are older than its safety window.
//!
//! A reader that planned a scan of an expired snapshot (it holds its id, or the file list it
//! planned) can no longer read it once the files are deleted: it must plan again against the
//! current metadata, where the snapshot no longer exists.

use std::collections::HashSet;

use iceberg::spec::SnapshotRef;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use super::{delete_files, Maintenance, MaintenanceReport, Reach};
use crate::ingest::table;
use crate::ingest::IngestError;

pub(super) async fn expire(
    m: &Maintenance<'_>,
    table: Table,
) -> Result<MaintenanceReport, IngestError> {
    let mut report = MaintenanceReport::default();
    let now = chrono::Utc::now().timestamp_millis();
    let retention = i64::try_from(m.settings.snapshot_retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(retention);
    let keep = m.settings.min_snapshots_to_keep.max(1);
    if !anything_to_expire(&table, cutoff, keep) {
        report.note = Some("nothing to expire".into());
        return Ok(report);
    }
    m.check_cancelled()?;
    let tx = Transaction::new(&table);
    let action = tx
        .expire_snapshots()
        .expire_older_than_ms(cutoff)
        .retain_last(keep);
    let tx = action.apply(tx).map_err(|e| IngestError::catalog(&e))?;
    // Expiry leaves the current snapshot, and so its small files, as they were.
    let facts = m.facts(autoloader::tables::SmallFiles::Added(0));
    let after = table::commit_maintenance(m.catalog, m.pool, &m.fence, facts, tx).await?;

    let kept: HashSet<i64> = after
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .collect();
    let expired: Vec<SnapshotRef> = table
        .metadata()
        .snapshots()
        .filter(|s| !kept.contains(&s.snapshot_id()))
        .cloned()
        .collect();
    report.snapshots_expired = expired.len() as u64;
    tracing::info!(
        expired = expired.len(),
        kept = kept.len(),
        "snapshots expired"
    );
    if expired.is_empty() {
        return Ok(report);
    }

    let retained: Vec<SnapshotRef> = after.metadata().snapshots().cloned().collect();
    let gone = Reach::of(&table, &expired, false).await?;
    let still = Reach::of(&after, &retained, false).await?.keys();
    let doomed: Vec<(String, u64)> = gone
        .files
        .into_iter()
        .filter(|(f, _)| !still.contains(&crate::ingest::warehouse::same_file_key(f)))
        .collect();
    m.check_cancelled()?;
    let (files, bytes) = delete_files(&after, doomed).await?;
    report.files_deleted = files;
    report.bytes_deleted = bytes;
    Ok(report)
}

/// Whether iceberg's action may expire something: a snapshot older than `cutoff` that is not
/// among the last `keep` of `main` (the action also keeps other refs' heads; when one of those
/// is all there is, the commit changes nothing but the metadata file).
fn anything_to_expire(table: &Table, cutoff: i64, keep: usize) -> bool {
    let m = table.metadata();
    let mut protected: HashSet<i64> = HashSet::new();
    let mut next = m.current_snapshot_id();
    for _ in 0..keep {
        let Some(id) = next else { break };
        protected.insert(id);
        next = m.snapshot_by_id(id).and_then(|s| s.parent_snapshot_id());
    }
    m.snapshots()
        .any(|s| s.timestamp_ms() < cutoff && !protected.contains(&s.snapshot_id()))
}
