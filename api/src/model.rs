//! The API's request and response bodies (field names are the product spec's), and the mapping
//! from stored rows to them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::ingestions::definition::redact_options;
use autoloader::ingestions::draft::Draft;
use autoloader::ingestions::store::IngestionRow;
use autoloader::ledger::LedgerFile;
use autoloader::runs::RunRow;

#[allow(unused_imports)] // the document's types, named in `value_type`
use crate::rules::{
    DestinationTableName, IngestOptionsDoc, LedgerPath, Name, ScheduleTime, SourcePathText,
    TimeZone,
};

/// Distinguishes a field sent as `null` (Some(None)) from one not sent (None), for PATCH.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// The values of `source_type`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SourceTypeName {
    S3,
    Local,
}

/// The values of `format_type`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FormatTypeName {
    Json,
    Csv,
    Parquet,
    Avro,
}

/// The values of `schedule_frequency`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FrequencyName {
    Hourly,
    Daily,
    Weekly,
    Custom,
}

/// The values of an ingestion's `catchup`, for the OpenAPI document: what becomes of the ticks
/// missed while the schedule was paused or no worker ticked for longer than the misfire grace.
/// `skip`: none runs (one MISSED row counts them); `once`: one run covering them all; `all`: one
/// run each, oldest first, one at a time, the newest `max_catchup_runs` (older ones MISSED).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CatchupName {
    Skip,
    Once,
    All,
}

/// The values of an ingestion's `status`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum IngestionStatusName {
    Active,
    Paused,
}

/// The values of a run's `status`, for the OpenAPI document: `RunStatus::ALL` written again,
/// since the core does not link utoipa (`tests/tests/openapi.rs` checks the two agree).
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum RunStatusName {
    Queued,
    Running,
    Success,
    Failed,
    Skipped,
    Missed,
    Cancelled,
}

/// Body of `POST /api/v1/ingestions` and `PUT /api/v1/ingestions/{id}`. The document marks what
/// every request needs; rules that tie fields together (a `source_path` that fits its
/// `source_type`, `schedule_time` for daily schedules) are checked by the server and reported
/// per field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestionCreate {
    #[schema(required = true, value_type = Name)]
    pub name: Option<String>,
    /// Free text (PostgreSQL stores no NUL character).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// `s3` or `local`.
    #[schema(required = true, value_type = SourceTypeName, example = "s3")]
    pub source_type: Option<String>,
    /// `s3://bucket/prefix/` (or `s3a://`) for s3, `file:///dir/` for local.
    #[schema(required = true, value_type = SourcePathText)]
    pub source_path: Option<String>,
    /// `json` (JSON lines, or one JSON array), `csv`, `parquet` or `avro` (object container files).
    #[schema(required = true, value_type = FormatTypeName, example = "json")]
    pub format_type: Option<String>,
    /// `namespace.table`.
    #[schema(required = true, value_type = DestinationTableName)]
    pub destination_table: Option<String>,
    /// Source and format options; secret values are never returned.
    #[schema(value_type = Option<IngestOptionsDoc>)]
    pub options: Option<Value>,
    /// `hourly`, `daily`, `weekly` or `custom`.
    #[schema(value_type = Option<FrequencyName>, example = "daily")]
    pub schedule_frequency: Option<String>,
    /// `HH:MM`, required for daily and weekly (an empty string means not set).
    #[schema(value_type = Option<ScheduleTime>)]
    pub schedule_time: Option<String>,
    /// IANA time zone; `UTC` when omitted.
    #[schema(value_type = Option<TimeZone>)]
    pub schedule_timezone: Option<String>,
    /// Read for custom schedules only, where it is required: a `CronExpression`.
    pub schedule_cron: Option<String>,
    #[serde(default)]
    pub schedule_enabled: Option<bool>,
    /// `ACTIVE` (default) or `PAUSED`.
    #[schema(value_type = Option<IngestionStatusName>)]
    pub status: Option<String>,
    /// What becomes of ticks missed while paused or during an outage longer than the misfire
    /// grace; when omitted, `skip` (or `all` where the operator set `SCHEDULER_COALESCE=false`).
    #[schema(value_type = Option<CatchupName>)]
    pub catchup: Option<String>,
    /// Under `catchup: all`, the most missed ticks that run (the newest); 100 when omitted.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_catchup_runs: Option<i64>,
}

impl From<IngestionCreate> for Draft {
    fn from(b: IngestionCreate) -> Draft {
        Draft {
            name: b.name,
            description: b.description,
            source_type: b.source_type,
            source_path: b.source_path,
            format_type: b.format_type,
            destination_table: b.destination_table,
            options: b.options,
            schedule_frequency: b.schedule_frequency,
            schedule_time: b.schedule_time,
            schedule_timezone: b.schedule_timezone,
            schedule_cron: b.schedule_cron,
            schedule_enabled: b.schedule_enabled,
            status: b.status,
            catchup: b.catchup,
            max_catchup_runs: b.max_catchup_runs,
        }
    }
}

/// Body of `PATCH /api/v1/ingestions/{id}`: only the fields sent change; `null` clears a
/// nullable field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestionPatch {
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000]*$")]
    pub description: Option<Option<String>>,
    #[schema(value_type = Option<SourceTypeName>)]
    pub source_type: Option<String>,
    #[schema(value_type = Option<SourcePathText>)]
    pub source_path: Option<String>,
    #[schema(value_type = Option<FormatTypeName>)]
    pub format_type: Option<String>,
    #[schema(value_type = Option<DestinationTableName>)]
    pub destination_table: Option<String>,
    #[schema(value_type = Option<IngestOptionsDoc>)]
    pub options: Option<Value>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<FrequencyName>)]
    pub schedule_frequency: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<ScheduleTime>)]
    pub schedule_time: Option<Option<String>>,
    #[schema(value_type = Option<TimeZone>)]
    pub schedule_timezone: Option<String>,
    /// Read for custom schedules only, where it is required: a `CronExpression`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub schedule_cron: Option<Option<String>>,
    pub schedule_enabled: Option<bool>,
    #[schema(value_type = Option<IngestionStatusName>)]
    pub status: Option<String>,
    #[schema(value_type = Option<CatchupName>)]
    pub catchup: Option<String>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_catchup_runs: Option<i64>,
}

impl IngestionPatch {
    /// The stored definition `d` with the fields this patch sends.
    pub fn apply(self, d: &mut Draft) {
        macro_rules! set {
            ($($f:ident),*) => {$(
                if let Some(v) = self.$f {
                    d.$f = Some(v);
                }
            )*};
        }
        set!(
            name,
            source_type,
            source_path,
            format_type,
            destination_table,
            schedule_timezone,
            schedule_enabled,
            status,
            options,
            catchup,
            max_catchup_runs
        );
        macro_rules! set_or_clear {
            ($($f:ident),*) => {$(
                if let Some(v) = self.$f {
                    d.$f = v;
                }
            )*};
        }
        set_or_clear!(
            description,
            schedule_frequency,
            schedule_time,
            schedule_cron
        );
    }
}

/// An ingestion as the API shows it: the stored row's fields (a type of its own, so adding a
/// column never changes the contract), options with secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestionResponse {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// `ACTIVE` or `PAUSED`.
    pub status: String,
    pub source_type: String,
    pub source_path: String,
    pub format_type: String,
    pub destination_table: String,
    /// The Iceberg table the ingestion writes, as readers (pyiceberg, Spark) load it from the
    /// catalog: the tenant's namespace, then `destination_table`.
    pub iceberg_table: String,
    pub options: Value,
    pub schedule_frequency: Option<String>,
    pub schedule_time: Option<String>,
    pub schedule_timezone: String,
    pub schedule_cron: Option<String>,
    pub schedule_enabled: bool,
    /// When the next scheduled run is due; null when the schedule is off.
    pub next_run_time: Option<DateTime<Utc>>,
    /// The tick of the most recent scheduled run.
    pub last_scheduled_run: Option<DateTime<Utc>>,
    /// Why the schedule is paused (the reason given to `.../schedule/disable`); null while it
    /// is enabled, or when none was given.
    pub paused_reason: Option<String>,
    /// When the schedule was paused; null while it is enabled.
    pub paused_at: Option<DateTime<Utc>>,
    /// Who paused it: the token's name (its label, else `token <id>`), `scheduler` (a stored
    /// schedule that no longer parses) or `database` (a change made at psql).
    pub paused_by: Option<String>,
    /// What becomes of ticks missed while paused or during an outage longer than the misfire
    /// grace: `skip`, `once` or `all`.
    #[schema(value_type = CatchupName)]
    pub catchup: String,
    /// Under `all`, the most missed ticks that run.
    pub max_catchup_runs: i32,
    /// Under `all`, missed ticks still waiting to run, one after another.
    pub catchup_backlog: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<IngestionRow> for IngestionResponse {
    fn from(r: IngestionRow) -> Self {
        IngestionResponse {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            description: r.description,
            status: r.status,
            source_type: r.source_type,
            source_path: r.source_path,
            format_type: r.format_type,
            iceberg_table: autoloader::ingestions::definition::iceberg_table(
                &r.tenant_namespace,
                &r.destination_table,
            ),
            destination_table: r.destination_table,
            options: redact_options(&r.options),
            schedule_frequency: r.schedule_frequency,
            schedule_time: r.schedule_time,
            schedule_timezone: r.schedule_timezone,
            schedule_cron: r.schedule_cron,
            schedule_enabled: r.schedule_enabled,
            next_run_time: r.next_run_time,
            last_scheduled_run: r.last_scheduled_run,
            paused_reason: r.paused_reason,
            paused_at: r.paused_at,
            paused_by: r.paused_by,
            catchup: r.catchup,
            max_catchup_runs: r.max_catchup_runs,
            catchup_backlog: r.catchup_backlog,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A run as the API shows it: the stored row's fields, plus its duration and lateness.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    pub id: Uuid,
    pub ingestion_id: Uuid,
    /// `scheduler`, `manual`, `retry` or `backfill`.
    pub triggered_by: String,
    /// `QUEUED`, `RUNNING`, `SUCCESS`, `FAILED`, `SKIPPED`, `MISSED` or `CANCELLED`.
    pub status: String,
    /// The tick this run is for; null for manual runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// finished_at − started_at.
    pub duration_seconds: Option<f64>,
    /// started_at − scheduled_for.
    pub lateness_seconds: Option<f64>,
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub error: Option<String>,
    /// Why the run was SKIPPED, MISSED, coalesced or requeued.
    pub reason: Option<String>,
    pub files_processed: i64,
    pub rows_ingested: i64,
    pub bytes_read: i64,
    /// Bytes of Parquet written to the table.
    pub bytes_written: i64,
    /// The Iceberg snapshot this run committed; null when it loaded nothing.
    pub snapshot_id: Option<i64>,
    /// Files this run did not load because of bad content (`options.on_error` `skip_file`): they
    /// are in the ledger as rejected (`GET /api/v1/ingestions/{id}/files?status=rejected`).
    pub files_rejected: i64,
    /// Records this run dropped (`options.on_error` `skip_record`).
    pub records_rejected: i64,
    /// The first records this run rejected (at most 20); empty when it rejected none.
    pub rejected_records: Vec<RejectedRecord>,
    /// `load` (new files into the table), or the table maintenance it does: `compact`,
    /// `expire_snapshots` or `remove_orphans`.
    pub kind: String,
    /// The Iceberg table a maintenance run works on; null for loads.
    pub maintained_table: Option<String>,
    /// What a maintenance run did (files read, written and deleted, snapshots expired, the
    /// table's data files after it); null for loads and until it finishes.
    #[schema(value_type = Option<Object>)]
    pub maintenance: Option<Value>,
}

/// A record a run rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RejectedRecord {
    /// The file's URL.
    pub file: String,
    /// The record's position in its file; null when the problem is the file's, not one record's.
    pub record: Option<i64>,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub reason: String,
}

/// One element of `runs.rejected_records` as stored; a missing field reads as empty.
#[derive(Default, Deserialize)]
#[serde(default)]
struct StoredRejectedRecord {
    file: String,
    record: Option<i64>,
    column: Option<String>,
    reason: String,
}

/// `runs.rejected_records` as the API shows it: its objects, in order (null is none).
fn rejected_records(stored: Option<Value>) -> Vec<RejectedRecord> {
    let Some(Value::Array(items)) = stored else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| serde_json::from_value::<StoredRejectedRecord>(item).ok())
        .map(|r| RejectedRecord {
            file: r.file,
            record: r.record,
            column: r.column,
            reason: r.reason,
        })
        .collect()
}

fn seconds(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    Some((to? - from?).num_microseconds()? as f64 / 1e6)
}

impl From<RunRow> for RunResponse {
    fn from(r: RunRow) -> Self {
        RunResponse {
            duration_seconds: seconds(r.started_at, r.finished_at),
            lateness_seconds: seconds(r.scheduled_for, r.started_at),
            id: r.id,
            ingestion_id: r.ingestion_id,
            triggered_by: r.triggered_by,
            status: r.status,
            scheduled_for: r.scheduled_for,
            data_interval_start: r.data_interval_start,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            attempt: r.attempt,
            worker_id: r.worker_id,
            error: r.error,
            reason: r.reason,
            files_processed: r.files_processed,
            rows_ingested: r.rows_ingested,
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            snapshot_id: r.snapshot_id,
            files_rejected: r.files_rejected,
            records_rejected: r.records_rejected,
            rejected_records: rejected_records(r.rejected_records),
            kind: r.kind,
            maintained_table: r.maintained_table,
            maintenance: r.maintenance,
        }
    }
}

/// One upcoming fire, with its local wall time and DST flags.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingRun {
    pub at: DateTime<Utc>,
    /// The wall time it fires at in the schedule's zone, with its offset.
    pub local: String,
    /// The wall time the schedule named; differs from `local` when a DST gap shifted it.
    pub nominal_local: String,
    pub shifted_by_dst_gap: bool,
    pub repeated_in_dst_overlap: bool,
}

/// `GET /api/v1/ingestions/{id}/schedule` (the spec's ScheduleInfoResponse, plus local detail).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleInfoResponse {
    pub enabled: bool,
    pub frequency: Option<String>,
    pub cron_expression: Option<String>,
    pub timezone: String,
    pub next_run_time: Option<DateTime<Utc>>,
    pub upcoming_runs: Vec<DateTime<Utc>>,
    pub upcoming_runs_local: Vec<UpcomingRun>,
}

/// Body of `POST /api/v1/schedules/preview`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePreviewRequest {
    #[schema(required = true, value_type = FrequencyName)]
    pub schedule_frequency: Option<String>,
    #[schema(value_type = Option<ScheduleTime>)]
    pub schedule_time: Option<String>,
    #[schema(value_type = Option<TimeZone>)]
    pub schedule_timezone: Option<String>,
    /// Read for custom schedules only, where it is required: a `CronExpression`.
    pub schedule_cron: Option<String>,
    /// RFC 3339 instant to start from; now when omitted.
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// How many upcoming runs, 1 to 100 (default 5).
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulePreviewResponse {
    pub frequency: String,
    pub cron_expression: String,
    pub timezone: String,
    pub from: DateTime<Utc>,
    pub upcoming_runs: Vec<DateTime<Utc>>,
    pub upcoming_runs_local: Vec<UpcomingRun>,
}

/// The values of a ledger file's `status`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FileStatusName {
    Loaded,
    Rejected,
}

/// A file in an ingestion's ledger: one a run loaded, or rejected.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileResponse {
    /// The file's full URL (`s3://bucket/key`, `file:///dir/name`).
    pub path: String,
    /// `loaded`: its rows are in the table. `rejected`: nothing of it is (`error` says why), and
    /// runs leave it alone until it is retried.
    #[schema(value_type = FileStatusName)]
    pub status: String,
    pub size_bytes: i64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub rows_loaded: i64,
    /// Records of this file dropped under `options.on_error` `skip_record`.
    pub records_rejected: i64,
    /// The run that loaded or rejected it, and that run's attempt.
    pub run_id: Uuid,
    pub attempt: i32,
    /// The Iceberg snapshot holding its rows; null for a rejected file, and for a loaded one
    /// whose every record was rejected.
    pub snapshot_id: Option<i64>,
    /// Why it was rejected; null when loaded.
    pub error: Option<String>,
    /// When the run committed it to the ledger.
    pub loaded_at: DateTime<Utc>,
}

impl From<LedgerFile> for FileResponse {
    fn from(f: LedgerFile) -> Self {
        FileResponse {
            path: f.path,
            status: f.status,
            size_bytes: f.size_bytes,
            etag: f.etag,
            last_modified: f.last_modified,
            rows_loaded: f.rows_loaded,
            records_rejected: f.records_rejected,
            run_id: f.run_id,
            attempt: f.attempt,
            snapshot_id: f.snapshot_id,
            error: f.error,
            loaded_at: f.loaded_at,
        }
    }
}

/// A page of an ingestion's ledger, in path order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilePage {
    pub items: Vec<FileResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/ingestions/{id}/files/retry`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The rejected files to retry, by URL as the ledger lists them; every one must be a
    /// rejected file of the ingestion, or nothing is retried. Omitted: every rejected file.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Vec<LedgerPath>, required = false, min_items = 1, max_items = 1000)]
    pub paths: Option<Option<Vec<String>>>,
}

/// What `POST /api/v1/ingestions/{id}/files/retry` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryResponse {
    /// The files that left the ledger; the next run reads them as new.
    pub retried: Vec<String>,
    pub count: usize,
}

/// Body of `POST /api/v1/ingestions/{id}/maintenance`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// `compact` (small data files rewritten near the target size, as one replace snapshot),
    /// `expire_snapshots` (snapshots past the retention expired and the files only they
    /// referenced deleted) or `remove_orphans` (files no snapshot references deleted).
    #[schema(pattern = "^(compact|expire_snapshots|remove_orphans)$")]
    pub kind: String,
}

/// The last maintenance run of each kind of a table; null where there was none.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LastMaintenance {
    pub compact: Option<RunResponse>,
    pub expire_snapshots: Option<RunResponse>,
    pub remove_orphans: Option<RunResponse>,
}

/// An ingestion's Iceberg table, as of its last commit.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableResponse {
    pub ingestion_id: Uuid,
    /// The Iceberg identifier: `<tenant namespace>.<destination_table>`.
    pub iceberg_table: String,
    /// False until a run has committed to the table; the fields below are then null.
    pub created: bool,
    pub location: Option<String>,
    pub metadata_location: Option<String>,
    pub format_version: Option<i32>,
    pub current_schema_id: Option<i32>,
    /// Every schema id the table has had, oldest first.
    pub schema_ids: Vec<i32>,
    /// The current schema, in Iceberg's JSON form.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// The partition spec, in Iceberg's JSON form (`fields` empty: unpartitioned).
    #[schema(value_type = Option<Object>)]
    pub partition_spec: Option<Value>,
    pub current_snapshot_id: Option<i64>,
    pub snapshot_count: i64,
    pub oldest_snapshot_at: Option<DateTime<Utc>>,
    /// Data files of the current snapshot, their bytes and records.
    pub data_file_count: i64,
    pub total_bytes: i64,
    pub total_records: i64,
    /// Data files under `small_file_bytes` (75% of the compaction target).
    pub small_file_count: i64,
    pub small_file_bytes: Option<i64>,
    /// When the facts were written: the last commit to the table.
    pub updated_at: Option<DateTime<Utc>>,
    pub last_maintenance: LastMaintenance,
}

impl TableResponse {
    pub fn new(
        ingestion_id: Uuid,
        iceberg_table: String,
        facts: Option<autoloader::tables::TableFacts>,
        last_maintenance: LastMaintenance,
    ) -> TableResponse {
        let created = facts.is_some();
        let f = facts;
        TableResponse {
            ingestion_id,
            iceberg_table,
            created,
            location: f.as_ref().map(|f| f.location.clone()),
            metadata_location: f.as_ref().map(|f| f.metadata_location.clone()),
            format_version: f.as_ref().map(|f| f.format_version),
            current_schema_id: f.as_ref().map(|f| f.current_schema_id),
            schema_ids: f.as_ref().map(|f| f.schema_ids.clone()).unwrap_or_default(),
            schema: f.as_ref().map(|f| f.schema.clone()),
            partition_spec: f.as_ref().map(|f| f.partition_spec.clone()),
            current_snapshot_id: f.as_ref().and_then(|f| f.current_snapshot_id),
            snapshot_count: f.as_ref().map_or(0, |f| f.snapshots),
            oldest_snapshot_at: f.as_ref().and_then(|f| f.oldest_snapshot_at),
            data_file_count: f.as_ref().map_or(0, |f| f.data_files),
            total_bytes: f.as_ref().map_or(0, |f| f.total_bytes),
            total_records: f.as_ref().map_or(0, |f| f.total_records),
            small_file_count: f.as_ref().map_or(0, |f| f.small_files),
            small_file_bytes: f.as_ref().map(|f| f.small_file_bytes),
            updated_at: f.as_ref().map(|f| f.updated_at),
            last_maintenance,
        }
    }
}

/// Body of `POST /api/v1/ingestions/{id}/schedule/disable` (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// Why the schedule is paused, shown as `paused_reason` until it is enabled again (at most
    /// 1000 characters).
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}
