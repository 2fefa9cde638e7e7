//! Reading source files into Arrow record batches: JSON lines (or one JSON array), CSV and
//! Parquet, streamed from the object store so memory stays bounded by a batch, not a file. JSON
//! and CSV pass through a [`Framer`] first: no record may be longer than the operator's cap, and
//! a batch of long records is flushed at about [`records::FLUSH_BYTES`].
//!
//! Every file is read with the table's schema, and a value that does not fit fails with the file
//! and column named. (A new table's schema comes from [`super::schema`].)

use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{Field, Schema, SchemaRef};
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::CsvOptions;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::local;
use super::records::{self, Framer};
use super::IngestError;

/// Rows per record batch handed to the table writer.
pub const BATCH_ROWS: usize = 8_192;

/// A file to read: where it is and how big.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub location: Path,
    pub size: u64,
    /// How errors name the file: its full source URL.
    pub name: String,
    /// A local file, opened beneath its root ([`super::local`]): read through this descriptor
    /// only, in large ranges. `None`: an S3 object, read from the store.
    pub local: Option<Arc<std::fs::File>>,
}

/// Where a Parquet file's bytes come from: the store (S3), or a local file's descriptor.
pub(super) async fn parquet_builder(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
) -> Result<ParquetRecordBatchStreamBuilder<Box<dyn AsyncFileReader>>, IngestError> {
    let reader: Box<dyn AsyncFileReader> = match &file.local {
        Some(local) => Box::new(LocalParquet {
            file: local.clone(),
            size: file.size,
        }),
        None => Box::new(
            ParquetObjectReader::new(store.clone(), file.location.clone())
                .with_file_size(file.size),
        ),
    };
    ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| IngestError::file(&file.name, format!("not a readable Parquet file: {e}")))
}

/// A local Parquet file, read through its descriptor.
struct LocalParquet {
    file: Arc<std::fs::File>,
    size: u64,
}

impl AsyncFileReader for LocalParquet {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let file = self.file.clone();
        async move {
            local::read_range(file, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 << 10))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

pub(super) fn csv_format(csv: CsvOptions) -> arrow_csv::reader::Format {
    arrow_csv::reader::Format::default()
        .with_header(csv.header)
        .with_delimiter(csv.delimiter)
        .with_quote(csv.quote)
}

/// Reads `file` with the table's schema, handing each batch (already in `target`'s shape) to
/// `sink`. Returns the rows read. A JSON or CSV record longer than `max_record_bytes` fails the
/// file.
pub async fn read_file<S>(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    format: FormatType,
    csv: CsvOptions,
    max_record_bytes: u64,
    target: &SchemaRef,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    S: BatchSink,
{
    let name = file.name.as_str();
    let mut rows = 0u64;
    match format {
        FormatType::Parquet => {
            let mut stream = parquet_builder(store, file)
                .await?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| {
                    IngestError::file(name, format!("not a readable Parquet file: {e}"))
                })?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| {
                    IngestError::file(name, format!("unreadable Parquet data: {e}"))
                })?;
                let batch = conform(&batch, target, name)?;
                rows += batch.num_rows() as u64;
                sink.write(batch).await?;
            }
        }
        FormatType::Json => {
            let decoder = arrow_json::ReaderBuilder::new(strip_metadata(target))
                .with_batch_size(BATCH_ROWS)
                .with_strict_mode(true)
                .build_decoder()
                .map_err(|e| IngestError::file(name, e.to_string()))?;
            let chunks = byte_stream(store, file).await?;
            let mut dec = JsonDecoder { decoder };
            let framer = Framer::json(max_record_bytes);
            rows += decode_stream(chunks, framer, &mut dec, target, name, sink).await?;
        }
        FormatType::Csv => {
            let mut chunks = byte_stream(store, file).await?;
            // The header names the columns: gather bytes up to the first line end to read it (no
            // further than the record cap).
            let mut head = Vec::new();
            loop {
                if head.contains(&b'\n') {
                    break;
                }
                if head.len() as u64 > max_record_bytes {
                    let e = records::FrameError::TooLong {
                        start: 0,
                        cap: max_record_bytes,
                    };
                    return Err(IngestError::file(name, e.message()));
                }
                match chunks.next().await.transpose()? {
                    Some(chunk) => head.extend_from_slice(&chunk),
                    None => break,
                }
            }
            let read_schema = csv_read_schema(&head, csv, target, name)?;
            let columns = read_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let decoder = arrow_csv::ReaderBuilder::new(read_schema)
                .with_format(csv_format(csv))
                .with_batch_size(BATCH_ROWS)
                .build_decoder();
            let mut dec = CsvDecoder { decoder, columns };
            let rest = futures::stream::iter([Ok(Bytes::from(head))]).chain(chunks);
            let framer = Framer::csv(max_record_bytes, csv.delimiter, csv.quote);
            rows += decode_stream(rest, framer, &mut dec, target, name, sink).await?;
        }
    }
    Ok(rows)
}

/// Where read batches go.
#[allow(async_fn_in_trait)]
pub trait BatchSink {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError>;
}

/// Bytes per range read of a local file. Large reads keep the per-read cost small (object
/// store's plain stream of a local file hands every 8 KiB read to the blocking pool).
const READ_CHUNK: u64 = 8 << 20;
/// Range reads in flight ahead of the decoder.
const READS_AHEAD: usize = 2;

/// The file's bytes in order: one streamed GET (S3, where the connection streams well), or
/// [`READ_CHUNK`] ranges of the local file's descriptor with [`READS_AHEAD`] prefetched.
pub(super) async fn byte_stream(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
) -> Result<BoxStream<'static, Result<Bytes, IngestError>>, IngestError> {
    let name = file.name.clone();
    let Some(local) = file.local.clone() else {
        let stream = store
            .get(&file.location)
            .await
            .map_err(|e| IngestError::store(&name, e))?
            .into_stream();
        return Ok(stream
            .map(move |r| r.map_err(|e| IngestError::store(&name, e)))
            .boxed());
    };
    let ranges: Vec<Range<u64>> = (0..file.size)
        .step_by(READ_CHUNK as usize)
        .map(|start| start..(start + READ_CHUNK).min(file.size))
        .collect();
    Ok(futures::stream::iter(ranges)
        .map(move |range| {
            let (local, name) = (local.clone(), name.clone());
            async move {
                local::read_range(local, range).await.map_err(|e| {
                    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        "it is shorter than when it was listed".to_owned()
                    } else {
                        e.to_string()
                    };
                    IngestError::file(&name, format!("cannot read: {why}"))
                })
            }
        })
        .buffered(READS_AHEAD)
        .boxed())
}

/// A push decoder of bytes into record batches (arrow's JSON and CSV decoders).
trait PushDecoder {
    fn decode(&mut self, buf: &[u8], file: &str) -> Result<usize, IngestError>;
    fn flush(&mut self, file: &str) -> Result<Option<RecordBatch>, IngestError>;
}

struct JsonDecoder {
    decoder: arrow_json::reader::Decoder,
}

impl PushDecoder for JsonDecoder {
    fn decode(&mut self, buf: &[u8], file: &str) -> Result<usize, IngestError> {
        self.decoder
            .decode(buf)
            .map_err(|e| IngestError::file(file, describe_json_error(e)))
    }
    fn flush(&mut self, file: &str) -> Result<Option<RecordBatch>, IngestError> {
        self.decoder
            .flush()
            .map_err(|e| IngestError::file(file, describe_json_error(e)))
    }
}

struct CsvDecoder {
    decoder: arrow_csv::reader::Decoder,
    /// The file's columns in order, to name the one an error is about.
    columns: Vec<String>,
}

impl CsvDecoder {
    fn error(&self, file: &str, e: arrow_schema::ArrowError) -> IngestError {
        let text = e.to_string();
        let text = text.strip_prefix("Parser error: ").unwrap_or(&text);
        // "Error while parsing value 'x' as type 'Int64' for column 0 at line 3. Row data: …"
        if let Some(rest) = text.strip_prefix("Error while parsing value ") {
            let value_and_type = rest.split(" for column ").next().unwrap_or(rest);
            let column = rest
                .split(" for column ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|i| self.columns.get(i));
            // Arrow counts data records from 1, after the header.
            let record = rest
                .split(" at line ")
                .nth(1)
                .and_then(|r| r.split('.').next())
                .unwrap_or("?");
            if let Some(column) = column {
                return IngestError::column(
                    file,
                    column,
                    format!("in data record {record}: cannot read {value_and_type}"),
                );
            }
        }
        IngestError::file(file, text.to_owned())
    }
}

impl PushDecoder for CsvDecoder {
    fn decode(&mut self, buf: &[u8], file: &str) -> Result<usize, IngestError> {
        self.decoder.decode(buf).map_err(|e| self.error(file, e))
    }
    fn flush(&mut self, file: &str) -> Result<Option<RecordBatch>, IngestError> {
        self.decoder.flush().map_err(|e| self.error(file, e))
    }
}

/// Feeds a byte stream through a push decoder, record by record as `framer` finds them,
/// emitting a batch whenever the decoder fills or has taken [`records::FLUSH_BYTES`].
async fn decode_stream<D, S>(
    mut chunks: impl Stream<Item = Result<Bytes, IngestError>> + Unpin,
    mut framer: Framer,
    dec: &mut D,
    target: &SchemaRef,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    D: PushDecoder,
    S: BatchSink,
{
    let mut rows = 0;
    while let Some(chunk) = chunks.next().await.transpose()? {
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let step = framer
                .step(rest)
                .map_err(|e| IngestError::file(name, e.message()))?;
            let mut feed = &rest[step.feed.clone()];
            while !feed.is_empty() {
                let consumed = dec.decode(feed, name)?;
                feed = &feed[consumed..];
                if !feed.is_empty() {
                    // The decoder is full: hand over a batch before it takes more.
                    framer.flushed();
                    match dec.flush(name)? {
                        Some(batch) => rows += emit(batch, target, name, sink).await?,
                        None if consumed == 0 => {
                            return Err(IngestError::file(
                                name,
                                "the decoder stopped taking bytes".into(),
                            ))
                        }
                        None => {}
                    }
                }
            }
            if step.flush {
                if let Some(batch) = dec.flush(name)? {
                    rows += emit(batch, target, name, sink).await?;
                }
            }
            rest = &rest[step.consumed..];
        }
    }
    framer
        .finish()
        .map_err(|e| IngestError::file(name, e.message()))?;
    // End of input: an empty buffer tells the CSV decoder the last line is complete.
    dec.decode(&[], name)?;
    if let Some(batch) = dec.flush(name)? {
        rows += emit(batch, target, name, sink).await?;
    }
    Ok(rows)
}

async fn emit<S: BatchSink>(
    batch: RecordBatch,
    target: &SchemaRef,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError> {
    if batch.num_rows() == 0 {
        return Ok(0);
    }
    let batch = conform(&batch, target, name)?;
    let n = batch.num_rows() as u64;
    sink.write(batch).await?;
    Ok(n)
}

/// Arrow's JSON errors name the field; say it in the words the rest of the errors use.
fn describe_json_error(e: arrow_schema::ArrowError) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("Json error: ")
        .or_else(|| text.strip_prefix("Parser error: "))
        .unwrap_or(&text);
    if let Some(rest) = text.strip_prefix("column '") {
        if let Some((col, tail)) = rest.split_once('\'') {
            if tail.contains("missing from schema") {
                return format!("column '{col}' is not in the table");
            }
        }
    }
    if let Some(rest) = text.strip_prefix("whilst decoding field '") {
        if let Some((col, tail)) = rest.split_once("': ") {
            return format!("column '{col}': {tail}");
        }
    }
    text.to_owned()
}

/// The schema to decode a CSV file with: its columns in the file's order, each with the table's
/// type for that name. A column the table lacks fails the file.
fn csv_read_schema(
    head: &[u8],
    csv: CsvOptions,
    target: &SchemaRef,
    name: &str,
) -> Result<SchemaRef, IngestError> {
    if !csv.header {
        return Ok(strip_metadata(target));
    }
    let (header, _) = csv_format(csv)
        .infer_schema(Cursor::new(head), Some(0))
        .map_err(|e| IngestError::file(name, format!("invalid CSV header: {e}")))?;
    let mut fields = Vec::with_capacity(header.fields().len());
    for col in header.fields() {
        let Ok(t) = target.field_with_name(col.name()) else {
            return Err(IngestError::column(
                name,
                col.name(),
                format!("is not in the table (its columns: {})", column_list(target)),
            ));
        };
        fields.push(Field::new(col.name(), t.data_type().clone(), true));
    }
    Ok(strip_metadata(&Arc::new(Schema::new(fields))))
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn strip_metadata(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect::<Vec<_>>(),
    ))
}

/// Puts `batch` into the table's shape: columns by name in the table's order, cast to the
/// table's types (a value that does not convert fails, naming the column), missing nullable
/// columns as nulls. A column the table does not have fails the file.
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    file: &str,
) -> Result<RecordBatch, IngestError> {
    let schema = batch.schema();
    for f in schema.fields() {
        if target.field_with_name(f.name()).is_err() {
            return Err(IngestError::column(
                file,
                f.name(),
                format!("is not in the table (its columns: {})", column_list(target)),
            ));
        }
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for t in target.fields() {
        let col = match schema.index_of(t.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == t.data_type() {
                    c.clone()
                } else {
                    cast_with_options(c, t.data_type(), &strict).map_err(|e| {
                        IngestError::column(
                            file,
                            t.name(),
                            format!(
                                "cannot be stored as {} ({})",
                                t.data_type(),
                                e.to_string().trim_start_matches("Cast error: ")
                            ),
                        )
                    })?
                }
            }
            Err(_) if t.is_nullable() => new_null_array(t.data_type(), batch.num_rows()),
            Err(_) => {
                return Err(IngestError::column(
                    file,
                    t.name(),
                    "is missing, and the table requires it".into(),
                ))
            }
        };
        if !t.is_nullable() && col.null_count() > 0 {
            return Err(IngestError::column(
                file,
                t.name(),
                "has nulls, and the table requires a value".into(),
            ));
        }
        columns.push(col);
    }
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| IngestError::file(file, format!("does not fit the table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::DataType;

    fn target() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn conform_orders_casts_and_fills() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "2"]))],
        )
        .expect("batch");
        let out = conform(&b, &target(), "f.csv").expect("conforms");
        let ids = out
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        assert_eq!(ids.values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2, "missing column is null");
    }

    #[test]
    fn conform_names_the_file_and_column_that_do_not_fit() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "one"]))],
        )
        .expect("batch");
        let e = conform(&b, &target(), "in/bad.csv").expect_err("'one' is no number");
        let msg = e.to_string();
        assert!(msg.contains("in/bad.csv") && msg.contains("'id'"), "{msg}");

        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("extra", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .expect("batch");
        let msg = conform(&b, &target(), "f.json")
            .expect_err("extra")
            .to_string();
        assert!(msg.contains("'extra' is not in the table"), "{msg}");
    }
}
