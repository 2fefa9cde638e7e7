//! Table maintenance against real PostgreSQL and a real warehouse (a local directory and the test
//! S3 server): compaction of 200 one-file appends, per partition, racing a load; snapshot expiry
//! and the files it deletes; orphan removal; and a commit refused after the lease is lost. The
//! maintenance run's lease is a RUNNING run row; tables are read back with iceberg and pyiceberg.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use autoloader::runs::lease::Rejections;
use autoloader_tests::{database_url, s3, temp_dir};
use autoloader_worker::ingest::maintain::{
    Maintenance, MaintenanceKind, MaintenanceReport, MaintenanceSettings,
};
use autoloader_worker::ingest::table::{self, CommitParts, Fence};
use autoloader_worker::ingest::warehouse::{S3Settings, WarehouseStorageFactory};
use autoloader_worker::ingest::IngestError;
use futures::TryStreamExt;
use iceberg::spec::{
    DataFile, Literal, NestedField, PartitionKey, PrimitiveType, Schema, Struct, Transform, Type,
    UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::SqlCatalog;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// One test's table: its catalog, warehouse and the RUNNING runs that write it.
struct World {
    pool: PgPool,
    url: String,
    warehouse: String,
    storage: WarehouseStorageFactory,
    catalog: SqlCatalog,
    id: TableIdent,
    tenant: Uuid,
    /// The lease the loads commit under.
    load: Fence,
}

impl World {
    async fn new(pool: PgPool, warehouse: String, storage: WarehouseStorageFactory) -> World {
        let url = database_url(&pool);
        let catalog = table::open_catalog(&url, &warehouse, &storage)
            .await
            .expect("open catalog");
        let tenant = autoloader_tests::tenant(&pool, "maint").await;
        let id = TableIdent::new(
            NamespaceIdent::from_vec(vec!["maint".into()]).expect("namespace"),
            "events".into(),
        );
        let load = running(&pool, tenant, 1, "loader").await;
        World {
            pool,
            url,
            warehouse,
            storage,
            catalog,
            id,
            tenant,
            load,
        }
    }

    async fn local(pool: PgPool) -> World {
        let dir = temp_dir("maint-warehouse");
        World::new(
            pool,
            format!("file://{}", dir.display()),
            WarehouseStorageFactory::from_env(),
        )
        .await
    }

    async fn s3(pool: PgPool) -> World {
        let bucket = format!("maint-{}", Uuid::now_v7().simple());
        s3::create_bucket(&bucket).await;
        let storage = WarehouseStorageFactory::with_s3(S3Settings {
            endpoint: Some(s3::endpoint()),
            region: Some(s3::REGION.to_owned()),
            access_key_id: Some(s3::ACCESS_KEY.to_owned()),
            secret_access_key: Some(s3::SECRET_KEY.to_owned()),
            allow_http: Some(true),
            virtual_hosted_style_request: None,
        });
        World::new(pool, format!("s3://{bucket}/wh"), storage).await
    }

    /// Creates the table `maint.events (id long, day string, v string)`, partitioned by `day`
    /// when asked.
    async fn create(&self, partitioned: bool) -> Table {
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "day", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "v", Type::Primitive(PrimitiveType::String)).into(),
            ])
            .build()
            .expect("schema");
        if !partitioned {
            return table::create(&self.catalog, &self.id, schema, None)
                .await
                .expect("create table");
        }
        self.catalog
            .create_namespace(self.id.namespace(), HashMap::new())
            .await
            .expect("namespace");
        let spec = UnboundPartitionSpec::builder()
            .add_partition_field(2, "day", Transform::Identity)
            .expect("partition field")
            .build();
        let creation = TableCreation::builder()
            .name(self.id.name().to_owned())
            .schema(schema)
            .partition_spec(spec)
            .build();
        self.catalog
            .create_table(self.id.namespace(), creation)
            .await
            .expect("create partitioned table")
    }

    async fn table(&self) -> Table {
        table::load(&self.catalog, &self.id)
            .await
            .expect("load")
            .expect("table exists")
    }

    /// One load: a data file of rows `ids` (in partition `day`) appended in one snapshot, the
    /// way a run commits (fenced by the load's lease).
    async fn append(&self, ids: std::ops::Range<i64>, day: &str) -> i64 {
        let t = self.table().await;
        let files = write_file(&t, &table::file_name_prefix(&self.load), ids, day).await;
        let rejections = Rejections::default();
        let parts = CommitParts {
            fence: &self.load,
            facts: table::FactsFor {
                tenant_id: self.tenant,
                ingestion_id: self.load.ingestion_id,
                small_file_bytes: 96 << 20,
                small: autoloader::tables::SmallFiles::Added(1),
            },
            files: &[],
            rejections: &rejections,
            evolved: None,
            full_listing: None,
        };
        table::commit(&self.catalog, &self.pool, &t, files, HashMap::new(), parts)
            .await
            .expect("append")
    }

    fn maintenance(&self, fence: Fence, settings: MaintenanceSettings) -> Maintenance<'_> {
        Maintenance {
            catalog: &self.catalog,
            pool: &self.pool,
            table: self.id.clone(),
            fence,
            tenant_id: self.tenant,
            settings,
            cancel: CancellationToken::new(),
            warehouse: &self.storage,
            before_commit: None,
        }
    }

    /// The table as pyiceberg reads it (`None` when the venv is unavailable).
    fn pyiceberg(&self) -> Option<Value> {
        s3::iceberg_read(&self.url, &self.warehouse, "maint.events")
    }

    /// Every row's id, sorted, as iceberg-rust scans the current snapshot.
    async fn ids(&self) -> Vec<i64> {
        ids_of(&self.table().await, None).await.expect("scan")
    }
}

/// A RUNNING run (of an ingestion of its own: one active run per ingestion) at `attempt`, held
/// by `worker`, its lease 5 minutes long.
async fn running(pool: &PgPool, tenant: Uuid, attempt: i32, worker: &str) -> Fence {
    let ingestion = autoloader_tests::scheduled_ingestion(
        pool,
        tenant,
        &format!("i-{}", Uuid::now_v7()),
        "0 0 1 1 *",
        Value::Null,
    )
    .await;
    let run = Uuid::now_v7();
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, status, attempt, worker_id,
                           started_at, lease_expires_at)
         select $1, id, tenant_id, 'manual', 'RUNNING', $2, $3, now(), now() + interval '5 minutes'
         from ingestions where id = $4",
    )
    .bind(run)
    .bind(attempt)
    .bind(worker)
    .bind(ingestion)
    .execute(pool)
    .await
    .expect("insert running run");
    Fence {
        run_id: run,
        attempt,
        worker_id: worker.to_owned(),
        ingestion_id: ingestion,
    }
}

async fn write_file(
    t: &Table,
    prefix: &str,
    ids: std::ops::Range<i64>,
    day: &str,
) -> Vec<DataFile> {
    let md = t.metadata();
    let schema = md.current_schema().clone();
    let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
    let n = ids.clone().count();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone().collect::<Vec<_>>())),
        Arc::new(StringArray::from(vec![day; n])),
        Arc::new(StringArray::from(
            ids.map(|i| format!("value {i}")).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(arrow, columns).expect("batch");
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        ParquetWriterBuilder::new(Default::default(), schema.clone()),
        t.file_io().clone(),
        DefaultLocationGenerator::new(md).expect("locations"),
        DefaultFileNameGenerator::new(
            format!("{prefix}-t{}", Uuid::now_v7().simple()),
            None,
            table::DATA_FILE_FORMAT,
        ),
    );
    let spec = md.default_partition_spec();
    let key = (!spec.is_unpartitioned()).then(|| {
        PartitionKey::new(
            spec.as_ref().clone(),
            schema.clone(),
            Struct::from_iter([Some(Literal::string(day))]),
        )
    });
    let mut w = DataFileWriterBuilder::new(rolling)
        .build(key)
        .await
        .expect("writer");
    w.write(batch).await.expect("write");
    w.close().await.expect("close")
}

/// The ids a scan of `snapshot` (the current one when `None`) reads, sorted.
async fn ids_of(t: &Table, snapshot: Option<i64>) -> iceberg::Result<Vec<i64>> {
    let mut scan = t.scan();
    if let Some(s) = snapshot {
        scan = scan.snapshot_id(s);
    }
    let batches: Vec<RecordBatch> = scan.build()?.to_arrow().await?.try_collect().await?;
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .expect("id column");
            col.iter().flatten().collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Manifests of the current snapshot.
async fn manifests(t: &Table) -> usize {
    let snap = t.metadata().current_snapshot().expect("snapshot");
    t.manifest_list_reader(snap)
        .load()
        .await
        .expect("manifest list")
        .entries()
        .len()
}

/// Ids pyiceberg reads, sorted, and the operation of the last snapshot.
fn py_ids(read: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = read["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids
}

fn last_operation(read: &Value) -> String {
    let snaps = read["snapshots"].as_array().expect("snapshots");
    let current = &read["current_snapshot_id"];
    snaps
        .iter()
        .find(|s| &s["snapshot_id"] == current)
        .map(|s| s["summary"]["operation"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// Files under the table's location whose names contain `needle`.
async fn listed(w: &World, needle: &str) -> Vec<String> {
    let t = w.table().await;
    w.storage
        .list(&format!("{}/", t.metadata().location()))
        .expect("list")
        .map_ok(|f| f.location)
        .try_filter(|l| futures::future::ready(l.contains(needle)))
        .try_collect()
        .await
        .expect("listing")
}

fn settings() -> MaintenanceSettings {
    MaintenanceSettings {
        target_file_size: 8 << 20,
        ..MaintenanceSettings::default()
    }
}

/// 200 one-file loads, compacted, their snapshots expired, orphans removed: the same rows all
/// along, as iceberg-rust and pyiceberg read them.
async fn lifecycle(w: World) {
    w.create(false).await;
    let rows_per_load = 5;
    for i in 0..200 {
        w.append(i * rows_per_load..(i + 1) * rows_per_load, "d")
            .await;
    }
    let all: Vec<i64> = (0..200 * rows_per_load).collect();
    let before = w.table().await;
    assert_eq!(before.metadata().snapshots().len(), 200);
    assert_eq!(manifests(&before).await, 200);

    // Compaction: 200 small files, one bin, one file out, one manifest.
    let maint = running(&w.pool, w.tenant, 1, "maint-worker").await;
    let m = w.maintenance(maint.clone(), settings());
    let report = m.run(MaintenanceKind::Compact).await.expect("compact");
    assert_eq!(report.files_read, 200, "{report:?}");
    assert_eq!(report.rows, 1000, "{report:?}");
    assert_eq!(report.files_written, 1, "{report:?}");
    assert_eq!(
        (report.data_files, report.small_files),
        (1, 1),
        "{report:?}"
    );
    let compacted = w.table().await;
    let replace = report.snapshot_id.expect("a snapshot");
    assert_eq!(compacted.metadata().current_snapshot_id(), Some(replace));
    assert_eq!(manifests(&compacted).await, 1);
    assert_eq!(w.ids().await, all);
    if let Some(read) = w.pyiceberg() {
        assert_eq!(py_ids(&read), all);
        assert_eq!(last_operation(&read), "replace");
        // Rows compared one by one: the values came through the rewrite too.
        let first = &read["rows"][0];
        assert_eq!(first["v"], "value 0", "{first}");
    }
    // The same run again (say its outcome was lost after the commit): it finds its snapshot.
    let again = m
        .run(MaintenanceKind::Compact)
        .await
        .expect("compact again");
    assert_eq!(again.snapshot_id, Some(replace));
    assert_eq!(again.files_written, 0);
    assert_eq!(w.table().await.metadata().snapshots().len(), 201);

    // Expiry: every snapshot but the current one; the 200 replaced files and every old manifest
    // and manifest list go, the compacted file stays.
    let old_load = before.metadata().current_snapshot_id().expect("snapshot");
    let expire = w.maintenance(
        maint.clone(),
        MaintenanceSettings {
            snapshot_retention: Duration::ZERO,
            ..settings()
        },
    );
    let report = expire
        .run(MaintenanceKind::ExpireSnapshots)
        .await
        .expect("expire");
    assert_eq!(report.snapshots_expired, 200, "{report:?}");
    // 200 data files, 200 manifests, 200 manifest lists.
    assert_eq!(report.files_deleted, 600, "{report:?}");
    assert!(report.bytes_deleted > 0);
    let after = w.table().await;
    assert_eq!(after.metadata().snapshots().len(), 1);
    assert_eq!(w.ids().await, all);
    if let Some(read) = w.pyiceberg() {
        assert_eq!(py_ids(&read), all);
    }
    assert_eq!(listed(&w, "/data/").await.len(), 1);
    // A reader still holding the expired snapshot: planning it against current metadata fails
    // (the snapshot is gone), and reading it with the metadata it held fails (its files are).
    assert!(ids_of(&after, Some(old_load)).await.is_err());
    let stale = ids_of(&before, Some(old_load)).await;
    assert!(stale.is_err(), "an expired snapshot still reads: {stale:?}");
    // Nothing older than 0 s is left to expire.
    let report = expire
        .run(MaintenanceKind::ExpireSnapshots)
        .await
        .expect("expire");
    assert_eq!(report.note.as_deref(), Some("nothing to expire"));

    // Orphans: a killed attempt's file (its run is at attempt 2), the live attempt's file, an
    // unknown young file.
    let other = running(&w.pool, w.tenant, 2, "other").await;
    let killed = Fence {
        attempt: 1,
        ..other.clone()
    };
    let io = after.file_io();
    let data = format!("{}/data", after.metadata().location());
    let dead = format!(
        "{data}/{}-w0-00000.parquet",
        table::file_name_prefix(&killed)
    );
    let live = format!(
        "{data}/{}-w0-00000.parquet",
        table::file_name_prefix(&other)
    );
    let young = format!("{data}/stray-young.parquet");
    for f in [&dead, &live, &young] {
        io.new_output(f)
            .expect("output")
            .write(bytes_of("x"))
            .await
            .expect("write orphan");
    }
    let orphans = w.maintenance(maint, settings());
    let report = orphans
        .run(MaintenanceKind::RemoveOrphans)
        .await
        .expect("orphans");
    assert_eq!(report.files_deleted, 1, "{report:?}");
    assert!(!io.exists(&dead).await.expect("exists"));
    assert!(io.exists(&live).await.expect("exists"));
    assert!(io.exists(&young).await.expect("exists"));
    assert_eq!(w.ids().await, all);
    if let Some(read) = w.pyiceberg() {
        assert_eq!(py_ids(&read), all);
    }
}

fn bytes_of(s: &str) -> bytes::Bytes {
    bytes::Bytes::from(s.as_bytes().to_vec())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_hundred_loads_compact_expire_and_clean_up_locally(pool: PgPool) {
    lifecycle(World::local(pool).await).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_hundred_loads_compact_expire_and_clean_up_on_s3(pool: PgPool) {
    lifecycle(World::s3(pool).await).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_partitioned_table_compacts_per_partition(pool: PgPool) {
    let w = World::local(pool).await;
    w.create(true).await;
    for i in 0..20 {
        let day = if i % 2 == 0 {
            "2026-01-01"
        } else {
            "2026-01-02"
        };
        w.append(i * 3..i * 3 + 3, day).await;
    }
    let maint = running(&w.pool, w.tenant, 1, "maint-worker").await;
    let report = w
        .maintenance(maint.clone(), settings())
        .run(MaintenanceKind::Compact)
        .await
        .expect("compact");
    assert_eq!(
        (report.files_read, report.files_written),
        (20, 2),
        "{report:?}"
    );
    let t = w.table().await;
    assert_eq!(manifests(&t).await, 1);
    assert_eq!(w.ids().await, (0..60).collect::<Vec<_>>());
    // Each new file holds one partition's rows.
    let files = listed(&w, &format!("{}-c", table::file_name_prefix(&maint))).await;
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().any(|f| f.contains("day=2026-01-01")),
        "{files:?}"
    );
    if let Some(read) = w.pyiceberg() {
        assert_eq!(py_ids(&read), (0..60).collect::<Vec<_>>());
        for r in read["rows"].as_array().expect("rows") {
            let (id, day) = (r["id"].as_i64().unwrap_or(-1), r["day"].as_str());
            let want = if (id / 3) % 2 == 0 {
                "2026-01-01"
            } else {
                "2026-01-02"
            };
            assert_eq!(day, Some(want), "{r}");
        }
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_compaction_racing_a_load_loses_nothing(pool: PgPool) {
    let w = Arc::new(World::local(pool).await);
    w.create(false).await;
    for i in 0..10 {
        w.append(i * 2..i * 2 + 2, "d").await;
    }
    let maint = running(&w.pool, w.tenant, 1, "maint-worker").await;
    let mut m = w.maintenance(maint, settings());
    // A load commits after the compaction planned and wrote its files, before it commits.
    let racer = w.clone();
    let raced = Arc::new(std::sync::Mutex::new(None));
    let slot = raced.clone();
    m.before_commit = Some(Arc::new(move || {
        let (racer, slot) = (racer.clone(), slot.clone());
        Box::pin(async move {
            let id = racer.append(100..105, "d").await;
            *slot.lock().expect("slot") = Some(id);
        })
    }));
    let report = m.run(MaintenanceKind::Compact).await.expect("compact");
    let load = raced.lock().expect("slot").expect("the load committed");
    let t = w.table().await;
    let replace = t.metadata().current_snapshot().expect("snapshot");
    // The compaction committed on top of the load, after rebuilding its manifests.
    assert_eq!(Some(replace.snapshot_id()), report.snapshot_id);
    assert_eq!(replace.parent_snapshot_id(), Some(load));
    let mut want: Vec<i64> = (0..20).collect();
    want.extend(100..105);
    assert_eq!(w.ids().await, want);
    // The 10 replaced files are one, the racing load's file is still there: two files.
    assert_eq!(report.data_files, 2, "{report:?}");
    assert_eq!(manifests(&t).await, 1);
    if let Some(read) = w.pyiceberg() {
        assert_eq!(py_ids(&read), want);
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_worker_that_lost_its_lease_commits_no_maintenance(pool: PgPool) {
    let w = World::local(pool).await;
    w.create(false).await;
    for i in 0..4 {
        w.append(i..i + 1, "d").await;
    }
    let maint = running(&w.pool, w.tenant, 1, "maint-worker").await;
    // Recovery gave the run to another worker (attempt 2).
    sqlx::query("update runs set attempt = 2, worker_id = 'someone-else' where id = $1")
        .bind(maint.run_id)
        .execute(&w.pool)
        .await
        .expect("requeue");
    let before = w.table().await;
    let m = w.maintenance(
        maint,
        MaintenanceSettings {
            snapshot_retention: Duration::ZERO,
            ..settings()
        },
    );
    let compact = m.run(MaintenanceKind::Compact).await;
    assert!(
        matches!(compact, Err(IngestError::LeaseLost)),
        "{compact:?}"
    );
    let expire = m.run(MaintenanceKind::ExpireSnapshots).await;
    assert!(matches!(expire, Err(IngestError::LeaseLost)), "{expire:?}");
    let after = w.table().await;
    assert_eq!(after.metadata_location(), before.metadata_location());
    assert_eq!(after.metadata().snapshots().len(), 4);
    assert_eq!(w.ids().await, vec![0, 1, 2, 3]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_old_unknown_file_is_an_orphan_and_a_young_one_is_not(pool: PgPool) {
    let w = World::local(pool).await;
    w.create(false).await;
    w.append(0..3, "d").await;
    let t = w.table().await;
    let dir = t
        .metadata()
        .location()
        .strip_prefix("file://")
        .expect("local table")
        .to_owned();
    let old = format!("{dir}/data/stray-old.parquet");
    let young = format!("{dir}/metadata/stray-young.avro");
    for f in [&old, &young] {
        std::fs::write(f, b"x").expect("write stray");
    }
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(two_days_ago))
        .expect("age the file");
    let maint = running(&w.pool, w.tenant, 1, "maint-worker").await;
    let report: MaintenanceReport = w
        .maintenance(
            maint,
            MaintenanceSettings {
                orphan_safety_window: Duration::from_secs(24 * 3600),
                ..settings()
            },
        )
        .run(MaintenanceKind::RemoveOrphans)
        .await
        .expect("orphans");
    assert_eq!(report.files_deleted, 1, "{report:?}");
    assert!(!std::path::Path::new(&old).exists());
    assert!(std::path::Path::new(&young).exists());
    // Everything the table references is still there.
    assert_eq!(w.ids().await, vec![0, 1, 2]);
}
