//! Avro object container files (`format_type: "avro"`).
//!
//! A container is a header (the magic bytes `Obj` 1, metadata holding the writer's schema and
//! the codec, a 16-byte sync marker) followed by blocks: a record count, a byte length, that many
//! bytes of records (compressed by the codec) and the sync marker again. A file's columns are the
//! fields of its writer schema ([`infer_schema`] reads the header and nothing more), and its
//! records become Arrow record batches in that schema, block by block ([`batches`]).
//!
//! apache-avro parses the schema and decodes the records. The framing and the decompression of
//! blocks are done here, not by its `Reader`, so that both are bounded: that reader inflates a
//! block whole with no limit (a snappy block of a few bytes may claim gigabytes). A block may hold
//! at most [`MAX_BLOCK_BYTES`], compressed and decompressed, and a file's blocks together at most
//! its `max_decompressed` (`AUTOLOADER_MAX_FILE_BYTES`). What apache-avro itself allocates for one
//! value (a string, bytes, the items of an array or map block) is capped by [`bound_allocations`].
//! Memory holds the current block, the batch being built and one batch handed over, never the
//! file.
//!
//! Reading is blocking (apache-avro reads through `std::io::Read`): it runs on the blocking pool,
//! fed the file's bytes through a [`SyncIoBridge`], and hands batches back through a channel one
//! deep. Dropping the stream stops it at its next batch. The source's own errors (a store error,
//! a local read error) come back out of the bridge as they were, transient or not.
//!
//! Types, Avro to Arrow (the table then stores them as [`super::schema::normalise_schema`] says):
//!
//! | Avro | Arrow |
//! |---|---|
//! | null, boolean, int, long, float, double | Null (a string column in the table), Boolean, Int32, Int64, Float32, Float64 |
//! | bytes, string | Binary, Utf8 |
//! | `["null", T]` (either order) | T, nullable; any other union of two or more types is refused, naming the column |
//! | record | Struct |
//! | array | List |
//! | map | Map (Utf8 keys) |
//! | enum, uuid | Utf8 (the symbol; the hyphenated UUID) |
//! | fixed | FixedSizeBinary |
//! | decimal (bytes or fixed) | Decimal128(precision, scale); a precision over 38 is refused |
//! | date | Date32 |
//! | time-millis, time-micros | Time64(µs) |
//! | timestamp-millis, -micros, -nanos (instants) | Timestamp(µs, "+00:00"), i.e. UTC (nanoseconds floored to microseconds) |
//! | local-timestamp-millis, -micros, -nanos | Timestamp(µs), no time zone |
//! | duration | Struct of months, days, milliseconds (Int64) |
//!
//! Recursive types (a record holding itself) are refused, naming the column.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use apache_avro::schema::{Name, ResolvedSchema, Schema as AvroSchema, SchemaKind};
use apache_avro::types::Value;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int32Builder, Int64Builder, NullBufferBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::types::{Decimal128Type, DecimalType};
use arrow_array::{
    ArrayRef, ListArray, MapArray, NullArray, RecordBatch, RecordBatchOptions, StructArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::ObjectStore;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::fetch::{byte_stream, SourceFile};
use super::records::FLUSH_BYTES;
use super::IngestError;

/// Most bytes one block may take, compressed and decompressed: far above what writers make
/// (Java's default closes a block at 64 KB, others at 16 KB to 1 MB), and the bound on memory a
/// block costs. A larger block fails its file, naming the cap.
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Most bytes of header metadata (the writer's schema, mostly).
const MAX_HEADER_BYTES: usize = 16 << 20;

/// The least [`bound_allocations`] sets apache-avro's allocation cap to.
const MIN_ALLOCATION_BYTES: usize = 16 << 20;

/// The time zone of instants, as iceberg names it for `timestamptz` columns.
const UTC: &str = "+00:00";

/// Batches decoded ahead of the table writer.
const BATCHES_AHEAD: usize = 1;

/// Caps what apache-avro allocates for any one value it decodes (a string's or bytes' length,
/// the items of one array or map block) at the record cap, and never below 16 MiB: a corrupt
/// length then fails its file instead of reserving gigabytes. apache-avro keeps this setting for
/// the whole process and takes only the first value given (`max_allocation_bytes`); iceberg's
/// own reading of manifests shares it, whose blocks and values are far smaller. The worker calls
/// this once at start, before anything is decoded; [`infer_schema`] and [`batches`] call it too,
/// which changes nothing once it is set. Returns the cap in force.
pub fn bound_allocations(max_record_bytes: u64) -> usize {
    let cap = usize::try_from(max_record_bytes)
        .unwrap_or(usize::MAX)
        .max(MIN_ALLOCATION_BYTES);
    apache_avro::util::max_allocation_bytes(cap)
}

/// The Arrow schema of `file`'s records, from its header alone (the writer's schema). Not
/// normalised: the caller does that.
pub async fn infer_schema(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
) -> Result<Schema, IngestError> {
    bound_allocations(0);
    let mut input = bridge(byte_stream(store, file).await?);
    let name = file.name.clone();
    tokio::task::spawn_blocking(move || {
        let header = read_header(&mut input).map_err(|f| f.into_error(&name))?;
        let (schema, _) = plan(&header.schema).map_err(|f| f.into_error(&name))?;
        Ok(schema.as_ref().clone())
    })
    .await
    .map_err(|e| stopped(&file.name, &e))?
}

/// `file`'s records as record batches of at most `batch_rows` rows (fewer once a batch holds
/// about [`FLUSH_BYTES`] of records), in the file's own schema as [`infer_schema`] gives it.
/// A file that is not a readable container fails with `not a readable Avro file: …`.
pub async fn batches(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    batch_rows: usize,
) -> Result<BoxStream<'static, Result<RecordBatch, IngestError>>, IngestError> {
    bound_allocations(0);
    let bytes = byte_stream(store, file).await?;
    Ok(stream_batches(
        bridge(bytes),
        file.name.clone(),
        file.max_decompressed,
        batch_rows,
    ))
}

/// Reads the container from `input` on the blocking pool: its batches, then its verdict (an
/// error after the batches read before it, or nothing more).
fn stream_batches(
    input: Input,
    name: String,
    max_decoded: u64,
    batch_rows: usize,
) -> BoxStream<'static, Result<RecordBatch, IngestError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    let task = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            read_batches(input, max_decoded, batch_rows.max(1), &tx)
                .map_err(|f| f.into_error(&name))
        })
    };
    futures::stream::unfold(Some((rx, task)), move |state| {
        let name = name.clone();
        async move {
            let (mut rx, task) = state?;
            match rx.recv().await {
                Some(batch) => Some((Ok(batch), Some((rx, task)))),
                None => match task.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((Err(e), None)),
                    Err(e) => Some((Err(stopped(&name, &e)), None)),
                },
            }
        }
    })
    .boxed()
}

fn stopped(file: &str, e: &tokio::task::JoinError) -> IngestError {
    IngestError::file(file, format!("the Avro reader stopped: {e}"))
}

/// The file's bytes as blocking reads, for the blocking pool.
type Input = SyncIoBridge<StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>>;

fn bridge(bytes: BoxStream<'static, Result<Bytes, IngestError>>) -> Input {
    let bytes = bytes
        .map(|r| r.map_err(|e| io::Error::other(Carried(e))))
        .boxed();
    SyncIoBridge::new(StreamReader::new(bytes))
}

/// The source's own error, carried through the blocking reader as an `io::Error`.
#[derive(Debug)]
struct Carried(IngestError);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

/// Why a file could not be read.
#[derive(Debug)]
enum Failure {
    /// Its bytes could not be had: the source's error, as it was.
    Source(IngestError),
    /// The bytes are not a readable container (`not a readable Avro file: …`).
    Unreadable(String),
    /// A readable file that this reader will not take (a cap, an unsupported type): said as is.
    Refused(String),
    /// A value that cannot be stored, in a column.
    Column { path: String, problem: String },
}

impl Failure {
    fn into_error(self, file: &str) -> IngestError {
        match self {
            Failure::Source(e) => e,
            Failure::Unreadable(m) => {
                IngestError::file(file, format!("not a readable Avro file: {m}"))
            }
            Failure::Refused(m) => IngestError::file(file, m),
            Failure::Column { path, problem } => IngestError::column(file, &path, problem),
        }
    }
}

fn truncated(what: &str) -> Failure {
    Failure::Unreadable(format!("it ends in the middle of {what} (truncated)"))
}

fn io_failure(e: io::Error, what: &str) -> Failure {
    if e.get_ref().is_some_and(|inner| inner.is::<Carried>()) {
        if let Some(Ok(carried)) = e.into_inner().map(|inner| inner.downcast::<Carried>()) {
            return Failure::Source(carried.0);
        }
        return Failure::Unreadable(format!("cannot read {what}"));
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return truncated(what);
    }
    Failure::Unreadable(format!("cannot read {what}: {e}"))
}

fn read_byte<R: Read>(src: &mut R, what: &str) -> Result<Option<u8>, Failure> {
    let mut b = [0u8; 1];
    loop {
        match src.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e, what)),
        }
    }
}

/// An Avro long (a zigzag varint); `None` when the input ends before its first byte.
fn read_long<R: Read>(src: &mut R, what: &str) -> Result<Option<i64>, Failure> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(b) = read_byte(src, what)? else {
            return if i == 0 {
                Ok(None)
            } else {
                Err(truncated(what))
            };
        };
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value >> 1) as i64 ^ -((value & 1) as i64)));
        }
    }
    Err(Failure::Unreadable(format!(
        "{what} is corrupt (a number longer than 10 bytes)"
    )))
}

fn expect_long<R: Read>(src: &mut R, what: &str) -> Result<i64, Failure> {
    read_long(src, what)?.ok_or_else(|| truncated(what))
}

/// Exactly `n` bytes; memory grows with what arrives, so a corrupt length does not allocate.
fn read_bytes<R: Read>(src: &mut R, n: usize, what: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    src.by_ref()
        .take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io_failure(e, what))?;
    if buf.len() < n {
        return Err(truncated(what));
    }
    Ok(buf)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstandard,
}

struct Header {
    schema: AvroSchema,
    codec: Codec,
    marker: [u8; 16],
}

const MAGIC: &[u8; 4] = b"Obj\x01";

fn read_header<R: Read>(src: &mut R) -> Result<Header, Failure> {
    const WHAT: &str = "its header";
    let magic = read_bytes(src, 4, WHAT).map_err(|f| match f {
        Failure::Unreadable(_) => {
            Failure::Unreadable("it is too short to be an Avro object container file".into())
        }
        other => other,
    })?;
    if magic != MAGIC {
        return Err(Failure::Unreadable(
            "it does not start as an Avro object container file does (the bytes 'Obj' 1)".into(),
        ));
    }
    // The metadata: a map of bytes, in blocks of entries, ending with an empty block.
    let mut budget = MAX_HEADER_BYTES;
    let mut meta: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    loop {
        let count = expect_long(src, WHAT)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            expect_long(src, WHAT)?;
        }
        for _ in 0..count.unsigned_abs() {
            let key = header_bytes(src, &mut budget)?;
            let value = header_bytes(src, &mut budget)?;
            meta.insert(key, value);
        }
    }
    let marker: [u8; 16] = read_bytes(src, 16, WHAT)?
        .try_into()
        .map_err(|_| truncated(WHAT))?;
    let Some(schema) = meta.get(b"avro.schema".as_slice()) else {
        return Err(Failure::Unreadable(
            "its header holds no schema (avro.schema)".into(),
        ));
    };
    let schema = std::str::from_utf8(schema)
        .map_err(|_| Failure::Unreadable("its schema is not UTF-8 text".into()))
        .and_then(|text| {
            AvroSchema::parse_str(text)
                .map_err(|e| Failure::Unreadable(format!("its schema cannot be read: {e}")))
        })?;
    let codec = match meta.get(b"avro.codec".as_slice()).map(Vec::as_slice) {
        None | Some(b"null") => Codec::Null,
        Some(b"deflate") => Codec::Deflate,
        Some(b"snappy") => Codec::Snappy,
        Some(b"zstandard") => Codec::Zstandard,
        Some(other) => {
            return Err(Failure::Refused(format!(
                "its Avro blocks are compressed with '{}', which is not read (null, deflate, \
                 snappy and zstandard are)",
                String::from_utf8_lossy(other)
            )))
        }
    };
    Ok(Header {
        schema,
        codec,
        marker,
    })
}

/// One key or value of the header's metadata, within what is left of the header's budget.
fn header_bytes<R: Read>(src: &mut R, budget: &mut usize) -> Result<Vec<u8>, Failure> {
    const WHAT: &str = "its header";
    let len = expect_long(src, WHAT)?;
    let len = usize::try_from(len)
        .map_err(|_| Failure::Unreadable("its header is corrupt (a negative length)".into()))?;
    // Every entry costs at least a byte, so a run of empty ones ends too.
    if len >= *budget {
        return Err(Failure::Refused(format!(
            "its Avro header is longer than {MAX_HEADER_BYTES} bytes, the most one may be"
        )));
    }
    *budget -= len + 1;
    read_bytes(src, len, WHAT)
}

/// The container's blocks, in order.
struct Blocks<R> {
    src: R,
    header: Header,
    /// Blocks read so far.
    read: u64,
    /// Decompressed bytes so far, and the most the file may decompress to.
    decoded: u64,
    max_decoded: u64,
}

/// A block: its number (from 1), its record count and its records' bytes, decompressed.
struct Block {
    number: u64,
    count: u64,
    data: Vec<u8>,
}

impl<R: Read> Blocks<R> {
    fn next(&mut self) -> Result<Option<Block>, Failure> {
        let number = self.read + 1;
        let what = format!("block {number}");
        let Some(count) = read_long(&mut self.src, &what)? else {
            return Ok(None);
        };
        let size = expect_long(&mut self.src, &what)?;
        let (Ok(count), Ok(size)) = (u64::try_from(count), usize::try_from(size)) else {
            return Err(Failure::Unreadable(format!(
                "block {number} is corrupt (a negative count or size)"
            )));
        };
        if size > MAX_BLOCK_BYTES {
            return Err(Failure::Refused(format!(
                "Avro block {number} is {size} bytes long, more than one block may be \
                 ({MAX_BLOCK_BYTES} bytes)"
            )));
        }
        let raw = read_bytes(&mut self.src, size, &what)?;
        let marker = read_bytes(&mut self.src, 16, &what)?;
        if marker != self.header.marker {
            return Err(Failure::Unreadable(format!(
                "block {number} does not end with the file's sync marker (the file is corrupt)"
            )));
        }
        let data = decompress(self.header.codec, raw, number, MAX_BLOCK_BYTES)?;
        self.decoded += data.len() as u64;
        if self.decoded > self.max_decoded {
            return Err(Failure::Refused(format!(
                "decompresses to more than a run may read of one file ({} bytes, \
                 AUTOLOADER_MAX_FILE_BYTES)",
                self.max_decoded
            )));
        }
        self.read = number;
        Ok(Some(Block {
            number,
            count,
            data,
        }))
    }
}

/// A block's bytes decompressed, no more than `cap` of them.
fn decompress(codec: Codec, raw: Vec<u8>, number: u64, cap: usize) -> Result<Vec<u8>, Failure> {
    let too_big = || {
        Failure::Refused(format!(
            "Avro block {number} decompresses to more than one block may hold ({cap} bytes)"
        ))
    };
    let invalid = |codec: &str, e: &dyn std::fmt::Display| {
        Failure::Unreadable(format!("block {number} is not valid {codec} data: {e}"))
    };
    let bounded = |reader: &mut dyn Read| -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.take(cap as u64 + 1).read_to_end(&mut out)?;
        Ok(out)
    };
    let out = match codec {
        Codec::Null => return Ok(raw),
        Codec::Deflate => bounded(&mut flate2::read::DeflateDecoder::new(raw.as_slice()))
            .map_err(|e| invalid("deflate", &e))?,
        Codec::Zstandard => zstd::stream::read::Decoder::with_buffer(raw.as_slice())
            .and_then(|mut d| bounded(&mut d))
            .map_err(|e| invalid("zstandard", &e))?,
        Codec::Snappy => {
            // Snappy data, then the CRC-32 of the decompressed bytes, big-endian.
            let Some(split) = raw.len().checked_sub(4) else {
                return Err(invalid("snappy", &"too short"));
            };
            let (data, crc) = raw.split_at(split);
            let len = snap::raw::decompress_len(data).map_err(|e| invalid("snappy", &e))?;
            if len > cap {
                return Err(too_big());
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| invalid("snappy", &e))?;
            if crc32fast::hash(&out).to_be_bytes() != crc {
                return Err(Failure::Unreadable(format!(
                    "block {number} fails its checksum (the file is corrupt)"
                )));
            }
            out
        }
    };
    if out.len() > cap {
        return Err(too_big());
    }
    Ok(out)
}

/// A block's bytes as apache-avro decodes records from them, noting any read past their end
/// (apache-avro takes the end of its input as a null in places, rather than failing).
struct BlockReader<'a> {
    rest: &'a [u8],
    overran: bool,
}

impl Read for BlockReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.rest.len());
        if n == 0 && !buf.is_empty() {
            self.overran = true;
        }
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Reads the container from `input`, sending batches of at most `batch_rows` rows to `tx`.
/// Stops early, without error, when `tx`'s receiver is gone.
fn read_batches<R: Read>(
    mut input: R,
    max_decoded: u64,
    batch_rows: usize,
    tx: &tokio::sync::mpsc::Sender<RecordBatch>,
) -> Result<(), Failure> {
    let header = read_header(&mut input)?;
    let (_, mut rows) = plan(&header.schema)?;
    let empty_records = takes_no_bytes(&header.schema);
    let mut blocks = Blocks {
        src: input,
        header,
        read: 0,
        decoded: 0,
        max_decoded,
    };
    let mut record = 0u64;
    let mut batch_bytes = 0usize;
    while let Some(Block {
        number,
        count,
        data,
    }) = blocks.next()?
    {
        // Every record takes a byte at least (unless its type holds nothing at all): a count
        // beyond that is corruption, not a reason to loop.
        let most = if empty_records {
            MAX_BLOCK_BYTES as u64
        } else {
            data.len() as u64
        };
        if count > most {
            return Err(Failure::Unreadable(format!(
                "block {number} claims {count} records in {} bytes (the file is corrupt)",
                data.len()
            )));
        }
        let mut reader = BlockReader {
            rest: &data,
            overran: false,
        };
        for _ in 0..count {
            record += 1;
            let before = reader.rest.len();
            let corrupt = |why: String| {
                Failure::Unreadable(format!("record {record} (in block {number}) {why}"))
            };
            let value = apache_avro::from_avro_datum(&blocks.header.schema, &mut reader, None)
                .map_err(|e| corrupt(format!("cannot be decoded: {e}")))?;
            if reader.overran {
                return Err(corrupt("runs past the end of its block".into()));
            }
            rows.push(&value).map_err(|bad| {
                if bad.corrupt {
                    corrupt(format!("is corrupt: column '{}' {}", bad.path, bad.problem))
                } else {
                    Failure::Column {
                        path: bad.path,
                        problem: format!("in record {record}: {}", bad.problem),
                    }
                }
            })?;
            batch_bytes += before - reader.rest.len();
            if rows.len >= batch_rows || batch_bytes as u64 >= FLUSH_BYTES {
                batch_bytes = 0;
                if tx.blocking_send(rows.finish()?).is_err() {
                    return Ok(());
                }
            }
        }
        if !reader.rest.is_empty() {
            return Err(Failure::Unreadable(format!(
                "block {number} holds {} bytes after its {count} records (the file is corrupt)",
                reader.rest.len()
            )));
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
    if rows.len > 0 {
        let _ = tx.blocking_send(rows.finish()?);
    }
    Ok(())
}

/// Whether a value of `schema` takes no bytes at all (null, or records of nothing but those).
fn takes_no_bytes(schema: &AvroSchema) -> bool {
    match schema {
        AvroSchema::Null => true,
        AvroSchema::Fixed(f) => f.size == 0,
        AvroSchema::Record(r) => r.fields.iter().all(|f| takes_no_bytes(&f.schema)),
        // A reference, a union (its branch's index), anything else: a byte at least.
        _ => false,
    }
}

/// The Arrow schema of a container's records, and the builders its batches are made with.
fn plan(schema: &AvroSchema) -> Result<(SchemaRef, Rows), Failure> {
    let resolved = ResolvedSchema::try_from(schema)
        .map_err(|e| Failure::Unreadable(format!("its schema cannot be read: {e}")))?;
    let AvroSchema::Record(record) = schema else {
        return Err(Failure::Refused(format!(
            "its Avro schema is a {}, not a record: only records can be rows",
            kind(schema)
        )));
    };
    let mut planner = Planner {
        names: resolved.get_names(),
        open: vec![record.name.clone()],
    };
    let mut fields = Vec::with_capacity(record.fields.len());
    let mut columns = Vec::with_capacity(record.fields.len());
    for f in &record.fields {
        let (field, node) = planner
            .field(&f.name, &f.schema, &f.name)
            .map_err(Failure::Refused)?;
        fields.push(field);
        columns.push(node);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok((
        schema.clone(),
        Rows {
            schema,
            columns,
            len: 0,
        },
    ))
}

/// How a type is named in errors.
fn kind(schema: &AvroSchema) -> String {
    match schema {
        AvroSchema::Record(r) => format!("record {}", r.name.fullname(None)),
        AvroSchema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        AvroSchema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        AvroSchema::Ref { name } => name.fullname(None),
        other => format!("{:?}", SchemaKind::from(other)).to_lowercase(),
    }
}

/// Turns Avro types into Arrow types and the builders of their columns.
struct Planner<'s> {
    names: &'s HashMap<Name, &'s AvroSchema>,
    /// The records being planned, outermost first: one of them inside itself is recursive.
    open: Vec<Name>,
}

impl<'s> Planner<'s> {
    fn resolve(&self, schema: &'s AvroSchema, path: &str) -> Result<&'s AvroSchema, String> {
        match schema {
            AvroSchema::Ref { name } => self.names.get(name).copied().ok_or_else(|| {
                format!(
                    "column '{path}' is of type {}, which the schema does not define",
                    name.fullname(None)
                )
            }),
            other => Ok(other),
        }
    }

    /// A column named `name` of type `schema` (a record's field, an array's items, a map's
    /// values): a union of null and one type is that type, nullable.
    fn field(
        &mut self,
        name: &str,
        schema: &'s AvroSchema,
        path: &str,
    ) -> Result<(Field, Node), String> {
        let schema = self.resolve(schema, path)?;
        let (inner, nullable) = match schema {
            AvroSchema::Union(u) => {
                let others: Vec<&AvroSchema> = u
                    .variants()
                    .iter()
                    .filter(|v| !matches!(v, AvroSchema::Null))
                    .collect();
                match others.as_slice() {
                    [] => (schema, true),
                    [one] => (self.resolve(one, path)?, others.len() < u.variants().len()),
                    _ => {
                        let kinds: Vec<String> = u.variants().iter().map(kind).collect();
                        return Err(format!(
                            "column '{path}' is an Avro union of {}: only a union of null and \
                             one other type can be a column",
                            kinds.join(", ")
                        ));
                    }
                }
            }
            other => (other, matches!(other, AvroSchema::Null)),
        };
        let (data_type, col) = match inner {
            // A union of null alone: always null.
            AvroSchema::Union(_) => (DataType::Null, Col::Null(0)),
            _ => self.column(inner, path)?,
        };
        Ok((
            Field::new(name, data_type, nullable),
            Node {
                col,
                nullable,
                path: path.to_owned(),
            },
        ))
    }

    fn column(&mut self, schema: &'s AvroSchema, path: &str) -> Result<(DataType, Col), String> {
        use AvroSchema as S;
        let utc = || Some(Arc::<str>::from(UTC));
        Ok(match schema {
            S::Null => (DataType::Null, Col::Null(0)),
            S::Boolean => (DataType::Boolean, Col::Boolean(BooleanBuilder::new())),
            S::Int => (DataType::Int32, Col::Int(Int32Builder::new())),
            S::Long => (DataType::Int64, Col::Long(Int64Builder::new())),
            S::Float => (DataType::Float32, Col::Float(Float32Builder::new())),
            S::Double => (DataType::Float64, Col::Double(Float64Builder::new())),
            S::Bytes => (DataType::Binary, Col::Bytes(BinaryBuilder::new())),
            S::String | S::Enum(_) | S::Uuid | S::BigDecimal => {
                (DataType::Utf8, Col::Text(StringBuilder::new()))
            }
            S::Fixed(f) => {
                let size = i32::try_from(f.size)
                    .map_err(|_| format!("column '{path}' is a fixed of {} bytes", f.size))?;
                (
                    DataType::FixedSizeBinary(size),
                    Col::Fixed(FixedSizeBinaryBuilder::new(size)),
                )
            }
            S::Decimal(d) => {
                let refused = || {
                    format!(
                        "column '{path}' is an Avro decimal({}, {}), which a table cannot store \
                         (a precision of 1 to 38, a scale no greater)",
                        d.precision, d.scale
                    )
                };
                let (Ok(precision), Ok(scale)) = (u8::try_from(d.precision), i8::try_from(d.scale))
                else {
                    return Err(refused());
                };
                let builder = Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .map_err(|_| refused())?;
                (
                    DataType::Decimal128(precision, scale),
                    Col::Decimal { builder, precision },
                )
            }
            S::Date => (DataType::Date32, Col::Date(Date32Builder::new())),
            S::TimeMillis | S::TimeMicros => (
                DataType::Time64(TimeUnit::Microsecond),
                Col::Time(Time64MicrosecondBuilder::new()),
            ),
            S::TimestampMillis | S::TimestampMicros | S::TimestampNanos => (
                DataType::Timestamp(TimeUnit::Microsecond, utc()),
                Col::Timestamp(TimestampMicrosecondBuilder::new().with_timezone_opt(utc())),
            ),
            S::LocalTimestampMillis | S::LocalTimestampMicros | S::LocalTimestampNanos => (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Col::Timestamp(TimestampMicrosecondBuilder::new()),
            ),
            S::Duration => {
                let fields: Fields = ["months", "days", "milliseconds"]
                    .into_iter()
                    .map(|n| Field::new(n, DataType::Int64, false))
                    .collect();
                (
                    DataType::Struct(fields.clone()),
                    Col::Duration {
                        fields,
                        parts: std::array::from_fn(|_| Int64Builder::new()),
                        nulls: NullBufferBuilder::new(0),
                    },
                )
            }
            S::Array(a) => {
                let (field, node) = self.field("element", &a.items, path)?;
                let field = Arc::new(field);
                (
                    DataType::List(field.clone()),
                    Col::List {
                        field,
                        items: Box::new(node),
                        offsets: vec![0],
                        nulls: NullBufferBuilder::new(0),
                    },
                )
            }
            S::Map(m) => {
                let (value, node) = self.field("value", &m.types, path)?;
                let entries: Fields = vec![Field::new("key", DataType::Utf8, false), value].into();
                let field = Arc::new(Field::new(
                    "key_value",
                    DataType::Struct(entries.clone()),
                    false,
                ));
                (
                    DataType::Map(field.clone(), false),
                    Col::Map {
                        field,
                        entries,
                        keys: StringBuilder::new(),
                        values: Box::new(node),
                        offsets: vec![0],
                        nulls: NullBufferBuilder::new(0),
                    },
                )
            }
            S::Record(r) => {
                if self.open.contains(&r.name) {
                    return Err(format!(
                        "column '{path}' is of type {}, which holds itself: a recursive type \
                         cannot be a column",
                        r.name.fullname(None)
                    ));
                }
                self.open.push(r.name.clone());
                let mut fields = Vec::with_capacity(r.fields.len());
                let mut children = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let (field, node) =
                        self.field(&f.name, &f.schema, &format!("{path}.{}", f.name))?;
                    fields.push(field);
                    children.push(node);
                }
                self.open.pop();
                let fields = Fields::from(fields);
                (
                    DataType::Struct(fields.clone()),
                    Col::Struct {
                        fields,
                        children,
                        nulls: NullBufferBuilder::new(0),
                    },
                )
            }
            S::Ref { .. } => {
                let resolved = self.resolve(schema, path)?;
                self.column(resolved, path)?
            }
            S::Union(_) => {
                return Err(format!(
                    "column '{path}' is a union inside a union, which Avro does not allow"
                ))
            }
        })
    }
}

/// A value that could not go into its column: corruption (the value is not of the column's
/// Avro type), or a value the column's Arrow type cannot hold.
struct Bad {
    path: String,
    problem: String,
    corrupt: bool,
}

/// A batch being built: one column per field of the file's records.
struct Rows {
    schema: SchemaRef,
    columns: Vec<Node>,
    len: usize,
}

impl Rows {
    fn push(&mut self, value: &Value) -> Result<(), Bad> {
        let Value::Record(fields) = value else {
            return Err(Bad {
                path: String::new(),
                problem: "is not a record".into(),
                corrupt: true,
            });
        };
        if fields.len() != self.columns.len() {
            return Err(Bad {
                path: String::new(),
                problem: format!("has {} fields, not {}", fields.len(), self.columns.len()),
                corrupt: true,
            });
        }
        for (node, (_, v)) in self.columns.iter_mut().zip(fields) {
            node.push(v)?;
        }
        self.len += 1;
        Ok(())
    }

    /// The rows so far as a batch; the builders start again empty.
    fn finish(&mut self) -> Result<RecordBatch, Failure> {
        let arrays = self
            .columns
            .iter_mut()
            .map(Node::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.len));
        self.len = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| Failure::Unreadable(format!("its records do not make a batch: {e}")))
    }
}

/// A column's builder, and what it takes.
struct Node {
    col: Col,
    nullable: bool,
    /// The column's name in errors (`a.b` for a record's field).
    path: String,
}

enum Col {
    /// Values of type null: only their count.
    Null(usize),
    Boolean(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    Bytes(BinaryBuilder),
    Text(StringBuilder),
    Fixed(FixedSizeBinaryBuilder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
    },
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Duration {
        fields: Fields,
        parts: [Int64Builder; 3],
        nulls: NullBufferBuilder,
    },
    Struct {
        fields: Fields,
        children: Vec<Node>,
        nulls: NullBufferBuilder,
    },
    List {
        field: FieldRef,
        items: Box<Node>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
    Map {
        field: FieldRef,
        entries: Fields,
        keys: StringBuilder,
        values: Box<Node>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
}

impl Node {
    fn push(&mut self, value: &Value) -> Result<(), Bad> {
        let value = match value {
            Value::Union(_, inner) => inner.as_ref(),
            v => v,
        };
        let Node {
            col,
            nullable,
            path,
        } = self;
        let bad = |problem: String, corrupt: bool| Bad {
            path: path.clone(),
            problem,
            corrupt,
        };
        if matches!(value, Value::Null) {
            if !*nullable {
                return Err(bad(format!("holds a null, not {}", col.expects()), true));
            }
            col.push_null();
            return Ok(());
        }
        match (&mut *col, value) {
            (Col::Boolean(b), Value::Boolean(v)) => b.append_value(*v),
            (Col::Int(b), Value::Int(v)) => b.append_value(*v),
            (Col::Long(b), Value::Long(v)) => b.append_value(*v),
            (Col::Float(b), Value::Float(v)) => b.append_value(*v),
            (Col::Double(b), Value::Double(v)) => b.append_value(*v),
            (Col::Bytes(b), Value::Bytes(v)) => b.append_value(v),
            (Col::Text(b), Value::String(v) | Value::Enum(_, v)) => b.append_value(v),
            (Col::Text(b), Value::Uuid(v)) => b.append_value(v.to_string()),
            (Col::Text(b), Value::BigDecimal(v)) => b.append_value(v.to_string()),
            (Col::Fixed(b), Value::Fixed(_, v)) => b
                .append_value(v)
                .map_err(|e| bad(format!("holds a fixed of the wrong size: {e}"), true))?,
            (Col::Decimal { builder, precision }, Value::Decimal(v)) => {
                let bytes = <Vec<u8>>::try_from(v)
                    .map_err(|e| bad(format!("holds an unreadable decimal: {e}"), true))?;
                let v = decimal_i128(&bytes)
                    .filter(|v| Decimal128Type::is_valid_decimal_precision(*v, *precision))
                    .ok_or_else(|| {
                        bad(
                            format!(
                                "holds a decimal of more digits than its precision ({precision})"
                            ),
                            false,
                        )
                    })?;
                builder.append_value(v);
            }
            (Col::Date(b), Value::Date(v)) => b.append_value(*v),
            (Col::Time(b), Value::TimeMillis(v)) => b.append_value(i64::from(*v) * 1000),
            (Col::Time(b), Value::TimeMicros(v)) => b.append_value(*v),
            (Col::Timestamp(b), Value::TimestampMillis(v) | Value::LocalTimestampMillis(v)) => b
                .append_value(v.checked_mul(1000).ok_or_else(|| {
                    bad(
                        format!("holds a timestamp out of range ({v} milliseconds)"),
                        false,
                    )
                })?),
            (Col::Timestamp(b), Value::TimestampMicros(v) | Value::LocalTimestampMicros(v)) => {
                b.append_value(*v)
            }
            (Col::Timestamp(b), Value::TimestampNanos(v) | Value::LocalTimestampNanos(v)) => {
                b.append_value(v.div_euclid(1000))
            }
            (Col::Duration { parts, nulls, .. }, Value::Duration(d)) => {
                let [months, days, millis] = parts;
                months.append_value(i64::from(u32::from(d.months())));
                days.append_value(i64::from(u32::from(d.days())));
                millis.append_value(i64::from(u32::from(d.millis())));
                nulls.append_non_null();
            }
            (
                Col::Struct {
                    children, nulls, ..
                },
                Value::Record(fields),
            ) => {
                if fields.len() != children.len() {
                    return Err(bad(
                        format!("holds {} fields, not {}", fields.len(), children.len()),
                        true,
                    ));
                }
                for (child, (_, v)) in children.iter_mut().zip(fields) {
                    child.push(v)?;
                }
                nulls.append_non_null();
            }
            (
                Col::List {
                    items,
                    offsets,
                    nulls,
                    ..
                },
                Value::Array(values),
            ) => {
                for v in values {
                    items.push(v)?;
                }
                push_offset(offsets, values.len())
                    .ok_or_else(|| bad("holds too many items for one batch".into(), false))?;
                nulls.append_non_null();
            }
            (
                Col::Map {
                    keys,
                    values,
                    offsets,
                    nulls,
                    ..
                },
                Value::Map(entries),
            ) => {
                for (k, v) in entries {
                    keys.append_value(k);
                    values.push(v)?;
                }
                push_offset(offsets, entries.len())
                    .ok_or_else(|| bad("holds too many entries for one batch".into(), false))?;
                nulls.append_non_null();
            }
            (col, other) => {
                return Err(bad(
                    format!(
                        "holds a {}, not {}",
                        format!("{:?}", SchemaKind::from(other)).to_lowercase(),
                        col.expects()
                    ),
                    true,
                ))
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, Failure> {
        self.col.finish().map_err(|e| {
            Failure::Unreadable(format!(
                "column '{}' does not make a column: {e}",
                self.path
            ))
        })
    }
}

/// Appends the end of an entry `added` items long; `None` past what an i32 offset holds.
fn push_offset(offsets: &mut Vec<i32>, added: usize) -> Option<()> {
    let last = *offsets.last()?;
    let next = i32::try_from(added)
        .ok()
        .and_then(|n| last.checked_add(n))?;
    offsets.push(next);
    Some(())
}

/// A big-endian two's complement integer (an Avro decimal's unscaled value), if it fits 128 bits.
fn decimal_i128(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let (head, tail) = bytes.split_at(bytes.len().saturating_sub(16));
    if head.iter().any(|b| *b != fill) {
        return None;
    }
    if !head.is_empty() && (tail[0] & 0x80 != 0) != negative {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - tail.len()..].copy_from_slice(tail);
    Some(i128::from_be_bytes(buf))
}

impl Col {
    /// What the column takes, for errors.
    fn expects(&self) -> &'static str {
        match self {
            Col::Null(_) => "a null",
            Col::Boolean(_) => "a boolean",
            Col::Int(_) => "an int",
            Col::Long(_) => "a long",
            Col::Float(_) => "a float",
            Col::Double(_) => "a double",
            Col::Bytes(_) => "bytes",
            Col::Text(_) => "a string",
            Col::Fixed(_) => "a fixed",
            Col::Decimal { .. } => "a decimal",
            Col::Date(_) => "a date",
            Col::Time(_) => "a time",
            Col::Timestamp(_) => "a timestamp",
            Col::Duration { .. } => "a duration",
            Col::Struct { .. } => "a record",
            Col::List { .. } => "an array",
            Col::Map { .. } => "a map",
        }
    }

    /// A null; under a null record, its fields take one each (Arrow keeps a slot for them).
    fn push_null(&mut self) {
        match self {
            Col::Null(n) => *n += 1,
            Col::Boolean(b) => b.append_null(),
            Col::Int(b) => b.append_null(),
            Col::Long(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Double(b) => b.append_null(),
            Col::Bytes(b) => b.append_null(),
            Col::Text(b) => b.append_null(),
            Col::Fixed(b) => b.append_null(),
            Col::Decimal { builder, .. } => builder.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Timestamp(b) => b.append_null(),
            Col::Duration { parts, nulls, .. } => {
                for p in parts {
                    p.append_null();
                }
                nulls.append_null();
            }
            Col::Struct {
                children, nulls, ..
            } => {
                for c in children {
                    c.col.push_null();
                }
                nulls.append_null();
            }
            Col::List { offsets, nulls, .. } | Col::Map { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, arrow_schema::ArrowError> {
        Ok(match self {
            Col::Null(n) => Arc::new(NullArray::new(std::mem::take(n))),
            Col::Boolean(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Long(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Double(b) => Arc::new(b.finish()),
            Col::Bytes(b) => Arc::new(b.finish()),
            Col::Text(b) => Arc::new(b.finish()),
            Col::Fixed(b) => Arc::new(b.finish()),
            Col::Decimal { builder, .. } => Arc::new(builder.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Timestamp(b) => Arc::new(b.finish()),
            Col::Duration {
                fields,
                parts,
                nulls,
            } => {
                let parts: Vec<ArrayRef> = parts
                    .iter_mut()
                    .map(|p| Arc::new(p.finish()) as ArrayRef)
                    .collect();
                Arc::new(StructArray::try_new(fields.clone(), parts, nulls.finish())?)
            }
            Col::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(|c| c.col.finish())
                    .collect::<Result<Vec<_>, _>>()?;
                // The length from the nulls: a record may have no fields.
                let len = nulls.len();
                Arc::new(StructArray::try_new_with_length(
                    fields.clone(),
                    arrays,
                    nulls.finish(),
                    len,
                )?)
            }
            Col::List {
                field,
                items,
                offsets,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::try_new(
                    field.clone(),
                    offsets,
                    items.col.finish()?,
                    nulls.finish(),
                )?)
            }
            Col::Map {
                field,
                entries,
                keys,
                values,
                offsets,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let kv = StructArray::try_new(
                    entries.clone(),
                    vec![Arc::new(keys.finish()) as ArrayRef, values.col.finish()?],
                    None,
                )?;
                Arc::new(MapArray::try_new(
                    field.clone(),
                    offsets,
                    kv,
                    nulls.finish(),
                    false,
                )?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as V;
    use apache_avro::{Codec as AvroCodec, DeflateSettings, Writer};
    use arrow_array::Array;
    use arrow_cast::display::{ArrayFormatter, FormatOptions};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    /// An Avro container of `records` in `schema`, closing a block every `per_block` records.
    fn container(schema: &str, codec: AvroCodec, per_block: usize, records: &[V]) -> Vec<u8> {
        let schema = AvroSchema::parse_str(schema).expect("schema");
        let mut w = Writer::with_codec(&schema, Vec::new(), codec);
        for chunk in records.chunks(per_block.max(1)) {
            for r in chunk {
                w.append_value_ref(r).expect("append");
            }
            w.flush().expect("flush");
        }
        w.into_inner().expect("finish")
    }

    fn record(fields: Vec<(&str, V)>) -> V {
        V::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    async fn stored(bytes: Vec<u8>) -> (Arc<dyn ObjectStore>, SourceFile) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let size = bytes.len() as u64;
        store
            .put(&Path::from("in/f.avro"), bytes.into())
            .await
            .expect("put");
        let file = SourceFile {
            location: Path::from("in/f.avro"),
            size,
            name: "mem://in/f.avro".into(),
            local: None,
            max_decompressed: u64::MAX,
            parquet_footer: Default::default(),
        };
        (store, file)
    }

    async fn schema_of(bytes: Vec<u8>) -> Result<Schema, String> {
        let (store, file) = stored(bytes).await;
        infer_schema(&store, &file).await.map_err(|e| e.to_string())
    }

    async fn read_all(bytes: Vec<u8>, batch_rows: usize) -> Result<Vec<RecordBatch>, String> {
        let (store, file) = stored(bytes).await;
        read_file(&store, &file, batch_rows).await
    }

    async fn read_file(
        store: &Arc<dyn ObjectStore>,
        file: &SourceFile,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>, String> {
        let mut stream = batches(store, file, batch_rows)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.push(b.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Column `name` of `batch`, each value as Arrow displays it.
    fn shown(batch: &RecordBatch, name: &str) -> Vec<String> {
        let col = batch.column_by_name(name).expect("column");
        let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default().with_null("∅"))
            .expect("formatter");
        (0..col.len()).map(|i| f.value(i).to_string()).collect()
    }

    const EVERYTHING: &str = r#"{"type": "record", "name": "Everything", "namespace": "t", "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "by", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "decf", "type": {"type": "fixed", "name": "DecF", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 4}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "tsm", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsu", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tsn", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
        {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "dur", "type": {"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "opt2", "type": ["long", "null"]},
        {"name": "arr", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": ["null", "double"]}}
    ]}"#;

    fn everything(i: i32, opt: Option<&str>) -> V {
        let uuid =
            apache_avro::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").expect("uuid");
        record(vec![
            ("n", V::Null),
            ("b", V::Boolean(true)),
            ("i", V::Int(-7 * i)),
            ("l", V::Long(1 << 40)),
            ("f", V::Float(1.5)),
            ("d", V::Double(2.25)),
            ("by", V::Bytes(vec![0, 1, 255])),
            ("s", V::String("héllo".into())),
            ("e", V::Enum(1, "GREEN".into())),
            ("fx", V::Fixed(4, vec![1, 2, 3, 4])),
            // -123 and 12345678, unscaled.
            (
                "dec",
                V::Decimal(apache_avro::Decimal::from(vec![0xff, 0x85])),
            ),
            (
                "decf",
                V::Decimal(apache_avro::Decimal::from(12_345_678i64.to_be_bytes())),
            ),
            ("u", V::Uuid(uuid)),
            ("day", V::Date(19_000)),
            ("tm", V::TimeMillis(3_723_004)),
            ("tu", V::TimeMicros(1)),
            ("tsm", V::TimestampMillis(1_700_000_000_123)),
            ("tsu", V::TimestampMicros(1_700_000_000_123_456)),
            ("tsn", V::TimestampNanos(-1)),
            ("lts", V::LocalTimestampMillis(0)),
            (
                "dur",
                V::Duration(apache_avro::Duration::new(
                    apache_avro::Months::new(1),
                    apache_avro::Days::new(2),
                    apache_avro::Millis::new(3),
                )),
            ),
            (
                "opt",
                match opt {
                    Some(s) => V::Union(1, Box::new(V::String(s.into()))),
                    None => V::Union(0, Box::new(V::Null)),
                },
            ),
            ("opt2", V::Union(0, Box::new(V::Long(5)))),
            ("arr", V::Array(vec![V::Long(1), V::Long(2)])),
            (
                "m",
                V::Map(HashMap::from([(
                    "a".to_owned(),
                    V::Union(1, Box::new(V::Double(0.5))),
                )])),
            ),
        ])
    }

    #[tokio::test]
    async fn avro_types_map_to_arrow_types() {
        let file = container(
            EVERYTHING,
            AvroCodec::Deflate(DeflateSettings::default()),
            10,
            &[everything(1, Some("x"))],
        );
        let schema = schema_of(file.clone()).await.expect("schema");
        let utc = Some(Arc::<str>::from("+00:00"));
        let types: Vec<(&str, DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        let int64 = |n: &str| Field::new(n, DataType::Int64, false);
        let want = vec![
            ("n", DataType::Null, true),
            ("b", DataType::Boolean, false),
            ("i", DataType::Int32, false),
            ("l", DataType::Int64, false),
            ("f", DataType::Float32, false),
            ("d", DataType::Float64, false),
            ("by", DataType::Binary, false),
            ("s", DataType::Utf8, false),
            ("e", DataType::Utf8, false),
            ("fx", DataType::FixedSizeBinary(4), false),
            ("dec", DataType::Decimal128(10, 2), false),
            ("decf", DataType::Decimal128(18, 4), false),
            ("u", DataType::Utf8, false),
            ("day", DataType::Date32, false),
            ("tm", DataType::Time64(TimeUnit::Microsecond), false),
            ("tu", DataType::Time64(TimeUnit::Microsecond), false),
            (
                "tsm",
                DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
                false,
            ),
            (
                "tsu",
                DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
                false,
            ),
            (
                "tsn",
                DataType::Timestamp(TimeUnit::Microsecond, utc),
                false,
            ),
            (
                "lts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            (
                "dur",
                DataType::Struct(
                    vec![int64("months"), int64("days"), int64("milliseconds")].into(),
                ),
                false,
            ),
            ("opt", DataType::Utf8, true),
            ("opt2", DataType::Int64, true),
            (
                "arr",
                DataType::List(Arc::new(Field::new("element", DataType::Int64, false))),
                false,
            ),
            (
                "m",
                DataType::Map(
                    Arc::new(Field::new(
                        "key_value",
                        DataType::Struct(
                            vec![
                                Field::new("key", DataType::Utf8, false),
                                Field::new("value", DataType::Float64, true),
                            ]
                            .into(),
                        ),
                        false,
                    )),
                    false,
                ),
                false,
            ),
        ];
        assert_eq!(types, want);

        // The records come in that very schema, with the values as written.
        let batches = read_all(file, 100).await.expect("reads");
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.schema().as_ref(), &schema);
        let one = |name: &str| shown(b, name).remove(0);
        assert_eq!(one("n"), "∅");
        assert_eq!(one("i"), "-7");
        assert_eq!(one("l"), (1i64 << 40).to_string());
        assert_eq!(one("by"), "0001ff");
        assert_eq!(one("s"), "héllo");
        assert_eq!(one("e"), "GREEN");
        assert_eq!(one("fx"), "01020304");
        assert_eq!(one("dec"), "-1.23");
        assert_eq!(one("decf"), "1234.5678");
        assert_eq!(one("u"), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(one("day"), "2022-01-08");
        assert_eq!(one("tm"), "01:02:03.004");
        assert_eq!(one("tu"), "00:00:00.000001");
        assert_eq!(one("tsm"), "2023-11-14T22:13:20.123Z");
        assert_eq!(one("tsu"), "2023-11-14T22:13:20.123456Z");
        // Nanoseconds are floored to microseconds.
        assert_eq!(one("tsn"), "1969-12-31T23:59:59.999999Z");
        assert_eq!(one("lts"), "1970-01-01T00:00:00");
        assert_eq!(one("dur"), "{months: 1, days: 2, milliseconds: 3}");
        assert_eq!(one("opt"), "x");
        assert_eq!(one("opt2"), "5");
        assert_eq!(one("arr"), "[1, 2]");
        assert_eq!(one("m"), "{a: 0.5}");
        // What the table would store: nothing iceberg refuses.
        let normalised = super::super::schema::normalise_schema(&schema);
        iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&normalised)
            .expect("an Iceberg schema");
    }

    #[tokio::test]
    async fn null_unions_are_nullable_columns_and_other_unions_are_refused_by_name() {
        let schema = r#"{"type": "record", "name": "R", "fields": [
            {"name": "id", "type": "long"},
            {"name": "a", "type": ["null", "string"]},
            {"name": "b", "type": ["double", "null"]},
            {"name": "only_null", "type": ["null"]}
        ]}"#;
        let rows: Vec<V> = (0..4)
            .map(|i| {
                record(vec![
                    ("id", V::Long(i)),
                    (
                        "a",
                        if i % 2 == 0 {
                            V::Union(0, Box::new(V::Null))
                        } else {
                            V::Union(1, Box::new(V::String(format!("s{i}"))))
                        },
                    ),
                    (
                        "b",
                        if i % 2 == 0 {
                            V::Union(0, Box::new(V::Double(i as f64)))
                        } else {
                            V::Union(1, Box::new(V::Null))
                        },
                    ),
                    ("only_null", V::Union(0, Box::new(V::Null))),
                ])
            })
            .collect();
        let file = container(schema, AvroCodec::Null, 10, &rows);
        let s = schema_of(file.clone()).await.expect("schema");
        assert_eq!(s.field(1).data_type(), &DataType::Utf8);
        assert!(s.field(1).is_nullable() && s.field(2).is_nullable());
        assert_eq!(s.field(2).data_type(), &DataType::Float64);
        assert_eq!(s.field(3).data_type(), &DataType::Null);
        let b = &read_all(file, 100).await.expect("reads")[0];
        assert_eq!(shown(b, "a"), ["∅", "s1", "∅", "s3"]);
        assert_eq!(shown(b, "b"), ["0.0", "∅", "2.0", "∅"]);

        let wide = r#"{"type": "record", "name": "R", "fields": [
            {"name": "id", "type": "long"},
            {"name": "either", "type": ["null", "int", "string"]}
        ]}"#;
        let file = container(
            wide,
            AvroCodec::Null,
            10,
            &[record(vec![
                ("id", V::Long(1)),
                ("either", V::Union(1, Box::new(V::Int(1)))),
            ])],
        );
        for e in [
            schema_of(file.clone()).await.expect_err("refused"),
            read_all(file, 10).await.expect_err("refused"),
        ] {
            assert!(
                e.contains("mem://in/f.avro")
                    && e.contains("column 'either'")
                    && e.contains("union of null, int, string"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn nested_records_arrays_and_maps_read_whole() {
        let schema = r#"{"type": "record", "name": "Person", "namespace": "people", "fields": [
            {"name": "id", "type": "long"},
            {"name": "home", "type": {"type": "record", "name": "Address", "fields": [
                {"name": "city", "type": "string"},
                {"name": "zip", "type": ["null", "string"]}
            ]}},
            {"name": "work", "type": ["null", "Address"]},
            {"name": "past", "type": {"type": "array", "items": "people.Address"}},
            {"name": "tags", "type": ["null", {"type": "map", "values": "long"}]}
        ]}"#;
        let address = |city: &str, zip: Option<&str>| {
            record(vec![
                ("city", V::String(city.into())),
                (
                    "zip",
                    match zip {
                        Some(z) => V::Union(1, Box::new(V::String(z.into()))),
                        None => V::Union(0, Box::new(V::Null)),
                    },
                ),
            ])
        };
        let rows = vec![
            record(vec![
                ("id", V::Long(1)),
                ("home", address("Paris", Some("75001"))),
                ("work", V::Union(1, Box::new(address("Lyon", None)))),
                (
                    "past",
                    V::Array(vec![address("Nice", None), address("Metz", Some("57000"))]),
                ),
                (
                    "tags",
                    V::Union(
                        1,
                        Box::new(V::Map(HashMap::from([("k".to_owned(), V::Long(7))]))),
                    ),
                ),
            ]),
            record(vec![
                ("id", V::Long(2)),
                ("home", address("Oslo", None)),
                ("work", V::Union(0, Box::new(V::Null))),
                ("past", V::Array(vec![])),
                ("tags", V::Union(0, Box::new(V::Null))),
            ]),
        ];
        let file = container(schema, AvroCodec::Snappy, 1, &rows);
        let s = schema_of(file.clone()).await.expect("schema");
        let DataType::Struct(home) = s.field(1).data_type() else {
            panic!("a record is a struct: {s:?}")
        };
        assert_eq!(home[0].data_type(), &DataType::Utf8);
        assert!(!home[0].is_nullable() && home[1].is_nullable());
        assert_eq!(
            s.field(2).data_type(),
            s.field(1).data_type(),
            "the named type reused"
        );
        assert!(s.field(2).is_nullable());
        let b = &read_all(file, 100).await.expect("reads")[0];
        assert_eq!(
            shown(b, "home"),
            ["{city: Paris, zip: 75001}", "{city: Oslo, zip: ∅}"]
        );
        assert_eq!(shown(b, "work"), ["{city: Lyon, zip: ∅}", "∅"]);
        assert_eq!(
            shown(b, "past"),
            ["[{city: Nice, zip: ∅}, {city: Metz, zip: 57000}]", "[]"]
        );
        assert_eq!(shown(b, "tags"), ["{k: 7}", "∅"]);
    }

    #[tokio::test]
    async fn a_recursive_type_is_refused_by_name() {
        let schema = r#"{"type": "record", "name": "Cell", "fields": [
            {"name": "v", "type": "long"},
            {"name": "next", "type": ["null", "Cell"]}
        ]}"#;
        let file = container(
            schema,
            AvroCodec::Null,
            1,
            &[record(vec![
                ("v", V::Long(1)),
                ("next", V::Union(0, Box::new(V::Null))),
            ])],
        );
        let e = schema_of(file).await.expect_err("recursive");
        assert!(
            e.contains("column 'next'") && e.contains("recursive"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn decimals_keep_their_digits_and_timestamps_their_instant() {
        let schema = r#"{"type": "record", "name": "R", "fields": [
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}}
        ]}"#;
        // The largest and smallest 38-digit values, and a small negative one.
        let max = 10i128.pow(38) - 1;
        let values = [max, -max, -5];
        let rows: Vec<V> = values
            .iter()
            .map(|v| {
                record(vec![
                    (
                        "amount",
                        V::Decimal(apache_avro::Decimal::from(v.to_be_bytes())),
                    ),
                    ("at", V::TimestampMillis(-1)),
                    ("local", V::LocalTimestampMicros(1_000_001)),
                ])
            })
            .collect();
        let b = &read_all(container(schema, AvroCodec::Null, 10, &rows), 10)
            .await
            .expect("reads")[0];
        let amounts = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .expect("decimal128");
        assert_eq!(amounts.values().to_vec(), values);
        assert_eq!(shown(b, "amount")[2], "-0.0000000005");
        assert_eq!(shown(b, "at")[0], "1969-12-31T23:59:59.999Z");
        assert_eq!(shown(b, "local")[0], "1970-01-01T00:00:01.000001");

        // A value of more digits than the precision fails, naming the column and the record.
        let narrow = schema.replace(
            "\"precision\": 38, \"scale\": 10",
            "\"precision\": 3, \"scale\": 1",
        );
        let rows = [record(vec![
            (
                "amount",
                V::Decimal(apache_avro::Decimal::from(vec![0x03, 0xe8])),
            ),
            ("at", V::TimestampMillis(0)),
            ("local", V::LocalTimestampMicros(0)),
        ])];
        let e = read_all(container(&narrow, AvroCodec::Null, 10, &rows), 10)
            .await
            .expect_err("1000 has four digits");
        assert!(
            e.contains("column 'amount'") && e.contains("record 1") && e.contains("precision"),
            "{e}"
        );

        // A precision beyond 38 digits cannot be a table's column.
        let wide = schema.replace("\"precision\": 38", "\"precision\": 40");
        let e = schema_of(container(&wide, AvroCodec::Null, 10, &[]))
            .await
            .expect_err("decimal(40, 10)");
        assert!(
            e.contains("column 'amount'") && e.contains("decimal(40, 10)"),
            "{e}"
        );
    }

    fn numbered(n: i64) -> Vec<V> {
        (0..n)
            .map(|i| {
                record(vec![
                    ("id", V::Long(i)),
                    ("name", V::String(format!("name-{i}"))),
                ])
            })
            .collect()
    }

    const NUMBERED: &str = r#"{"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}"#;

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .expect("int64")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn every_codec_reads_block_after_block_in_batches() {
        let codecs = [
            AvroCodec::Null,
            AvroCodec::Deflate(DeflateSettings::default()),
            AvroCodec::Snappy,
            AvroCodec::Zstandard(apache_avro::ZstandardSettings::default()),
        ];
        for codec in codecs {
            let file = container(NUMBERED, codec, 37, &numbered(500));
            let batches = read_all(file, 64).await.expect("reads");
            assert!(batches.iter().all(|b| b.num_rows() <= 64), "{codec:?}");
            assert_eq!(batches.len(), 8, "{codec:?}");
            assert_eq!(ids(&batches), (0..500).collect::<Vec<_>>(), "{codec:?}");
            assert_eq!(
                shown(&batches[7], "name").last().map(String::as_str),
                Some("name-499")
            );
        }
        // No records at all: no batches.
        let empty = container(NUMBERED, AvroCodec::Null, 1, &[]);
        assert!(read_all(empty, 64).await.expect("reads").is_empty());
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_readable_container_fails_naming_the_file() {
        let file = container(
            NUMBERED,
            AvroCodec::Deflate(DeflateSettings::default()),
            10,
            &numbered(30),
        );
        let unreadable = |e: &str| e.starts_with("mem://in/f.avro: not a readable Avro file: ");

        // Cut short: within the last block, and within the header.
        let cut = file[..file.len() - 10].to_vec();
        let e = read_all(cut, 100).await.expect_err("truncated");
        assert!(
            unreadable(&e) && e.contains("block 3") && e.contains("truncated"),
            "{e}"
        );
        let e = schema_of(file[..20].to_vec())
            .await
            .expect_err("truncated header");
        assert!(
            unreadable(&e) && e.contains("header") && e.contains("truncated"),
            "{e}"
        );

        // Not Avro at all.
        let e = schema_of(b"{\"id\": 1}\n".to_vec())
            .await
            .expect_err("json");
        assert!(unreadable(&e) && e.contains("does not start as"), "{e}");
        let e = read_all(b"Obj".to_vec(), 100).await.expect_err("too short");
        assert!(unreadable(&e) && e.contains("too short"), "{e}");

        // A block's sync marker damaged.
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let e = read_all(bad, 100).await.expect_err("marker");
        assert!(unreadable(&e) && e.contains("sync marker"), "{e}");

        // A record's bytes damaged: a negative length, and a length past the end of its block.
        let plain = container(NUMBERED, AvroCodec::Null, 10, &numbered(30));
        let at = |name: &str| {
            plain
                .windows(name.len())
                .position(|w| w == name.as_bytes())
                .expect("the name is in the file")
                - 1
        };
        let mut bad = plain.clone();
        bad[at("name-0")] = 0x01;
        let e = read_all(bad, 100).await.expect_err("negative length");
        assert!(
            unreadable(&e) && e.contains("record 1 (in block 1) cannot be decoded"),
            "{e}"
        );
        let mut bad = plain.clone();
        bad[at("name-9")] = 0x7e;
        let e = read_all(bad, 100).await.expect_err("past the block");
        assert!(
            unreadable(&e) && e.contains("record 10 (in block 1) runs past the end of its block"),
            "{e}"
        );
    }

    #[test]
    fn blocks_decompress_no_further_than_the_cap() {
        use std::io::Write;
        let zeros = vec![0u8; 10_000];
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflate.write_all(&zeros).expect("deflate");
        let deflate = deflate.finish().expect("deflate");
        let zstd = zstd::encode_all(zeros.as_slice(), 3).expect("zstd");
        let mut snappy = snap::raw::Encoder::new()
            .compress_vec(&zeros)
            .expect("snappy");
        snappy.extend_from_slice(&crc32fast::hash(&zeros).to_be_bytes());
        for (codec, raw) in [
            (Codec::Deflate, deflate),
            (Codec::Zstandard, zstd),
            (Codec::Snappy, snappy),
        ] {
            let out = decompress(codec, raw.clone(), 1, 10_000).expect("within the cap");
            assert_eq!(out, zeros);
            let Err(Failure::Refused(e)) = decompress(codec, raw, 1, 9_999) else {
                panic!("{codec:?} over the cap")
            };
            assert!(
                e.contains("more than one block may hold (9999 bytes)"),
                "{e}"
            );
        }
        // Snappy says its length first: a claim over the cap fails before anything is allocated.
        let mut claim = Vec::new();
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            claim.push((n as u8) | 0x80);
            n >>= 7;
        }
        claim.extend_from_slice(&[n as u8, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decompress(Codec::Snappy, claim, 1, MAX_BLOCK_BYTES),
            Err(Failure::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_file_decompressing_past_its_cap_fails() {
        let file = container(
            NUMBERED,
            AvroCodec::Deflate(DeflateSettings::default()),
            100,
            &numbered(1000),
        );
        let (store, mut f) = stored(file).await;
        f.max_decompressed = 5_000;
        let e = read_file(&store, &f, 100).await.expect_err("over the cap");
        assert!(e.contains("AUTOLOADER_MAX_FILE_BYTES"), "{e}");
    }

    #[tokio::test]
    async fn a_source_error_comes_back_as_it_was() {
        let file = container(NUMBERED, AvroCodec::Null, 10, &numbered(100));
        let (head, _) = file.split_at(file.len() / 2);
        let chunks: Vec<Result<Bytes, IngestError>> = vec![
            Ok(Bytes::copy_from_slice(head)),
            Err(IngestError::Store {
                what: "s3://b/f.avro".into(),
                message: "connection reset".into(),
                transient: true,
            }),
        ];
        let input = bridge(futures::stream::iter(chunks).boxed());
        let mut stream = stream_batches(input, "s3://b/f.avro".into(), u64::MAX, 10);
        let mut rows = 0;
        let error = loop {
            match stream.next().await {
                Some(Ok(b)) => rows += b.num_rows(),
                Some(Err(e)) => break e,
                None => panic!("the error is lost"),
            }
        };
        assert!(
            rows > 0 && rows < 100,
            "the blocks before the error load: {rows}"
        );
        assert!(
            matches!(error, IngestError::Store { transient: true, ref message, .. } if message == "connection reset"),
            "{error:?}"
        );
    }

    /// Counts the bytes read through it.
    struct Counting<R>(R, Arc<std::sync::atomic::AtomicUsize>);

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok(n)
        }
    }

    #[test]
    fn reading_stops_when_the_batches_are_no_longer_wanted() {
        let file = container(NUMBERED, AvroCodec::Null, 10, &numbered(10_000));
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let input = Counting(io::Cursor::new(file.clone()), read.clone());
        assert!(read_batches(input, u64::MAX, 10, &tx).is_ok());
        let read = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            read < file.len() / 10,
            "read {read} of {} bytes",
            file.len()
        );
    }
}
