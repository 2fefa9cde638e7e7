//! Every statement on `table_facts`: each Iceberg table's current facts, written by the worker
//! in the transaction of every commit to the table (so they are as current as the catalog), read
//! by the API (`GET /api/v1/ingestions/{id}/table`) and by the maintenance scheduler.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A table's facts as of one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFacts {
    pub tenant_id: Uuid,
    /// `namespace.table`.
    pub iceberg_table: String,
    /// The ingestion whose run committed (its options are the table's maintenance settings).
    pub ingestion_id: Option<Uuid>,
    pub location: String,
    pub metadata_location: String,
    pub format_version: i32,
    pub current_schema_id: i32,
    pub schema_ids: Vec<i32>,
    pub schema: serde_json::Value,
    pub partition_spec: serde_json::Value,
    pub current_snapshot_id: Option<i64>,
    pub snapshots: i64,
    pub oldest_snapshot_at: Option<DateTime<Utc>>,
    pub data_files: i64,
    pub total_bytes: i64,
    pub total_records: i64,
    pub small_files: i64,
    pub small_file_bytes: i64,
    pub updated_at: DateTime<Utc>,
}

/// How a commit changes the count of small files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallFiles {
    /// The commit added this many (a load): added to the count so far.
    Added(i64),
    /// The commit counted them all (a compaction): the count is this.
    Counted(i64),
}

/// Writes the facts of `facts.iceberg_table` after a commit, in the commit's transaction
/// (`updated_at` is the transaction's time; `facts.small_files` is ignored in favour of
/// `small`).
pub async fn table_facts_record(
    tx: &mut PgConnection,
    facts: &TableFacts,
    small: SmallFiles,
) -> Result<(), sqlx::Error> {
    let (added, counted) = match small {
        SmallFiles::Added(n) => (n, None),
        SmallFiles::Counted(n) => (0, Some(n)),
    };
    sqlx::query!(
        "insert into table_facts (tenant_id, iceberg_table, ingestion_id, location,
             metadata_location, format_version, current_schema_id, schema_ids, schema,
             partition_spec, current_snapshot_id, snapshots, oldest_snapshot_at, data_files,
             total_bytes, total_records, small_files, small_file_bytes)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 coalesce($18::bigint, $17::bigint), $19)
         on conflict (tenant_id, iceberg_table) do update set
             ingestion_id = coalesce(excluded.ingestion_id, table_facts.ingestion_id),
             location = excluded.location,
             metadata_location = excluded.metadata_location,
             format_version = excluded.format_version,
             current_schema_id = excluded.current_schema_id,
             schema_ids = excluded.schema_ids,
             schema = excluded.schema,
             partition_spec = excluded.partition_spec,
             current_snapshot_id = excluded.current_snapshot_id,
             snapshots = excluded.snapshots,
             oldest_snapshot_at = excluded.oldest_snapshot_at,
             data_files = excluded.data_files,
             total_bytes = excluded.total_bytes,
             total_records = excluded.total_records,
             small_files = coalesce($18::bigint, least(table_facts.small_files + $17::bigint, excluded.data_files)),
             small_file_bytes = excluded.small_file_bytes,
             updated_at = now()",
        facts.tenant_id,
        facts.iceberg_table,
        facts.ingestion_id,
        facts.location,
        facts.metadata_location,
        facts.format_version,
        facts.current_schema_id,
        &facts.schema_ids,
        facts.schema,
        facts.partition_spec,
        facts.current_snapshot_id,
        facts.snapshots,
        facts.oldest_snapshot_at,
        facts.data_files,
        facts.total_bytes,
        facts.total_records,
        added,
        counted,
        facts.small_file_bytes,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The facts of one of the tenant's tables, if a run has committed to it.
pub async fn table_facts_get(
    pool: &PgPool,
    tenant_id: Uuid,
    iceberg_table: &str,
) -> Result<Option<TableFacts>, sqlx::Error> {
    sqlx::query_as!(
        TableFacts,
        "select tenant_id, iceberg_table, ingestion_id, location, metadata_location,
                format_version, current_schema_id, schema_ids, schema, partition_spec,
                current_snapshot_id, snapshots, oldest_snapshot_at, data_files, total_bytes,
                total_records, small_files, small_file_bytes, updated_at
         from table_facts where tenant_id = $1 and iceberg_table = $2",
        tenant_id,
        iceberg_table
    )
    .fetch_optional(pool)
    .await
}
