//! Reading source files into Arrow record batches, the fast way: JSON lines (or one JSON array),
//! CSV, Parquet and Avro ([`super::avro`]), streamed from the object store so memory stays
//! bounded by a batch, not a file. JSON and CSV pass through a [`Framer`] first: no record may be
//! longer than the operator's cap, and a batch of long records is flushed at about
//! [`records::FLUSH_BYTES`].
//!
//! Every file is read with the table's schema, and a value that does not fit fails the file
//! naming the column; [`super::load`] then has [`super::exact`] find the record, and deal with
//! it as the ingestion's `on_error` says. (A new table's schema comes from [`super::schema`].)

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::CsvOptions;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::ObjectStore;

use super::conform::conform;
use super::fetch::{byte_stream, parquet_builder, SourceFile};
use super::fit::Unknown;
use super::records::{self, Framer, Step};
use super::IngestError;

/// Rows per record batch handed to the table writer.
pub const BATCH_ROWS: usize = 8_192;

pub(super) fn csv_format(csv: CsvOptions) -> arrow_csv::reader::Format {
    arrow_csv::reader::Format::default()
        .with_header(csv.header)
        .with_delimiter(csv.delimiter)
        .with_quote(csv.quote)
}

/// How the fast path reads a file.
#[derive(Clone, Copy)]
pub struct ReadSpec<'a> {
    pub format: FormatType,
    pub csv: CsvOptions,
    pub max_record_bytes: u64,
    pub target: &'a SchemaRef,
    /// What a column the table lacks does: fail the file ([`Unknown::Fail`]) or be dropped.
    pub unknown: Unknown,
}

/// The schema JSON and CSV are decoded with: the table's, except that timestamps are read as
/// text and converted by the documented rules ([`super::fit::convert`]).
pub(super) fn decode_schema(target: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                arrow_schema::DataType::Timestamp(_, _) => {
                    Field::new(f.name(), arrow_schema::DataType::Utf8, true)
                }
                _ => f.as_ref().clone().with_metadata(Default::default()),
            })
            .collect::<Vec<_>>(),
    ))
}

/// Reads `file` with the table's schema, handing each batch (already in `target`'s shape) to
/// `sink`. Returns the rows read. A JSON or CSV record longer than `max_record_bytes`, a value
/// that does not convert, or (unless dropped) a column the table lacks fails the file; the
/// record-by-record reader ([`super::exact`]) then finds which.
pub async fn read_file<S>(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    spec: ReadSpec<'_>,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    S: BatchSink,
{
    let ReadSpec {
        format,
        csv,
        max_record_bytes,
        target,
        unknown,
    } = spec;
    let name = file.name.as_str();
    let mut rows = 0u64;
    match format {
        FormatType::Avro => {
            let mut stream = super::avro::batches(store, file, BATCH_ROWS).await?;
            while let Some(batch) = stream.next().await {
                let batch = conform(&batch?, target, unknown, name)?;
                rows += batch.num_rows() as u64;
                sink.write(batch).await?;
            }
        }
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
                let batch = conform(&batch, target, unknown, name)?;
                rows += batch.num_rows() as u64;
                sink.write(batch).await?;
            }
        }
        FormatType::Json => {
            let decoder = arrow_json::ReaderBuilder::new(decode_schema(target))
                .with_batch_size(BATCH_ROWS)
                .with_strict_mode(unknown == Unknown::Fail)
                .with_coerce_primitive(true)
                .build_decoder()
                .map_err(|e| IngestError::file(name, e.to_string()))?;
            let chunks = byte_stream(store, file).await?;
            let mut dec = JsonDecoder { decoder };
            let to = Target {
                schema: target,
                unknown,
            };
            rows += decode_json(chunks, max_record_bytes, &mut dec, to, name, sink).await?;
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
            let read_schema = csv_read_schema(&head, csv, target, unknown, name)?;
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
            let rest = futures::stream::iter([Ok(Bytes::from(head))])
                .chain(chunks)
                .boxed();
            let framer = Framer::csv(max_record_bytes, csv.delimiter, csv.quote);
            let to = Target {
                schema: target,
                unknown,
            };
            rows += decode_stream(rest, framer, &mut dec, to, name, sink).await?;
        }
    }
    Ok(rows)
}

/// The table's shape a decoded batch is put into, and what a column it lacks does.
#[derive(Clone, Copy)]
struct Target<'a> {
    schema: &'a SchemaRef,
    unknown: Unknown,
}

/// Where read batches go.
#[allow(async_fn_in_trait)]
pub trait BatchSink {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError>;
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
        self.decoder.decode(buf).map_err(|e| json_error(file, e))
    }
    fn flush(&mut self, file: &str) -> Result<Option<RecordBatch>, IngestError> {
        self.decoder.flush().map_err(|e| json_error(file, e))
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

/// Chunks framed ahead of the decoder.
const FRAMED_AHEAD: usize = 2;

/// A chunk and the steps `framer` found through it (ranges of the chunk).
type Framed = (Bytes, Vec<Step>);

/// Feeds a byte stream through a push decoder, record by record as `framer` finds them,
/// emitting a batch whenever the decoder fills or has taken [`records::FLUSH_BYTES`].
///
/// The framer runs in a task of its own, [`FRAMED_AHEAD`] chunks ahead: finding record ends
/// overlaps decoding (on the other core) instead of adding to it.
async fn decode_stream<D, S>(
    chunks: BoxStream<'static, Result<Bytes, IngestError>>,
    framer: Framer,
    dec: &mut D,
    target: Target<'_>,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    D: PushDecoder,
    S: BatchSink,
{
    let (tx, mut framed) = tokio::sync::mpsc::channel(FRAMED_AHEAD);
    let framing = AbortOnDrop(tokio::spawn(frame_chunks(
        chunks,
        framer,
        name.to_owned(),
        tx,
    )));
    let mut rows = 0;
    while let Some(next) = framed.recv().await {
        let (chunk, steps) = next?;
        for step in steps {
            rows += feed(dec, &chunk[step.feed], target, name, sink).await?;
            if step.flush {
                if let Some(batch) = dec.flush(name)? {
                    rows += emit(batch, target, name, sink).await?;
                }
            }
        }
    }
    drop(framing);
    // End of input: an empty buffer tells the CSV decoder the last line is complete.
    dec.decode(&[], name)?;
    if let Some(batch) = dec.flush(name)? {
        rows += emit(batch, target, name, sink).await?;
    }
    Ok(rows)
}

/// Largest piece of a JSON-lines file fed at once (less when the cap is smaller): pieces end at
/// a line end where there is one, so that a record longer than the cap always spans pieces.
const JSON_PIECE: u64 = 1 << 20;

/// Decodes a JSON file under the record cap. One JSON array goes through the [`Framer`]
/// ([`decode_stream`]). JSON lines take a faster way that finds no record ends itself: pieces
/// ending at line ends go to the decoder, which says after each whether it is part-way through a
/// record. Normally it is not (a record ends at each line end), and nothing more is done. Bytes
/// fed while a record stays open are kept (slices of the chunks, no copies); once they pass the
/// cap, or a record that spanned pieces ends beyond it, the framer goes over them from the last
/// point where no record was open: it names a record over the cap exactly, or, if records just
/// do not end at line ends, carries on framing the rest of the file itself.
async fn decode_json<S>(
    mut chunks: BoxStream<'static, Result<Bytes, IngestError>>,
    cap: u64,
    dec: &mut JsonDecoder,
    target: Target<'_>,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    S: BatchSink,
{
    let piece = usize::try_from(cap.min(JSON_PIECE)).unwrap_or(usize::MAX);
    let frame_error = |e: records::FrameError| IngestError::file(name, e.message());
    let mut rows = 0;
    // Offset of the next byte, and of the last point where no record was open.
    let (mut fed, mut boundary) = (0u64, 0u64);
    let mut open: Vec<Bytes> = Vec::new();
    let mut open_len = 0u64;
    let mut since_flush = 0u64;
    let mut since_look = 0usize;
    let mut decided = false;
    while let Some(chunk) = chunks.next().await.transpose()? {
        let mut at = 0;
        if !decided {
            match chunk.iter().position(|b| !b.is_ascii_whitespace()) {
                None => {
                    fed += chunk.len() as u64;
                    boundary = fed;
                    continue;
                }
                Some(p) => {
                    decided = true;
                    at = p;
                    fed += p as u64;
                    boundary = fed;
                    if chunk[p] == b'[' {
                        let rest = futures::stream::iter([Ok(chunk.slice(p..))])
                            .chain(chunks)
                            .boxed();
                        let framer = Framer::json_from(cap, fed);
                        return Ok(
                            rows + decode_stream(rest, framer, dec, target, name, sink).await?
                        );
                    }
                }
            }
        }
        while at < chunk.len() {
            // Feed up to the next look at the decoder: `piece` bytes after the last one, brought
            // back to a line end when there is one. (Small chunks, as S3 streams them, go whole.)
            let due = piece - since_look;
            let (n, look) = if chunk.len() - at < due {
                (chunk.len() - at, false)
            } else {
                let window = &chunk[at..at + due];
                (memchr::memrchr(b'\n', window).map_or(due, |k| k + 1), true)
            };
            let span = chunk.slice(at..at + n);
            rows += feed(dec, &span, target, name, sink).await?;
            at += n;
            fed += n as u64;
            since_flush += n as u64;
            open.push(span);
            open_len += n as u64;
            if !look {
                since_look += n;
                continue;
            }
            since_look = 0;
            // Looks are at most `piece` (no more than the cap) apart, so a record over the cap
            // is open at one of them, and in `open` until it ends.
            let open_now = dec.decoder.has_partial_record();
            if open_len > cap {
                // Frame what was fed since the last boundary: a record over the cap fails.
                let mut framer = Framer::json_lines_from(cap, boundary);
                for part in &open {
                    step_through(&mut framer, part).map_err(frame_error)?;
                }
                if open_now {
                    // Records do not end at line ends here: the framer, now in step, frames
                    // the rest.
                    let rest = futures::stream::iter([Ok(chunk.slice(at..))])
                        .chain(chunks)
                        .boxed();
                    return Ok(rows + decode_stream(rest, framer, dec, target, name, sink).await?);
                }
            }
            if !open_now {
                open.clear();
                open_len = 0;
                boundary = fed;
                if since_flush >= records::FLUSH_BYTES {
                    since_flush = 0;
                    if let Some(batch) = dec.flush(name)? {
                        rows += emit(batch, target, name, sink).await?;
                    }
                }
            }
        }
    }
    if open_len > cap {
        // The file ended before the next look: the same question about its last bytes.
        let mut framer = Framer::json_lines_from(cap, boundary);
        for part in &open {
            step_through(&mut framer, part).map_err(frame_error)?;
        }
    }
    dec.decode(&[], name)?;
    if let Some(batch) = dec.flush(name)? {
        rows += emit(batch, target, name, sink).await?;
    }
    Ok(rows)
}

/// Runs `framer` over all of `bytes` (already fed), for its verdict and its state.
fn step_through(framer: &mut Framer, bytes: &[u8]) -> Result<(), records::FrameError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let step = framer.step(rest)?;
        rest = &rest[step.consumed..];
    }
    Ok(())
}

/// Feeds all of `bytes` to the decoder, handing over a batch whenever it fills.
async fn feed<D, S>(
    dec: &mut D,
    bytes: &[u8],
    target: Target<'_>,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError>
where
    D: PushDecoder,
    S: BatchSink,
{
    let mut rows = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let consumed = dec.decode(rest, name)?;
        rest = &rest[consumed..];
        if !rest.is_empty() {
            // The decoder is full: hand over a batch before it takes more.
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
    Ok(rows)
}

/// Runs `framer` over `chunks` in order, sending each chunk with its steps, then the framer's
/// verdict on the end of the file. Stops at the first error, or when the decoder is gone.
async fn frame_chunks(
    mut chunks: BoxStream<'static, Result<Bytes, IngestError>>,
    mut framer: Framer,
    name: String,
    tx: tokio::sync::mpsc::Sender<Result<Framed, IngestError>>,
) {
    let frame = |framer: &mut Framer, chunk: Bytes| -> Result<Framed, IngestError> {
        let mut steps = Vec::new();
        let mut at = 0;
        while at < chunk.len() {
            let step = framer
                .step(&chunk[at..])
                .map_err(|e| IngestError::file(&name, e.message()))?;
            steps.push(Step {
                feed: at + step.feed.start..at + step.feed.end,
                consumed: step.consumed,
                ..step
            });
            at += step.consumed;
        }
        Ok((chunk, steps))
    };
    while let Some(chunk) = chunks.next().await {
        let framed = chunk.and_then(|chunk| frame(&mut framer, chunk));
        let failed = framed.is_err();
        if tx.send(framed).await.is_err() || failed {
            return;
        }
    }
    if let Err(e) = framer.finish() {
        let _ = tx.send(Err(IngestError::file(&name, e.message()))).await;
    }
}

/// Aborts a task when dropped (a decoder that stops early stops its framer).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn emit<S: BatchSink>(
    batch: RecordBatch,
    target: Target<'_>,
    name: &str,
    sink: &mut S,
) -> Result<u64, IngestError> {
    if batch.num_rows() == 0 {
        return Ok(0);
    }
    let batch = conform(&batch, target.schema, target.unknown, name)?;
    let n = batch.num_rows() as u64;
    sink.write(batch).await?;
    Ok(n)
}

/// A JSON decoding error: a key the table lacks is a [`IngestError::Schema`] error, the rest
/// are about the file's content.
fn json_error(file: &str, e: arrow_schema::ArrowError) -> IngestError {
    let message = describe_json_error(e);
    if message.ends_with("is not in the table") {
        IngestError::Schema {
            file: file.to_owned(),
            message,
        }
    } else {
        IngestError::file(file, message)
    }
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
/// type for that name. A column the table lacks fails the file, or is read as text to be dropped.
fn csv_read_schema(
    head: &[u8],
    csv: CsvOptions,
    target: &SchemaRef,
    unknown: Unknown,
    name: &str,
) -> Result<SchemaRef, IngestError> {
    if !csv.header {
        return Ok(decode_schema(target));
    }
    let (header, _) = csv_format(csv)
        .infer_schema(Cursor::new(head), Some(0))
        .map_err(|e| IngestError::file(name, format!("invalid CSV header: {e}")))?;
    let mut fields = Vec::with_capacity(header.fields().len());
    for col in header.fields() {
        let Ok(t) = target.field_with_name(col.name()) else {
            if unknown == Unknown::Drop {
                fields.push(Field::new(col.name(), arrow_schema::DataType::Utf8, true));
                continue;
            }
            return Err(IngestError::not_in_table(name, col.name(), target));
        };
        fields.push(Field::new(col.name(), t.data_type().clone(), true));
    }
    Ok(decode_schema(&Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::DataType;

    fn target() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    struct Rows(Vec<i64>);

    impl BatchSink for Rows {
        async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64");
            self.0.extend(ids.values().iter());
            Ok(())
        }
    }

    /// Decodes `text` as a JSON file under `cap`, in chunks of `chunk` bytes: the ids read.
    async fn decode(text: &str, cap: u64, chunk: usize) -> Result<Vec<i64>, String> {
        let target = target();
        let decoder = arrow_json::ReaderBuilder::new(decode_schema(&target))
            .with_batch_size(3)
            .with_strict_mode(true)
            .build_decoder()
            .expect("decoder");
        let chunks: Vec<Result<Bytes, IngestError>> = text
            .as_bytes()
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut sink = Rows(Vec::new());
        let mut dec = JsonDecoder { decoder };
        decode_json(
            futures::stream::iter(chunks).boxed(),
            cap,
            &mut dec,
            Target {
                schema: &target,
                unknown: Unknown::Fail,
            },
            "f.json",
            &mut sink,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(sink.0)
    }

    fn record(id: i64, name_len: usize) -> String {
        format!("{{\"id\": {id}, \"name\": \"{}\"}}", "n".repeat(name_len))
    }

    #[tokio::test]
    async fn json_records_over_the_cap_fail_exactly_however_they_are_laid_out() {
        // 60-byte records (a name of 39), and one of 101 (a name of 80).
        let (short, long) = (|i| record(i, 39), record(9, 80));
        assert_eq!(short(1).len(), 60);
        assert_eq!(long.len(), 101);
        let layouts = [
            // One a line; pretty-printed over lines; back to back on one line; in an array.
            format!("{}\n{}\n{long}\n{}\n", short(1), short(2), short(3)),
            format!(
                "{}\n{}\n{}\n{}\n",
                short(1),
                short(2),
                long.replace(", ", ",\n  "),
                short(3)
            ),
            format!("{}{} {long}{}", short(1), short(2), short(3)),
            format!("[{},{}, {long},\n{}]", short(1), short(2), short(3)),
        ];
        for text in &layouts {
            let start = text.find("{\"id\": 9").expect("long record");
            for chunk in [1, 7, 64, 4096] {
                assert_eq!(
                    decode(text, 120, chunk).await,
                    Ok(vec![1, 2, 9, 3]),
                    "{text:?} fits a cap of 120 (chunks of {chunk})"
                );
                let e = decode(text, 100, chunk)
                    .await
                    .expect_err(&format!("over 100: {text:?} in chunks of {chunk}"));
                assert!(
                    e.contains(&format!(
                        "starting at byte {start} is longer than 100 bytes"
                    )),
                    "{text:?} in chunks of {chunk}: {e}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_json_record_over_the_cap_at_the_end_of_the_file_fails_too() {
        let text = format!("{}\n{}\n{}", record(1, 39), record(2, 39), record(9, 80));
        for chunk in [1, 7, 64, 4096] {
            assert_eq!(decode(&text, 120, chunk).await, Ok(vec![1, 2, 9]));
            let e = decode(&text, 100, chunk).await.expect_err("over 100");
            assert!(e.contains("starting at byte 122"), "chunks of {chunk}: {e}");
        }
    }

    #[tokio::test]
    async fn short_json_records_load_whatever_their_layout() {
        // Many records, none over the cap, but no line ends at all: the framer takes over.
        let one_line: String = (0..40).map(|i| record(i, 20)).collect();
        let lines: String = (0..40).map(|i| record(i, 20) + "\n").collect();
        for text in [&one_line, &lines] {
            for chunk in [5, 64, 100_000] {
                let ids = decode(text, 50, chunk).await.expect("loads");
                assert_eq!(ids, (0..40).collect::<Vec<_>>(), "chunks of {chunk}");
            }
        }
    }
}
