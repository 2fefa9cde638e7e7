//! A source file's bytes, as the readers take them: from the store (an S3 object, in one
//! streamed GET) or through a local file's descriptor (large ranges, read ahead), decompressed
//! as they stream when the file is gzip or zstd; and a Parquet file's reader over either.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
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
}

/// How a JSON or CSV source file is compressed: by its name's extension (`.gz`, `.gzip`, `.zst`,
/// `.zstd`), or else by its first bytes (the gzip and zstd magic numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn of(name: &str, first: &[u8]) -> Compression {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".gzip") || first.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if lower.ends_with(".zst")
            || lower.ends_with(".zstd")
            || first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        {
            Compression::Zstd
        } else {
            Compression::None
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
    let first = match raw.next().await {
        None => return Ok(futures::stream::empty().boxed()),
        Some(first) => first?,
    };
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
    let decoder: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match how {
        Compression::Gzip => {
            let mut d = async_compression::tokio::bufread::GzipDecoder::new(reader);
            d.multiple_members(true);
            Box::pin(d)
        }
        Compression::Zstd => Box::pin(async_compression::tokio::bufread::ZstdDecoder::new(reader)),
        Compression::None => unreachable!("handled above"),
    };
    let mut total = 0u64;
    let kind = if how == Compression::Gzip {
        "gzip"
    } else {
        "zstd"
    };
    Ok(
        tokio_util::io::ReaderStream::with_capacity(decoder, DECOMPRESSED_CHUNK)
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
            .boxed(),
    )
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
