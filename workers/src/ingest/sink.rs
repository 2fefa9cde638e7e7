//! Where a run's rows go: Parquet data files of the table, written as batches arrive
//! ([`TableSink`]), one file's batches held until the file is known good ([`FileSink`]).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use iceberg::spec::{DataFile, Schema};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::read::BatchSink;
use super::table::{self, Fence};
use super::IngestError;

type Writer =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Writers opened by this process, numbering their files apart.
static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Batches waiting for the Parquet writer: enough to keep both busy, few enough to bound memory.
const BATCHES_AHEAD: usize = 4;

/// Parquet data files of the table, written as batches arrive. Encoding runs in its own task,
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
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let locations = DefaultLocationGenerator::new(table.metadata())
            .map_err(|e| IngestError::catalog(&e))?;
        // Each writer of a run names its files apart (a run may open several: one per schema it
        // evolves to, one per large file held back), or one would overwrite another's.
        let seq = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let names = DefaultFileNameGenerator::new(
            format!("{}-w{seq}", table::file_name_prefix(fence)),
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
