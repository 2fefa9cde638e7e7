//! A maintenance run of a table, as the executor runs it: the table named in the run row (which
//! must lie in the tenant's namespace), the ingestion's settings over the operator's defaults,
//! and the report written on the run, fenced by its lease.

use std::time::Duration;

use autoloader::ingestions::options::IngestOptions;
use autoloader::runs::RunKind;
use iceberg::{NamespaceIdent, TableIdent};

use super::{IngestError, IngestExecutor};
use crate::executor::{RunContext, RunOutput};

/// An ingestion's maintenance settings, each its own or the operator's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub snapshot_retention: Duration,
    pub min_snapshots_to_keep: u32,
    pub target_file_size: u64,
    pub orphan_safety_window: Duration,
}

impl IngestExecutor {
    pub(super) fn maintenance_settings(&self, options: &IngestOptions) -> Settings {
        let d = &self.cfg.maintenance;
        let o = &options.maintenance;
        Settings {
            snapshot_retention: o.snapshot_retention.unwrap_or(d.snapshot_retention),
            min_snapshots_to_keep: o.min_snapshots_to_keep.unwrap_or(d.min_snapshots_to_keep),
            target_file_size: o.target_file_size.unwrap_or(d.target_file_size),
            orphan_safety_window: o.orphan_safety_window.unwrap_or(d.orphan_safety_window),
        }
    }

    pub(super) async fn maintain(
        &self,
        ctx: &RunContext,
        kind: RunKind,
    ) -> Result<RunOutput, IngestError> {
        let table = maintained_table(ctx)?;
        let _settings = self.maintenance_settings(&ctx.ingestion.definition.options);
        Err(IngestError::Config(format!(
            "{kind} of {}: not available in this build",
            super::table::ident_text(&table)
        )))
    }
}

/// The table a maintenance run names, which must be one of the tenant's: a run row written at a
/// psql prompt cannot point a worker at another tenant's table.
fn maintained_table(ctx: &RunContext) -> Result<TableIdent, IngestError> {
    let text = ctx.maintained_table.as_deref().ok_or_else(|| {
        IngestError::Config("a maintenance run without maintained_table".to_owned())
    })?;
    let ns = &ctx.ingestion.tenant_namespace;
    let rest = text
        .strip_prefix(ns.as_str())
        .and_then(|r| r.strip_prefix('.'))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            IngestError::Config(format!(
                "maintained_table {text} is not in the tenant's namespace {ns}"
            ))
        })?;
    let mut parts: Vec<String> = std::iter::once(ns.clone())
        .chain(rest.split('.').map(str::to_owned))
        .collect();
    let name = parts.pop().unwrap_or_default();
    if name.is_empty() || parts.iter().any(String::is_empty) {
        return Err(IngestError::Config(format!(
            "maintained_table {text} is not a table name"
        )));
    }
    let ns = NamespaceIdent::from_vec(parts)
        .map_err(|e| IngestError::Config(format!("maintained_table {text}: {e}")))?;
    Ok(TableIdent::new(ns, name))
}
