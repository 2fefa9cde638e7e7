//! A table's facts (`table_facts`), as each commit records them in its transaction: read from
//! the committed metadata, with the count of small data files the commit changed.

use autoloader::tables::{SmallFiles, TableFacts};
use chrono::{DateTime, Utc};
use iceberg::table::Table;
use iceberg::TableIdent;
use uuid::Uuid;

/// Whose table facts a commit records (`table_facts`, in the commit's transaction), and how it
/// changes the count of small files.
#[derive(Debug, Clone, Copy)]
pub struct FactsFor {
    pub tenant_id: Uuid,
    pub ingestion_id: Uuid,
    /// Data files under this size are small: 75% of the compaction target, as Iceberg's
    /// `rewrite_data_files` counts them.
    pub small_file_bytes: u64,
    pub small: SmallFiles,
}

/// `namespace.table`: how runs, the API and `table_facts` name a table.
pub fn ident_text(id: &TableIdent) -> String {
    format!("{}.{}", id.namespace().join("."), id.name())
}

/// The facts of `table` (as staged by a commit, or as loaded) for `table_facts`.
pub fn facts_of(table: &Table, f: &FactsFor) -> TableFacts {
    let m = table.metadata();
    let total = |key: &str| {
        m.current_snapshot()
            .and_then(|s| s.summary().additional_properties.get(key))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let mut schema_ids: Vec<i32> = m.schemas_iter().map(|s| s.schema_id()).collect();
    schema_ids.sort_unstable();
    TableFacts {
        tenant_id: f.tenant_id,
        iceberg_table: ident_text(table.identifier()),
        ingestion_id: Some(f.ingestion_id),
        location: m.location().to_owned(),
        metadata_location: table.metadata_location().unwrap_or_default().to_owned(),
        format_version: match m.format_version() {
            iceberg::spec::FormatVersion::V1 => 1,
            iceberg::spec::FormatVersion::V2 => 2,
            iceberg::spec::FormatVersion::V3 => 3,
        },
        current_schema_id: m.current_schema_id(),
        schema_ids,
        schema: serde_json::to_value(m.current_schema().as_ref()).unwrap_or_default(),
        partition_spec: serde_json::to_value(m.default_partition_spec().as_ref())
            .unwrap_or_default(),
        current_snapshot_id: m.current_snapshot_id(),
        snapshots: m.snapshots().count() as i64,
        oldest_snapshot_at: m
            .snapshots()
            .map(|s| s.timestamp_ms())
            .min()
            .and_then(DateTime::from_timestamp_millis),
        data_files: total("total-data-files"),
        total_bytes: total("total-files-size"),
        total_records: total("total-records"),
        small_files: 0,
        small_file_bytes: i64::try_from(f.small_file_bytes).unwrap_or(i64::MAX),
        updated_at: Utc::now(),
    }
}
