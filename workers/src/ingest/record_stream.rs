//! A file's records one at a time, for the record-by-record reading ([`super::exact`]): as the
//! [`Framer`] splits them (CSV, and the elements of a JSON array), or, for JSON lines, a line at
//! a time, joining lines only while a record's brackets stay open. Memory holds one record (at
//! most the record cap) and a group of them ([`RecordSource::group`]).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::ObjectStore;

use super::fetch::{byte_stream, SourceFile};
use super::records::Framer;
use super::IngestError;

/// Records one group holds at most.
pub const GROUP_RECORDS: usize = 1_024;
/// Bytes of records one group holds at most (one record alone may be longer, up to the cap).
pub const GROUP_BYTES: usize = 4 << 20;

/// Where a file's records come from, one at a time.
#[allow(async_fn_in_trait)]
pub trait RecordSource {
    /// The next record, or `None` at the end of the file.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, IngestError>;

    /// The next records that are not blank, up to [`GROUP_RECORDS`] or [`GROUP_BYTES`]; empty at
    /// the end of the file.
    async fn group(&mut self) -> Result<Vec<Vec<u8>>, IngestError> {
        let (mut group, mut bytes) = (Vec::new(), 0usize);
        while group.len() < GROUP_RECORDS && bytes < GROUP_BYTES {
            match self.next().await? {
                Some(r) => {
                    bytes += r.len();
                    if r.iter().any(|b| !b.is_ascii_whitespace()) {
                        group.push(r);
                    }
                }
                None => break,
            }
        }
        Ok(group)
    }
}

/// A JSON file's records one at a time. One array: its elements, as the [`Framer`] splits them
/// (an element that is not JSON breaks the array, and with it the file). JSON lines: a record
/// per line, or over several lines when a record is written over several (it is complete JSON
/// only with the lines after it); a line that is neither is a record on its own, so one
/// malformed line costs that line and no more.
pub enum JsonRecords {
    Array(Records),
    Lines(Lines),
}

impl JsonRecords {
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        file: &SourceFile,
        cap: u64,
    ) -> Result<JsonRecords, IngestError> {
        let mut chunks = byte_stream(store, file).await?;
        // The first non-blank byte decides, as in the fast path.
        let mut head: Vec<Bytes> = Vec::new();
        let mut array = false;
        while let Some(chunk) = chunks.next().await.transpose()? {
            let first = chunk.iter().find(|b| !b.is_ascii_whitespace()).copied();
            head.push(chunk);
            if let Some(b) = first {
                array = b == b'[';
                break;
            }
        }
        let chunks = futures::stream::iter(head.into_iter().map(Ok))
            .chain(chunks)
            .boxed();
        Ok(if array {
            JsonRecords::Array(Records::from_stream(chunks, Framer::json(cap), &file.name))
        } else {
            JsonRecords::Lines(Lines {
                chunks,
                pending: Bytes::new(),
                partial: Vec::new(),
                queue: std::collections::VecDeque::new(),
                plain: 0,
                ended: false,
                offset: 0,
                cap,
                name: file.name.clone(),
            })
        })
    }
}

impl RecordSource for JsonRecords {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        match self {
            JsonRecords::Array(r) => r.next().await,
            JsonRecords::Lines(l) => l.record().await,
        }
    }
}

/// Most lines one JSON record may span in the record-by-record reading.
const MAX_RECORD_LINES: usize = 10_000;

/// A JSON-lines file's records (see [`JsonRecords`]).
pub struct Lines {
    chunks: BoxStream<'static, Result<Bytes, IngestError>>,
    pending: Bytes,
    partial: Vec<u8>,
    /// Lines read but not yet used (after a record that spanned lines turned out not to).
    queue: std::collections::VecDeque<Vec<u8>>,
    /// Lines at the front of `queue` to take one by one.
    plain: usize,
    ended: bool,
    /// Bytes of the file before `pending`.
    offset: u64,
    cap: u64,
    name: String,
}

impl Lines {
    /// The next line (without its end), or `None` at the end of the file.
    async fn line(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        if let Some(l) = self.queue.pop_front() {
            return Ok(Some(l));
        }
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.pending) {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&self.pending[..i]);
                self.offset += i as u64 + 1;
                self.pending = self.pending.slice(i + 1..);
                self.check(&line)?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            self.partial.extend_from_slice(&self.pending);
            self.offset += self.pending.len() as u64;
            self.pending = Bytes::new();
            self.check(&self.partial)?;
            if self.ended {
                if self.partial.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
            match self.chunks.next().await.transpose()? {
                Some(c) => self.pending = c,
                None => self.ended = true,
            }
        }
    }

    fn check(&self, line: &[u8]) -> Result<(), IngestError> {
        if line.len() as u64 > self.cap {
            let start = self.offset.saturating_sub(line.len() as u64);
            let e = super::records::FrameError::TooLong {
                start,
                cap: self.cap,
            };
            return Err(IngestError::file(&self.name, e.message()));
        }
        Ok(())
    }

    /// The next record: a line that is JSON, or the lines that together are, or else the one
    /// line alone (which then fails to parse, as it should).
    async fn record(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        let first = loop {
            match self.line().await? {
                None => return Ok(None),
                Some(l) if l.iter().all(u8::is_ascii_whitespace) => {
                    self.plain = self.plain.saturating_sub(1);
                    continue;
                }
                Some(l) => break l,
            }
        };
        if self.plain > 0 {
            // A line given back by a failed join is a record on its own.
            self.plain -= 1;
            return Ok(Some(first));
        }
        // Lines are added while the brackets opened so far stay open (each byte is looked at
        // once), then the whole is parsed once.
        let mut open = Nesting::default();
        open.scan(&first);
        if open.depth == 0 {
            return Ok(Some(first));
        }
        let mut taken: Vec<Vec<u8>> = Vec::new();
        let mut acc = first.clone();
        while open.depth > 0 && taken.len() < MAX_RECORD_LINES {
            match self.line().await? {
                Some(next) if (acc.len() + next.len()) as u64 <= self.cap => {
                    open.scan(b"\n");
                    open.scan(&next);
                    acc.push(b'\n');
                    acc.extend_from_slice(&next);
                    taken.push(next);
                }
                Some(next) => {
                    taken.push(next);
                    break;
                }
                None => break,
            }
        }
        if open.depth == 0 && serde_json::from_slice::<serde::de::IgnoredAny>(&acc).is_ok() {
            return Ok(Some(acc));
        }
        // Not one record over several lines: the first line alone is the record; the lines
        // after it are read again, each on its own (so no line is joined twice).
        self.plain = taken.len();
        for l in taken.into_iter().rev() {
            self.queue.push_front(l);
        }
        Ok(Some(first))
    }
}

/// How deep in brackets a piece of JSON text ends, outside strings.
#[derive(Default)]
struct Nesting {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Nesting {
    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
    }
}

/// A file's records one at a time, as a [`Framer`] splits them (each with the bytes around it
/// that a decoder would see).
pub struct Records {
    chunks: BoxStream<'static, Result<Bytes, IngestError>>,
    framer: Framer,
    pending: Bytes,
    current: Vec<u8>,
    ended: bool,
    name: String,
}

impl Records {
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        file: &SourceFile,
        framer: Framer,
    ) -> Result<Records, IngestError> {
        Ok(Records::from_stream(
            byte_stream(store, file).await?,
            framer,
            &file.name,
        ))
    }

    fn from_stream(
        chunks: BoxStream<'static, Result<Bytes, IngestError>>,
        framer: Framer,
        name: &str,
    ) -> Records {
        Records {
            chunks,
            framer: framer.stopping_at_each_record(),
            pending: Bytes::new(),
            current: Vec::new(),
            ended: false,
            name: name.to_owned(),
        }
    }

    /// The next record, or `None` at the end of the file.
    async fn record(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        loop {
            if !self.pending.is_empty() {
                let step = self
                    .framer
                    .step(&self.pending)
                    .map_err(|e| IngestError::file(&self.name, e.message()))?;
                self.current
                    .extend_from_slice(&self.pending[step.feed.clone()]);
                self.pending = self.pending.slice(step.consumed..);
                if step.record_end {
                    return Ok(Some(std::mem::take(&mut self.current)));
                }
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            match self.chunks.next().await.transpose()? {
                Some(chunk) => self.pending = chunk,
                None => {
                    self.ended = true;
                    self.framer
                        .finish()
                        .map_err(|e| IngestError::file(&self.name, e.message()))?;
                    let last = std::mem::take(&mut self.current);
                    if last.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Ok(Some(last));
                    }
                    return Ok(None);
                }
            }
        }
    }
}

impl RecordSource for Records {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        self.record().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(text: &str, cap: u64) -> Vec<String> {
        let chunks: Vec<Result<Bytes, IngestError>> = text
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut l = Lines {
            chunks: futures::stream::iter(chunks).boxed(),
            pending: Bytes::new(),
            partial: Vec::new(),
            queue: std::collections::VecDeque::new(),
            plain: 0,
            ended: false,
            offset: 0,
            cap,
            name: "f.json".into(),
        };
        let mut out = Vec::new();
        while let Some(r) = l.record().await.expect("records") {
            out.push(String::from_utf8(r).expect("utf-8"));
        }
        out
    }

    #[tokio::test]
    async fn json_lines_records_span_lines_only_when_they_must() {
        let text = "{\"id\": 1}\n{\"id\":\n  2,\n  \"x\": [1,\n 2]}\n{\"id\": 3, \"name\": \n[1, 2]\n\n{\"id\": 4}\r\n{\"id\": 5";
        assert_eq!(
            lines_of(text, 1 << 20).await,
            [
                "{\"id\": 1}",
                "{\"id\":\n  2,\n  \"x\": [1,\n 2]}",
                "{\"id\": 3, \"name\": ",
                "[1, 2]",
                "{\"id\": 4}",
                "{\"id\": 5",
            ]
        );
    }
}
