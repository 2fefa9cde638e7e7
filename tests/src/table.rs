//! Reading an Iceberg table back the way a query engine would: through the SQL catalog, a
//! table scan, and the Parquet data files it lists.

use autoloader_worker::ingest::warehouse::WarehouseStorageFactory;
use futures::TryStreamExt;
use serde_json::Value;

/// What a scan of the table sees.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// Every row as a JSON object, sorted by its text (the order in the table is not defined).
    pub rows: Vec<Value>,
    pub columns: Vec<String>,
    pub snapshots: usize,
}

/// Scans `table` (`namespace.name`) in the catalog of `database_url` with data under the local
/// directory `warehouse`; `None` when the table does not exist.
pub async fn scan(database_url: &str, warehouse: &std::path::Path, table: &str) -> Option<Scanned> {
    scan_url(
        database_url,
        &format!("file://{}", warehouse.display()),
        &WarehouseStorageFactory::from_env(),
        table,
    )
    .await
}

/// Scans `table` like [`scan`], with the warehouse given as a URL (`file:///abs/dir` or
/// `s3://bucket/prefix`) and its files reached through `storage` (e.g.
/// [`WarehouseStorageFactory::with_s3`] with the test server's settings).
pub async fn scan_url(
    database_url: &str,
    warehouse: &str,
    storage: &WarehouseStorageFactory,
    table: &str,
) -> Option<Scanned> {
    let catalog = autoloader_worker::ingest::table::open_catalog(database_url, warehouse, storage)
        .await
        .expect("open catalog");
    let dest =
        autoloader::ingestions::definition::DestinationTable::parse(table).expect("table name");
    let id = autoloader_worker::ingest::table::ident(&dest).expect("ident");
    let table = autoloader_worker::ingest::table::load(&catalog, &id)
        .await
        .expect("load table")?;
    let columns = table
        .metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("arrow stream")
        .try_collect()
        .await
        .expect("read batches");
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b).expect("to json");
    }
    writer.finish().expect("finish json");
    let bytes = writer.into_inner();
    let mut rows: Vec<Value> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).expect("json rows")
    };
    rows.sort_by_key(|r| r.to_string());
    let snapshots = table.metadata().snapshots().len();
    Some(Scanned {
        rows,
        columns,
        snapshots,
    })
}
