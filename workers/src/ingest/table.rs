//! The Iceberg side: the SQL catalog on the project's own PostgreSQL (schema `iceberg_catalog`),
//! tables created from an inferred schema, Parquet data files, and the commit.
//!
//! The commit is where exactly-once is decided. [`FencedCommit`] is a catalog whose
//! `update_table` swaps the table's metadata pointer in one PostgreSQL transaction with two
//! other writes: a check that this worker still holds the run's lease (locking the run row, so
//! lease recovery cannot requeue it meanwhile), and the ledger rows of the files loaded (with,
//! under incremental discovery, the full listing the run did). Either all happen or none: a file is in `loaded_files` exactly when its rows are in the table,
//! and a worker that lost its lease cannot commit at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use autoloader::discovery::{discovery_record_full_listing, FullListing};
use autoloader::ingestions::definition::DestinationTable;
use autoloader::ledger;
use autoloader::runs::lease::Rejections;
use autoloader::tables::table_facts_record;

pub use super::facts::{facts_of, ident_text, FactsFor};
use chrono::{DateTime, Utc};
use iceberg::spec::{DataFile, DataFileFormat, Schema as IcebergSchema, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::{
    Catalog, CatalogBuilder, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent,
    TableCommit, TableCreation, TableIdent,
};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use sqlx::PgPool;
use uuid::Uuid;

use super::IngestError;

/// The catalog name rows in `iceberg_catalog.iceberg_tables` carry (pyiceberg and Spark readers
/// use it to find the tables).
pub const CATALOG_NAME: &str = "autoloader";

/// Snapshot summary keys naming the run that committed a snapshot.
pub const SUMMARY_RUN_ID: &str = "autoloader.run-id";
pub const SUMMARY_ATTEMPT: &str = "autoloader.attempt";
pub const SUMMARY_INGESTION_ID: &str = "autoloader.ingestion-id";
pub const SUMMARY_FILES: &str = "autoloader.files";
pub const SUMMARY_ROWS: &str = "autoloader.rows";
pub const SUMMARY_BYTES_READ: &str = "autoloader.bytes-read";
pub const SUMMARY_BYTES_WRITTEN: &str = "autoloader.bytes-written";

/// Opens the SQL catalog in `database_url`'s database, schema `iceberg_catalog`, with tables
/// under `warehouse` (`file:///abs/dir` or `s3://bucket/prefix`), their files read and written
/// through `storage`.
pub async fn open_catalog(
    database_url: &str,
    warehouse: &str,
    storage: &super::warehouse::WarehouseStorageFactory,
) -> Result<SqlCatalog, IngestError> {
    let sep = if database_url.contains('?') { '&' } else { '?' };
    let uri = format!("{database_url}{sep}options=-c%20search_path%3Diceberg_catalog");
    SqlCatalogBuilder::default()
        .uri(uri)
        .warehouse_location(warehouse)
        .with_storage_factory(Arc::new(storage.clone()))
        .load(
            CATALOG_NAME,
            HashMap::from([
                ("pool.max-connections".to_owned(), "4".to_owned()),
                ("pool.idle-timeout".to_owned(), "60".to_owned()),
            ]),
        )
        .await
        .map_err(|e| IngestError::Catalog(format!("cannot open the Iceberg catalog: {e}")))
}

pub fn ident(dest: &DestinationTable) -> Result<TableIdent, IngestError> {
    let ns = NamespaceIdent::from_vec(dest.namespace.clone())
        .map_err(|e| IngestError::Config(format!("destination_table {dest}: {e}")))?;
    Ok(TableIdent::new(ns, dest.table.clone()))
}

/// Loads the table, or `None` when it does not exist yet.
pub async fn load(catalog: &SqlCatalog, id: &TableIdent) -> Result<Option<Table>, IngestError> {
    match catalog.load_table(id).await {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == ErrorKind::TableNotFound => Ok(None),
        Err(e) => Err(IngestError::catalog(&e)),
    }
}

/// Creates the table (and its namespace) with `schema`, partitioned by `spec` (whose source ids
/// are `schema`'s) when there is one; when another run created it first, loads that one.
pub async fn create(
    catalog: &SqlCatalog,
    id: &TableIdent,
    schema: IcebergSchema,
    spec: Option<UnboundPartitionSpec>,
) -> Result<Table, IngestError> {
    let ns = id.namespace();
    if !catalog
        .namespace_exists(ns)
        .await
        .map_err(|e| IngestError::catalog(&e))?
    {
        if let Err(e) = catalog.create_namespace(ns, HashMap::new()).await {
            // Another run may have created it meanwhile.
            if !catalog.namespace_exists(ns).await.unwrap_or(false) {
                return Err(IngestError::catalog(&e));
            }
        }
    }
    let creation = TableCreation::builder()
        .name(id.name().to_owned())
        .schema(schema)
        .partition_spec_opt(spec)
        .properties([(
            "write.parquet.compression-codec".to_owned(),
            "zstd".to_owned(),
        )])
        .build();
    match catalog.create_table(ns, creation).await {
        Ok(t) => Ok(t),
        Err(e) => match load(catalog, id).await? {
            Some(t) => Ok(t),
            None => Err(IngestError::catalog(&e)),
        },
    }
}

/// A snapshot some run committed, read from its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub snapshot_id: i64,
    pub attempt: i32,
    pub files: i64,
    pub rows: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
}

/// The snapshot `run_id` committed, if any (an earlier attempt may have committed and died
/// before recording the run's outcome).
pub fn committed_by(table: &Table, run_id: Uuid) -> Option<Committed> {
    let run = run_id.to_string();
    table.metadata().snapshots().find_map(|s| {
        let p = &s.summary().additional_properties;
        (p.get(SUMMARY_RUN_ID) == Some(&run)).then(|| {
            let num = |k: &str| p.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            Committed {
                snapshot_id: s.snapshot_id(),
                attempt: num(SUMMARY_ATTEMPT) as i32,
                files: num(SUMMARY_FILES),
                rows: num(SUMMARY_ROWS),
                bytes_read: num(SUMMARY_BYTES_READ),
                bytes_written: num(SUMMARY_BYTES_WRITTEN),
            }
        })
    })
}

/// A file this run dealt with, for the ledger: loaded, or rejected with its error.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub rows: u64,
    pub rejected: Option<String>,
    pub records_rejected: u64,
}

impl LoadedFile {
    fn for_ledger(&self) -> ledger::LoadedFile {
        ledger::LoadedFile {
            path: self.path.clone(),
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            etag: self.etag.clone(),
            last_modified: self.last_modified,
            rows: i64::try_from(self.rows).unwrap_or(i64::MAX),
            rejected: self.rejected.clone(),
            records_rejected: i64::try_from(self.records_rejected).unwrap_or(i64::MAX),
        }
    }
}

/// A schema the commit makes current, and the table it was evolved from: the commit is refused
/// ([`IngestError::SchemaMoved`]) when the table's schema has moved on since, because the data
/// files were written with field ids that may now mean other columns.
#[derive(Debug, Clone)]
pub struct Evolved {
    pub schema: IcebergSchema,
    pub base_schema_id: i32,
    pub base_last_column_id: i32,
}

/// The lease every write of a run is fenced by.
#[derive(Debug, Clone)]
pub struct Fence {
    pub run_id: Uuid,
    pub attempt: i32,
    pub worker_id: String,
    pub ingestion_id: Uuid,
}

impl Evolved {
    /// Whether `table` is still at the schema this one was evolved from.
    fn fits(&self, table: &Table) -> bool {
        let m = table.metadata();
        m.current_schema_id() == self.base_schema_id
            && m.last_column_id() == self.base_last_column_id
    }

    /// `table` (as loaded from the catalog) with this schema added and current, in memory.
    fn apply(&self, table: Table) -> iceberg::Result<Table> {
        let location = table.metadata_location_result()?.to_string();
        let metadata = table
            .metadata()
            .clone()
            .into_builder(None)
            .add_current_schema(self.schema.clone())?
            .build()?
            .metadata;
        Table::builder()
            .metadata(metadata)
            .metadata_location(location)
            .identifier(table.identifier().clone())
            .file_io(table.file_io().clone())
            .runtime(iceberg::Runtime::current())
            .build()
    }
}

impl CommitParts<'_> {
    /// The rejections the commit writes on the run: a commit without files (a full listing
    /// that found nothing new, a maintenance commit) has none to write and leaves what an
    /// earlier attempt recorded.
    fn rejections_to_write(&self) -> Option<&Rejections> {
        (!self.files.is_empty()).then_some(self.rejections)
    }
}

/// What a run commits besides its data files.
#[derive(Debug, Clone, Copy)]
pub struct CommitParts<'a> {
    pub fence: &'a Fence,
    /// The table facts the commit records.
    pub facts: FactsFor,
    /// The ledger rows: loaded and rejected files.
    pub files: &'a [LoadedFile],
    pub rejections: &'a Rejections,
    /// The schema the data files were written with, when the run evolved the table's.
    pub evolved: Option<&'a Evolved>,
    /// The full listing the run did under incremental discovery, recorded with its commit.
    pub full_listing: Option<&'a FullListing>,
}

/// Appends `data_files` in one snapshot whose summary names the run (making the evolved schema
/// current first, when there is one), and records the ledger rows and the run's rejections in
/// the same PostgreSQL transaction as the catalog pointer swap (see the module docs). Returns
/// the new snapshot's id.
pub async fn commit(
    catalog: &SqlCatalog,
    pool: &PgPool,
    table: &Table,
    data_files: Vec<DataFile>,
    summary: HashMap<String, String>,
    parts: CommitParts<'_>,
) -> Result<i64, IngestError> {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let fenced = FencedCommit {
        inner: catalog,
        pool,
        parts,
        snapshot_id: Mutex::new(None),
    };
    // Staged against the evolved schema: the snapshot and its manifests carry the schema the
    // data files were written with.
    let base = match parts.evolved {
        Some(e) => e
            .apply(table.clone())
            .map_err(|e| IngestError::catalog(&e))?,
        None => table.clone(),
    };
    let tx = Transaction::new(&base);
    let action = tx
        .fast_append()
        .add_data_files(data_files)
        .set_snapshot_properties(summary);
    let tx = action.apply(tx).map_err(|e| IngestError::catalog(&e))?;
    match tx.commit(&fenced).await {
        Ok(_) => {}
        Err(e) if e.message().contains(LEASE_LOST) => return Err(IngestError::LeaseLost),
        Err(e) if e.message().contains(SCHEMA_MOVED) => return Err(IngestError::SchemaMoved),
        Err(e) => return Err(IngestError::catalog(&e)),
    }
    let id = fenced
        .snapshot_id
        .lock()
        .map_err(|_| IngestError::Catalog("commit state poisoned".into()))?
        .ok_or_else(|| IngestError::Catalog("the commit produced no snapshot".into()))?;
    Ok(id)
}

const LEASE_LOST: &str = "the run's lease is no longer held by this worker";
const SCHEMA_MOVED: &str = "the table's schema changed since the data files were written";

/// Records a run that adds no rows (its files were all rejected, or empty, or it found none): the
/// ledger rows, the run's rejections and its full listing, fenced by the lease like a commit.
pub async fn record_without_snapshot(
    pool: &PgPool,
    parts: CommitParts<'_>,
) -> Result<(), IngestError> {
    let mut tx = pool.begin().await.map_err(IngestError::Db)?;
    let f = parts.fence;
    if !autoloader::runs::lease::run_fence(&mut tx, &f.lease(), parts.rejections_to_write())
        .await
        .map_err(IngestError::Db)?
    {
        return Err(IngestError::LeaseLost);
    }
    let files: Vec<ledger::LoadedFile> = parts.files.iter().map(LoadedFile::for_ledger).collect();
    if !files.is_empty() {
        ledger::ledger_record(&mut tx, f.loaded_by(None), &files)
            .await
            .map_err(IngestError::Db)?;
    }
    if let Some(listing) = parts.full_listing {
        discovery_record_full_listing(&mut tx, listing)
            .await
            .map_err(IngestError::Db)?;
    }
    tx.commit().await.map_err(IngestError::Db)
}

impl Fence {
    pub fn lease(&self) -> autoloader::runs::lease::Fence {
        autoloader::runs::lease::Fence {
            run_id: self.run_id,
            attempt: self.attempt,
            worker_id: self.worker_id.clone(),
        }
    }

    fn loaded_by(&self, snapshot_id: Option<i64>) -> ledger::LoadedBy {
        ledger::LoadedBy {
            ingestion_id: self.ingestion_id,
            run_id: self.run_id,
            attempt: self.attempt,
            snapshot_id,
        }
    }
}

/// A catalog for one commit: reads go to the SQL catalog; `update_table` swaps the pointer in
/// one transaction with the lease check and the ledger rows.
struct FencedCommit<'a> {
    inner: &'a SqlCatalog,
    pool: &'a PgPool,
    parts: CommitParts<'a>,
    snapshot_id: Mutex<Option<i64>>,
}

impl std::fmt::Debug for FencedCommit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedCommit")
            .field("run_id", &self.parts.fence.run_id)
            .finish()
    }
}

/// A failed statement of the fenced commit; retryable when the database was away (a failover, a
/// cut), which the run's retry (`SCHEDULER_RETRIES`) then survives.
fn db_error(e: sqlx::Error) -> Error {
    let away = autoloader::db::unavailable(&e);
    Error::new(ErrorKind::Unexpected, format!("database: {e}")).with_retryable(away)
}

#[async_trait]
impl Catalog for FencedCommit<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        self.inner.create_table(namespace, creation).await
    }
    /// The table, with the evolved schema current (when the commit has one and it still fits):
    /// an append staged against it records that schema as its snapshot's.
    async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        let t = self.inner.load_table(table).await?;
        match self.parts.evolved {
            Some(e) if e.fits(&t) => e.apply(t),
            _ => Ok(t),
        }
    }
    async fn drop_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        table: &TableIdent,
        metadata_location: String,
    ) -> iceberg::Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }

    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        let id = commit.identifier().clone();
        let mut current = self.inner.load_table(&id).await?;
        // The metadata file this commit replaces: the one in the catalog.
        let current_location = current.metadata_location_result()?.to_string();
        if let Some(evolved) = self.parts.evolved {
            if !evolved.fits(&current) {
                return Err(Error::new(ErrorKind::PreconditionFailed, SCHEMA_MOVED));
            }
            current = evolved.apply(current)?;
        }
        let staged = commit.apply(current)?;
        let staged_location: MetadataLocation = staged.metadata_location_result()?.parse()?;
        staged
            .metadata()
            .write_to(staged.file_io(), &staged_location)
            .await?;
        let snapshot_id = staged
            .metadata()
            .current_snapshot_id()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "the staged table has no snapshot"))?;

        let f = self.parts.fence;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The lease check locks the run row: recovery cannot requeue the run until this
        // transaction ends, and after a requeue this worker's attempt no longer matches.
        let held = autoloader::runs::lease::run_fence(
            &mut tx,
            &f.lease(),
            self.parts.rejections_to_write(),
        )
        .await
        .map_err(db_error)?;
        if !held {
            return Err(Error::new(ErrorKind::PreconditionFailed, LEASE_LOST));
        }
        let swapped = pointer_swap(
            &mut tx,
            &id,
            &staged_location.to_string(),
            &current_location,
        )
        .await
        .map_err(db_error)?;
        if !swapped {
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("another writer committed to {id} first"),
            )
            .with_retryable(true));
        }
        if !self.parts.files.is_empty() {
            let files: Vec<ledger::LoadedFile> = self
                .parts
                .files
                .iter()
                .map(LoadedFile::for_ledger)
                .collect();
            // A path already in the ledger violates its primary key and rolls the commit back:
            // no file is ever appended twice.
            ledger::ledger_record(&mut tx, f.loaded_by(Some(snapshot_id)), &files)
                .await
                .map_err(db_error)?;
        }
        let facts = facts_of(&staged, &self.parts.facts);
        table_facts_record(&mut tx, &facts, self.parts.facts.small)
            .await
            .map_err(db_error)?;
        if let Some(listing) = self.parts.full_listing {
            discovery_record_full_listing(&mut tx, listing)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        if let Ok(mut slot) = self.snapshot_id.lock() {
            *slot = Some(snapshot_id);
        }
        Ok(staged)
    }
}

/// Swaps `id`'s metadata pointer from `current` to `next`, inside `tx`; `false` when the
/// catalog no longer points at `current` (another writer committed first).
async fn pointer_swap(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &TableIdent,
    next: &str,
    current: &str,
) -> Result<bool, sqlx::Error> {
    let swapped = sqlx::query!(
        "update iceberg_catalog.iceberg_tables
             set metadata_location = $1, previous_metadata_location = $2
             where catalog_name = $3 and table_namespace = $4 and table_name = $5
               and metadata_location = $2",
        next,
        current,
        CATALOG_NAME,
        id.namespace().join("."),
        id.name(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(swapped.rows_affected() == 1)
}

/// Commits `tx`, a table maintenance action of iceberg's own (no data files of a load, no
/// ledger rows), through the fenced catalog: the pointer swap happens only while `fence`'s lease
/// holds, and iceberg retries the action against reloaded metadata when another writer
/// committed first. Returns the table as committed.
pub async fn commit_maintenance(
    catalog: &SqlCatalog,
    pool: &PgPool,
    fence: &Fence,
    facts: FactsFor,
    tx: iceberg::transaction::Transaction,
) -> Result<Table, IngestError> {
    let rejections = Rejections::default();
    let fenced = FencedCommit {
        inner: catalog,
        pool,
        parts: CommitParts {
            fence,
            facts,
            files: &[],
            rejections: &rejections,
            evolved: None,
            full_listing: None,
        },
        snapshot_id: Mutex::new(None),
    };
    match tx.commit(&fenced).await {
        Ok(t) => Ok(t),
        Err(e) if e.message().contains(LEASE_LOST) => Err(IngestError::LeaseLost),
        Err(e) => Err(IngestError::catalog(&e)),
    }
}

/// What [`swap_metadata`] did.
#[derive(Debug)]
pub enum Swapped {
    /// The table now is at the new metadata.
    Committed(Box<Table>),
    /// Another writer committed first: the catalog no longer points at the base's metadata.
    Conflict,
}

/// Makes `metadata`, built on `base` (the table as loaded from the catalog), the table's
/// current metadata: writes it as the next metadata file and swaps the catalog pointer from
/// `base`'s in one PostgreSQL transaction with the lease check, as a load's commit does. For
/// changes iceberg has no action for (a compaction's `replace` snapshot, written on iceberg's
/// spec types).
pub async fn swap_metadata(
    pool: &PgPool,
    fence: &Fence,
    facts: FactsFor,
    base: &Table,
    metadata: iceberg::spec::TableMetadata,
) -> Result<Swapped, IngestError> {
    let current = base
        .metadata_location_result()
        .map_err(|e| IngestError::catalog(&e))?
        .to_string();
    let next: MetadataLocation = current
        .parse::<MetadataLocation>()
        .map_err(|e| IngestError::catalog(&e))?
        .with_next_version()
        .with_new_metadata(&metadata);
    metadata
        .write_to(base.file_io(), &next)
        .await
        .map_err(|e| IngestError::catalog(&e))?;
    let next = next.to_string();
    let mut tx = pool.begin().await.map_err(IngestError::Db)?;
    if !autoloader::runs::lease::run_fence(&mut tx, &fence.lease(), None)
        .await
        .map_err(IngestError::Db)?
    {
        return Err(IngestError::LeaseLost);
    }
    if !pointer_swap(&mut tx, base.identifier(), &next, &current)
        .await
        .map_err(IngestError::Db)?
    {
        return Ok(Swapped::Conflict);
    }
    let table = Table::builder()
        .metadata(metadata)
        .metadata_location(next)
        .identifier(base.identifier().clone())
        .file_io(base.file_io().clone())
        .runtime(iceberg::Runtime::current())
        .build()
        .map_err(|e| IngestError::catalog(&e))?;
    table_facts_record(&mut tx, &facts_of(&table, &facts), facts.small)
        .await
        .map_err(IngestError::Db)?;
    tx.commit().await.map_err(IngestError::Db)?;
    Ok(Swapped::Committed(Box::new(table)))
}

/// The locations of the catalog's other tables that lie inside `location` (a table
/// `ns.events.data` lies in `.../ns/events/data`, inside the table `ns.events`): their files are
/// under `location` but never this table's. A table's location is its current metadata file's
/// directory's parent.
pub async fn tables_inside(pool: &PgPool, location: &str) -> Result<Vec<String>, IngestError> {
    let prefix = format!("{}/", location.trim_end_matches('/'));
    let rows = sqlx::query_scalar!(
        r#"select metadata_location as "metadata_location!" from iceberg_catalog.iceberg_tables
           where catalog_name = $1 and starts_with(metadata_location, $2)"#,
        CATALOG_NAME,
        prefix,
    )
    .fetch_all(pool)
    .await
    .map_err(IngestError::Db)?;
    Ok(rows
        .into_iter()
        .filter_map(|m| m.rsplit_once("/metadata/").map(|(root, _)| root.to_owned()))
        .filter(|root| root.len() > prefix.len())
        .collect())
}

/// Data file names: the run and attempt that wrote them, so a stray file is traceable.
pub fn file_name_prefix(fence: &Fence) -> String {
    format!("run-{}-a{}", fence.run_id, fence.attempt)
}

pub const DATA_FILE_FORMAT: DataFileFormat = DataFileFormat::Parquet;
