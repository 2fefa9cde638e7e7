//! Where one record of a JSON or CSV file ends, found before the bytes reach arrow's decoders,
//! so that no record can make a run hold more than the operator's cap
//! (`AUTOLOADER_MAX_RECORD_BYTES`) and a decoder is only ever flushed between records.
//!
//! * JSON lines (any whitespace between documents, pretty-printed documents too): a record is one
//!   top-level document. Its length runs from its first byte to the bracket that closes it;
//!   whitespace between documents belongs to none.
//! * One JSON array of records (the file's first non-blank byte is `[`): a record is one element
//!   of the array, which must be an object. Only the elements reach the decoder, one after
//!   another: the array is decoded element by element, never held whole.
//! * CSV: a record is one line, a line break inside a quoted field included (the dialect arrow's
//!   reader speaks: a quote opens a quoted field only as a field's first character, and a doubled
//!   quote inside one is a quote).
//!
//! [`Framer::step`] scans a chunk and says which part of it to feed to the decoder, and when a
//! record has just ended: the moment a batch may be flushed (arrow refuses a flush part-way
//! through a record).

use std::ops::Range;

/// Bytes fed to a decoder after which its batch is flushed at the next record end, even when it
/// holds fewer rows than a full batch: a batch of long records stays about this size.
pub const FLUSH_BYTES: u64 = 32 << 20;

/// The part of a chunk to feed, and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the chunk to hand to the decoder (part of a record, or whole records).
    pub feed: Range<usize>,
    /// Bytes of the chunk this step used up (`feed.end`, or further past separators).
    pub consumed: usize,
    /// The step ends right after a record.
    pub record_end: bool,
    /// The decoder has taken [`FLUSH_BYTES`] since its last flush and a record has just ended:
    /// flush it now.
    pub flush: bool,
}

/// Why a file's bytes cannot be split into records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A record is longer than the cap.
    TooLong { start: u64, cap: u64 },
    /// The file is not what its format says (an array that is not one of records, say).
    Invalid(String),
}

impl FrameError {
    /// The error as a run shows it, after the file's name.
    pub fn message(&self) -> String {
        match self {
            FrameError::TooLong { start, cap } => format!(
                "the record starting at byte {start} is longer than {cap} bytes, the most one \
                 record may take (AUTOLOADER_MAX_RECORD_BYTES); nothing past that was read"
            ),
            FrameError::Invalid(m) => format!("invalid JSON: {m}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayAt {
    /// Right after the opening `[`.
    Open,
    /// After a `,`: an element must follow.
    Comma,
    /// Inside an element.
    Element,
    /// After an element: `,` or `]` must follow.
    After,
    /// After the closing `]`: only whitespace may follow.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonMode {
    /// Nothing but whitespace seen yet.
    Undecided,
    Lines,
    Array(ArrayAt),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvAt {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: it closes the field, or a second quote follows.
    QuoteInQuoted,
}

#[derive(Debug, Clone, Copy)]
enum Syntax {
    Json {
        mode: JsonMode,
        depth: u32,
        in_string: bool,
        escape: bool,
    },
    Csv {
        at: CsvAt,
        delimiter: u8,
        quote: u8,
    },
}

/// Splits a file's bytes into records as they stream by (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Framer {
    syntax: Syntax,
    cap: u64,
    /// A record has begun and not yet ended.
    in_record: bool,
    /// Offset in the file of the first byte of the next chunk.
    offset: u64,
    /// Offset in the file where the current record began.
    start: u64,
    /// Bytes fed since the decoder's last flush.
    since_flush: u64,
    flush_bytes: u64,
    /// End a step at every record's end (to collect records one by one).
    stop_each: bool,
}

/// Bytes that matter inside a record outside its strings.
static DEEP_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Where in `bytes` the first byte that `is` is: the first [`SHORT`] bytes are looked through
/// directly (most strings and fields are short, and `memchr` costs a set-up per call), the rest
/// with `search` (`memchr`, fast on long runs).
#[inline]
fn first_of(
    bytes: &[u8],
    is: impl Fn(u8) -> bool,
    search: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let head = &bytes[..bytes.len().min(SHORT)];
    match head.iter().position(|b| is(*b)) {
        Some(k) => Some(k),
        None if bytes.len() > SHORT => search(&bytes[SHORT..]).map(|k| k + SHORT),
        None => None,
    }
}

/// See [`first_of`].
const SHORT: usize = 32;

/// Where in `bytes` (inside a JSON string) the next quote or backslash is.
#[inline]
fn string_stop(bytes: &[u8]) -> Option<usize> {
    first_of(
        bytes,
        |b| b == b'"' || b == b'\\',
        |r| memchr::memchr2(b'"', b'\\', r),
    )
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl Framer {
    /// JSON lines or one JSON array, decided by the file's first non-blank byte.
    pub fn json(cap: u64) -> Framer {
        Framer::new(
            Syntax::Json {
                mode: JsonMode::Undecided,
                depth: 0,
                in_string: false,
                escape: false,
            },
            cap,
        )
    }

    /// JSON lines (no array), from `offset` in the file, where no record is under way: to take
    /// over from a reader that has fed the bytes before.
    pub fn json_lines_from(cap: u64, offset: u64) -> Framer {
        let mut f = Framer::new(
            Syntax::Json {
                mode: JsonMode::Lines,
                depth: 0,
                in_string: false,
                escape: false,
            },
            cap,
        );
        f.offset = offset;
        f
    }

    /// The same as [`Framer::json`], from `offset` in the file (the bytes before were blank).
    pub fn json_from(cap: u64, offset: u64) -> Framer {
        let mut f = Framer::json(cap);
        f.offset = offset;
        f
    }

    /// CSV with this delimiter and quote.
    pub fn csv(cap: u64, delimiter: u8, quote: u8) -> Framer {
        Framer::new(
            Syntax::Csv {
                at: CsvAt::FieldStart,
                delimiter,
                quote,
            },
            cap,
        )
    }

    fn new(syntax: Syntax, cap: u64) -> Framer {
        Framer {
            syntax,
            cap,
            in_record: false,
            offset: 0,
            start: 0,
            since_flush: 0,
            flush_bytes: FLUSH_BYTES,
            stop_each: false,
        }
    }

    /// Ends a step at every record's end, not only when a flush is due.
    pub fn stopping_at_each_record(mut self) -> Framer {
        self.stop_each = true;
        self
    }

    #[cfg(test)]
    fn flushing_every(mut self, bytes: u64) -> Framer {
        self.flush_bytes = bytes;
        self
    }

    /// Whether the file is one JSON array (known once its first non-blank byte is seen).
    pub fn is_json_array(&self) -> bool {
        matches!(
            self.syntax,
            Syntax::Json {
                mode: JsonMode::Array(_),
                ..
            }
        )
    }

    /// The next step through `chunk` (not empty): what to feed and whether a record ended. Call
    /// again with the rest of the chunk (`chunk[step.consumed..]`) until it is used up.
    pub fn step(&mut self, chunk: &[u8]) -> Result<Step, FrameError> {
        let step = match self.syntax {
            Syntax::Csv { .. } => self.csv_step(chunk)?,
            Syntax::Json { mode, .. } => match mode {
                JsonMode::Undecided => self.undecided_step(chunk),
                JsonMode::Lines => self.json_step(chunk, 0)?,
                JsonMode::Array(_) => self.array_step(chunk)?,
            },
        };
        self.offset += step.consumed as u64;
        self.since_flush += step.feed.len() as u64;
        let flush = step.record_end && self.since_flush >= self.flush_bytes;
        if flush {
            self.since_flush = 0;
        }
        Ok(Step { flush, ..step })
    }

    /// At the end of the file: an array must have been closed.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.syntax {
            Syntax::Json {
                mode: JsonMode::Array(at),
                ..
            } if at != ArrayAt::Closed => Err(FrameError::Invalid(
                "the file ends inside its array (no closing ']')".into(),
            )),
            _ => Ok(()),
        }
    }

    fn too_long(&self) -> FrameError {
        FrameError::TooLong {
            start: self.start,
            cap: self.cap,
        }
    }

    /// A record begins at `at` in the chunk (unless one is under way).
    #[inline]
    fn begin(&mut self, at: usize) {
        if !self.in_record {
            self.in_record = true;
            self.start = self.offset + at as u64;
        }
    }

    /// The current record ends before `at` in the chunk: refused if longer than the cap.
    #[inline]
    fn end(&mut self, at: usize) -> Result<(), FrameError> {
        if self.in_record {
            self.in_record = false;
            if self.offset + at as u64 - self.start > self.cap {
                return Err(self.too_long());
            }
        }
        Ok(())
    }

    /// The chunk ends at `len` inside a record: refused once the record is longer than the cap
    /// (before any of the chunk is fed).
    #[inline]
    fn check_open(&self, len: usize) -> Result<(), FrameError> {
        if self.in_record && self.offset + len as u64 - self.start > self.cap {
            return Err(self.too_long());
        }
        Ok(())
    }

    fn undecided_step(&mut self, chunk: &[u8]) -> Step {
        let Syntax::Json { mode, .. } = &mut self.syntax else {
            unreachable!("JSON only")
        };
        match chunk.iter().position(|b| !is_blank(*b)) {
            None => Step {
                feed: 0..0,
                consumed: chunk.len(),
                record_end: false,
                flush: false,
            },
            Some(i) if chunk[i] == b'[' => {
                *mode = JsonMode::Array(ArrayAt::Open);
                Step {
                    feed: 0..0,
                    consumed: i + 1,
                    record_end: false,
                    flush: false,
                }
            }
            Some(i) => {
                *mode = JsonMode::Lines;
                Step {
                    feed: 0..0,
                    consumed: i,
                    record_end: false,
                    flush: false,
                }
            }
        }
    }

    /// JSON from `from` on: a run of bytes up to the end of a top-level document (when a step
    /// must end there) or of the chunk. In an array's element, the element's closing brace is
    /// the end. Strings are skipped with `memchr`: most of a JSON file's bytes are in them.
    fn json_step(&mut self, chunk: &[u8], from: usize) -> Result<Step, FrameError> {
        let Syntax::Json {
            mode,
            mut depth,
            mut in_string,
            mut escape,
        } = self.syntax
        else {
            unreachable!("JSON only")
        };
        let in_array = matches!(mode, JsonMode::Array(_));
        let mut i = from;
        let mut record_end = false;
        let result = loop {
            if in_string {
                if escape {
                    if i == chunk.len() {
                        break Ok(());
                    }
                    escape = false;
                    i += 1;
                }
                match string_stop(&chunk[i..]) {
                    None => {
                        i = chunk.len();
                        break Ok(());
                    }
                    Some(k) => {
                        i += k + 1;
                        if chunk[i - 1] == b'\\' {
                            escape = true;
                        } else {
                            in_string = false;
                        }
                        continue;
                    }
                }
            }
            if depth > 0 {
                // Inside a record, outside strings: only brackets and quotes matter.
                match chunk[i..].iter().position(|b| DEEP_STOP[usize::from(*b)]) {
                    None => {
                        i = chunk.len();
                        break Ok(());
                    }
                    Some(k) => i += k,
                }
            }
            let Some(&b) = chunk.get(i) else {
                break Ok(());
            };
            match b {
                b' ' | b'\n' | b'\r' | b'\t' if depth == 0 => {
                    // Between documents (or after a bare value): part of no record.
                    if let Err(e) = self.end(i) {
                        break Err(e);
                    }
                }
                b'"' => {
                    self.begin(i);
                    record_end = false;
                    in_string = true;
                }
                b'{' | b'[' => {
                    self.begin(i);
                    record_end = false;
                    depth += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        if let Err(e) = self.end(i + 1) {
                            break Err(e);
                        }
                        i += 1;
                        record_end = true;
                        if in_array
                            || self.stop_each
                            || self.since_flush + (i - from) as u64 >= self.flush_bytes
                        {
                            break Ok(());
                        }
                        continue;
                    }
                }
                _ => {
                    self.begin(i);
                    record_end = false;
                }
            }
            i += 1;
        };
        self.syntax = Syntax::Json {
            mode,
            depth,
            in_string,
            escape,
        };
        result?;
        self.check_open(i)?;
        Ok(Step {
            feed: from..i,
            consumed: i,
            record_end,
            flush: false,
        })
    }

    /// One JSON array: separators are skipped, elements fed one by one.
    fn array_step(&mut self, chunk: &[u8]) -> Result<Step, FrameError> {
        let Syntax::Json {
            mode: JsonMode::Array(mut at),
            ..
        } = self.syntax
        else {
            unreachable!("a JSON array")
        };
        let mut i = 0;
        while at != ArrayAt::Element {
            let Some(&b) = chunk.get(i) else {
                break;
            };
            let byte = self.offset + i as u64;
            at = match (at, b) {
                (_, b) if is_blank(b) => at,
                (ArrayAt::Open | ArrayAt::After, b']') => ArrayAt::Closed,
                (ArrayAt::After, b',') => ArrayAt::Comma,
                (ArrayAt::Open | ArrayAt::Comma, b'{') => {
                    self.syntax = Syntax::Json {
                        mode: JsonMode::Array(ArrayAt::Element),
                        depth: 0,
                        in_string: false,
                        escape: false,
                    };
                    break;
                }
                (ArrayAt::Open | ArrayAt::Comma, _) => {
                    return Err(FrameError::Invalid(format!(
                        "the array holds something other than a record (an object) at byte {byte}"
                    )))
                }
                (ArrayAt::After, _) => {
                    return Err(FrameError::Invalid(format!(
                        "expected ',' or ']' after a record of the array at byte {byte}"
                    )))
                }
                (ArrayAt::Closed, _) => {
                    return Err(FrameError::Invalid(format!(
                        "more after the end of the array at byte {byte}"
                    )))
                }
                (ArrayAt::Element, _) => unreachable!("left the loop"),
            };
            i += 1;
        }
        if !matches!(
            self.syntax,
            Syntax::Json {
                mode: JsonMode::Array(ArrayAt::Element),
                ..
            }
        ) {
            if let Syntax::Json { mode, .. } = &mut self.syntax {
                *mode = JsonMode::Array(at);
            }
            return Ok(Step {
                feed: i..i,
                consumed: i,
                record_end: false,
                flush: false,
            });
        }
        let step = self.json_step(chunk, i)?;
        if step.record_end {
            if let Syntax::Json { mode, .. } = &mut self.syntax {
                *mode = JsonMode::Array(ArrayAt::After);
            }
        }
        Ok(step)
    }

    /// CSV: an unquoted field is skipped to the next delimiter or line break, a quoted one to
    /// the next quote, with `memchr`.
    fn csv_step(&mut self, chunk: &[u8]) -> Result<Step, FrameError> {
        let Syntax::Csv {
            mut at,
            delimiter,
            quote,
        } = self.syntax
        else {
            unreachable!("CSV only")
        };
        let mut i = 0;
        let mut record_end = false;
        let result = loop {
            let Some(&b) = chunk.get(i) else {
                break Ok(());
            };
            let line_break = b == b'\n' || b == b'\r';
            match at {
                CsvAt::Quoted => {
                    match memchr::memchr(quote, &chunk[i..]) {
                        None => {
                            i = chunk.len();
                            break Ok(());
                        }
                        Some(k) => i += k + 1,
                    }
                    at = CsvAt::QuoteInQuoted;
                }
                CsvAt::Unquoted if !line_break => {
                    match memchr::memchr3(delimiter, b'\n', b'\r', &chunk[i..]) {
                        None => {
                            i = chunk.len();
                            break Ok(());
                        }
                        Some(k) => i += k,
                    }
                    if chunk[i] == delimiter {
                        at = CsvAt::FieldStart;
                        i += 1;
                    }
                }
                _ if line_break => {
                    if let Err(e) = self.end(i) {
                        break Err(e);
                    }
                    at = CsvAt::FieldStart;
                    i += 1;
                    // Only after a '\n' may the decoder be flushed: a '\r' may be half of "\r\n".
                    record_end = b == b'\n';
                    if record_end
                        && (self.stop_each || self.since_flush + i as u64 >= self.flush_bytes)
                    {
                        break Ok(());
                    }
                }
                CsvAt::FieldStart | CsvAt::QuoteInQuoted | CsvAt::Unquoted => {
                    self.begin(i);
                    record_end = false;
                    at = if b == quote {
                        CsvAt::Quoted
                    } else if b == delimiter {
                        CsvAt::FieldStart
                    } else {
                        CsvAt::Unquoted
                    };
                    i += 1;
                }
            }
        };
        self.syntax = Syntax::Csv {
            at,
            delimiter,
            quote,
        };
        result?;
        self.check_open(i)?;
        Ok(Step {
            feed: 0..i,
            consumed: i,
            record_end,
            flush: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `bytes` through `framer` in chunks of `chunk` bytes; returns the bytes fed with a
    /// `|` after each record end that ended a step, and the flushes.
    fn run(mut framer: Framer, bytes: &[u8], chunk: usize) -> Result<(String, usize), FrameError> {
        let mut fed = Vec::new();
        let mut flushes = 0;
        for part in bytes.chunks(chunk) {
            let mut rest = part;
            while !rest.is_empty() {
                let step = framer.step(rest)?;
                fed.extend_from_slice(&rest[step.feed.clone()]);
                if step.record_end && framer.stop_each {
                    fed.push(b'|');
                }
                flushes += usize::from(step.flush);
                rest = &rest[step.consumed..];
            }
        }
        framer.finish()?;
        Ok((String::from_utf8(fed).expect("utf-8"), flushes))
    }

    fn records(framer: Framer, bytes: &str) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in [1, 2, 3, 7, 1024] {
            let (fed, _) = run(
                framer.clone().stopping_at_each_record(),
                bytes.as_bytes(),
                chunk,
            )
            .unwrap_or_else(|e| panic!("{bytes:?} in chunks of {chunk}: {e:?}"));
            let recs: Vec<String> = fed
                .split('|')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
            if chunk == 1 {
                out = recs;
            } else {
                assert_eq!(recs, out, "the same records whatever the chunks ({chunk})");
            }
        }
        out
    }

    #[test]
    fn json_lines_split_into_documents_whatever_their_layout() {
        let text =
            "{\"a\": 1}\n{\"b\": \"x}{\\\"y\"}  {\"c\": [1, {\"d\": 2}]}\n{\n  \"e\": 3\n}\n";
        assert_eq!(
            records(Framer::json(1024), text),
            [
                "{\"a\": 1}",
                "{\"b\": \"x}{\\\"y\"}",
                "{\"c\": [1, {\"d\": 2}]}",
                "{\n  \"e\": 3\n}"
            ]
        );
    }

    #[test]
    fn a_json_array_is_fed_element_by_element() {
        let text = " [ {\"a\": [1, 2]} , {\"b\": \"],[\"},\n{}\n] \n";
        let framer = Framer::json(1024);
        assert_eq!(
            records(framer.clone(), text),
            ["{\"a\": [1, 2]}", "{\"b\": \"],[\"}", "{}"]
        );
        // Without stopping at each record, only the elements reach the decoder.
        let (fed, _) = run(framer, text.as_bytes(), 3).expect("valid");
        assert_eq!(fed, "{\"a\": [1, 2]}{\"b\": \"],[\"}{}");
        assert_eq!(records(Framer::json(1024), "[]"), Vec::<String>::new());
    }

    #[test]
    fn a_json_array_must_hold_records_and_end() {
        for (bad, what) in [
            ("[1, 2]", "something other than a record"),
            ("[{}, ]", "something other than a record"),
            ("[{} {}]", "expected ','"),
            ("[{}] [{}]", "more after the end"),
            ("[{}, {}", "ends inside its array"),
        ] {
            let e = run(Framer::json(1024), bad.as_bytes(), 2).expect_err(bad);
            assert!(e.message().contains(what), "{bad}: {}", e.message());
        }
    }

    #[test]
    fn a_record_over_the_cap_is_refused_where_it_starts() {
        let long = format!("{{\"a\": \"{}\"}}", "x".repeat(100));
        let ok = format!("{{\"a\": 1}}\n{long}\n");
        assert!(run(Framer::json(200), ok.as_bytes(), 7).is_ok());
        let e = run(Framer::json(50), ok.as_bytes(), 7).expect_err("too long");
        assert_eq!(e, FrameError::TooLong { start: 9, cap: 50 });
        assert!(e.message().contains("AUTOLOADER_MAX_RECORD_BYTES"), "{e:?}");
        // An array's element, and a line without any structure at all.
        let array = format!("[{{\"a\": 1}}, {long}]");
        let e = run(Framer::json(50), array.as_bytes(), 4).expect_err("too long");
        assert_eq!(e, FrameError::TooLong { start: 11, cap: 50 });
        let e = run(Framer::json(50), "x".repeat(51).as_bytes(), 8).expect_err("too long");
        assert_eq!(e, FrameError::TooLong { start: 0, cap: 50 });
        // Whitespace between records is nobody's.
        let spaced = format!("{{}}{}{{}}", " ".repeat(500));
        assert!(run(Framer::json(10), spaced.as_bytes(), 64).is_ok());
    }

    #[test]
    fn csv_records_end_at_line_breaks_outside_quotes() {
        let text = "id,note\n1,\"two\nlines\"\n2,\"say \"\"hi\"\"\"\n3,it\"s\r\n4,x";
        assert_eq!(
            records(Framer::csv(1024, b',', b'"'), text),
            [
                "id,note",
                "1,\"two\nlines\"",
                "2,\"say \"\"hi\"\"\"",
                "3,it\"s",
                "4,x"
            ]
        );
        // A stray quote inside an unquoted field opens nothing: the next line is a record.
        let e = run(Framer::csv(10, b',', b'"'), b"a\"b,c\n0123456789A\n", 4).expect_err("long");
        assert_eq!(e, FrameError::TooLong { start: 6, cap: 10 });
        let e = run(Framer::csv(10, b';', b'\''), b"a;'x\n\n\n\n\n\n\n'\n", 3).expect_err("long");
        assert_eq!(e, FrameError::TooLong { start: 0, cap: 10 });
    }

    #[test]
    fn flushes_fall_on_record_ends_once_enough_is_fed() {
        let text = "{\"a\": 1}\n".repeat(10);
        let (fed, flushes) =
            run(Framer::json(1024).flushing_every(20), text.as_bytes(), 5).expect("valid");
        assert_eq!(fed, text);
        assert_eq!(flushes, 3, "after 27, 27 and 27 bytes");
        let text = "a,b\r\n".repeat(10);
        let (_, flushes) = run(
            Framer::csv(1024, b',', b'"').flushing_every(10),
            text.as_bytes(),
            3,
        )
        .expect("valid");
        assert_eq!(flushes, 5, "after each second line's '\\n'");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore = "a measurement: FRAMER_FILE=path cargo test --release -p autoloader-worker --lib speed -- --ignored --nocapture"]
    fn framer_throughput() {
        let path = std::env::var("FRAMER_FILE").expect("FRAMER_FILE");
        let bytes = std::fs::read(&path).expect("read");
        for _ in 0..3 {
            let mut framer = if path.ends_with(".csv") {
                Framer::csv(16 << 20, b',', b'"')
            } else {
                Framer::json(16 << 20)
            };
            let t = std::time::Instant::now();
            let mut steps = 0;
            for chunk in bytes.chunks(8 << 20) {
                let mut at = 0;
                while at < chunk.len() {
                    let step = framer.step(&chunk[at..]).expect("valid");
                    at += step.consumed;
                    steps += 1;
                }
            }
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "{} MB in {s:.3} s: {:.0} MB/s ({steps} steps)",
                bytes.len() / 1_000_000,
                bytes.len() as f64 / s / 1e6
            );
        }
    }
}
