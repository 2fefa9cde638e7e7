//! The ingestion executor: one run loads the ingestion's new files into its Iceberg table.
//!
//! A run, in order:
//! 1. If an earlier attempt of this run already committed (its run id is in a snapshot summary),
//!    it only reports what that commit loaded: nothing is read or written again.
//! 2. Lists the source prefix (or, under incremental discovery, the keys after the greatest one
//!    loaded: see [`discover`]) and keeps the files the ledger (`loaded_files`) does not hold,
//!    oldest first (by key, under incremental discovery), up to the run's bounds.
//! 3. Creates the table from the first readable file's schema (with the ingestion's schema hints),
//!    partitioned as `partition_by` says ([`partition`]), if it does not exist.
//! 4. Reads every file into Parquet data files of the table ([`load`]): the fast way first
//!    ([`read`]), the schema evolved as files ask ([`evolve`]), record by record where the fast way
//!    refuses a file ([`exact`]), each bad file or record dealt with as `on_error` says (a local
//!    file is opened beneath its root, in the step that reads it: see [`local`]).
//! 5. Commits one snapshot (summary: run id, attempt, counters; the evolved schema, if any)
//!    together with the ledger rows (loaded and rejected files), the run's rejections, the full
//!    listing it did (incremental discovery) and a lease check, in one PostgreSQL transaction
//!    (see [`table`]).

pub mod avro;
pub mod conform;
pub mod discover;
pub mod dry_run;
pub mod evolve;
pub mod exact;
pub mod facts;
pub mod fetch;
pub mod fit;
pub mod http;
pub mod load;
pub mod local;
pub mod maintain;
pub mod maintenance_run;
pub mod partition;
pub mod path_columns;
pub mod read;
pub mod record_stream;
pub mod records;
pub mod s3;
pub mod schema;
pub mod sink;
pub mod snappy;
pub mod table;
pub mod walk;
pub mod warehouse;

use std::collections::HashMap;

use crate::executor::{ExecError, ExecFuture, Executor, RunContext, RunOutput};
use autoloader::discovery::FullListing;
use autoloader::ingestions::definition::{SourcePath, SourceType};
use autoloader::ingestions::egress::{Allowed, EgressPolicy, Endpoint};
use autoloader::ingestions::options::{IngestOptions, Limits, OnError};
use autoloader::ingestions::roots::FileRoots;
use iceberg::spec::DataFile;
use iceberg_catalog_sql::SqlCatalog;
use sqlx::PgPool;

use self::discover::Source;
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
    /// A file has a column the table lacks, and the ingestion does not evolve the table for it.
    #[error("{file}: {message}")]
    Schema { file: String, message: String },
    /// The table's schema changed while this run wrote data files for the one before; the run
    /// reads its files again against the new one.
    #[error("the table's schema changed while the run was writing; nothing was committed")]
    SchemaMoved,
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

    /// `column` of `file` is not one of `table`'s columns.
    pub fn not_in_table(file: &str, column: &str, table: &arrow_schema::Schema) -> IngestError {
        IngestError::Schema {
            file: file.to_owned(),
            message: format!(
                "column '{column}' is not in the table (its columns: {})",
                conform::column_list(table)
            ),
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

    /// An error of the Iceberg catalog: transient when iceberg says so, or when the SQL catalog's
    /// own connection met the database away (a failover, a network cut), which iceberg reports
    /// as an unexpected, final error.
    pub fn catalog(e: &iceberg::Error) -> IngestError {
        if e.retryable() || database_away(e) {
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

/// Whether a cause under `e` is a database error that says the database is away
/// ([`autoloader::db::unavailable`]).
fn database_away(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.downcast_ref::<sqlx::Error>()
            .is_some_and(autoloader::db::unavailable)
        {
            return true;
        }
        cause = c.source();
    }
    false
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
    /// Test hooks (`AUTOLOADER_FAILPOINT`).
    pub failpoint: Failpoint,
    /// The operator's defaults of ingestions' maintenance settings (`AUTOLOADER_SNAPSHOT_RETENTION`,
    /// ...).
    pub maintenance: autoloader::config::MaintenanceConfig,
}

/// Test hooks (`AUTOLOADER_FAILPOINT`); never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failpoint {
    #[default]
    None,
    /// `after-commit`: stop dead right after a snapshot commits, before the run's outcome is
    /// recorded (crash recovery).
    AfterCommit,
    /// `pause-before-commit`: wait 3 s between writing a run's data files and committing them,
    /// so that another writer can commit first (schema races).
    PauseBeforeCommit,
    /// `pause-after-commit`: wait 1 s after a snapshot commits before the run's outcome goes to
    /// the worker's loop, so that a test can cut the network between the two.
    PauseAfterCommit,
}

impl Failpoint {
    pub fn parse(value: Option<&str>) -> Result<Failpoint, String> {
        match value {
            None | Some("") => Ok(Failpoint::None),
            Some("after-commit") => Ok(Failpoint::AfterCommit),
            Some("pause-before-commit") => Ok(Failpoint::PauseBeforeCommit),
            Some("pause-after-commit") => Ok(Failpoint::PauseAfterCommit),
            Some(other) => Err(format!("AUTOLOADER_FAILPOINT: unknown failpoint '{other}'")),
        }
    }
}

/// The executor the worker binary runs.
pub struct IngestExecutor {
    pool: PgPool,
    cfg: IngestConfig,
    catalog: tokio::sync::OnceCell<SqlCatalog>,
}

impl IngestExecutor {
    /// Opens the source a run, or a dry run, reads: an S3 endpoint only past the egress rules, a
    /// local path only under the tenant's own roots (each inside the operator's), and never the
    /// warehouse.
    async fn open_source(
        &self,
        source_type: SourceType,
        source_path: &SourcePath,
        options: &IngestOptions,
        tenant_file_roots: &[String],
    ) -> Result<Source, IngestError> {
        let how = match source_type {
            SourceType::S3 => {
                check_egress(&self.cfg.egress, options.s3.endpoint.as_deref()).await?
            }
            SourceType::Local => Allowed::Aws,
        };
        let roots = match source_type {
            SourceType::Local => self
                .cfg
                .file_roots
                .within(tenant_file_roots)
                .map_err(IngestError::Config)?,
            SourceType::S3 => FileRoots::default(),
        };
        let source = Source::open(
            source_type,
            source_path,
            options,
            &roots,
            self.cfg.allow_worker_credentials,
            http::SourceConnector::new(self.cfg.egress.clone(), how),
        )?;
        source.check_outside_warehouse(&self.cfg.warehouse)?;
        Ok(source)
    }

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

        let source = self
            .open_source(
                source_type,
                &def.source_path,
                options,
                &ing.tenant_file_roots,
            )
            .await?;
        let plan = source.plan(&self.pool, ing.id, options).await?;
        let found = source
            .new_files(&self.pool, ing.id, options, self.cfg.limits, &plan, 0)
            .await?;
        tracing::info!(
            listing = plan.kind(),
            keys_listed = found.keys_listed,
            new_files = found.files.len(),
            "listed the source"
        );
        let fence = Fence {
            run_id: ctx.run_id,
            attempt: ctx.attempt,
            worker_id: ctx.worker_id.clone(),
            ingestion_id: ing.id,
        };
        // A full listing counts once the run that did it commits, and only when the run takes
        // all it found: what a bound left behind may sort before the keys loaded.
        let full_listing = plan
            .full_listing_at
            .filter(|_| found.complete)
            .map(|listed_at| FullListing {
                ingestion_id: ing.id,
                run_id: ctx.run_id,
                listed_at,
                keys_listed: i64::try_from(found.keys_listed).unwrap_or(i64::MAX),
            });
        let files = found.files;
        if files.is_empty() {
            tracing::info!("no new files");
            if let Some(listing) = &full_listing {
                table::record_without_snapshot(
                    &self.pool,
                    table::CommitParts {
                        fence: &fence,
                        // No commit: the table's facts are not written.
                        facts: self.facts_for(ctx, autoloader::tables::SmallFiles::Added(0)),
                        files: &[],
                        rejections: &Default::default(),
                        evolved: None,
                        full_listing: Some(listing),
                    },
                )
                .await?;
            }
            return Ok(RunOutput::default());
        }
        let mut table = match existing {
            Some(t) => t,
            None => {
                self.create_table(catalog, &id, &source, &files, format, options)
                    .await?
            }
        };

        let run = load::Run {
            source: &source,
            files: &files,
            format,
            options,
            limits: self.cfg.limits,
            run_id: ctx.run_id,
            cancel: &ctx.cancel,
        };
        let mut moved = 0;
        loop {
            let loaded = run.load(&table, &fence).await?;
            if ctx.cancel.is_cancelled() {
                return Err(IngestError::LeaseLost);
            }
            match self
                .commit(catalog, &table, ctx, &fence, full_listing.as_ref(), loaded)
                .await
            {
                Err(IngestError::SchemaMoved) if moved < SCHEMA_RETRIES => {
                    // Another writer evolved the table first: read the files again against
                    // its schema (the data files written for the old one stay unreferenced).
                    moved += 1;
                    tracing::info!(
                        moved,
                        "the table's schema changed meanwhile; reading the files again"
                    );
                    table = table::load(catalog, &id).await?.ok_or_else(|| {
                        IngestError::Catalog(format!("the table {dest} disappeared"))
                    })?;
                }
                other => return other,
            }
        }
    }

    /// Creates the table with the schema [`new_table_schema`] finds.
    async fn create_table(
        &self,
        catalog: &SqlCatalog,
        id: &iceberg::TableIdent,
        source: &Source,
        files: &[discover::Candidate],
        format: autoloader::ingestions::definition::FormatType,
        options: &IngestOptions,
    ) -> Result<iceberg::table::Table, IngestError> {
        let new = new_table_schema(source, files, format, options, self.cfg.limits).await?;
        tracing::info!(table = %id, file = %new.from, "creating the table from a file's schema");
        table::create(catalog, id, new.schema, new.spec).await
    }

    /// Commits what `loaded` holds: a snapshot of its data files with the ledger rows, or, when
    /// it holds no data files, the ledger rows alone.
    async fn commit(
        &self,
        catalog: &SqlCatalog,
        table: &iceberg::table::Table,
        ctx: &RunContext,
        fence: &Fence,
        full_listing: Option<&FullListing>,
        loaded: load::Loaded,
    ) -> Result<RunOutput, IngestError> {
        let load::Loaded {
            files,
            data_files,
            evolved,
            rejections,
            bytes_read,
        } = loaded;
        let taken: Vec<&LoadedFile> = files.iter().filter(|f| f.rejected.is_none()).collect();
        let rows: u64 = taken.iter().map(|f| f.rows).sum();
        let facts = self.facts_for(ctx, autoloader::tables::SmallFiles::Added(0));
        let small = data_files
            .iter()
            .filter(|d| d.file_size_in_bytes() < facts.small_file_bytes)
            .count();
        let parts = table::CommitParts {
            fence,
            facts: table::FactsFor {
                small: autoloader::tables::SmallFiles::Added(small as i64),
                ..facts
            },
            files: &files,
            rejections: &rejections,
            evolved: evolved.as_ref(),
            full_listing,
        };
        if data_files.is_empty() {
            table::record_without_snapshot(&self.pool, parts).await?;
            tracing::info!(
                files = files.len(),
                files_rejected = rejections.files,
                "recorded the run's files; no rows to commit"
            );
            return Ok(RunOutput {
                files_processed: taken.len() as i64,
                rows_ingested: 0,
                bytes_read: bytes_read as i64,
                bytes_written: 0,
                snapshot_id: None,
            });
        }
        let bytes_written: u64 = data_files.iter().map(DataFile::file_size_in_bytes).sum();
        let summary = HashMap::from([
            (table::SUMMARY_RUN_ID.to_owned(), ctx.run_id.to_string()),
            (table::SUMMARY_ATTEMPT.to_owned(), ctx.attempt.to_string()),
            (
                table::SUMMARY_INGESTION_ID.to_owned(),
                fence.ingestion_id.to_string(),
            ),
            (table::SUMMARY_FILES.to_owned(), taken.len().to_string()),
            (table::SUMMARY_ROWS.to_owned(), rows.to_string()),
            (table::SUMMARY_BYTES_READ.to_owned(), bytes_read.to_string()),
            (
                table::SUMMARY_BYTES_WRITTEN.to_owned(),
                bytes_written.to_string(),
            ),
        ]);
        if self.cfg.failpoint == Failpoint::PauseBeforeCommit {
            tracing::warn!("failpoint pause-before-commit: waiting 3 s before the commit");
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        }
        let snapshot_id =
            table::commit(catalog, &self.pool, table, data_files, summary, parts).await?;
        tracing::info!(
            snapshot_id,
            files = taken.len(),
            files_rejected = rejections.files,
            records_rejected = rejections.records,
            rows,
            bytes_read,
            bytes_written,
            schema_evolved = evolved.is_some(),
            "snapshot committed"
        );
        if self.cfg.failpoint == Failpoint::AfterCommit {
            tracing::error!(
                "failpoint after-commit: the snapshot is committed; stopping before the run's outcome is recorded"
            );
            std::future::pending::<()>().await;
        }
        if self.cfg.failpoint == Failpoint::PauseAfterCommit {
            tracing::warn!("failpoint pause-after-commit: the snapshot is committed; waiting 1 s");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(RunOutput {
            files_processed: taken.len() as i64,
            rows_ingested: rows as i64,
            bytes_read: bytes_read as i64,
            bytes_written: bytes_written as i64,
            snapshot_id: Some(snapshot_id),
        })
    }
}

/// Times a run reads its files again because another writer evolved the table's schema first.
const SCHEMA_RETRIES: u32 = 3;

impl Executor for IngestExecutor {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async move {
            match ctx.kind {
                autoloader::runs::RunKind::Load => self.run(&ctx).await,
                kind => self.maintain(&ctx, kind).await,
            }
            .map_err(IngestError::into_exec)
        })
    }
}

/// The schema a new table gets, and the file it comes from.
pub struct NewTable {
    pub schema: iceberg::spec::Schema,
    pub spec: Option<iceberg::spec::UnboundPartitionSpec>,
    /// The file (its path below the prefix) the schema was inferred from.
    pub from: String,
}

/// The schema a run creates its table with: from the first file that gives one (under
/// `skip_file` or `skip_record` an unreadable first file is passed over; it is rejected when
/// read), with the ingestion's schema hints, the metadata columns it asks for and its
/// `partition_by`. A run and a dry run both call this, so they cannot disagree.
pub async fn new_table_schema(
    source: &Source,
    files: &[discover::Candidate],
    format: autoloader::ingestions::definition::FormatType,
    options: &IngestOptions,
    limits: Limits,
) -> Result<NewTable, IngestError> {
    let skip = options.on_error != OnError::Abort;
    let mut last = None;
    for c in files {
        let file = source.open_file(c, limits)?;
        let inferred = schema::infer_schema(
            &source.store,
            &file,
            format,
            options.csv,
            limits.max_record_bytes,
        )
        .await;
        let inferred = match inferred {
            Ok(s) => s,
            Err(e @ IngestError::File { .. }) if skip => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut fields: Vec<arrow_schema::Field> =
            evolve::apply_hints(&inferred, &options.schema_hints)
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
        // The columns of its path, which win over the file's own of those names.
        if options.partition_columns_from_path {
            let values = match path_columns::parse(&c.relative) {
                Ok(v) => v,
                Err(m) if skip => {
                    last = Some(IngestError::file(&file.name, m));
                    continue;
                }
                Err(m) => return Err(IngestError::file(&file.name, m)),
            };
            for f in path_columns::fields(&values, &options.schema_hints) {
                fields.retain(|x| x.name() != f.name());
                fields.push(f);
            }
        }
        for f in evolve::required_columns(options, false) {
            if !fields.iter().any(|x| x.name() == f.name()) {
                fields.push(f);
            }
        }
        let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(
            &arrow_schema::Schema::new(fields),
        )
        .map_err(|e| {
            IngestError::file(
                &file.name,
                format!("its columns cannot be an Iceberg schema: {e}"),
            )
        })?;
        // A partition field its schema cannot have fails the run here, naming the option.
        let spec = partition::spec(&schema, &options.partition_by)?;
        return Ok(NewTable {
            schema,
            spec,
            from: c.relative.clone(),
        });
    }
    Err(last.unwrap_or_else(|| IngestError::Config("no file to create the table from".into())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_error_from_a_lost_database_connection_is_transient() {
        // What iceberg-catalog-sql makes of a connection cut by a failover.
        let cut = iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            "operation failed for hitting sqlx error",
        )
        .with_source(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
        assert!(matches!(
            IngestError::catalog(&cut).into_exec(),
            ExecError::Transient(_)
        ));
        let refused = iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            "operation failed for hitting sqlx error",
        )
        .with_source(sqlx::Error::RowNotFound);
        assert!(matches!(
            IngestError::catalog(&refused).into_exec(),
            ExecError::Permanent(_)
        ));
    }
}
