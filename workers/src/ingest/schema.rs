//! The schema a new table gets: inferred from its first file (JSON: up to 10,000 records of the
//! first 16 MiB; CSV: the header and up to 10,000 rows; Parquet: its footer) and normalised to
//! what Iceberg stores.

use std::io::Cursor;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::CsvOptions;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::read::{csv_format, is_json_array, SourceFile};
use super::IngestError;

/// Records the schema of a new table is inferred from (JSON and CSV).
const INFER_RECORDS: usize = 10_000;

/// Infers the schema a new table gets from `file`, normalised to what Iceberg accepts.
pub async fn infer_schema(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    format: FormatType,
    csv: CsvOptions,
) -> Result<Schema, IngestError> {
    let name = file.name.as_str();
    let schema = match format {
        FormatType::Parquet => {
            let reader = ParquetObjectReader::new(store.clone(), file.location.clone())
                .with_file_size(file.size);
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| {
                    IngestError::file(name, format!("not a readable Parquet file: {e}"))
                })?;
            builder.schema().as_ref().clone()
        }
        FormatType::Json => {
            let mut head = read_head(store, file).await?;
            if is_json_array(&head) && (head.len() as u64) < file.size {
                // One JSON document: a part of it does not parse, so read it whole.
                head = store
                    .get(&file.location)
                    .await
                    .map_err(|e| IngestError::store(name, e))?
                    .bytes()
                    .await
                    .map_err(|e| IngestError::store(name, e))?;
            }
            let text = head.as_ref();
            let schema = if is_json_array(text) {
                let values: Vec<serde_json::Value> = serde_json::from_slice(text)
                    .map_err(|e| IngestError::file(name, format!("invalid JSON: {e}")))?;
                arrow_json::reader::infer_json_schema_from_iterator(
                    values.into_iter().take(INFER_RECORDS).map(Ok),
                )
            } else {
                arrow_json::reader::infer_json_schema(Cursor::new(text), Some(INFER_RECORDS))
                    .map(|(s, _)| s)
            };
            schema.map_err(|e| IngestError::file(name, format!("invalid JSON: {e}")))?
        }
        FormatType::Csv => {
            let head = read_head(store, file).await?;
            csv_format(csv)
                .infer_schema(Cursor::new(head.as_ref()), Some(INFER_RECORDS))
                .map(|(s, _)| s)
                .map_err(|e| IngestError::file(name, format!("invalid CSV: {e}")))?
        }
    };
    if schema.fields().is_empty() {
        return Err(IngestError::file(name, "has no columns to load".into()));
    }
    Ok(normalise_schema(&schema))
}

/// The first part of a file, enough to infer a schema from (the whole file when it is small).
async fn read_head(store: &Arc<dyn ObjectStore>, file: &SourceFile) -> Result<Bytes, IngestError> {
    const HEAD: u64 = 16 << 20;
    let name = file.name.as_str();
    let bytes = if file.size <= HEAD {
        store
            .get(&file.location)
            .await
            .map_err(|e| IngestError::store(name, e))?
            .bytes()
            .await
    } else {
        store.get_range(&file.location, 0..HEAD).await
    }
    .map_err(|e| IngestError::store(name, e))?;
    // Cut a partial last line off a truncated head.
    if (bytes.len() as u64) < file.size {
        if let Some(end) = bytes.iter().rposition(|b| *b == b'\n') {
            return Ok(bytes.slice(..end + 1));
        }
    }
    Ok(bytes)
}

/// Maps types Iceberg cannot store to ones it can: timestamps to microseconds, all-null columns
/// to strings, small and unsigned integers to wider signed ones, large and view variants to
/// their plain forms, dictionaries to their values.
pub fn normalise_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| normalise_field(f))
            .collect::<Vec<_>>(),
    )
}

fn normalise_field(f: &Field) -> Field {
    Field::new(f.name(), normalise_type(f.data_type()), true)
}

fn normalise_type(t: &DataType) -> DataType {
    use DataType::*;
    match t {
        Null | Utf8View | LargeUtf8 => Utf8,
        Int8 | Int16 | UInt8 | UInt16 => Int32,
        UInt32 | UInt64 => Int64,
        Float16 => Float32,
        BinaryView | LargeBinary => Binary,
        Date64 => Date32,
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.clone()),
        Time32(_) | Time64(_) => Time64(TimeUnit::Microsecond),
        Dictionary(_, v) => normalise_type(v),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(Arc::new(normalise_field(f)))
        }
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| normalise_field(f))
                .collect::<Fields>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_makes_types_iceberg_can_store() {
        let s = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("empty", DataType::Null, true),
            Field::new("small", DataType::UInt8, true),
            Field::new(
                "nested",
                DataType::Struct(Fields::from(vec![Field::new(
                    "at",
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    true,
                )])),
                true,
            ),
        ]);
        let n = normalise_schema(&s);
        assert_eq!(
            n.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(n.field(1).data_type(), &DataType::Utf8);
        assert_eq!(n.field(2).data_type(), &DataType::Int32);
        let DataType::Struct(inner) = n.field(3).data_type() else {
            panic!("struct stays a struct")
        };
        assert_eq!(
            inner[0].data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }
}
