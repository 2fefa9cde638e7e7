//! Where a run's rows go: Parquet data files of the table, written as batches arrive
//! ([`TableSink`]), the run's writers as its schema evolves ([`Writers`]), and one file's batches,
//! stamped with the metadata columns, held until the file is known good ([`FileSink`]).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use iceberg::spec::{DataFile, Schema};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use uuid::Uuid;

use super::discover::Candidate;
use super::evolve::{self, Changes};
use super::partition;
use super::path_columns::PathValues;
use super::read::BatchSink;
use super::table::{self, Evolved, Fence};
use super::IngestError;

type Writer =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Bytes of one file's batches held in memory before they go to data files of its own.
pub const HOLD_BYTES: usize = 32 << 20;

/// Writers opened by this process, numbering their files apart.
static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Batches waiting for the Parquet writer: enough to keep both busy, few enough to bound memory.
const BATCHES_AHEAD: usize = 4;

/// A sink's Parquet writer: one, or one per partition of a partitioned table.
enum Fan {
    One(Box<Writer>),
    Out(Box<partition::FanOut>),
}

impl Fan {
    async fn write(&mut self, batch: RecordBatch) -> iceberg::Result<()> {
        match self {
            Fan::One(w) => w.write(batch).await,
            Fan::Out(w) => w.write(batch).await,
        }
    }

    async fn close(self) -> iceberg::Result<Vec<DataFile>> {
        match self {
            Fan::One(mut w) => w.close().await,
            Fan::Out(w) => (*w).close().await,
        }
    }
}

/// Parquet data files of the table, written as batches arrive (in a partitioned table, one file
/// per partition: [`partition::FanOut`]). Encoding runs in its own task,
/// so reading and decoding the next batch overlaps writing the last one (two cores at work).
pub struct TableSink {
    batches: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    writer: Option<tokio::task::JoinHandle<Result<Vec<DataFile>, IngestError>>>,
    pub target: SchemaRef,
}

impl TableSink {
    /// A writer of `table`'s data files with `schema` (the table's, or one the run evolved).
    pub async fn open(
        table: &iceberg::table::Table,
        schema: &Schema,
        fence: &Fence,
    ) -> Result<TableSink, IngestError> {
        let schema = Arc::new(schema.clone());
        let target: SchemaRef = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema)
                .map_err(|e| IngestError::catalog(&e))?,
        );
        let spec = table.metadata().default_partition_spec().clone();
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024));
        if !spec.is_unpartitioned() {
            // Many files may be open at once: each buffers less.
            props = props.set_max_row_group_bytes(Some(partition::PARTITIONED_ROW_GROUP_BYTES));
        }
        let locations = DefaultLocationGenerator::new(table.metadata())
            .map_err(|e| IngestError::catalog(&e))?;
        // Each writer of a run names its files apart (a run may open several: one per schema it
        // evolves to, one per large file held back), or one would overwrite another's. The
        // partitions of one writer share its sequence number and count their files apart.
        let seq = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let names = DefaultFileNameGenerator::new(
            format!("{}-w{seq}", table::file_name_prefix(fence)),
            None,
            table::DATA_FILE_FORMAT,
        );
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            ParquetWriterBuilder::new(props.build(), schema.clone()),
            table.file_io().clone(),
            locations,
            names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let mut writer = if spec.is_unpartitioned() {
            Fan::One(Box::new(
                builder
                    .build(None)
                    .await
                    .map_err(|e| IngestError::catalog(&e))?,
            ))
        } else {
            Fan::Out(Box::new(
                partition::FanOut::new(builder, &spec, schema)
                    .map_err(|e| IngestError::catalog(&e))?,
            ))
        };
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
    pub async fn close(mut self) -> Result<Vec<DataFile>, IngestError> {
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

/// The run's writers: the table's schema as this run has it so far, and its data files.
pub struct Writers {
    table: Table,
    fence: Fence,
    schema: Schema,
    pub target: SchemaRef,
    base_schema_id: i32,
    base_last_column_id: i32,
    last_column_id: i32,
    shared: TableSink,
    done: Vec<DataFile>,
}

impl Writers {
    pub async fn open(table: &Table, fence: &Fence) -> Result<Writers, IngestError> {
        let m = table.metadata();
        let schema = m.current_schema().as_ref().clone();
        let shared = TableSink::open(table, &schema, fence).await?;
        Ok(Writers {
            table: table.clone(),
            fence: fence.clone(),
            target: shared.target.clone(),
            schema,
            base_schema_id: m.current_schema_id(),
            base_last_column_id: m.last_column_id(),
            last_column_id: m.last_column_id(),
            shared,
            done: Vec::new(),
        })
    }

    /// `_rescued_data`, unless the table has it.
    pub fn rescue_column(&self) -> Vec<arrow_schema::Field> {
        evolve::rescue_column(&self.target)
    }

    /// Evolves the run's schema; the data files written so far keep theirs (columns they lack
    /// read as null).
    pub async fn evolve(&mut self, changes: &Changes, name: &str) -> Result<(), IngestError> {
        let schema = evolve::evolve(&self.schema, self.last_column_id, changes, name)?;
        tracing::info!(
            file = name,
            added = ?changes.added.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
            widened = ?changes.widened.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "evolving the table's schema"
        );
        let next = TableSink::open(&self.table, &schema, &self.fence).await?;
        let previous = std::mem::replace(&mut self.shared, next);
        self.done.extend(previous.close().await?);
        self.last_column_id = self.last_column_id.max(schema.highest_field_id());
        self.target = self.shared.target.clone();
        self.schema = schema;
        Ok(())
    }

    pub fn evolved(&self) -> Option<Evolved> {
        (self.schema.schema_id() != self.base_schema_id).then(|| Evolved {
            schema: self.schema.clone(),
            base_schema_id: self.base_schema_id,
            base_last_column_id: self.base_last_column_id,
        })
    }

    pub async fn finish(mut self) -> Result<Vec<DataFile>, IngestError> {
        let mut files = std::mem::take(&mut self.done);
        files.extend(self.shared.close().await?);
        Ok(files)
    }
}

/// The values one file gives all its rows: the metadata columns, and the columns of its path.
pub struct Stamp {
    file: String,
    modified: DateTime<Utc>,
    run: String,
    path: PathValues,
}

impl Stamp {
    pub fn new(c: &Candidate, run_id: Uuid) -> Stamp {
        Stamp {
            file: c.url.clone(),
            modified: c.last_modified,
            run: run_id.to_string(),
            path: PathValues::default(),
        }
    }

    /// With the values of the file's path (`partition_columns_from_path`), which replace any
    /// value the file has for those columns.
    pub fn with_path(mut self, path: PathValues) -> Stamp {
        self.path = path;
        self
    }

    /// `batch` with the metadata columns and path columns the table has filled in.
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, IngestError> {
        let schema = batch.schema();
        let mut columns: Option<Vec<ArrayRef>> = None;
        let n = batch.num_rows();
        for (i, f) in schema.fields().iter().enumerate() {
            let col: ArrayRef = match (f.name().as_str(), f.data_type()) {
                (evolve::SOURCE_FILE, DataType::Utf8) => {
                    Arc::new(StringArray::from(vec![self.file.as_str(); n]))
                }
                (evolve::INGESTED_RUN_ID, DataType::Utf8) => {
                    Arc::new(StringArray::from(vec![self.run.as_str(); n]))
                }
                (evolve::SOURCE_MODIFIED_AT, DataType::Timestamp(_, tz)) => Arc::new(
                    TimestampMicrosecondArray::from(vec![self.modified.timestamp_micros(); n])
                        .with_timezone_opt(tz.clone()),
                ),
                (name, t) => match self.path.column(name, t, n) {
                    Some(c) => c,
                    None => continue,
                },
            };
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = col;
        }
        match columns {
            None => Ok(batch),
            Some(c) => RecordBatch::try_new(schema, c)
                .map_err(|e| IngestError::Catalog(format!("filling the metadata columns: {e}"))),
        }
    }
}

/// One file's batches on their way to the run's writer.
pub struct FileSink<'w> {
    w: &'w mut Writers,
    stamp: Stamp,
    /// `None`: straight to the run's writer.
    held: Option<Held>,
    wrote_through: bool,
}

#[derive(Default)]
struct Held {
    batches: Vec<RecordBatch>,
    bytes: usize,
    own: Option<TableSink>,
}

impl<'w> FileSink<'w> {
    pub fn new(w: &'w mut Writers, stamp: Stamp, hold: bool) -> FileSink<'w> {
        FileSink {
            w,
            stamp,
            held: hold.then(Held::default),
            wrote_through: false,
        }
    }

    /// The file is good: its batches go to the run.
    pub async fn keep(self) -> Result<(), IngestError> {
        let Some(held) = self.held else {
            return Ok(());
        };
        match held.own {
            Some(own) => self.w.done.extend(own.close().await?),
            None => {
                for b in held.batches {
                    self.w.shared.write(b).await?;
                }
            }
        }
        Ok(())
    }

    /// The file's batches are dropped (its own data files, if any, are left unreferenced).
    /// `false` when some already went to the run's writer and cannot be taken back.
    pub fn discard(self) -> bool {
        self.held.is_some() || !self.wrote_through
    }
}

impl BatchSink for FileSink<'_> {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
        let batch = self.stamp.apply(batch)?;
        let Some(held) = &mut self.held else {
            self.wrote_through = true;
            return self.w.shared.write(batch).await;
        };
        if let Some(own) = &mut held.own {
            return own.write(batch).await;
        }
        held.bytes += batch.get_array_memory_size();
        held.batches.push(batch);
        if held.bytes > HOLD_BYTES {
            let mut own = TableSink::open(&self.w.table, &self.w.schema, &self.w.fence).await?;
            for b in held.batches.drain(..) {
                own.write(b).await?;
            }
            held.own = Some(own);
        }
        Ok(())
    }
}

/// Takes batches and keeps nothing.
pub struct NullSink;

impl BatchSink for NullSink {
    async fn write(&mut self, _batch: RecordBatch) -> Result<(), IngestError> {
        Ok(())
    }
}
