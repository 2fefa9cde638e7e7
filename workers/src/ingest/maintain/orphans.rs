//! Orphan removal: files under the table's location that no snapshot references.
//!
//! Order, so that a writer committing meanwhile never loses a file:
//! 1. list every file under the table's `data/` and `metadata/` (where Iceberg writes), streamed,
//!    in batches; for each batch, look up the runs named in data file names
//!    (`run-<run id>-a<attempt>-…`, [`table::file_name_prefix`]);
//! 2. only then load the current metadata and compute the referenced set: the current metadata
//!    file, the metadata log, every snapshot's manifest list, its manifests, every file they
//!    list, the statistics files. A load that committed after the listing is in it. Files under
//!    the location of another table of the catalog (a table `ns.events.data` lies inside
//!    `ns.events`'s `data/`) are that table's, and never candidates.
//!
//! A listed file that is not referenced is removed when
//! - its name carries a run and attempt that can never commit (the run is gone, or is not
//!   RUNNING at that attempt: attempts only grow), whatever its age;
//! - otherwise, it is older than the safety window.
//!
//! The file of a live attempt (its run RUNNING at that attempt) is never removed: that attempt
//! may be about to commit it. A run deletes at most [`MAX_DELETIONS`] files and holds at most
//! [`MAX_CANDIDATES`] candidates; the rest are left for the next run, and the report says so.

use std::collections::HashMap;

use futures::StreamExt;
use iceberg::table::Table;
use uuid::Uuid;

use super::{delete_files, Maintenance, MaintenanceReport, Reach};
use crate::ingest::warehouse::{same_file_key, Listed};
use crate::ingest::IngestError;

/// Files deleted by one run at most; the rest wait for the next one.
pub const MAX_DELETIONS: usize = 100_000;

/// Unreferenced-looking files one run holds at most while it lists.
pub const MAX_CANDIDATES: usize = 1_000_000;

/// Files listed before their runs are looked up.
const BATCH: usize = 1_000;

pub(super) async fn remove_orphans(
    m: &Maintenance<'_>,
    table: Table,
) -> Result<MaintenanceReport, IngestError> {
    let mut report = MaintenanceReport::default();
    let location = table.metadata().location().trim_end_matches('/').to_owned();
    let window = chrono::Duration::from_std(m.settings.orphan_safety_window)
        .unwrap_or(chrono::Duration::MAX);
    let old_before = chrono::Utc::now() - window;

    let mut listing = futures::stream::iter(
        ["data", "metadata"]
            .into_iter()
            .map(|dir| m.warehouse.list(&format!("{location}/{dir}/")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IngestError::catalog(&e))?,
    )
    .flatten()
    .chunks(BATCH);
    let mut candidates: Vec<Listed> = Vec::new();
    let mut listed = 0u64;
    let mut truncated = false;
    while let Some(batch) = listing.next().await {
        m.check_cancelled()?;
        let batch: Vec<Listed> = batch
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| IngestError::catalog(&e))?;
        listed += batch.len() as u64;
        let named: Vec<Option<(Uuid, i32)>> = batch.iter().map(|f| run_of(&f.location)).collect();
        let mut ids: Vec<Uuid> = named.iter().flatten().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let runs: HashMap<Uuid, autoloader::runs::lease::RunAttempt> = if ids.is_empty() {
            HashMap::new()
        } else {
            autoloader::runs::lease::run_attempts(m.pool, &ids)
                .await
                .map_err(IngestError::Db)?
                .into_iter()
                .map(|r| (r.run_id, r))
                .collect()
        };
        for (file, named) in batch.into_iter().zip(named) {
            let removable = match named {
                // A run that is gone, or has moved past this attempt, never commits it.
                Some((id, attempt)) => runs.get(&id).is_none_or(|r| !r.is_live(attempt)),
                None => file.last_modified < old_before,
            };
            if removable {
                candidates.push(file);
            }
        }
        if candidates.len() >= MAX_CANDIDATES {
            truncated = true;
            break;
        }
    }
    drop(listing);

    // After the listing and the run lookups: whatever committed meanwhile is referenced here,
    // and every table whose files the listing can have met is in the catalog.
    let current = m.load().await?;
    let referenced = referenced(&current).await?;
    let others: Vec<String> = crate::ingest::table::tables_inside(m.pool, &location)
        .await?
        .iter()
        .flat_map(|root| {
            let root = same_file_key(root);
            [format!("{root}/data/"), format!("{root}/metadata/")]
        })
        .collect();
    let mut orphans: Vec<(String, u64)> = candidates
        .into_iter()
        .filter(|f| !referenced.contains(&same_file_key(&f.location)))
        .filter(|f| {
            let key = same_file_key(&f.location);
            !others.iter().any(|o| key.starts_with(o.as_str()))
        })
        .map(|f| (f.location, f.size))
        .collect();
    if orphans.len() > MAX_DELETIONS {
        report.note = Some(format!(
            "{} orphan files found; {MAX_DELETIONS} deleted, the rest are left for the next run",
            orphans.len()
        ));
        orphans.truncate(MAX_DELETIONS);
    } else if truncated {
        report.note = Some(format!(
            "stopped listing at {MAX_CANDIDATES} candidate files; the rest are left for the next run"
        ));
    }
    m.check_cancelled()?;
    tracing::info!(listed, orphans = orphans.len(), "removing orphan files");
    let (files, bytes) = delete_files(&current, orphans).await?;
    report.files_deleted = files;
    report.bytes_deleted = bytes;
    Ok(report)
}

/// Every file the table's metadata references, in [`same_file_key`] form.
async fn referenced(table: &Table) -> Result<std::collections::HashSet<String>, IngestError> {
    let md = table.metadata();
    let snapshots: Vec<_> = md.snapshots().cloned().collect();
    // Every entry, deleted ones too: a file still listed anywhere is never an orphan.
    let mut keys = Reach::of(table, &snapshots, true).await?.keys();
    if let Some(current) = table.metadata_location() {
        keys.insert(same_file_key(current));
    }
    keys.extend(
        md.metadata_log()
            .iter()
            .map(|l| same_file_key(&l.metadata_file)),
    );
    keys.extend(
        md.statistics_iter()
            .map(|s| same_file_key(&s.statistics_path)),
    );
    keys.extend(
        md.partition_statistics_iter()
            .map(|s| same_file_key(&s.statistics_path)),
    );
    Ok(keys)
}

/// The run and attempt a data file's name carries (`run-<uuid>-a<n>-…`), if it carries one.
pub fn run_of(location: &str) -> Option<(Uuid, i32)> {
    let name = location.rsplit('/').next()?;
    let rest = name.strip_prefix("run-")?;
    let id = Uuid::parse_str(rest.get(..36)?).ok()?;
    let rest = rest.get(36..)?.strip_prefix("-a")?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    let attempt = digits.parse().ok()?;
    rest.get(digits.len()..)?
        .starts_with('-')
        .then_some((id, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::table;

    #[test]
    fn data_file_names_carry_their_run_and_attempt() {
        let id = Uuid::parse_str("0190a8b2-7c1e-7d3a-9f00-123456789abc").ok();
        let fence = table::Fence {
            run_id: id.unwrap_or_default(),
            attempt: 12,
            worker_id: "w".into(),
            ingestion_id: Uuid::nil(),
        };
        let name = format!(
            "s3://b/wh/t/data/{}-w3-00000-0.parquet",
            table::file_name_prefix(&fence)
        );
        assert_eq!(run_of(&name), Some((fence.run_id, 12)));
        assert_eq!(run_of("file:///wh/t/data/00000-0-abc.parquet"), None);
        assert_eq!(
            run_of("file:///wh/t/data/run-not-a-uuid-a1-x.parquet"),
            None
        );
        assert_eq!(
            run_of("/wh/run-0190a8b2-7c1e-7d3a-9f00-123456789abc-a-x.parquet"),
            None
        );
        assert_eq!(
            run_of("/wh/run-0190a8b2-7c1e-7d3a-9f00-123456789abc-a7"),
            None
        );
    }
}
