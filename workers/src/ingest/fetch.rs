//! A source file's bytes, as the readers take them: from the store (an S3 object, in one
//! streamed GET) or through a local file's descriptor (large ranges, read ahead), decompressed
//! as they stream when the file is gzip, zstd, bzip2 or snappy-framed (see [`Compression`]), in
//! pieces of at most 1 MiB and never past the operator's cap on a file; and a Parquet file's
//! reader over either.

use std::ops::Range;
use std::sync::Arc;

use async_compression::tokio::bufread::{BzDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::local;
use super::IngestError;

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
    /// Most bytes a compressed JSON or CSV file may decompress to (`AUTOLOADER_MAX_FILE_BYTES`):
    /// past it the file fails, as a decompression bomb must.
    pub max_decompressed: u64,
    /// A Parquet file's footer, once read: the run reads it once for the file's columns and
    /// again to read its rows, and only the first read goes to the store.
    pub parquet_footer: ParquetFooter,
}

/// A Parquet file's metadata, read at most once ([`parquet_builder`]).
#[derive(Debug, Clone, Default)]
pub struct ParquetFooter(Arc<std::sync::OnceLock<ArrowReaderMetadata>>);

/// How a JSON or CSV source file is compressed: by its name's extension (`.gz`, `.gzip`; `.zst`,
/// `.zstd`; `.bz2`, `.bzip2`; `.snappy`, `.sz`), or else by its first bytes (the gzip, zstd and
/// bzip2 magic numbers, snappy's stream identifier). Snappy is its framing format (what `snzip`
/// and python-snappy's `stream_compress` write; [`super::snappy`]). Concatenated gzip members,
/// zstd frames (`pzstd` writes several), bzip2 streams and snappy streams are read one after the
/// other, as their tools do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Snappy,
}

/// How many first bytes [`Compression::of`] looks at (snappy's stream identifier is the longest).
const MAGIC_BYTES: usize = 10;

impl Compression {
    const ALL: [Compression; 4] = [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Snappy,
    ];

    fn of(name: &str, first: &[u8]) -> Compression {
        let lower = name.to_ascii_lowercase();
        let by_name = Compression::ALL
            .into_iter()
            .find(|c| c.extensions().iter().any(|ext| lower.ends_with(ext)));
        by_name
            .or_else(|| Compression::ALL.into_iter().find(|c| c.starts(first)))
            .unwrap_or(Compression::None)
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            Compression::None => &[],
            Compression::Gzip => &[".gz", ".gzip"],
            Compression::Zstd => &[".zst", ".zstd"],
            Compression::Bzip2 => &[".bz2", ".bzip2"],
            Compression::Snappy => &[".snappy", ".sz"],
        }
    }

    /// Whether `first` starts with this compression's magic number.
    fn starts(self, first: &[u8]) -> bool {
        match self {
            Compression::None => false,
            Compression::Gzip => first.starts_with(&[0x1f, 0x8b]),
            Compression::Zstd => first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            // "BZh" and the block size, '1' to '9'.
            Compression::Bzip2 => {
                first.starts_with(b"BZh") && first.get(3).is_some_and(|b| (b'1'..=b'9').contains(b))
            }
            Compression::Snappy => first.starts_with(super::snappy::STREAM_IDENTIFIER),
        }
    }

    /// How errors name it.
    fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Snappy => "snappy",
        }
    }
}

/// Size of the pieces decompressed bytes come in: one piece at a time is held, whatever the
/// compression ratio.
const DECOMPRESSED_CHUNK: usize = 1 << 20;

/// `raw` decompressed as `name` says (or its first bytes do), as a stream of pieces of at most
/// [`DECOMPRESSED_CHUNK`] bytes; past `max` decompressed bytes it fails naming the cap.
async fn decompressed(
    mut raw: BoxStream<'static, Result<Bytes, IngestError>>,
    name: String,
    max: u64,
) -> Result<BoxStream<'static, Result<Bytes, IngestError>>, IngestError> {
    let mut first = match raw.next().await {
        None => return Ok(futures::stream::empty().boxed()),
        Some(first) => first?,
    };
    // Enough first bytes to know a compression by (a store may hand over a few at a time).
    while first.len() < MAGIC_BYTES {
        let Some(more) = raw.next().await else { break };
        let more = more?;
        let mut joined = bytes::BytesMut::with_capacity(first.len() + more.len());
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&more);
        first = joined.freeze();
    }
    let how = Compression::of(&name, &first);
    let raw = futures::stream::once(async move { Ok(first) })
        .chain(raw)
        .boxed();
    if how == Compression::None {
        return Ok(raw);
    }
    // The store's errors travel through the reader as io errors and come back out whole.
    let reader = tokio_util::io::StreamReader::new(
        raw.map(|r| r.map_err(|e| std::io::Error::other(DecompressError::Store(e)))),
    );
    let pieces: BoxStream<'static, std::io::Result<Bytes>> = match how {
        Compression::Gzip => {
            let mut d = GzipDecoder::new(reader);
            d.multiple_members(true);
            tokio_util::io::ReaderStream::with_capacity(d, DECOMPRESSED_CHUNK).boxed()
        }
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(reader);
            d.multiple_members(true);
            tokio_util::io::ReaderStream::with_capacity(d, DECOMPRESSED_CHUNK).boxed()
        }
        Compression::Bzip2 => {
            let mut d = BzDecoder::new(reader);
            d.multiple_members(true);
            tokio_util::io::ReaderStream::with_capacity(d, DECOMPRESSED_CHUNK).boxed()
        }
        Compression::Snappy => super::snappy::frames(reader, DECOMPRESSED_CHUNK).boxed(),
        Compression::None => unreachable!("handled above"),
    };
    let kind = how.name();
    let mut total = 0u64;
    Ok(pieces
        .map(move |r| {
            let piece = r.map_err(|e| match e.downcast::<DecompressError>() {
                Ok(DecompressError::Store(inner)) => inner,
                Err(e) => IngestError::file(&name, format!("not readable as {kind}: {e}")),
            })?;
            total += piece.len() as u64;
            if total > max {
                return Err(IngestError::file(
                    &name,
                    format!(
                        "decompresses to more than a run may read of one file ({max} bytes, \
                         AUTOLOADER_MAX_FILE_BYTES)"
                    ),
                ));
            }
            Ok(piece)
        })
        .boxed())
}

/// A store error carried through the decompressing reader.
#[derive(Debug)]
enum DecompressError {
    Store(IngestError),
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecompressError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DecompressError {}

/// Where a Parquet file's bytes come from: the store (S3), or a local file's descriptor.
pub(super) async fn parquet_builder(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
) -> Result<ParquetRecordBatchStreamBuilder<Box<dyn AsyncFileReader>>, IngestError> {
    let mut reader: Box<dyn AsyncFileReader> = match &file.local {
        Some(local) => Box::new(LocalParquet {
            file: local.clone(),
            size: file.size,
        }),
        None => Box::new(
            ParquetObjectReader::new(store.clone(), file.location.clone())
                .with_file_size(file.size),
        ),
    };
    let metadata = match file.parquet_footer.0.get() {
        Some(m) => m.clone(),
        None => {
            let m = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
                .await
                .map_err(|e| {
                    IngestError::file(&file.name, format!("not a readable Parquet file: {e}"))
                })?;
            let _ = file.parquet_footer.0.set(m.clone());
            m
        }
    };
    Ok(ParquetRecordBatchStreamBuilder::new_with_metadata(
        reader, metadata,
    ))
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
    let raw = raw_byte_stream(store, file).await?;
    decompressed(raw, file.name.clone(), file.max_decompressed).await
}

/// The file's bytes as stored.
async fn raw_byte_stream(
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_compression::tokio::bufread::{BzEncoder, GzipEncoder, ZstdEncoder};
    use futures::TryStreamExt;
    use tokio::io::AsyncReadExt;

    /// `data` compressed as `how`.
    async fn packed(how: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match how {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => GzipEncoder::new(data)
                .read_to_end(&mut out)
                .await
                .map(drop)
                .expect("pack"),
            Compression::Zstd => ZstdEncoder::new(data)
                .read_to_end(&mut out)
                .await
                .map(drop)
                .expect("pack"),
            Compression::Bzip2 => BzEncoder::new(data)
                .read_to_end(&mut out)
                .await
                .map(drop)
                .expect("pack"),
            Compression::Snappy => {
                use std::io::Write;
                let mut w = snap::write::FrameEncoder::new(Vec::new());
                w.write_all(data).expect("snappy");
                out = w.into_inner().expect("snappy");
            }
        }
        out
    }

    /// `stored` read as the file `name`, handed over by the store `piece` bytes at a time.
    async fn read(
        name: &str,
        stored: &[u8],
        piece: usize,
        max: u64,
    ) -> Result<Vec<Bytes>, IngestError> {
        let pieces: Vec<Result<Bytes, IngestError>> = stored
            .chunks(piece)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        decompressed(futures::stream::iter(pieces).boxed(), name.to_owned(), max)
            .await?
            .try_collect()
            .await
    }

    fn message(e: IngestError) -> String {
        match e {
            IngestError::File { message, .. } => message,
            other => panic!("not a file's error: {other}"),
        }
    }

    /// Lines of JSON, `n` bytes or a little more.
    fn lines(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 64);
        let mut i = 0u64;
        while out.len() < n {
            out.extend_from_slice(
                format!("{{\"id\": {i}, \"value\": \"v{}\"}}\n", i % 97).as_bytes(),
            );
            i += 1;
        }
        out
    }

    #[test]
    fn a_compression_is_known_by_extension_else_by_first_bytes() {
        use Compression::*;
        for (name, want) in [
            ("a.json.gz", Gzip),
            ("a.CSV.GZIP", Gzip),
            ("a.json.zst", Zstd),
            ("a.zstd", Zstd),
            ("a.json.bz2", Bzip2),
            ("a.csv.bzip2", Bzip2),
            ("a.json.snappy", Snappy),
            ("a.csv.sz", Snappy),
            ("a.json", None),
        ] {
            assert_eq!(Compression::of(name, b"{}"), want, "{name}");
        }
        for (first, want) in [
            (&[0x1f, 0x8b, 8, 0][..], Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0][..], Zstd),
            (b"BZh91AY&SY", Bzip2),
            (b"\xff\x06\x00\x00sNaPpY", Snappy),
            // "BZh" without a block size is a CSV header, not bzip2; half an identifier is not snappy.
            (b"BZhx,y\n1,2", None),
            (b"\xff\x06\x00\x00sNa", None),
            (b"id,name\n", None),
        ] {
            assert_eq!(Compression::of("data", first), want, "{first:?}");
        }
        // The name says first: a `.zst` file is read as zstd whatever its first bytes.
        assert_eq!(Compression::of("a.zst", &[0x1f, 0x8b]), Zstd);
    }

    #[tokio::test]
    async fn each_compression_reads_back_whole_in_bounded_pieces() {
        let data = lines(3 << 20);
        for how in Compression::ALL {
            let stored = packed(how, &data).await;
            for (name, piece) in [
                (format!("f{}", how.extensions()[0]), 64 << 10),
                ("f".into(), 3),
            ] {
                let pieces = read(&name, &stored, piece, u64::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", how.name()));
                assert!(
                    pieces.iter().all(|p| p.len() <= DECOMPRESSED_CHUNK),
                    "{}: no piece over {DECOMPRESSED_CHUNK} bytes",
                    how.name()
                );
                assert!(
                    pieces.concat() == data,
                    "{} ({name}) reads back whole",
                    how.name()
                );
            }
        }
    }

    #[tokio::test]
    async fn concatenated_streams_read_one_after_the_other() {
        for how in Compression::ALL {
            let mut stored = packed(how, b"{\"id\": 1}\n").await;
            stored.extend(packed(how, b"{\"id\": 2}\n").await);
            let name = format!("two{}", how.extensions()[0]);
            let pieces = read(&name, &stored, 5, u64::MAX)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", how.name()));
            assert_eq!(
                pieces.concat(),
                b"{\"id\": 1}\n{\"id\": 2}\n",
                "{}",
                how.name()
            );
        }
    }

    #[tokio::test]
    async fn a_truncated_or_corrupt_file_fails_naming_its_compression() {
        let data = lines(200_000);
        for how in Compression::ALL {
            let stored = packed(how, &data).await;
            let name = format!("cut{}", how.extensions()[0]);
            let e = read(&name, &stored[..stored.len() * 2 / 3], 4096, u64::MAX)
                .await
                .expect_err("truncated");
            let m = message(e);
            assert!(
                m.starts_with(&format!("not readable as {}: ", how.name())),
                "{m}"
            );
        }
        let bz2 = packed(Compression::Bzip2, &data).await;
        let mut corrupt = bz2.clone();
        corrupt[bz2.len() / 2] ^= 0x55;
        let m = message(
            read("bad.bz2", &corrupt, 4096, u64::MAX)
                .await
                .expect_err("corrupt"),
        );
        assert!(m.starts_with("not readable as bzip2: "), "{m}");

        let snappy = packed(Compression::Snappy, &data).await;
        let m = message(
            read("cut.sz", &snappy[..snappy.len() - 1], 4096, u64::MAX)
                .await
                .expect_err("cut"),
        );
        assert!(
            m.starts_with("not readable as snappy: ") && m.contains("truncated"),
            "{m}"
        );
        let mut corrupt = snappy.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x55;
        let m = message(
            read("bad.snappy", &corrupt, 4096, u64::MAX)
                .await
                .expect_err("corrupt"),
        );
        assert!(m.starts_with("not readable as snappy: "), "{m}");
        // Named snappy but not the framing format (a raw block).
        let raw = snap::raw::Encoder::new().compress_vec(&data).expect("raw");
        let m = message(
            read("raw.snappy", &raw, 4096, u64::MAX)
                .await
                .expect_err("raw"),
        );
        assert!(m.contains("stream identifier"), "{m}");
    }

    #[tokio::test]
    async fn past_the_cap_a_file_fails_naming_it() {
        let data = lines(8 << 20);
        for how in Compression::ALL {
            let stored = packed(how, &data).await;
            let name = format!("bomb{}", how.extensions()[0]);
            let m = message(
                read(&name, &stored, 64 << 10, 2 << 20)
                    .await
                    .expect_err("bomb"),
            );
            assert!(
                m.contains("decompresses to more than")
                    && m.contains("2097152 bytes, AUTOLOADER_MAX_FILE_BYTES"),
                "{m}"
            );
            // Exactly at the cap it reads.
            let at = read(&name, &stored, 64 << 10, data.len() as u64)
                .await
                .expect("at the cap");
            assert_eq!(at.iter().map(Bytes::len).sum::<usize>(), data.len());
        }
    }

    #[tokio::test]
    async fn a_store_error_comes_back_out_as_itself() {
        for how in Compression::ALL {
            let stored = packed(how, &lines(100_000)).await;
            let pieces: Vec<Result<Bytes, IngestError>> = vec![
                Ok(Bytes::copy_from_slice(&stored[..stored.len() / 2])),
                Err(IngestError::Store {
                    what: "s3://b/k".into(),
                    message: "connection reset".into(),
                    transient: true,
                }),
            ];
            let name = format!("f{}", how.extensions()[0]);
            let e = decompressed(futures::stream::iter(pieces).boxed(), name, u64::MAX)
                .await
                .expect("opens")
                .try_collect::<Vec<Bytes>>()
                .await
                .expect_err("store error");
            assert!(
                matches!(&e, IngestError::Store { message, transient: true, .. } if message == "connection reset"),
                "{}: {e}",
                how.name()
            );
        }
    }
}
