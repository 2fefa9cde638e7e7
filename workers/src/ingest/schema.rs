//! The schema a new table gets: inferred from its first file (JSON: up to 10,000 records of the
//! first 16 MiB, lines or the elements of one array; CSV: the header and up to 10,000 rows of the
//! first 16 MiB; Parquet: its footer; Avro: the writer schema in its header) and normalised to
//! what Iceberg stores. Records are found by
//! the same [`Framer`] the reader uses, under the same cap: a file is never read whole here.

use std::io::Cursor;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::CsvOptions;
use futures::StreamExt;
use object_store::ObjectStore;

use super::fetch::{byte_stream, parquet_builder, SourceFile};
use super::read::csv_format;
use super::records::Framer;
use super::IngestError;

/// Records the schema of a new table is inferred from (JSON and CSV).
const INFER_RECORDS: usize = 10_000;
/// Bytes of a file's first records the schema is inferred from (at least one record, however
/// long, within the record cap).
const INFER_BYTES: usize = 16 << 20;

/// Infers the schema a new table gets from `file`, normalised to what Iceberg accepts. A record
/// longer than `max_record_bytes` fails the file.
pub async fn infer_schema(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    format: FormatType,
    csv: CsvOptions,
    max_record_bytes: u64,
) -> Result<Schema, IngestError> {
    let name = file.name.as_str();
    let schema = match format {
        FormatType::Avro => super::avro::infer_schema(store, file).await?,
        FormatType::Parquet => parquet_builder(store, file)
            .await?
            .schema()
            .as_ref()
            .clone(),
        FormatType::Json => {
            let framer = Framer::json(max_record_bytes);
            let head = first_records(store, file, framer, INFER_RECORDS).await?;
            let values = head
                .iter()
                .map(|r| serde_json::from_slice::<serde_json::Value>(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| IngestError::file(name, format!("invalid JSON: {e}")))?;
            arrow_json::reader::infer_json_schema_from_iterator(values.into_iter().map(Ok))
                .map_err(|e| IngestError::file(name, format!("invalid JSON: {e}")))?
        }
        FormatType::Csv => {
            let framer = Framer::csv(max_record_bytes, csv.delimiter, csv.quote);
            let head = first_records(store, file, framer, INFER_RECORDS + 1)
                .await?
                .concat();
            csv_format(csv)
                .infer_schema(Cursor::new(head), Some(INFER_RECORDS))
                .map(|(s, _)| s)
                .map_err(|e| IngestError::file(name, format!("invalid CSV: {e}")))?
        }
    };
    if schema.fields().is_empty() {
        return Err(IngestError::file(name, "has no columns to load".into()));
    }
    Ok(normalise_schema(&schema))
}

/// The first `count` records of `file` as `framer` splits them (fewer when they pass
/// [`INFER_BYTES`], or the file ends), each with the bytes around it that the decoder would see.
/// Reading stops there.
async fn first_records(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    framer: Framer,
    count: usize,
) -> Result<Vec<Vec<u8>>, IngestError> {
    let name = file.name.as_str();
    let mut framer = framer.stopping_at_each_record();
    let mut chunks = byte_stream(store, file).await?;
    let (mut records, mut current, mut total) = (Vec::new(), Vec::new(), 0usize);
    while let Some(chunk) = chunks.next().await.transpose()? {
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let step = framer
                .step(rest)
                .map_err(|e| IngestError::file(name, e.message()))?;
            current.extend_from_slice(&rest[step.feed.clone()]);
            rest = &rest[step.consumed..];
            if step.record_end {
                total += current.len();
                records.push(std::mem::take(&mut current));
                if records.len() >= count || total >= INFER_BYTES {
                    return Ok(records);
                }
            }
        }
    }
    framer
        .finish()
        .map_err(|e| IngestError::file(name, e.message()))?;
    if current.iter().any(|b| !b.is_ascii_whitespace()) {
        records.push(current);
    }
    Ok(records)
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
