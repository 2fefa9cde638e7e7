//! Snappy's framing format, read as it streams: the format `snzip` and python-snappy's
//! `stream_compress` write (a stream identifier chunk, then chunks of at most 64 KiB of data,
//! each with the masked CRC-32C of its data). One chunk is held at a time and each is checked
//! against its checksum. Raw snappy blocks and Hadoop's snappy codec are other formats, not read.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The chunk every framed stream starts with (type 0xff, length 6, "sNaPpY"): the format's magic.
pub(super) const STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Most bytes one chunk's data may be, uncompressed.
const MAX_CHUNK_DATA: usize = 65_536;

/// CRC-32C (Castagnoli), the checksum of the framing format.
static CASTAGNOLI: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The format's checksum of `data`: its CRC-32C, masked.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = CASTAGNOLI.checksum(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The framed stream `reader` decompressed, as pieces of at most `piece` bytes (`piece` of at
/// least 64 KiB). The reader's own errors come out unchanged; the format's are `InvalidData`.
pub(super) fn frames<R>(reader: R, piece: usize) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    let frames = Frames {
        reader,
        decoder: snap::raw::Decoder::new(),
        chunk: Vec::new(),
        started: false,
    };
    futures::stream::try_unfold(frames, move |mut frames| async move {
        let mut out = BytesMut::with_capacity(piece);
        while out.len() + MAX_CHUNK_DATA <= piece.max(MAX_CHUNK_DATA) {
            if !frames.chunk(&mut out).await? {
                break;
            }
        }
        Ok((!out.is_empty()).then(|| (out.freeze(), frames)))
    })
}

struct Frames<R> {
    reader: R,
    decoder: snap::raw::Decoder,
    /// The chunk being read (at most a compressed chunk's largest size).
    chunk: Vec<u8>,
    /// Whether the stream identifier has been read.
    started: bool,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// A read that met the end of the file inside a chunk.
fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        invalid("the stream ends inside a chunk (the file is truncated)")
    } else {
        e
    }
}

impl<R: AsyncBufRead + Unpin> Frames<R> {
    /// Reads the next chunk, appending its data to `out`; false at the stream's end.
    async fn chunk(&mut self, out: &mut BytesMut) -> io::Result<bool> {
        if self.reader.fill_buf().await?.is_empty() {
            return if self.started {
                Ok(false)
            } else {
                Err(invalid("the file is empty"))
            };
        }
        let mut header = [0u8; 4];
        self.reader
            .read_exact(&mut header)
            .await
            .map_err(truncated)?;
        let kind = header[0];
        let len = u32::from_le_bytes([header[1], header[2], header[3], 0]) as usize;
        if !self.started && kind != 0xff {
            return Err(invalid(
                "it does not start with the framing format's stream identifier (raw snappy and \
                 Hadoop's snappy are not read)",
            ));
        }
        match kind {
            0xff => {
                self.read_chunk(len, STREAM_IDENTIFIER.len() - 4).await?;
                if self.chunk != STREAM_IDENTIFIER[4..] {
                    return Err(invalid("a stream identifier chunk is not \"sNaPpY\""));
                }
                self.started = true;
            }
            0x00 | 0x01 => {
                let most = if kind == 0x00 {
                    snap::raw::max_compress_len(MAX_CHUNK_DATA)
                } else {
                    MAX_CHUNK_DATA
                };
                if len < 4 {
                    return Err(invalid(format!(
                        "a data chunk of {len} bytes is too short for its checksum"
                    )));
                }
                self.read_chunk(len, 4 + most).await?;
                let expected = u32::from_le_bytes([
                    self.chunk[0],
                    self.chunk[1],
                    self.chunk[2],
                    self.chunk[3],
                ]);
                let data = &self.chunk[4..];
                let start = out.len();
                if kind == 0x00 {
                    let n = snap::raw::decompress_len(data).map_err(invalid_snap)?;
                    if n > MAX_CHUNK_DATA {
                        return Err(invalid(format!(
                            "a chunk decompresses to {n} bytes, more than the format's \
                             {MAX_CHUNK_DATA}"
                        )));
                    }
                    out.resize(start + n, 0);
                    let written = self
                        .decoder
                        .decompress(data, &mut out[start..])
                        .map_err(invalid_snap)?;
                    out.truncate(start + written);
                } else {
                    out.extend_from_slice(data);
                }
                if masked_crc(&out[start..]) != expected {
                    return Err(invalid(
                        "a chunk's checksum does not match its data (the file is corrupt)",
                    ));
                }
            }
            0x02..=0x7f => {
                return Err(invalid(format!(
                    "a chunk of reserved type {kind:#04x}, which a reader may not skip"
                )));
            }
            // Padding (0xfe) and reserved skippable chunks (0x80..=0xfd): passed over unread.
            _ => {
                let mut left = len;
                while left > 0 {
                    let buf = self.reader.fill_buf().await?;
                    if buf.is_empty() {
                        return Err(truncated(io::ErrorKind::UnexpectedEof.into()));
                    }
                    let n = buf.len().min(left);
                    self.reader.consume(n);
                    left -= n;
                }
            }
        }
        Ok(true)
    }

    /// Reads a chunk's `len` bytes of content into `self.chunk`; more than `most` is refused
    /// before any is read.
    async fn read_chunk(&mut self, len: usize, most: usize) -> io::Result<()> {
        if len > most {
            return Err(invalid(format!(
                "a chunk of {len} bytes, more than the format allows for its type ({most})"
            )));
        }
        self.chunk.resize(len, 0);
        self.reader
            .read_exact(&mut self.chunk)
            .await
            .map_err(truncated)?;
        Ok(())
    }
}

fn invalid_snap(e: snap::Error) -> io::Error {
    invalid(format!("a chunk does not decompress: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn read(framed: &[u8]) -> io::Result<Vec<u8>> {
        let pieces: Vec<Bytes> = frames(std::io::Cursor::new(framed.to_vec()), 1 << 20)
            .try_collect()
            .await?;
        Ok(pieces.concat())
    }

    fn framed(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(data).expect("write");
        w.into_inner().expect("frame")
    }

    /// A chunk of `kind` with `content` as it is.
    fn chunk(kind: u8, content: &[u8]) -> Vec<u8> {
        let len = (content.len() as u32).to_le_bytes();
        let mut c = vec![kind, len[0], len[1], len[2]];
        c.extend_from_slice(content);
        c
    }

    /// A data chunk: uncompressed (0x01) or compressed (0x00) `data` with its checksum.
    fn data_chunk(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut content = masked_crc(data).to_le_bytes().to_vec();
        if kind == 0x00 {
            content.extend(
                snap::raw::Encoder::new()
                    .compress_vec(data)
                    .expect("compress"),
            );
        } else {
            content.extend_from_slice(data);
        }
        chunk(kind, &content)
    }

    #[tokio::test]
    async fn what_snap_writes_reads_back_whole() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(read(&framed(&data)).await.expect("read"), data);
        // Two streams one after the other (files concatenated) read as one.
        let mut two = framed(b"one\n");
        two.extend(framed(b"two\n"));
        assert_eq!(read(&two).await.expect("read"), b"one\ntwo\n");
    }

    #[tokio::test]
    async fn every_chunk_type_is_read_as_the_format_says() {
        let mut s = STREAM_IDENTIFIER.to_vec();
        s.extend(data_chunk(0x01, b"plain "));
        s.extend(chunk(0xfe, &[0; 10]));
        s.extend(chunk(0x80, b"skip me"));
        s.extend(data_chunk(0x00, b"packed"));
        assert_eq!(read(&s).await.expect("read"), b"plain packed");

        let mut reserved = STREAM_IDENTIFIER.to_vec();
        reserved.extend(chunk(0x02, b"x"));
        let e = read(&reserved).await.expect_err("reserved");
        assert!(e.to_string().contains("reserved type 0x02"), "{e}");
    }

    #[tokio::test]
    async fn a_damaged_stream_fails_saying_how() {
        let mut bad_sum = STREAM_IDENTIFIER.to_vec();
        let mut c = data_chunk(0x00, b"some data");
        c[4] ^= 1;
        bad_sum.extend(c);
        let e = read(&bad_sum).await.expect_err("checksum");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("checksum"), "{e}");

        let whole = framed(&[b'x'; 10_000]);
        let e = read(&whole[..whole.len() - 3]).await.expect_err("cut");
        assert!(e.to_string().contains("truncated"), "{e}");

        let e = read(b"not snappy at all").await.expect_err("raw");
        assert!(e.to_string().contains("stream identifier"), "{e}");

        let mut huge = STREAM_IDENTIFIER.to_vec();
        huge.extend([0x00, 0xff, 0xff, 0xff]);
        let e = read(&huge).await.expect_err("huge");
        assert!(e.to_string().contains("more than the format allows"), "{e}");
    }
}
