//! Compaction: a partition's small data files rewritten into files near the target size, as one
//! Iceberg `replace` snapshot.
//!
//! iceberg 0.10.1 has no rewrite action, so the snapshot is written on its public spec types,
//! the way its `fast_append` does (transaction/snapshot.rs): a manifest writer per partition
//! spec, the manifest list writer, `Snapshot::builder`, `TableMetadataBuilder::add_snapshot` and
//! `set_ref(main)`. Sequence numbers as the spec asks: new files are ADDED and inherit the new
//! snapshot's sequence number; replaced files are DELETED and every other live file EXISTING,
//! each with its original data and file sequence numbers. All of them go into one manifest per
//! partition spec, so a table of 1,440 one-minute appends is planned from one manifest.
//!
//! Planning: the current snapshot's live data files are grouped by (spec, partition value);
//! files under 75% of the target are candidates, bin-packed (largest first) into bins of at
//! most the target; every bin of two or more files is rewritten. Files are read with iceberg's
//! ArrowReader projected to the current schema (columns an older file lacks come back null) and
//! written with its rolling Parquet writer, batch by batch: a bin's rows are never held.
//!
//! Commit: fenced by the lease like a load's. When another writer committed first, the table is
//! reloaded, every replaced file must still be live (else the run fails, transiently, and plans
//! again next time), the manifests are rebuilt against the new current snapshot, and the commit
//! is tried again, at most [`COMMIT_TRIES`] times. The summary names the run and attempt, so a
//! crash after the commit is found by the next attempt, which reports that snapshot and does
//! nothing else. Deleting the replaced files is left to snapshot expiry: readers of older
//! snapshots still need them.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::FileScanTask;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestEntryRef, ManifestListWriter,
    ManifestWriterBuilder, Operation, PartitionKey, Snapshot, SnapshotReference, SnapshotRetention,
    Struct, Summary, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use uuid::Uuid;

use super::{manifests_of, Maintenance, MaintenanceReport};
use crate::ingest::table::{self, Swapped};
use crate::ingest::IngestError;

/// Commit attempts before a compaction gives up (another writer keeps committing first).
pub const COMMIT_TRIES: usize = 5;

/// A live data file and the spec of the manifest that lists it.
#[derive(Clone)]
struct Live {
    spec_id: i32,
    entry: ManifestEntryRef,
}

/// Files of one partition rewritten together.
struct Bin {
    spec_id: i32,
    partition: Struct,
    files: Vec<ManifestEntryRef>,
}

pub(super) async fn compact(
    m: &Maintenance<'_>,
    table: Table,
) -> Result<MaintenanceReport, IngestError> {
    let mut report = MaintenanceReport::default();
    if let Some(done) = table::committed_by(&table, m.fence.run_id) {
        tracing::info!(
            snapshot_id = done.snapshot_id,
            "an earlier attempt of this run committed the compaction"
        );
        report.snapshot_id = Some(done.snapshot_id);
        report.note = Some(format!(
            "attempt {} committed this compaction already",
            done.attempt
        ));
        return Ok(report);
    }
    if table.metadata().format_version() != FormatVersion::V2 {
        return Err(IngestError::Config(format!(
            "compaction rewrites format version 2 tables; {} is {}",
            m.table,
            table.metadata().format_version()
        )));
    }
    let live = live_with_specs(&table).await?;
    if live
        .iter()
        .any(|l| l.entry.content_type() != DataContentType::Data)
    {
        report.note = Some("the table has delete files; it is not compacted".into());
        return Ok(report);
    }
    let bins = plan(
        &live,
        m.settings.target_file_size,
        m.settings.small_file_size(),
    );
    if bins.is_empty() {
        report.note = Some("nothing to compact".into());
        return Ok(report);
    }

    // New files with the spec of the bin they were written for.
    let mut added: Vec<(i32, DataFile)> = Vec::new();
    let mut replaced: HashSet<String> = HashSet::new();
    for bin in &bins {
        m.check_cancelled()?;
        let written = rewrite(m, &table, bin, &mut report).await?;
        report.files_written += written.len() as u64;
        report.bytes_written += written.iter().map(|f| f.file_size_in_bytes()).sum::<u64>();
        added.extend(written.into_iter().map(|f| (bin.spec_id, f)));
        replaced.extend(bin.files.iter().map(|e| e.file_path().to_owned()));
    }
    tracing::info!(
        bins = bins.len(),
        files_read = report.files_read,
        files_written = report.files_written,
        rows = report.rows,
        "compacted files written; committing"
    );

    let mut base = table;
    let mut base_live = live;
    if let Some(hook) = &m.before_commit {
        hook().await;
    }
    for attempt in 1..=COMMIT_TRIES {
        m.check_cancelled()?;
        let still: HashSet<&str> = base_live.iter().map(|l| l.entry.file_path()).collect();
        if let Some(gone) = replaced.iter().find(|f| !still.contains(f.as_str())) {
            return Err(IngestError::CatalogTransient(format!(
                "{gone} is no longer live (another writer replaced it); nothing was committed"
            )));
        }
        let (metadata, snapshot_id) = stage(m, &base, &base_live, &replaced, &added).await?;
        // The small files after this commit, counted: those kept, and those written.
        let small = m.settings.small_file_size();
        let kept_small = base_live
            .iter()
            .filter(|l| !replaced.contains(l.entry.file_path()))
            .filter(|l| l.entry.file_size_in_bytes() < small)
            .count();
        let added_small = added
            .iter()
            .filter(|(_, f)| f.file_size_in_bytes() < small)
            .count();
        let facts = m.facts(autoloader::tables::SmallFiles::Counted(
            (kept_small + added_small) as i64,
        ));
        match table::swap_metadata(m.pool, &m.fence, facts, &base, metadata).await? {
            Swapped::Committed(_) => {
                report.snapshot_id = Some(snapshot_id);
                tracing::info!(snapshot_id, attempt, "compaction committed");
                return Ok(report);
            }
            Swapped::Conflict => {
                tracing::info!(
                    attempt,
                    "another writer committed first; rebuilding the commit"
                );
                base = m.load().await?;
                base_live = live_with_specs(&base).await?;
            }
        }
    }
    Err(IngestError::CatalogTransient(format!(
        "other writers committed first {COMMIT_TRIES} times; nothing was committed"
    )))
}

/// The live files of the current snapshot, with their manifests' spec ids.
async fn live_with_specs(table: &Table) -> Result<Vec<Live>, IngestError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let manifests = manifests_of(table, snapshot).await?;
    let per: Vec<Vec<Live>> = futures::stream::iter(manifests)
        .map(|mf| async move {
            let entries = super::entries_of(table, &mf).await?;
            Ok::<_, IngestError>(
                entries
                    .into_iter()
                    .filter(|e| e.is_alive())
                    .map(|entry| Live {
                        spec_id: mf.partition_spec_id,
                        entry,
                    })
                    .collect(),
            )
        })
        .buffered(super::READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(per.into_iter().flatten().collect())
}

/// Bins of two or more small files per (spec, partition), each at most `target` bytes
/// (first fit, largest first).
fn plan(live: &[Live], target: u64, small: u64) -> Vec<Bin> {
    let mut groups: HashMap<(i32, Struct), Vec<ManifestEntryRef>> = HashMap::new();
    for l in live.iter().filter(|l| l.entry.file_size_in_bytes() < small) {
        groups
            .entry((l.spec_id, l.entry.data_file().partition().clone()))
            .or_default()
            .push(l.entry.clone());
    }
    let mut keys: Vec<(i32, Struct)> = groups.keys().cloned().collect();
    keys.sort_by_key(|(spec, p)| (*spec, format!("{p:?}")));
    let mut bins = Vec::new();
    for key in keys {
        let Some(mut files) = groups.remove(&key) else {
            continue;
        };
        files.sort_by(|a, b| {
            b.file_size_in_bytes()
                .cmp(&a.file_size_in_bytes())
                .then_with(|| a.file_path().cmp(b.file_path()))
        });
        let mut packed: Vec<(u64, Vec<ManifestEntryRef>)> = Vec::new();
        for f in files {
            let size = f.file_size_in_bytes();
            match packed.iter_mut().find(|(used, _)| used + size <= target) {
                Some((used, bin)) => {
                    *used += size;
                    bin.push(f);
                }
                None => packed.push((size, vec![f])),
            }
        }
        bins.extend(
            packed
                .into_iter()
                .filter(|(_, files)| files.len() >= 2)
                .map(|(_, files)| Bin {
                    spec_id: key.0,
                    partition: key.1.clone(),
                    files,
                }),
        );
    }
    bins
}

/// Writers opened by this process, numbering their files apart.
static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads `bin`'s files and writes their rows into new data files of the bin's partition.
async fn rewrite(
    m: &Maintenance<'_>,
    table: &Table,
    bin: &Bin,
    report: &mut MaintenanceReport,
) -> Result<Vec<DataFile>, IngestError> {
    let md = table.metadata();
    let schema = md.current_schema().clone();
    let spec = md
        .partition_spec_by_id(bin.spec_id)
        .ok_or_else(|| IngestError::Catalog(format!("partition spec {} is missing", bin.spec_id)))?
        .clone();
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let expected: u64 = bin.files.iter().map(|e| e.record_count()).sum();
    let tasks: Vec<iceberg::Result<FileScanTask>> = bin
        .files
        .iter()
        .map(|e| {
            Ok(FileScanTask::builder()
                .with_file_size_in_bytes(e.file_size_in_bytes())
                .with_start(0)
                .with_length(e.file_size_in_bytes())
                .with_record_count(Some(e.record_count()))
                .with_data_file_path(e.file_path().to_owned())
                .with_data_file_format(e.file_format())
                .with_schema(schema.clone())
                .with_project_field_ids(field_ids.clone())
                .with_partition(Some(bin.partition.clone()))
                .with_case_sensitive(true)
                .build())
        })
        .collect();
    let reader = ArrowReaderBuilder::new(table.file_io().clone(), iceberg::Runtime::current())
        .with_data_file_concurrency_limit(2)
        .build();
    let mut batches = reader
        .read(futures::stream::iter(tasks).boxed())
        .map_err(|e| IngestError::catalog(&e))?
        .stream();

    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let locations = DefaultLocationGenerator::new(md).map_err(|e| IngestError::catalog(&e))?;
    let seq = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let names = DefaultFileNameGenerator::new(
        format!("{}-c{seq}", table::file_name_prefix(&m.fence)),
        None,
        table::DATA_FILE_FORMAT,
    );
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, schema.clone()),
        usize::try_from(m.settings.target_file_size).unwrap_or(usize::MAX),
        table.file_io().clone(),
        locations,
        names,
    );
    let key = (!spec.is_unpartitioned())
        .then(|| PartitionKey::new(spec.as_ref().clone(), schema.clone(), bin.partition.clone()));
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(key)
        .await
        .map_err(|e| IngestError::catalog(&e))?;
    let mut rows = 0u64;
    while let Some(batch) = batches.next().await {
        m.check_cancelled()?;
        let batch = batch.map_err(|e| IngestError::catalog(&e))?;
        rows += batch.num_rows() as u64;
        writer
            .write(batch)
            .await
            .map_err(|e| IngestError::catalog(&e))?;
    }
    let written = writer.close().await.map_err(|e| IngestError::catalog(&e))?;
    let rows_written: u64 = written.iter().map(|f| f.record_count()).sum();
    if rows != expected || rows_written != expected {
        return Err(IngestError::Catalog(format!(
            "compaction read {rows} rows and wrote {rows_written} where the manifests list \
             {expected}; nothing was committed"
        )));
    }
    report.files_read += bin.files.len() as u64;
    report.bytes_read += bin
        .files
        .iter()
        .map(|e| e.file_size_in_bytes())
        .sum::<u64>();
    report.rows += rows;
    Ok(written)
}

/// The metadata of `base` with the compaction's `replace` snapshot current: one manifest per
/// partition spec listing `added` as ADDED, `replaced` as DELETED and every other live file of
/// `base` as EXISTING. Returns it and the new snapshot's id.
async fn stage(
    m: &Maintenance<'_>,
    base: &Table,
    live: &[Live],
    replaced: &HashSet<String>,
    added: &[(i32, DataFile)],
) -> Result<(iceberg::spec::TableMetadata, i64), IngestError> {
    let err = |e: iceberg::Error| IngestError::catalog(&e);
    let md = base.metadata();
    let snapshot_id = new_snapshot_id(base);
    let sequence = md.next_sequence_number();
    let commit = Uuid::now_v7();
    let parent = md.current_snapshot_id();

    let mut specs: Vec<i32> = live.iter().map(|l| l.spec_id).collect();
    specs.extend(added.iter().map(|(spec, _)| *spec));
    specs.sort_unstable();
    specs.dedup();

    let (mut added_rows, mut deleted_rows, mut added_size, mut removed_size) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut total_files, mut total_rows, mut total_size) = (0u64, 0u64, 0u64);
    let mut manifests = Vec::new();
    for (n, spec_id) in specs.iter().enumerate() {
        let spec = md
            .partition_spec_by_id(*spec_id)
            .ok_or_else(|| IngestError::Catalog(format!("partition spec {spec_id} is missing")))?;
        let path = format!("{}/metadata/{commit}-m{n}.avro", md.location());
        let out = base.file_io().new_output(path).map_err(err)?;
        let mut writer = ManifestWriterBuilder::new(
            out,
            Some(snapshot_id),
            md.current_schema().clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for (_, f) in added.iter().filter(|(spec, _)| spec == spec_id) {
            // Sequence numbers inherited from the new snapshot.
            writer.add_file(f.clone(), -1).map_err(err)?;
            added_rows += f.record_count();
            added_size += f.file_size_in_bytes();
            total_files += 1;
            total_rows += f.record_count();
            total_size += f.file_size_in_bytes();
        }
        for l in live.iter().filter(|l| l.spec_id == *spec_id) {
            let e = &l.entry;
            let seq = e.sequence_number().ok_or_else(|| {
                IngestError::Catalog(format!("{} has no sequence number", e.file_path()))
            })?;
            if replaced.contains(e.file_path()) {
                writer
                    .add_delete_file(e.data_file().clone(), seq, e.file_sequence_number)
                    .map_err(err)?;
                deleted_rows += e.record_count();
                removed_size += e.file_size_in_bytes();
            } else {
                let added_by = e.snapshot_id().unwrap_or(snapshot_id);
                writer
                    .add_existing_file(e.data_file().clone(), added_by, seq, e.file_sequence_number)
                    .map_err(err)?;
                total_files += 1;
                total_rows += e.record_count();
                total_size += e.file_size_in_bytes();
            }
        }
        manifests.push(writer.write_manifest_file().await.map_err(err)?);
    }

    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-0-{commit}.avro",
        md.location()
    );
    let list_out = base
        .file_io()
        .new_output(list_path.clone())
        .map_err(err)?
        .writer()
        .await
        .map_err(err)?;
    let mut list = ManifestListWriter::v2(list_out, snapshot_id, parent, sequence);
    list.add_manifests(manifests.into_iter()).map_err(err)?;
    list.close().await.map_err(err)?;

    let replaced_files = replaced.len() as u64;
    let f = &m.fence;
    let properties = HashMap::from([
        (table::SUMMARY_RUN_ID.to_owned(), f.run_id.to_string()),
        (table::SUMMARY_ATTEMPT.to_owned(), f.attempt.to_string()),
        (
            table::SUMMARY_INGESTION_ID.to_owned(),
            f.ingestion_id.to_string(),
        ),
        ("added-data-files".to_owned(), added.len().to_string()),
        ("deleted-data-files".to_owned(), replaced_files.to_string()),
        ("added-records".to_owned(), added_rows.to_string()),
        ("deleted-records".to_owned(), deleted_rows.to_string()),
        ("added-files-size".to_owned(), added_size.to_string()),
        ("removed-files-size".to_owned(), removed_size.to_string()),
        ("changed-partition-count".to_owned(), "0".to_owned()),
        ("total-data-files".to_owned(), total_files.to_string()),
        ("total-records".to_owned(), total_rows.to_string()),
        ("total-files-size".to_owned(), total_size.to_string()),
        ("total-delete-files".to_owned(), "0".to_owned()),
        ("total-position-deletes".to_owned(), "0".to_owned()),
        ("total-equality-deletes".to_owned(), "0".to_owned()),
    ]);
    let snapshot = Snapshot::builder()
        .with_manifest_list(list_path)
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent)
        .with_sequence_number(sequence)
        .with_summary(Summary {
            operation: Operation::Replace,
            additional_properties: properties,
        })
        .with_schema_id(md.current_schema_id())
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .build();
    let location = base.metadata_location_result().map_err(err)?.to_owned();
    let metadata = md
        .clone()
        .into_builder(Some(location))
        .add_snapshot(snapshot)
        .map_err(err)?
        .set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
        )
        .map_err(err)?
        .build()
        .map_err(err)?
        .metadata;
    Ok((metadata, snapshot_id))
}

/// A positive snapshot id no snapshot of `table` has.
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) >> 1) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
