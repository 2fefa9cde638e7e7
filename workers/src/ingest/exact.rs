//! The record-by-record reading of a file that the fast path ([`super::read`]) could not take
//! whole: every record is looked at on its own, so one that is malformed, or holds a value that
//! does not convert, is found by its number and dealt with as `on_error` says (dropped, or the
//! file rejected, or the run failed naming it), while `rescue` keeps such values in
//! `_rescued_data` and loads the row.
//!
//! Records come through [`super::record_stream`] (the same [`Framer`] as everywhere else, under
//! the same record cap), in groups of at most 1,024 records or 4 MiB: memory stays bounded by a
//! group, never a file. A group that does not decode is halved until the records that do not
//! decode are found on their own.
//!
//! This path is slower than the fast one; a run takes it only for files the fast one refused.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::CsvOptions;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::ObjectStore;
use serde_json::{Map, Value};

use super::fetch::{parquet_builder, SourceFile};
use super::fit::{fit, without_rows, RowProblem, Unknown};
use super::read::{csv_format, BatchSink, BATCH_ROWS};
use super::record_stream::{JsonRecords, RecordSource, Records};
use super::records::Framer;
use super::IngestError;

/// Rejected records a run keeps the details of.
pub const KEPT_REJECTIONS: usize = 20;

/// A rejected record: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub file: String,
    /// The record's number in its file, from 1 (a CSV file's header is not counted).
    pub record: Option<u64>,
    pub column: Option<String>,
    pub reason: String,
}

impl Rejection {
    /// The rejection as a run's error names it.
    pub fn into_error(self) -> IngestError {
        let at = match self.record {
            Some(n) => format!("record {n}: "),
            None => String::new(),
        };
        let message = match &self.column {
            Some(c) => format!("{at}column '{c}': {}", self.reason),
            None => format!("{at}{}", self.reason),
        };
        IngestError::File {
            file: self.file,
            message,
        }
    }
}

/// What reading a file record by record found.
#[derive(Debug, Default)]
pub struct Exact {
    /// Rows handed to the sink.
    pub rows: u64,
    /// Records not loaded.
    pub rejected: u64,
    /// The first of them, in file order.
    pub first: Vec<Rejection>,
}

impl Exact {
    fn reject(&mut self, file: &str, record: u64, column: Option<String>, reason: String) {
        self.rejected += 1;
        if self.first.len() < KEPT_REJECTIONS {
            self.first.push(Rejection {
                file: file.to_owned(),
                record: Some(record),
                column,
                reason,
            });
        }
    }
}

/// How to read a file record by record.
pub struct ExactSpec<'a> {
    pub format: FormatType,
    pub csv: CsvOptions,
    pub max_record_bytes: u64,
    pub target: &'a SchemaRef,
    pub unknown: Unknown,
    /// Stop at the first rejected record (to name it, or to reject the file).
    pub stop_at_first: bool,
}

/// Reads `file` record by record into `sink`, leaving out the records that cannot load.
pub async fn read_exact<S: BatchSink>(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    spec: &ExactSpec<'_>,
    sink: &mut S,
) -> Result<Exact, IngestError> {
    let mut out = Exact::default();
    match spec.format {
        FormatType::Json => {
            let records = JsonRecords::open(store, file, spec.max_record_bytes).await?;
            json(records, file, spec, &mut out, sink).await?;
        }
        FormatType::Csv => {
            let c = spec.csv;
            let framer = Framer::csv(spec.max_record_bytes, c.delimiter, c.quote);
            let records = Records::open(store, file, framer).await?;
            csv(records, file, spec, &mut out, sink).await?;
        }
        FormatType::Parquet => {
            let name = file.name.clone();
            let stream = parquet_builder(store, file)
                .await?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| IngestError::file(&name, format!("not a readable Parquet file: {e}")))?
                .map(move |b| {
                    b.map_err(|e| IngestError::file(&name, format!("unreadable Parquet data: {e}")))
                })
                .boxed();
            batches(stream, file, spec, &mut out, sink).await?;
        }
        FormatType::Avro => {
            let stream = super::avro::batches(store, file, BATCH_ROWS).await?;
            batches(stream, file, spec, &mut out, sink).await?;
        }
    }
    Ok(out)
}

/// Fits `raw` (its rows are records `numbers`) to the table, rejects the rows with problems and
/// hands the rest to `sink`. Returns false when reading should stop (the first rejection, when
/// asked to stop there).
async fn fit_and_write<S: BatchSink>(
    raw: &RecordBatch,
    numbers: &[u64],
    rescued: Vec<Option<Map<String, Value>>>,
    file: &SourceFile,
    spec: &ExactSpec<'_>,
    out: &mut Exact,
    sink: &mut S,
) -> Result<bool, IngestError> {
    let (batch, problems) = fit(raw, spec.target, spec.unknown, rescued, &file.name)?;
    let mut dropped: Vec<usize> = Vec::new();
    for RowProblem {
        row,
        column,
        reason,
    } in problems
    {
        if dropped.last() != Some(&row) {
            dropped.push(row);
            out.reject(&file.name, numbers[row], column, reason);
            if spec.stop_at_first {
                return Ok(false);
            }
        }
    }
    let batch = without_rows(&batch, &dropped)?;
    if batch.num_rows() > 0 {
        out.rows += batch.num_rows() as u64;
        sink.write(batch).await?;
    }
    Ok(true)
}

/// Parquet and Avro: typed batches, fitted value by value.
async fn batches<S: BatchSink>(
    mut stream: BoxStream<'static, Result<RecordBatch, IngestError>>,
    file: &SourceFile,
    spec: &ExactSpec<'_>,
    out: &mut Exact,
    sink: &mut S,
) -> Result<(), IngestError> {
    let mut next = 1u64;
    while let Some(batch) = stream.next().await.transpose()? {
        let n = batch.num_rows() as u64;
        let numbers: Vec<u64> = (next..next + n).collect();
        next += n;
        if !fit_and_write(&batch, &numbers, Vec::new(), file, spec, out, sink).await? {
            break;
        }
    }
    Ok(())
}

/// The schema JSON records are decoded with before fitting: scalar columns as text (numbers and
/// booleans as they are written), so that a value that does not convert reaches [`fit`] whole;
/// nested columns as the table has them.
fn raw_json_schema(target: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Struct(_) | DataType::List(_) | DataType::Map(_, _) => {
                    f.as_ref().clone().with_metadata(Default::default())
                }
                _ => Field::new(f.name(), DataType::Utf8, true),
            })
            .collect::<Vec<_>>(),
    ))
}

async fn json<S: BatchSink>(
    mut records: JsonRecords,
    file: &SourceFile,
    spec: &ExactSpec<'_>,
    out: &mut Exact,
    sink: &mut S,
) -> Result<(), IngestError> {
    let raw = raw_json_schema(spec.target);
    let name = file.name.as_str();
    let mut number = 0u64;
    loop {
        let group = records.group().await?;
        if group.is_empty() {
            return Ok(());
        }
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(group.len());
        let mut numbers = Vec::with_capacity(group.len());
        let mut rescued = Vec::with_capacity(group.len());
        for record in group {
            number += 1;
            let object = match serde_json::from_slice::<Value>(&record) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    out.reject(name, number, None, "is not a JSON object".into());
                    if spec.stop_at_first {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    out.reject(name, number, None, format!("invalid JSON: {e}"));
                    if spec.stop_at_first {
                        return Ok(());
                    }
                    continue;
                }
            };
            let (mut known, mut unknown) = (Map::new(), Map::new());
            for (k, v) in object {
                if spec.target.field_with_name(&k).is_ok() {
                    known.insert(k, v);
                } else {
                    unknown.insert(k, v);
                }
            }
            if let (Unknown::Fail, Some(k)) = (spec.unknown, unknown.keys().next()) {
                return Err(IngestError::not_in_table(name, k, spec.target));
            }
            lines.push(Value::Object(known).to_string().into_bytes());
            numbers.push(number);
            rescued
                .push((spec.unknown == Unknown::Rescue && !unknown.is_empty()).then_some(unknown));
        }
        let (decoded, failed) = decode_halving(&lines, &|part| decode_json(&raw, part));
        for (i, reason) in failed {
            out.reject(name, numbers[i], None, reason);
            if spec.stop_at_first {
                return Ok(());
            }
        }
        for (rows, batch) in decoded {
            let nums: Vec<u64> = rows.iter().map(|&i| numbers[i]).collect();
            let resc = rows.iter().map(|&i| rescued[i].take()).collect();
            if !fit_and_write(&batch, &nums, resc, file, spec, out, sink).await? {
                return Ok(());
            }
        }
    }
}

fn decode_json(schema: &SchemaRef, lines: &[Vec<u8>]) -> Result<RecordBatch, String> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(lines.len().max(1))
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for line in lines {
        decoder.decode(line).map_err(|e| e.to_string())?;
        decoder.decode(b"\n").map_err(|e| e.to_string())?;
    }
    decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no rows".to_owned())
}

async fn csv<S: BatchSink>(
    mut records: Records,
    file: &SourceFile,
    spec: &ExactSpec<'_>,
    out: &mut Exact,
    sink: &mut S,
) -> Result<(), IngestError> {
    let name = file.name.as_str();
    let names: Vec<String> = if spec.csv.header {
        match records.next().await? {
            None => return Ok(()),
            Some(head) => header_names(&head, spec.csv, name)?,
        }
    } else {
        spec.target
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    let raw: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let format = csv_format(CsvOptions {
        header: false,
        ..spec.csv
    });
    let mut number = 0u64;
    loop {
        let group = records.group().await?;
        if group.is_empty() {
            return Ok(());
        }
        let first = number + 1;
        number += group.len() as u64;
        let (decoded, failed) = decode_halving(&group, &|part| decode_csv(&raw, &format, part));
        for (i, reason) in failed {
            out.reject(
                name,
                first + i as u64,
                None,
                format!("malformed CSV record: {reason}"),
            );
            if spec.stop_at_first {
                return Ok(());
            }
        }
        for (rows, batch) in decoded {
            let nums: Vec<u64> = rows.iter().map(|&i| first + i as u64).collect();
            if !fit_and_write(&batch, &nums, Vec::new(), file, spec, out, sink).await? {
                return Ok(());
            }
        }
    }
}

fn header_names(head: &[u8], csv: CsvOptions, name: &str) -> Result<Vec<String>, IngestError> {
    Ok(csv_format(csv)
        .infer_schema(Cursor::new(head), Some(0))
        .map_err(|e| IngestError::file(name, format!("invalid CSV header: {e}")))?
        .0
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

fn decode_csv(
    schema: &SchemaRef,
    format: &arrow_csv::reader::Format,
    records: &[Vec<u8>],
) -> Result<RecordBatch, String> {
    let mut decoder = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder();
    for r in records {
        let mut rest: &[u8] = r;
        while !rest.is_empty() {
            let n = decoder.decode(rest).map_err(|e| csv_reason(&e))?;
            if n == 0 {
                return Err("the record does not fit the decoder".into());
            }
            rest = &rest[n..];
        }
        if !r.ends_with(b"\n") {
            decoder.decode(b"\n").map_err(|e| csv_reason(&e))?;
        }
    }
    decoder.decode(&[]).map_err(|e| csv_reason(&e))?;
    decoder
        .flush()
        .map_err(|e| csv_reason(&e))?
        .ok_or_else(|| "no rows".to_owned())
}

fn csv_reason(e: &arrow_schema::ArrowError) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("Csv error: ").unwrap_or(&text);
    // Arrow numbers lines within the piece it was given, which means nothing here.
    text.split(" for line ").next().unwrap_or(text).to_owned()
}

/// Decodes `items` whole, or, when that fails, each half on its own, down to single items: the
/// batches decoded (with the indexes of their rows) and the items that would not decode, with
/// why. Decoding is retried about `2·log2(n)` times per item that fails.
type Decoded = (Vec<(Vec<usize>, RecordBatch)>, Vec<(usize, String)>);

/// Decodes some records into one batch, or says why not.
type DecodeFn<'a> = &'a dyn Fn(&[Vec<u8>]) -> Result<RecordBatch, String>;

fn decode_halving(items: &[Vec<u8>], decode: DecodeFn<'_>) -> Decoded {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut todo = vec![(0usize, items.len())];
    while let Some((start, end)) = todo.pop() {
        if start == end {
            continue;
        }
        match decode(&items[start..end]) {
            Ok(batch) if batch.num_rows() == end - start => {
                done.push(((start..end).collect(), batch))
            }
            Ok(_) | Err(_) if end - start > 1 => {
                let mid = start + (end - start) / 2;
                // Second half first on the stack, so the first half is decoded first.
                todo.push((mid, end));
                todo.push((start, mid));
            }
            Ok(_) => failed.push((start, "the record holds no row".to_owned())),
            Err(e) => failed.push((start, e)),
        }
    }
    // Batches and failures in file order.
    done.sort_by_key(|(rows, _): &(Vec<usize>, RecordBatch)| rows.first().copied());
    failed.sort_by_key(|(i, _)| *i);
    (done, failed)
}

/// The columns a JSON file has that `target` lacks, in the order they first appear, with types
/// inferred from up to 10,000 records that hold them (and at least one record for each).
pub async fn json_new_columns(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    max_record_bytes: u64,
    target: &Schema,
) -> Result<Vec<Field>, IngestError> {
    const SAMPLE_RECORDS: usize = 10_000;
    const SAMPLE_BYTES: usize = 16 << 20;
    let mut records = JsonRecords::open(store, file, max_record_bytes).await?;
    let mut order: Vec<String> = Vec::new();
    let mut sample: Vec<Value> = Vec::new();
    let mut sample_bytes = 0usize;
    while let Some(record) = records.next().await? {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&record) else {
            continue;
        };
        let mut projected = Map::new();
        let mut brings_a_new_one = false;
        for (k, v) in m {
            if target.field_with_name(&k).is_ok() {
                continue;
            }
            if !order.contains(&k) {
                if order.len() == super::evolve::MAX_NEW_COLUMNS {
                    return Err(IngestError::file(
                        &file.name,
                        format!(
                            "adds more than {} columns to the table",
                            super::evolve::MAX_NEW_COLUMNS
                        ),
                    ));
                }
                order.push(k.clone());
                brings_a_new_one = true;
            }
            projected.insert(k, v);
        }
        let room = sample.len() < SAMPLE_RECORDS && sample_bytes < SAMPLE_BYTES;
        if !projected.is_empty() && (room || brings_a_new_one) {
            sample_bytes += record.len();
            sample.push(Value::Object(projected));
        }
    }
    if order.is_empty() {
        return Ok(Vec::new());
    }
    let inferred = arrow_json::reader::infer_json_schema_from_iterator(sample.into_iter().map(Ok))
        .map_err(|e| IngestError::file(&file.name, format!("invalid JSON: {e}")))?;
    let inferred = super::schema::normalise_schema(&inferred);
    Ok(order
        .iter()
        .filter_map(|k| inferred.field_with_name(k).ok().cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_finds_each_record_that_does_not_decode() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
            "n",
            DataType::new_list(DataType::Int64, true),
            true,
        )]));
        let lines: Vec<Vec<u8>> = (0..37)
            .map(|i| {
                if i % 11 == 3 {
                    format!("{{\"n\": \"not a list {i}\"}}")
                } else {
                    format!("{{\"n\": [{i}]}}")
                }
                .into_bytes()
            })
            .collect();
        let (done, failed) = decode_halving(&lines, &|p| decode_json(&schema, p));
        assert_eq!(
            failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![3, 14, 25, 36]
        );
        let rows: Vec<usize> = done.iter().flat_map(|(r, _)| r.clone()).collect();
        assert_eq!(rows.len(), 33);
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "in file order");
    }
}
