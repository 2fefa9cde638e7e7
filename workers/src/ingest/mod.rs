//! The ingestion executor: one run loads the ingestion's new files into its Iceberg table.
//!
//! A run, in order:
//! 1. If an earlier attempt of this run already committed (its run id is in a snapshot summary),
//!    it only reports what that commit loaded: nothing is read or written again.
//! 2. Lists the source prefix and keeps the files the ledger (`loaded_files`) does not hold,
//!    oldest first, up to the run's bounds.
//! 3. Creates the table from the first file's schema if it does not exist.
//! 4. Reads every file with the table's schema into Parquet data files (a local file is opened
//!    beneath its root, in the step that reads it: see [`local`]). A file that does not fit fails
//!    the run, naming the file and the column, before anything is committed.
//! 5. Commits one snapshot (summary: run id, attempt, counters) together with the ledger rows and
//!    a lease check, in one PostgreSQL transaction (see [`table`]).

pub mod avro;
pub mod conform;
pub mod discover;
pub mod fetch;
pub mod http;
pub mod local;
pub mod read;
pub mod records;
pub mod s3;
pub mod schema;
pub mod table;
pub mod warehouse;

use std::collections::HashMap;
use std::sync::Arc;

use crate::executor::{ExecError, ExecFuture, Executor, RunContext, RunOutput};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use autoloader::ingestions::definition::SourceType;
use autoloader::ingestions::egress::{Allowed, EgressPolicy, Endpoint};
use autoloader::ingestions::options::{IngestOptions, Limits};
use autoloader::ingestions::roots::FileRoots;
use iceberg::spec::DataFile;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg_catalog_sql::SqlCatalog;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sqlx::PgPool;

use self::discover::Source;
use self::read::BatchSink;
use self::table::{Fence, LoadedFile};

/// Why a run could not load its files.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The ingestion's definition cannot work (bad path, refused directory, bad options).
    #[error("{0}")]
    Config(String),
    /// A file's content: unreadable, or does not fit the table.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// Talking to the object store failed.
    #[error("{what}: {message}")]
    Store {
        what: String,
        message: String,
        transient: bool,
    },
    #[error("iceberg: {0}")]
    Catalog(String),
    #[error("iceberg: {0}")]
    CatalogTransient(String),
    #[error("database: {0}")]
    Db(#[source] sqlx::Error),
    /// The run's lease passed to another worker; nothing was committed.
    #[error("the run's lease was lost before the commit; nothing was committed")]
    LeaseLost,
}

impl IngestError {
    pub fn file(file: &str, message: String) -> IngestError {
        IngestError::File {
            file: file.to_owned(),
            message,
        }
    }

    pub fn column(file: &str, column: &str, problem: String) -> IngestError {
        IngestError::File {
            file: file.to_owned(),
            message: format!("column '{column}' {problem}"),
        }
    }

    pub fn store(what: &str, e: object_store::Error) -> IngestError {
        let transient = !matches!(
            e,
            object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::InvalidPath { .. }
        );
        IngestError::Store {
            what: what.to_owned(),
            message: with_causes(&e),
            transient,
        }
    }

    pub fn catalog(e: &iceberg::Error) -> IngestError {
        if e.retryable() {
            IngestError::CatalogTransient(e.to_string())
        } else {
            IngestError::Catalog(e.to_string())
        }
    }

    fn into_exec(self) -> ExecError {
        match self {
            IngestError::Store {
                transient: true, ..
            }
            | IngestError::CatalogTransient(_)
            | IngestError::Db(_) => ExecError::Transient(self.to_string()),
            _ => ExecError::Permanent(self.to_string()),
        }
    }
}

/// `e` and the causes under it that its own text does not already say (a refused address, say,
/// sits several layers below "error sending request"). A source's error responses reach this
/// as their status and S3 error code only: their bodies are never kept ([`http`]).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Where the executor keeps tables, and what it may read.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The database the Iceberg SQL catalog lives in (schema `iceberg_catalog`).
    pub database_url: String,
    /// Root of new tables' data and metadata, as a URL: `file:///abs/dir` or
    /// `s3://bucket/prefix` (S3 configured by `AWS_*`, see [`warehouse`]).
    pub warehouse: String,
    pub file_roots: FileRoots,
    /// Whether S3 sources may use the worker's own credentials (`AWS_*`, instance role) when
    /// their ingestion gives none (`AUTOLOADER_ALLOW_WORKER_CREDENTIALS`; single-tenant
    /// deployments). Otherwise such a source is read anonymously.
    pub allow_worker_credentials: bool,
    /// Where tenants' S3 endpoints may point (`AUTOLOADER_S3_ENDPOINT_ALLOWLIST`): checked again
    /// before every run, on the addresses the endpoint resolves to then.
    pub egress: EgressPolicy,
    /// The operator's caps on a run's reading (`AUTOLOADER_MAX_FILE_BYTES`,
    /// `AUTOLOADER_MAX_BYTES_PER_RUN`, `AUTOLOADER_MAX_RECORD_BYTES`).
    pub limits: Limits,
    /// The keys that open ingestions' sealed secrets (`AUTOLOADER_SECRET_KEY`, and
    /// `AUTOLOADER_SECRET_KEY_PREVIOUS`).
    pub secrets: Option<std::sync::Arc<autoloader::secrets::SecretKeys>>,
    /// Test hook: stop dead right after the commit (see `AUTOLOADER_FAILPOINT`).
    pub failpoint_after_commit: bool,
}

/// The executor the worker binary runs.
pub struct IngestExecutor {
    pool: PgPool,
    cfg: IngestConfig,
    catalog: tokio::sync::OnceCell<SqlCatalog>,
}

impl IngestExecutor {
    pub fn new(pool: PgPool, cfg: IngestConfig) -> IngestExecutor {
        // Before iceberg decodes any Avro of its own, which would fix apache-avro's cap first.
        avro::bound_allocations(cfg.limits.max_record_bytes);
        IngestExecutor {
            pool,
            cfg,
            catalog: tokio::sync::OnceCell::new(),
        }
    }

    async fn catalog(&self) -> Result<&SqlCatalog, IngestError> {
        self.catalog
            .get_or_try_init(|| async {
                table::open_catalog(
                    &self.cfg.database_url,
                    &self.cfg.warehouse,
                    &warehouse::WarehouseStorageFactory::from_env(),
                )
                .await
            })
            .await
    }

    /// The options with their sealed secret opened. An error names the option and the key,
    /// never the value.
    fn open_secrets(
        &self,
        tenant: uuid::Uuid,
        options: &IngestOptions,
    ) -> Result<IngestOptions, IngestError> {
        let mut opened = options.clone();
        if let Some(stored) = &options.s3.secret_access_key {
            let secret = autoloader::secrets::open_secret(
                self.cfg.secrets.as_deref(),
                tenant,
                "s3_secret_access_key",
                stored,
            )
            .map_err(|e| IngestError::Config(e.to_string()))?;
            if let autoloader::secrets::Opened::Plaintext(_) = secret {
                tracing::warn!(
                    "s3_secret_access_key is stored in the clear; `autoloader-api rotate-secrets` seals it"
                );
            }
            opened.s3.secret_access_key = Some(secret.into_plaintext());
        }
        Ok(opened)
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunOutput, IngestError> {
        let ing = &ctx.ingestion;
        let def = &ing.definition;
        let (source_type, format, dest) =
            (def.source_type, def.format_type, &def.destination_table);
        // The secret opens here, in the worker running the ingestion, and nowhere else.
        let options = &self.open_secrets(ing.tenant_id, &def.options)?;
        let catalog = self.catalog().await?;
        // The tenant's own table: `<tenant namespace>.<destination_table>`.
        let id = table::ident(&dest.under(&ing.tenant_namespace))?;
        let existing = table::load(catalog, &id).await?;

        if let Some(done) = existing
            .as_ref()
            .and_then(|t| table::committed_by(t, ctx.run_id))
        {
            tracing::info!(
                snapshot_id = done.snapshot_id,
                committed_by_attempt = done.attempt,
                "an earlier attempt of this run committed; recording its outcome"
            );
            return Ok(RunOutput {
                files_processed: done.files,
                rows_ingested: done.rows,
                bytes_read: done.bytes_read,
                bytes_written: done.bytes_written,
                snapshot_id: Some(done.snapshot_id),
            });
        }

        let how = match source_type {
            SourceType::S3 => {
                check_egress(&self.cfg.egress, options.s3.endpoint.as_deref()).await?
            }
            SourceType::Local => Allowed::Aws,
        };
        // Local sources read only under the tenant's own roots, each inside the operator's.
        let roots = match source_type {
            SourceType::Local => self
                .cfg
                .file_roots
                .within(&ing.tenant_file_roots)
                .map_err(IngestError::Config)?,
            SourceType::S3 => FileRoots::default(),
        };
        let source = Source::open(
            source_type,
            &def.source_path,
            options,
            &roots,
            self.cfg.allow_worker_credentials,
            http::SourceConnector::new(self.cfg.egress.clone(), how),
        )?;
        source.check_outside_warehouse(&self.cfg.warehouse)?;
        let files = source
            .new_files(&self.pool, ing.id, options, self.cfg.limits)
            .await?;
        if files.is_empty() {
            tracing::info!("no new files");
            return Ok(RunOutput::default());
        }
        let table = match existing {
            Some(t) => t,
            None => {
                let first = source.open_file(&files[0], self.cfg.limits)?;
                let schema = schema::infer_schema(
                    &source.store,
                    &first,
                    format,
                    options.csv,
                    self.cfg.limits.max_record_bytes,
                )
                .await?;
                let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&schema)
                    .map_err(|e| {
                        IngestError::file(
                            &first.name,
                            format!("its columns cannot be an Iceberg schema: {e}"),
                        )
                    })?;
                tracing::info!(table = %dest, "creating the table from the first file's schema");
                table::create(catalog, &id, schema).await?
            }
        };

        let fence = Fence {
            run_id: ctx.run_id,
            attempt: ctx.attempt,
            worker_id: ctx.worker_id.clone(),
            ingestion_id: ing.id,
        };
        let mut sink = TableSink::open(&table, &fence).await?;
        let mut loaded = Vec::with_capacity(files.len());
        let mut bytes_read = 0u64;
        for c in &files {
            if ctx.cancel.is_cancelled() {
                return Err(IngestError::LeaseLost);
            }
            // A local file is opened here, beneath its root, and read through that descriptor.
            let file = source.open_file(c, self.cfg.limits)?;
            let rows = read::read_file(
                &source.store,
                &file,
                format,
                options.csv,
                self.cfg.limits.max_record_bytes,
                &sink.target.clone(),
                &mut sink,
            )
            .await?;
            bytes_read += c.size;
            tracing::debug!(file = %c.relative, rows, "file read");
            loaded.push(LoadedFile {
                path: c.url.clone(),
                size: c.size,
                etag: c.etag.clone(),
                last_modified: c.last_modified,
                rows,
            });
        }
        let data_files = sink.close().await?;
        let rows: u64 = loaded.iter().map(|f| f.rows).sum();
        let bytes_written: u64 = data_files.iter().map(DataFile::file_size_in_bytes).sum();
        let summary = HashMap::from([
            (table::SUMMARY_RUN_ID.to_owned(), ctx.run_id.to_string()),
            (table::SUMMARY_ATTEMPT.to_owned(), ctx.attempt.to_string()),
            (table::SUMMARY_INGESTION_ID.to_owned(), ing.id.to_string()),
            (table::SUMMARY_FILES.to_owned(), loaded.len().to_string()),
            (table::SUMMARY_ROWS.to_owned(), rows.to_string()),
            (table::SUMMARY_BYTES_READ.to_owned(), bytes_read.to_string()),
            (
                table::SUMMARY_BYTES_WRITTEN.to_owned(),
                bytes_written.to_string(),
            ),
        ]);
        if ctx.cancel.is_cancelled() {
            return Err(IngestError::LeaseLost);
        }
        let snapshot_id = table::commit(
            catalog, &self.pool, &table, data_files, summary, &fence, &loaded,
        )
        .await?;
        tracing::info!(snapshot_id, files = loaded.len(), rows, bytes_read, bytes_written,
            table = %dest, "snapshot committed");
        if self.cfg.failpoint_after_commit {
            tracing::error!(
                "failpoint after-commit: the snapshot is committed; stopping before the run's outcome is recorded"
            );
            std::future::pending::<()>().await;
        }
        Ok(RunOutput {
            files_processed: loaded.len() as i64,
            rows_ingested: rows as i64,
            bytes_read: bytes_read as i64,
            bytes_written: bytes_written as i64,
            snapshot_id: Some(snapshot_id),
        })
    }
}

impl Executor for IngestExecutor {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async move { self.run(&ctx).await.map_err(IngestError::into_exec) })
    }
}

type Writer =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Batches waiting for the Parquet writer: enough to keep both busy, few enough to bound memory.
const BATCHES_AHEAD: usize = 4;

/// Parquet data files of the table, written as batches arrive. Encoding runs in its own task,
/// so reading and decoding the next batch overlaps writing the last one (two cores at work).
struct TableSink {
    batches: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    writer: Option<tokio::task::JoinHandle<Result<Vec<DataFile>, IngestError>>>,
    target: SchemaRef,
}

impl TableSink {
    async fn open(table: &iceberg::table::Table, fence: &Fence) -> Result<TableSink, IngestError> {
        let schema = table.metadata().current_schema().clone();
        let target: SchemaRef = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema)
                .map_err(|e| IngestError::catalog(&e))?,
        );
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let locations = DefaultLocationGenerator::new(table.metadata())
            .map_err(|e| IngestError::catalog(&e))?;
        let names = DefaultFileNameGenerator::new(
            table::file_name_prefix(fence),
            None,
            table::DATA_FILE_FORMAT,
        );
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            ParquetWriterBuilder::new(props, schema),
            table.file_io().clone(),
            locations,
            names,
        );
        let mut writer: Writer = DataFileWriterBuilder::new(rolling)
            .build(None)
            .await
            .map_err(|e| IngestError::catalog(&e))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(BATCHES_AHEAD);
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                writer
                    .write(batch)
                    .await
                    .map_err(|e| IngestError::catalog(&e))?;
            }
            writer.close().await.map_err(|e| IngestError::catalog(&e))
        });
        Ok(TableSink {
            batches: Some(tx),
            writer: Some(task),
            target,
        })
    }

    /// Finishes the data files and returns them.
    async fn close(mut self) -> Result<Vec<DataFile>, IngestError> {
        self.batches = None;
        match self.writer.take() {
            Some(task) => task
                .await
                .map_err(|e| IngestError::Catalog(format!("the Parquet writer stopped: {e}")))?,
            None => Ok(Vec::new()),
        }
    }

    /// The writer's own error, once it has stopped taking batches.
    async fn writer_error(&mut self) -> IngestError {
        self.batches = None;
        match self.writer.take() {
            Some(task) => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => IngestError::Catalog("the Parquet writer stopped early".into()),
                Err(e) => IngestError::Catalog(format!("the Parquet writer stopped: {e}")),
            },
            None => IngestError::Catalog("the Parquet writer is closed".into()),
        }
    }
}

impl Drop for TableSink {
    /// A run that failed leaves its unfinished data files behind, unreferenced; it does not
    /// finish writing them.
    fn drop(&mut self) {
        if let Some(task) = self.writer.take() {
            task.abort();
        }
    }
}

impl BatchSink for TableSink {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
        let sent = match &self.batches {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.writer_error().await)
        }
    }
}

/// The endpoint a run is about to connect to, checked against the operator's allowlist as it is
/// now, and on the addresses its name resolves to now (an allowed name may since point inside):
/// a clear error before anything is sent. The source's client checks again on every connection,
/// and connects only to the addresses it checked ([`http`]).
async fn check_egress(
    policy: &EgressPolicy,
    endpoint: Option<&str>,
) -> Result<Allowed, IngestError> {
    let how = policy.check(endpoint).map_err(IngestError::Config)?;
    let Some(url) = endpoint else {
        return Ok(how);
    };
    let ep = Endpoint::parse(url).map_err(IngestError::Config)?;
    let addrs: Vec<std::net::IpAddr> = tokio::net::lookup_host((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| IngestError::Config(format!("s3_endpoint {}: cannot resolve: {e}", ep.host)))?
        .map(|a| a.ip())
        .collect();
    policy
        .check_resolved(how, &addrs)
        .map_err(IngestError::Config)?;
    Ok(how)
}

/// The warehouse as the catalog takes it: an S3 URL as given (less a trailing `/`, which would
/// double the one before each table's path), or a local directory, created if missing, as
/// `file:///abs/path`.
pub fn warehouse_url(value: &str) -> std::result::Result<String, String> {
    if let Some((bucket, _)) = warehouse::split_s3(value) {
        if bucket.is_empty() {
            return Err(format!(
                "AUTOLOADER_WAREHOUSE {value}: no bucket (expected s3://bucket/prefix)"
            ));
        }
        return Ok(value.trim_end_matches('/').to_owned());
    }
    let dir = match value.strip_prefix("file://") {
        Some(path) => path,
        None if value.contains("://") => {
            return Err(format!(
                "AUTOLOADER_WAREHOUSE {value}: unsupported scheme (expected a local directory, \
                 file:///abs/dir or s3://bucket/prefix)"
            ))
        }
        None => value,
    };
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("creating the warehouse {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("resolving the warehouse {}: {e}", dir.display()))?;
    Ok(format!("file://{}", dir.display()))
}
