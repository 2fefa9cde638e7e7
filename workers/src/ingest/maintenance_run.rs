//! A maintenance run of a table, as the executor runs it: the table named in the run row (which
//! must lie in the tenant's namespace), the ingestion's settings over the operator's defaults,
//! and the report written on the run, fenced by its lease.

use autoloader::ingestions::definition::DestinationTable;
use autoloader::ingestions::options::IngestOptions;
use autoloader::runs::maintenance::run_maintenance_report;
use autoloader::runs::RunKind;
use iceberg::TableIdent;

use super::maintain::{Maintenance, MaintenanceKind, MaintenanceSettings};
use super::table::Fence;
use super::warehouse::WarehouseStorageFactory;
use super::{IngestError, IngestExecutor};
use crate::executor::{RunContext, RunOutput};

impl IngestExecutor {
    /// An ingestion's maintenance settings: each its own, or the operator's default.
    pub(super) fn maintenance_settings(&self, options: &IngestOptions) -> MaintenanceSettings {
        let d = &self.cfg.maintenance;
        let o = &options.maintenance;
        MaintenanceSettings {
            snapshot_retention: o.snapshot_retention.unwrap_or(d.snapshot_retention),
            min_snapshots_to_keep: o.min_snapshots_to_keep.unwrap_or(d.min_snapshots_to_keep)
                as usize,
            target_file_size: o.target_file_size.unwrap_or(d.target_file_size),
            orphan_safety_window: o.orphan_safety_window.unwrap_or(d.orphan_safety_window),
        }
    }

    /// The table facts a commit of `ctx`'s run records, changing the small files by `small`.
    pub(super) fn facts_for(
        &self,
        ctx: &RunContext,
        small: autoloader::tables::SmallFiles,
    ) -> super::table::FactsFor {
        let settings = self.maintenance_settings(&ctx.ingestion.definition.options);
        super::table::FactsFor {
            tenant_id: ctx.ingestion.tenant_id,
            ingestion_id: ctx.ingestion.id,
            small_file_bytes: settings.small_file_size(),
            small,
        }
    }

    /// Runs one maintenance run: the operation on the table, then its report written on the
    /// run, fenced by the lease (a run whose lease is gone reports nothing).
    pub(super) async fn maintain(
        &self,
        ctx: &RunContext,
        kind: RunKind,
    ) -> Result<RunOutput, IngestError> {
        let op = match kind {
            RunKind::Compact => MaintenanceKind::Compact,
            RunKind::ExpireSnapshots => MaintenanceKind::ExpireSnapshots,
            RunKind::RemoveOrphans => MaintenanceKind::RemoveOrphans,
            RunKind::Load => {
                return Err(IngestError::Config(
                    "a load is not a maintenance run".to_owned(),
                ))
            }
        };
        let ing = &ctx.ingestion;
        let table = maintained_table(ctx)?;
        let fence = Fence {
            run_id: ctx.run_id,
            attempt: ctx.attempt,
            worker_id: ctx.worker_id.clone(),
            ingestion_id: ing.id,
        };
        let storage = WarehouseStorageFactory::from_env();
        let m = Maintenance {
            catalog: self.catalog().await?,
            pool: &self.pool,
            table,
            fence: fence.clone(),
            tenant_id: ing.tenant_id,
            settings: self.maintenance_settings(&ing.definition.options),
            cancel: ctx.cancel.clone(),
            warehouse: &storage,
            before_commit: None,
        };
        let report = m.run(op).await?;
        let stored = serde_json::to_value(&report)
            .map_err(|e| IngestError::Config(format!("the maintenance report: {e}")))?;
        if !run_maintenance_report(&self.pool, &fence.lease(), &stored)
            .await
            .map_err(IngestError::Db)?
        {
            return Err(IngestError::LeaseLost);
        }
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(RunOutput {
            // The files the run worked on: rewritten by a compaction, deleted by the others.
            files_processed: count(match op {
                MaintenanceKind::Compact => report.files_read,
                _ => report.files_deleted,
            }),
            rows_ingested: 0,
            bytes_read: count(report.bytes_read),
            bytes_written: count(report.bytes_written),
            snapshot_id: report.snapshot_id,
        })
    }
}

/// The table a maintenance run names, which must be one of the tenant's: `<tenant
/// namespace>.<destination>`, the destination read as a load's is, so a run row written at a
/// psql prompt cannot point a worker at another tenant's table.
fn maintained_table(ctx: &RunContext) -> Result<TableIdent, IngestError> {
    let text = ctx.maintained_table.as_deref().ok_or_else(|| {
        IngestError::Config("a maintenance run without maintained_table".to_owned())
    })?;
    let ns = &ctx.ingestion.tenant_namespace;
    let destination = text
        .strip_prefix(ns.as_str())
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| {
            IngestError::Config(format!(
                "maintained_table {text} is not in the tenant's namespace {ns}"
            ))
        })?;
    let dest = DestinationTable::parse(destination)
        .map_err(|e| IngestError::Config(format!("maintained_table {text}: {e}")))?;
    super::table::ident(&dest.under(ns))
}
